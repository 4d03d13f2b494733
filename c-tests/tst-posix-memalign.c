/* posix_memalign: valid alignments succeed; an alignment that is not a
 * power of two multiple of sizeof(void *) gives EINVAL, a huge size
 * ENOMEM; on error *memptr is untouched; errno is unchanged except that,
 * as glibc 2.36's, a failure for lack of memory leaves errno = ENOMEM
 * (glibc's tst-malloc-thread-fail relies on that). */
#include "test_helper.h"
#include <malloc.h>

int main(void) {
  require_ptrs();
  void *const sentinel = (void *)(uintptr_t)0x1234560;

  for (size_t align = sizeof(void *); align <= (4 << 20); align <<= 1) {
    static const size_t sizes[] = {1, 16, 100, 4096, 100000};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
      void *p = sentinel;
      errno = 1234;
      int r = posix_memalign(&p, align, sizes[i]);
      CHECK(r == 0);
      CHECK(errno == 1234);
      if (r != 0)
        continue;
      CHECK(p != sentinel && p != NULL);
      CHECK(is_aligned(p, align));
      CHECK(test_owns(p));
      CHECK(malloc_usable_size(p) >= sizes[i]);
      memset(p, 0x3c, sizes[i]);
      free(p);
    }
  }
  /* Large alignments with sizes below and above them. */
  static const size_t big[][2] = {{2 << 20, 1000}, {2 << 20, 3 << 20},
                                  {4 << 20, 4096}, {4 << 20, 10 << 20}};
  for (int i = 0; i < 4; i++) {
    void *p = sentinel;
    CHECK(posix_memalign(&p, big[i][0], big[i][1]) == 0);
    CHECK(p != sentinel && is_aligned(p, big[i][0]));
    if (p != sentinel) {
      memset(p, 1, big[i][1]);
      free(p);
    }
  }

  /* Size 0 succeeds; the result can be freed. */
  void *z = sentinel;
  CHECK(posix_memalign(&z, 64, test_size(0)) == 0);
  CHECK(z != sentinel);
  if (z != sentinel)
    free(z);

  /* Bad alignments. */
  static const size_t bad[] = {0, 1, 2, 3, 4, 12, 24, 40, 48, 100, 4097,
                               (3 << 20), SIZE_MAX, SIZE_MAX / 2 + 2,
                               sizeof(void *) * 3};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    void *p = sentinel;
    errno = 1234;
    int r = posix_memalign(&p, test_size(bad[i]), 64);
    if (r != EINVAL)
      fprintf(stderr, "posix_memalign(align %zu) = %d\n", bad[i], r);
    CHECK(r == EINVAL);
    CHECK(p == sentinel);
    CHECK(errno == 1234);
    if (r == 0 && p != sentinel)
      free(p);
  }

  /* Huge sizes. */
  static const size_t huge[] = {SIZE_MAX, SIZE_MAX - 4096,
                                (size_t)PTRDIFF_MAX + 1, (size_t)1 << 62};
  for (size_t i = 0; i < 4; i++) {
    void *p = sentinel;
    errno = 1234;
    int r = posix_memalign(&p, 64, test_size(huge[i]));
    CHECK(r == ENOMEM);
    CHECK(p == sentinel);
    CHECK(errno == ENOMEM);
    p = sentinel;
    errno = 1234;
    r = posix_memalign(&p, 1 << 20, test_size(huge[i]));
    CHECK(r == ENOMEM);
    CHECK(p == sentinel);
    CHECK(errno == ENOMEM);
  }
  return test_result();
}
