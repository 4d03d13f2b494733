/* A live block's address with bits set above the user address range
 * (bit 47, 50 or 63), or with a low bit set, is not a block: free,
 * free_sized, realloc and malloc_usable_size's callers must report it as
 * an invalid pointer (SIGABRT, "ptrs: free(): invalid pointer: 0x..."),
 * never read through it or free the block it aliases. free's fast path
 * finds the segment from the address with its high bits cleared and leaves
 * the rejection to its block-start test on the full address; this checks
 * that for small, large and huge blocks. After each forked child aborted,
 * the parent checks that the block is still intact and frees it. */
#include "test_helper.h"
#include <stdint.h>

typedef void (*free_sized_fn)(void *, size_t);
static free_sized_fn fs;
static size_t cur_size;

static void do_free(void *p) { free(test_ptr(p)); }
static void do_free_sized(void *p) { fs(test_ptr(p), cur_size); }
static void do_realloc(void *p) {
  void *q = realloc(test_ptr(p), cur_size);
  fprintf(stderr, "realloc returned %p\n", q);
}

int main(void) {
  require_ptrs();
  fs = (free_sized_fn)ptrs_symbol("free_sized");
  CHECK(fs != NULL);
  static const size_t sizes[] = {16, 48, 1000, 50000, 300000, 8 << 20};
  static const uintptr_t high[] = {(uintptr_t)1 << 47, (uintptr_t)1 << 50,
                                   (uintptr_t)1 << 63,
                                   ~(((uintptr_t)1 << 47) - 1)};
  static const uintptr_t low[] = {1, 8, 15};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    cur_size = sizes[i];
    unsigned char *p = malloc(cur_size);
    CHECK(p != NULL);
    if (p == NULL)
      continue;
    memset(p, 0x5a, cur_size);
    char what[96];
    for (size_t h = 0; h < sizeof high / sizeof high[0]; h++) {
      void *bad = (void *)((uintptr_t)p | high[h]);
      snprintf(what, sizeof what, "free of malloc(%zu) | %#lx", cur_size,
               (unsigned long)high[h]);
      expect_abort(what, do_free, bad, "free", "invalid pointer", bad);
      snprintf(what, sizeof what, "free_sized of malloc(%zu) | %#lx",
               cur_size, (unsigned long)high[h]);
      expect_abort(what, do_free_sized, bad, "free_sized", "invalid pointer",
                   bad);
      snprintf(what, sizeof what, "realloc of malloc(%zu) | %#lx", cur_size,
               (unsigned long)high[h]);
      expect_abort(what, do_realloc, bad, "realloc", "invalid pointer", bad);
    }
    for (size_t l = 0; l < sizeof low / sizeof low[0]; l++) {
      void *bad = p + low[l];
      snprintf(what, sizeof what, "free of malloc(%zu) + %lu", cur_size,
               (unsigned long)low[l]);
      expect_abort(what, do_free, bad, "free", "invalid pointer", bad);
      snprintf(what, sizeof what, "realloc of malloc(%zu) + %lu", cur_size,
               (unsigned long)low[l]);
      expect_abort(what, do_realloc, bad, "realloc", "invalid pointer", bad);
    }
    size_t intact = 0;
    while (intact < cur_size && p[intact] == 0x5a)
      intact++;
    CHECK(intact == cur_size);
    free(p);
  }
  return test_result();
}
