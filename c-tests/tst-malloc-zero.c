/* malloc(0) returns a unique, non-NULL, freeable pointer (glibc). */
#include "test_helper.h"
#include <malloc.h>

#define N 1000

int main(void) {
  require_ptrs();
  static void *p[N];
  for (int i = 0; i < N; i++) {
    p[i] = malloc(test_size(0));
    CHECK(p[i] != NULL);
    if (p[i] == NULL)
      return test_result();
    CHECK(is_aligned(p[i], 16));
    CHECK(test_owns(p[i]));
  }
  /* All distinct (sort, then compare neighbours). */
  for (int i = 1; i < N; i++) {
    void *x = p[i];
    int j = i - 1;
    while (j >= 0 && (uintptr_t)p[j] > (uintptr_t)x) {
      p[j + 1] = p[j];
      j--;
    }
    p[j + 1] = x;
  }
  int dups = 0;
  for (int i = 1; i < N; i++)
    if (p[i] == p[i - 1])
      dups++;
  CHECK(dups == 0);
  /* Whatever usable size a zero-size block reports, it is writable. */
  for (int i = 0; i < N; i++) {
    size_t u = malloc_usable_size(p[i]);
    CHECK(u < 4096);
    memset(p[i], 0xab, u);
  }
  for (int i = 0; i < N; i++)
    free(p[i]);

  /* Zero-size blocks are really freed: the same loop many times does not
   * grow the heap without bound. */
  struct mallinfo2 before = mallinfo2();
  for (int i = 0; i < 200000; i++)
    free(malloc(test_size(0)));
  struct mallinfo2 after = mallinfo2();
  CHECK(after.uordblks < before.uordblks + 1024 * 1024);
  return test_result();
}
