/* ptrs_owns(p): 1 for pointers into blocks ptrs handed out (of every size
 * range and alignment, also interior pointers), 0 for NULL, the stack,
 * static data, mmap'd memory and arbitrary garbage, never crashing. */
#include "test_helper.h"
#include <malloc.h>
#include <sys/mman.h>

static char static_buf[4096];
static const char rodata[] = "read-only";
extern char **environ;

int main(void) {
  require_ptrs();
  CHECK(test_owns(NULL) == 0);
  int on_stack = 0;
  char stack_buf[256];
  CHECK(test_owns(&on_stack) == 0);
  CHECK(test_owns(stack_buf + 100) == 0);
  CHECK(test_owns(static_buf) == 0);
  CHECK(test_owns(rodata) == 0);
  CHECK(test_owns((void *)main) == 0);
  CHECK(test_owns(&environ) == 0);
  CHECK(test_owns((void *)&errno) == 0);

  void *m = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  CHECK(m != MAP_FAILED);
  if (m != MAP_FAILED) {
    CHECK(test_owns(m) == 0);
    CHECK(test_owns((char *)m + 4096) == 0);
    munmap(m, 1 << 20);
    CHECK(test_owns(m) == 0); /* now unmapped */
  }
  void *none = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (none != MAP_FAILED) {
    CHECK(test_owns(none) == 0);
    munmap(none, 4096);
  }

  static const uintptr_t garbage[] = {
    1, 8, 15, 16, 4095, 4096, 0x10000, 0xdeadbeef, 0xdeadbeef000,
    0x7ffffffff000, 0x7fffffffffff, 0x800000000000, 0xffff800000000000,
    0xffffffffff600000, UINTPTR_MAX, UINTPTR_MAX - 15, (uintptr_t)1 << 46,
    (uintptr_t)1 << 47, (uintptr_t)1 << 56, (uintptr_t)1 << 63,
  };
  for (size_t i = 0; i < sizeof garbage / sizeof garbage[0]; i++) {
    int r = test_owns((const void *)garbage[i]);
    if (r != 0)
      fprintf(stderr, "ptrs_owns(%#lx) = %d\n", (unsigned long)garbage[i], r);
    CHECK(r == 0);
  }
  /* Random 64-bit and 47-bit values: must return 0 or 1, never crash. */
  uint64_t rng = 12345;
  for (int i = 0; i < 200000; i++) {
    uint64_t v = splitmix64(&rng);
    if (i & 1)
      v &= 0x7fffffffffffULL;
    int r = test_owns((const void *)(uintptr_t)v);
    CHECK(r == 0 || r == 1);
  }

  /* Blocks from every allocation function and size range. */
  static const size_t sizes[] = {0, 1, 16, 100, 1000, 5000, 40000, 200000,
                                 3 << 20, 40 << 20};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    size_t n = sizes[i];
    unsigned char *p = malloc(n);
    CHECK(p != NULL && test_owns(p) == 1);
    if (p && n > 1) {
      CHECK(test_owns(p + n / 2) == 1);
      CHECK(test_owns(p + n - 1) == 1);
    }
    free(p);
    p = calloc(1, n);
    CHECK(p != NULL && test_owns(p) == 1);
    free(p);
    p = memalign(4096, n);
    CHECK(p != NULL && test_owns(p) == 1);
    free(p);
    p = aligned_alloc(2 << 20, n);
    CHECK(p != NULL && test_owns(p) == 1);
    if (p && n > 1)
      CHECK(test_owns(p + n - 1) == 1);
    free(p);
    p = realloc(NULL, n);
    CHECK(p != NULL && test_owns(p) == 1);
    unsigned char *q = realloc(p, n * 2 + 100);
    CHECK(q != NULL && test_owns(q) == 1);
    free(q ? q : p);
  }
  return test_result();
}
