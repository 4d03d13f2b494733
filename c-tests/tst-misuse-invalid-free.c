/* Freeing a pointer ptrs did not hand out (the stack, static data, the
 * inside of a block, memory from mmap) aborts the process (SIGABRT) with
 * the line "ptrs: free(): invalid pointer: 0x<address>" on stderr. */
#include "test_helper.h"
#include <sys/mman.h>

static char static_buf[256];

static void do_free(void *p) { free(test_ptr(p)); }

int main(void) {
  require_ptrs();

  /* A stack address of the parent: the child has the same stack. */
  char stack_buf[64];
  memset(stack_buf, 1, sizeof stack_buf);
  expect_abort("free of a stack address", do_free, stack_buf + 16, "free",
               "invalid pointer", stack_buf + 16);

  expect_abort("free of static data", do_free, static_buf + 32, "free",
               "invalid pointer", static_buf + 32);

  static const size_t sizes[] = {64, 1000, 50000, 1 << 20};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    char *p = malloc(sizes[i]);
    CHECK(p != NULL);
    char what[64];
    snprintf(what, sizeof what, "free of malloc(%zu) + 8", sizes[i]);
    expect_abort(what, do_free, p + 8, "free", "invalid pointer", p + 8);
    snprintf(what, sizeof what, "free of malloc(%zu) + 16", sizes[i]);
    expect_abort(what, do_free, p + 16, "free", "invalid pointer", p + 16);
    free(p);
  }

  void *m = mmap(NULL, 1 << 16, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  CHECK(m != MAP_FAILED);
  if (m != MAP_FAILED) {
    memset(m, 0, 1 << 16);
    expect_abort("free of mmap memory", do_free, m, "free", "invalid pointer",
                 m);
    expect_abort("free of mmap memory + 4096", do_free, (char *)m + 4096,
                 "free", "invalid pointer", (char *)m + 4096);
    munmap(m, 1 << 16);
  }

  /* Garbage addresses, unmapped or not. */
  expect_abort("free of 0x10", do_free, (void *)(uintptr_t)0x10, "free",
               "invalid pointer", (void *)(uintptr_t)0x10);
  expect_abort("free of 0xdeadbeef000", do_free,
               (void *)(uintptr_t)0xdeadbeef000, "free", "invalid pointer",
               (void *)(uintptr_t)0xdeadbeef000);
  return test_result();
}
