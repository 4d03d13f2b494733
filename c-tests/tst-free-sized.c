/* free_sized(p, size) and free_aligned_sized(p, align, size) (C23) free
 * blocks when given the size (and alignment) they were allocated with. */
#include "test_helper.h"
#include <malloc.h>

typedef void (*free_sized_fn)(void *, size_t);
typedef void (*free_aligned_sized_fn)(void *, size_t, size_t);

static size_t in_use(void) {
  struct mallinfo2 mi = mallinfo2();
  return mi.uordblks + mi.hblkhd;
}

int main(void) {
  require_ptrs();
  free_sized_fn fs = (free_sized_fn)ptrs_symbol("free_sized");
  free_aligned_sized_fn fas =
      (free_aligned_sized_fn)ptrs_symbol("free_aligned_sized");
  CHECK(fs != NULL);
  CHECK(fas != NULL);
  if (fs == NULL || fas == NULL)
    return test_result();

  fs(NULL, 0);
  fs(NULL, 100);
  fas(NULL, 64, 0);
  fas(NULL, 4096, 100);

  static const size_t sizes[] = {0, 1, 16, 100, 1000, 4096, 50000, 300000,
                                 5 << 20};
  size_t base = in_use();
  for (int round = 0; round < 50; round++) {
    void *p[9];
    for (int i = 0; i < 9; i++) {
      p[i] = malloc(sizes[i]);
      CHECK(p[i] != NULL);
      if (p[i])
        memset(p[i], i, sizes[i]);
    }
    for (int i = 0; i < 9; i++) {
      errno = 555;
      fs(p[i], sizes[i]);
      CHECK(errno == 555);
    }
    /* calloc blocks with their total size. */
    void *c = calloc(100, 33);
    CHECK(c != NULL);
    fs(c, 3300);
  }
  size_t after_sized = in_use();
  if (after_sized > base + (1 << 20))
    fprintf(stderr, "in use: %zu before, %zu after free_sized\n", base,
            after_sized);
  CHECK(after_sized <= base + (1 << 20));

  static const size_t aligns[] = {1, 8, 16, 64, 4096, 1 << 16, 2 << 20};
  base = in_use();
  for (int round = 0; round < 20; round++) {
    for (int i = 0; i < 7; i++) {
      size_t n = aligns[i] * 3;
      void *p = aligned_alloc(aligns[i], n);
      CHECK(p != NULL && is_aligned(p, aligns[i]));
      if (p == NULL)
        continue;
      memset(p, 0x77, n);
      errno = 556;
      fas(p, aligns[i], n);
      CHECK(errno == 556);
    }
  }
  size_t after_aligned = in_use();
  CHECK(after_aligned <= base + (1 << 20));

  /* The heap still works. */
  void *q = malloc(1234);
  CHECK(q != NULL);
  fs(q, 1234);
  return test_result();
}
