/* mallopt returns 1 for the parameters ptrs honours (M_MMAP_THRESHOLD,
 * M_TRIM_THRESHOLD, M_TOP_PAD, M_ARENA_MAX) and 0 for unknown ones, never
 * crashes, and allocation keeps working after tuning. */
#include "test_helper.h"
#include <malloc.h>

static void exercise(void) {
  static const size_t sizes[] = {1, 100, 5000, 100000, 300000, 5 << 20};
  for (int i = 0; i < 6; i++) {
    void *p = malloc(sizes[i]);
    CHECK(p != NULL);
    if (p) {
      memset(p, 3, sizes[i]);
      void *q = realloc(p, sizes[i] * 2);
      CHECK(q != NULL);
      free(q ? q : p);
    }
  }
}

int main(void) {
  require_ptrs();
  CHECK(mallopt(M_MMAP_THRESHOLD, 256 * 1024) == 1);
  exercise();
  CHECK(mallopt(M_TRIM_THRESHOLD, 1 << 20) == 1);
  exercise();
  CHECK(mallopt(M_TOP_PAD, 64 * 1024) == 1);
  exercise();
  /* Every thread has its own heap: ptrs does not honour M_ARENA_MAX. */
  CHECK(mallopt(M_ARENA_MAX, 2) == 0);
  exercise();
  CHECK(mallopt(M_MMAP_THRESHOLD, 64 * 1024) == 1);
  exercise();
  CHECK(mallopt(M_TRIM_THRESHOLD, 128 * 1024) == 1);
  CHECK(mallopt(M_TOP_PAD, 0) == 1);
  exercise();

  /* Unknown parameters. */
  CHECK(mallopt(12345, 1) == 0);
  CHECK(mallopt(-12345, 1) == 0);
  CHECK(mallopt(999999, -1) == 0);

  /* Other glibc parameters: 0 or 1, no crash. */
  static const int others[] = {M_MXFAST, M_NLBLKS, M_GRAIN, M_KEEP,
                               M_MMAP_MAX, M_CHECK_ACTION, M_PERTURB,
                               M_ARENA_TEST};
  for (int i = 0; i < 8; i++) {
    int r = mallopt(others[i], 0);
    CHECK(r == 0 || r == 1);
    exercise();
  }
  return test_result();
}
