/* calloc fails with NULL and ENOMEM when count * size overflows or is too
 * big, without crashing. */
#include "test_helper.h"

struct pair { size_t n, m; };

int main(void) {
  require_ptrs();
  static const struct pair cases[] = {
    {SIZE_MAX, 2}, {2, SIZE_MAX}, {SIZE_MAX, SIZE_MAX},
    {(size_t)1 << 32, (size_t)1 << 32}, {SIZE_MAX / 2 + 1, 2},
    {65537, SIZE_MAX / 65536}, {3, SIZE_MAX / 3 + 1},
    {SIZE_MAX, 1}, {1, SIZE_MAX}, {(size_t)1 << 33, (size_t)1 << 31},
    {(size_t)PTRDIFF_MAX, 1}, {1, (size_t)PTRDIFF_MAX + 1},
    {(size_t)1 << 31, (size_t)1 << 31}, /* 2^62: fits, but too big */
    {SIZE_MAX / 16, 16}, {16, SIZE_MAX / 16 + 1},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    errno = 0;
    void *p = calloc(test_size(cases[i].n), test_size(cases[i].m));
    if (p != NULL || errno != ENOMEM)
      fprintf(stderr, "calloc(%#zx, %#zx) = %p, errno %d\n", cases[i].n,
              cases[i].m, p, errno);
    CHECK(p == NULL);
    CHECK(errno == ENOMEM);
    free(p);
  }
  /* Products that wrap around to a small number must not succeed. */
  for (size_t k = 1; k <= 64; k++) {
    size_t n = (SIZE_MAX / k) + 1; /* n * k wraps to < k */
    if (k == 1)
      continue;
    errno = 0;
    void *p = calloc(test_size(n), test_size(k));
    CHECK(p == NULL && errno == ENOMEM);
    free(p);
  }
  void *ok = calloc(1000, 1000);
  CHECK(ok != NULL);
  free(ok);
  return test_result();
}
