/* aligned_alloc: any power-of-two alignment from 1 to 4 MiB, any size
 * (not only multiples of the alignment); a zero or non-power-of-two
 * alignment fails with EINVAL (glibc >= 2.38); a huge size with ENOMEM. */
#include "test_helper.h"
#include <malloc.h>

int main(void) {
  require_ptrs();
  for (size_t align = 1; align <= (4 << 20); align <<= 1) {
    const size_t sizes[] = {1, 15, 100, align / 2 + 1, align, align + 1,
                            2 * align + 3, 5000};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
      size_t n = sizes[i];
      errno = 0;
      void *p = aligned_alloc(test_size(align), test_size(n));
      if (p == NULL || !is_aligned(p, align))
        fprintf(stderr, "aligned_alloc(%zu, %zu) = %p (errno %d)\n", align,
                n, p, errno);
      CHECK(p != NULL);
      if (p == NULL)
        continue;
      CHECK(is_aligned(p, align));
      CHECK(is_aligned(p, 16));
      CHECK(test_owns(p));
      size_t u = malloc_usable_size(p);
      CHECK(u >= n);
      fill_pattern(p, u, 77);
      CHECK(check_pattern(p, u, 77) == PATTERN_OK);
      free(p);
    }
  }
  /* The 2 MiB and 4 MiB cases, several live at once. */
  void *q[6];
  for (int i = 0; i < 6; i++) {
    size_t align = (i & 1) ? (4 << 20) : (2 << 20);
    size_t n = (i < 2) ? 4096 : (i < 4) ? align : align * 2 + 100;
    q[i] = aligned_alloc(align, n);
    CHECK(q[i] != NULL && is_aligned(q[i], align));
    if (q[i])
      fill_pattern(q[i], n, i);
  }
  for (int i = 0; i < 6; i++) {
    size_t align = (i & 1) ? (4 << 20) : (2 << 20);
    size_t n = (i < 2) ? 4096 : (i < 4) ? align : align * 2 + 100;
    if (q[i]) {
      CHECK(check_pattern(q[i], n, i) == PATTERN_OK);
      free(q[i]);
    }
  }

  /* Zero size: a freeable pointer. */
  void *z = aligned_alloc(64, test_size(0));
  CHECK(z != NULL);
  free(z);

  /* Invalid alignments. */
  static const size_t bad[] = {0, 3, 6, 12, 24, 48, 100, 4097, 3 << 20,
                               SIZE_MAX, SIZE_MAX / 2 + 2};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    errno = 0;
    void *p = aligned_alloc(test_size(bad[i]), 64);
    if (p != NULL || errno != EINVAL)
      fprintf(stderr, "aligned_alloc(%zu, 64) = %p, errno %d\n", bad[i], p,
              errno);
    CHECK(p == NULL);
    CHECK(errno == EINVAL);
    free(p);
  }

  /* Huge sizes. */
  static const size_t huge[] = {SIZE_MAX, SIZE_MAX - 100000,
                                (size_t)PTRDIFF_MAX + 1, (size_t)1 << 62};
  for (size_t i = 0; i < 4; i++) {
    errno = 0;
    void *p = aligned_alloc(64, test_size(huge[i]));
    CHECK(p == NULL && errno == ENOMEM);
    free(p);
    errno = 0;
    p = aligned_alloc(2 << 20, test_size(huge[i]));
    CHECK(p == NULL && errno == ENOMEM);
    free(p);
  }
  return test_result();
}
