/* Sizes near SIZE_MAX and above PTRDIFF_MAX fail with NULL and ENOMEM,
 * never crash, and leave the allocator usable. */
#include "test_helper.h"
#include <malloc.h>

int main(void) {
  require_ptrs();
  static const size_t sizes[] = {
    SIZE_MAX, SIZE_MAX - 1, SIZE_MAX - 15, SIZE_MAX - 16, SIZE_MAX - 17,
    SIZE_MAX - 4095, SIZE_MAX - 4096, SIZE_MAX - (1 << 20),
    SIZE_MAX - ((size_t)1 << 32), (size_t)PTRDIFF_MAX + 1,
    (size_t)PTRDIFF_MAX, (size_t)PTRDIFF_MAX - 4096, SIZE_MAX / 2 + 100,
    (size_t)1 << 62, (size_t)1 << 60, (size_t)1 << 57,
  };
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    errno = 0;
    void *p = malloc(test_size(sizes[i]));
    if (p != NULL || errno != ENOMEM)
      fprintf(stderr, "malloc(%#zx) = %p, errno %d\n", sizes[i], p, errno);
    CHECK(p == NULL);
    CHECK(errno == ENOMEM);
    free(p);
  }
  /* Every size in the last 256 bytes below SIZE_MAX. */
  for (size_t k = 0; k < 256; k++) {
    errno = 0;
    void *p = malloc(test_size(SIZE_MAX - k));
    CHECK(p == NULL && errno == ENOMEM);
    free(p);
  }
  /* Still works. */
  void *q = malloc(100), *r = malloc(1 << 20);
  CHECK(q != NULL && r != NULL);
  if (q && r) {
    memset(q, 1, 100);
    memset(r, 2, 1 << 20);
  }
  free(q);
  free(r);
  return test_result();
}
