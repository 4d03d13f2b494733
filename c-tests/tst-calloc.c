/* calloc returns zeroed memory, also when it reuses blocks that were freed
 * dirty; calloc with a zero count or size returns a freeable pointer. */
#include "test_helper.h"
#include <malloc.h>

static int all_zero(const void *p, size_t n) {
  const unsigned char *b = p;
  for (size_t i = 0; i < n; i++)
    if (b[i] != 0)
      return 0;
  return 1;
}

int main(void) {
  require_ptrs();
  static const size_t sizes[] = {1, 7, 16, 24, 100, 512, 1000, 4096, 5000,
                                 30000, 65536, 100000, 200000, 1 << 20,
                                 (4 << 20) + 123};

  for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
    size_t n = sizes[s];
    int iters = n > 100000 ? 20 : 200;
    int dirty = 0;
    for (int it = 0; it < iters; it++) {
      /* Dirty a few blocks of this size, free them, calloc again. */
      void *d[4];
      for (int k = 0; k < 4; k++) {
        d[k] = malloc(n);
        CHECK(d[k] != NULL);
        if (d[k] == NULL)
          return test_result();
        memset(d[k], 0xff, malloc_usable_size(d[k]));
      }
      for (int k = 0; k < 4; k++)
        free(d[k]);
      void *c[4];
      for (int k = 0; k < 4; k++) {
        c[k] = calloc(1, n);
        CHECK(c[k] != NULL);
        if (c[k] == NULL)
          return test_result();
        CHECK(is_aligned(c[k], 16));
        if (!all_zero(c[k], n))
          dirty++;
        /* Also as count * size. */
      }
      for (int k = 0; k < 4; k++)
        free(c[k]);
      void *e = calloc(n, 1);
      CHECK(e != NULL);
      if (e && !all_zero(e, n))
        dirty++;
      free(e);
    }
    if (dirty)
      fprintf(stderr, "calloc(%zu): %d non-zero blocks\n", n, dirty);
    CHECK(dirty == 0);
  }

  /* count * size forms. */
  int *a = calloc(1000, sizeof(int));
  CHECK(a != NULL && all_zero(a, 1000 * sizeof(int)));
  CHECK(a == NULL || malloc_usable_size(a) >= 1000 * sizeof(int));
  free(a);
  double *big = calloc(3 << 20, sizeof(double));
  CHECK(big != NULL && all_zero(big, (size_t)(3 << 20) * sizeof(double)));
  free(big);

  /* Zero count or size. */
  void *z1 = calloc(test_size(0), 16), *z2 = calloc(16, test_size(0));
  void *z3 = calloc(test_size(0), test_size(0));
  void *z4 = calloc(test_size(0), test_size(SIZE_MAX));
  CHECK(z1 != NULL && z2 != NULL && z3 != NULL && z4 != NULL);
  CHECK(z1 != z2 && z1 != z3 && z2 != z3);
  CHECK(test_owns(z1) && test_owns(z4));
  free(z1);
  free(z2);
  free(z3);
  free(z4);
  return test_result();
}
