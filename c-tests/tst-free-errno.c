/* free never changes errno (POSIX 2024, glibc >= 2.33), whether it frees a
 * small block, a large one that goes back to the system, an aligned one,
 * or NULL; free(NULL) does nothing. */
#include "test_helper.h"
#include <malloc.h>

static void free_keeps_errno(void *p, int value, const char *what) {
  errno = value;
  free(p);
  if (errno != value)
    fprintf(stderr, "free(%s) changed errno %d -> %d\n", what, value, errno);
  CHECK(errno == value);
}

int main(void) {
  require_ptrs();
  static const int values[] = {1234, ENOMEM, EINVAL, EBADF, 0};

  for (int v = 0; v < 5; v++) {
    int e = values[v];
    free_keeps_errno(NULL, e, "NULL");
    free_keeps_errno(malloc(0), e, "malloc(0)");
    free_keeps_errno(malloc(16), e, "small");
    free_keeps_errno(malloc(5000), e, "medium");
    free_keeps_errno(malloc(200000), e, "200 KB");
    free_keeps_errno(malloc(64 << 20), e, "64 MB");
    free_keeps_errno(calloc(1000, 1000), e, "calloc 1 MB");
    free_keeps_errno(memalign(1 << 20, 3 << 20), e, "memalign 1 MB/3 MB");
    free_keeps_errno(aligned_alloc(4096, 100), e, "aligned_alloc");
    free_keeps_errno(valloc(100000), e, "valloc");
  }

  /* Freeing many blocks in a row, so that whole spans or pages empty and
   * are given back, still never touches errno. */
  enum { N = 5000 };
  static void *p[N];
  for (int i = 0; i < N; i++) {
    p[i] = malloc((size_t)(i % 50) * 97 + 1);
    CHECK(p[i] != NULL);
  }
  int changed = 0;
  for (int i = 0; i < N; i++) {
    errno = 4321;
    free(p[i]);
    if (errno != 4321)
      changed++;
  }
  CHECK(changed == 0);

  /* free(NULL) leaves the heap alone: 100000 calls, no growth, no crash. */
  struct mallinfo2 before = mallinfo2();
  for (int i = 0; i < 100000; i++)
    free(NULL);
  struct mallinfo2 after = mallinfo2();
  CHECK(after.uordblks == before.uordblks);

  /* Also after malloc_trim, which may release memory. */
  void *q = malloc(300000);
  free(q);
  errno = 99;
  malloc_trim(0);
  free(malloc(10));
  CHECK(errno == 99);
  return test_result();
}
