/* valloc returns page-aligned blocks; pvalloc page-aligned blocks whose
 * usable size is rounded up to a whole number of pages; pvalloc(0) gives
 * one page; impossible sizes fail with ENOMEM. */
#include "test_helper.h"
#include <malloc.h>

int main(void) {
  require_ptrs();
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  static const size_t sizes[] = {0, 1, 100, 4095, 4096, 4097, 10000, 65536,
                                 100000, 1 << 20, (3 << 20) + 1};

  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    size_t n = sizes[i];
    void *p = valloc(test_size(n));
    CHECK(p != NULL);
    if (p != NULL) {
      CHECK(is_aligned(p, page));
      CHECK(test_owns(p));
      size_t u = malloc_usable_size(p);
      CHECK(u >= n);
      memset(p, 0x11, u);
      free(p);
    }

    size_t rounded = n == 0 ? page : (n + page - 1) / page * page;
    p = pvalloc(test_size(n));
    CHECK(p != NULL);
    if (p != NULL) {
      CHECK(is_aligned(p, page));
      CHECK(test_owns(p));
      size_t u = malloc_usable_size(p);
      if (u < rounded)
        fprintf(stderr, "pvalloc(%zu): usable %zu < %zu\n", n, u, rounded);
      CHECK(u >= rounded);
      memset(p, 0x22, u); /* every usable byte (>= rounded) is ours */
      free(p);
    }
  }

  /* Several live page-aligned blocks keep their content. */
  void *v[16];
  for (int i = 0; i < 16; i++) {
    v[i] = (i & 1) ? pvalloc(i * 1000 + 1) : valloc(i * 1000 + 1);
    CHECK(v[i] != NULL && is_aligned(v[i], page));
    if (v[i])
      fill_pattern(v[i], i * 1000 + 1, i);
  }
  for (int i = 0; i < 16; i++)
    if (v[i]) {
      CHECK(check_pattern(v[i], i * 1000 + 1, i) == PATTERN_OK);
      free(v[i]);
    }

  /* Sizes that overflow when rounded up to a page. */
  const size_t huge[] = {SIZE_MAX, SIZE_MAX - 1, SIZE_MAX - page + 2,
                                (size_t)PTRDIFF_MAX + 1, (size_t)1 << 62};
  for (size_t i = 0; i < sizeof huge / sizeof huge[0]; i++) {
    errno = 0;
    void *p = valloc(test_size(huge[i]));
    CHECK(p == NULL && errno == ENOMEM);
    free(p);
    errno = 0;
    p = pvalloc(test_size(huge[i]));
    CHECK(p == NULL && errno == ENOMEM);
    free(p);
  }
  return test_result();
}
