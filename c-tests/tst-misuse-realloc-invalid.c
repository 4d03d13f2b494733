/* realloc of a pointer ptrs did not hand out aborts the process (SIGABRT)
 * with the line "ptrs: realloc(): invalid pointer: 0x<address>". */
#include "test_helper.h"
#include <sys/mman.h>

static void do_realloc(void *p) {
  void *q = realloc(p, 200);
  fprintf(stderr, "realloc returned %p\n", q);
}

static void do_realloc_big(void *p) {
  void *q = realloc(p, 1 << 20);
  fprintf(stderr, "realloc returned %p\n", q);
}

int main(void) {
  require_ptrs();
  char stack_buf[64];
  memset(stack_buf, 1, sizeof stack_buf);
  expect_abort("realloc of a stack address", do_realloc, stack_buf, "realloc",
               "invalid pointer", stack_buf);

  char *p = malloc(64);
  CHECK(p != NULL);
  expect_abort("realloc of malloc(64) + 8", do_realloc, p + 8, "realloc",
               "invalid pointer", p + 8);
  expect_abort("realloc of malloc(64) + 16 to 1 MiB", do_realloc_big, p + 16,
               "realloc", "invalid pointer", p + 16);
  free(p);

  char *big = malloc(3 << 20);
  CHECK(big != NULL);
  expect_abort("realloc of malloc(3 MiB) + 4096", do_realloc, big + 4096,
               "realloc", "invalid pointer", big + 4096);
  free(big);

  void *m = mmap(NULL, 1 << 16, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  CHECK(m != MAP_FAILED);
  if (m != MAP_FAILED) {
    expect_abort("realloc of mmap memory", do_realloc, m, "realloc",
                 "invalid pointer", m);
    munmap(m, 1 << 16);
  }
  return test_result();
}
