/* reallocarray: like realloc(p, n * m), but fails with ENOMEM and leaves
 * the block alone when n * m overflows. */
#include "test_helper.h"
#include <malloc.h>

int main(void) {
  require_ptrs();

  int *a = reallocarray(NULL, 10, sizeof(int)); /* malloc */
  CHECK(a != NULL);
  if (a == NULL)
    return test_result();
  CHECK(test_owns(a));
  CHECK(malloc_usable_size(a) >= 10 * sizeof(int));
  for (int i = 0; i < 10; i++)
    a[i] = i * 7;

  int *b = reallocarray(a, 100000, sizeof(int));
  CHECK(b != NULL);
  if (b == NULL) {
    free(a);
    return test_result();
  }
  a = b;
  for (int i = 0; i < 10; i++)
    CHECK(a[i] == i * 7);
  for (int i = 10; i < 100000; i++)
    a[i] = i * 7;

  /* Overflowing products. */
  static const size_t cases[][2] = {
    {SIZE_MAX, 2}, {2, SIZE_MAX}, {(size_t)1 << 32, (size_t)1 << 32},
    {SIZE_MAX / 4 + 1, 4}, {SIZE_MAX, SIZE_MAX}, {3, SIZE_MAX / 3 + 1},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    errno = 0;
    void *q = reallocarray(test_ptr(a), test_size(cases[i][0]),
                           test_size(cases[i][1]));
    CHECK(q == NULL);
    CHECK(errno == ENOMEM);
    if (q != NULL)
      a = q;
  }
  /* Fits in size_t but too big. */
  errno = 0;
  void *q = reallocarray(test_ptr(a), test_size((size_t)1 << 31),
                         test_size((size_t)1 << 31));
  CHECK(q == NULL && errno == ENOMEM);
  /* Overflow with a NULL pointer. */
  errno = 0;
  q = reallocarray(NULL, test_size(SIZE_MAX), test_size(16));
  CHECK(q == NULL && errno == ENOMEM);

  /* The block is untouched after the failures. */
  int bad = 0;
  for (int i = 0; i < 100000; i++)
    if (a[i] != i * 7)
      bad++;
  CHECK(bad == 0);

  /* Shrink. */
  b = reallocarray(a, 5, sizeof(int));
  CHECK(b != NULL);
  if (b) {
    for (int i = 0; i < 5; i++)
      CHECK(b[i] == i * 7);
    a = b;
  }
  /* A zero product behaves as realloc(p, 0): frees, returns NULL. */
  CHECK(reallocarray(a, test_size(0), sizeof(int)) == NULL);
  return test_result();
}
