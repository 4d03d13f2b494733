/* PTRS_SIZED_FREE_CHECK=0 (here set with ptrs_option_set): a size or
 * alignment given to free_sized / free_aligned_sized / C++'s sized delete
 * that does not match the block frees the block as free() would, as
 * glibc does, instead of the diagnostic and abort (src/free.rs,
 * size_matches). Legacy C++ does this through undefined behaviour
 * (delete of a derived object through a base without a virtual
 * destructor, delete of a new[] array of chars), which g++ compiles to
 * the sized delete from C++14 on: a fresh tester's program of that kind
 * aborted under ptrs and ran on glibc.
 *
 * With the check on (the default) a mismatch still aborts (a forked
 * child); with it off, blocks of each kind (small, large, huge, aligned)
 * freed with the wrong size are really freed: their memory is handed out
 * again, the statistics drop by their size, and nothing is printed. An
 * invalid pointer is still reported. */
#include "test_helper.h"
#include "ptrs.h"
#include <malloc.h>

typedef void (*free_sized_fn)(void *, size_t);
typedef void (*free_aligned_sized_fn)(void *, size_t, size_t);
typedef int (*option_set_fn)(const char *, long long);
typedef long long (*option_get_fn)(const char *);
static free_sized_fn fs;
static free_aligned_sized_fn fas;

/* Bytes in use: mallinfo2's small and large blocks plus its huge ones. */
static size_t in_use(void) {
  struct mallinfo2 mi = mallinfo2();
  return mi.uordblks + mi.hblkhd;
}

static void bad_free(void *p) {
  fs(test_ptr(p), test_size(24));
}

int main(void) {
  require_ptrs();
  fs = (free_sized_fn)ptrs_symbol("free_sized");
  fas = (free_aligned_sized_fn)ptrs_symbol("free_aligned_sized");
  option_set_fn set = (option_set_fn)ptrs_symbol("ptrs_option_set");
  option_get_fn get = (option_get_fn)ptrs_symbol("ptrs_option_get");
  if (fs == NULL || fas == NULL || set == NULL || get == NULL)
    FAIL_EXIT("ptrs symbols missing");
  CHECK(get("sized_free_check") == 1);

  /* On: the mismatch aborts. */
  void *p = malloc(1000);
  expect_abort("free_sized(1000-byte block, 24)", bad_free, p, "free_sized",
               "size or alignment does not match the block", p);
  free(p);

  CHECK(set("sized_free_check", 0) == 0);
  CHECK(get("sized_free_check") == 0);
  static const size_t sizes[] = {200, 1000, 5000, 100000, 300000, 3 << 20};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    size_t n = sizes[i];
    size_t before = in_use();
    char *a = malloc(n);
    CHECK(a != NULL);
    fill_pattern(a, n, (int)i);
    size_t during = in_use();
    /* Wrong sizes: far too small, and larger than the block. */
    if (i % 2 == 0)
      fs(test_ptr(a), test_size(n / 10 + 1));
    else
      fs(test_ptr(a), test_size(n * 4));
    size_t after = in_use();
    if (!(during >= before + n && after + n <= during))
      fprintf(stderr, "%zu bytes: in use %zu, then %zu, after the free %zu\n", n, before, during, after);
    CHECK(during >= before + n);
    CHECK(after + n <= during);
    /* The memory is free: the same size comes back from it (the small
     * and large ones at once; a huge mapping may be cached or unmapped). */
    char *b = malloc(n);
    CHECK(b != NULL);
    if (n < (1 << 20))
      CHECK(b == a);
    fill_pattern(b, n, 99);
    CHECK(check_pattern(b, n, 99) == PATTERN_OK);
    free(b);
  }
  /* Aligned, with a wrong alignment and a wrong size. */
  void *al = aligned_alloc(4096, 4096);
  CHECK(al != NULL);
  fas(test_ptr(al), test_size(64), test_size(100));
  void *al2 = aligned_alloc(4096, 4096);
  CHECK(al2 == al);
  free(al2);
  /* An invalid pointer is still a heap error (forked child). */
  char *q = malloc(1000);
  expect_abort("free_sized(inside a block)", bad_free, q + 16, "free_sized",
               "invalid pointer", q + 16);
  free(q);
  return test_result();
}
