/* cfree (the old SunOS name, a compat symbol in glibc) frees like free. */
#include "test_helper.h"
#include <malloc.h>

int main(void) {
  require_ptrs();
  void (*cf)(void *) = (void (*)(void *))ptrs_symbol("cfree");
  CHECK(cf != NULL);
  if (cf == NULL)
    return test_result();
  cf(NULL);
  struct mallinfo2 a = mallinfo2();
  for (int i = 0; i < 2000; i++) {
    void *p = malloc(10000);
    CHECK(p != NULL);
    memset(p, 1, 10000);
    void *q = calloc(10, 1000);
    CHECK(q != NULL);
    errno = 42;
    cf(p);
    cf(q);
    CHECK(errno == 42);
  }
  struct mallinfo2 b = mallinfo2();
  /* 4000 leaked 10 kB blocks would be 40 MB. */
  CHECK(b.uordblks + b.hblkhd < a.uordblks + a.hblkhd + (4 << 20));
  return test_result();
}
