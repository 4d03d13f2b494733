/* Freeing the same block twice aborts the process (SIGABRT) with the line
 * "ptrs: free(): double free detected: 0x<address>" on stderr. The blocks
 * are allocated in the parent; a forked child frees one twice. */
#include "test_helper.h"
#include <malloc.h>

static void free_twice(void *p) {
  free(p);
  free(test_ptr(p));
}

/* The block is freed, other blocks of the same size come and go, then the
 * stale pointer is freed again. */
static void free_twice_later(void *p) {
  size_t n = malloc_usable_size(p);
  free(p);
  void *x[4];
  for (int i = 0; i < 4; i++)
    x[i] = malloc(n * 2 + 4096);
  for (int i = 0; i < 4; i++)
    free(x[i]);
  free(test_ptr(p));
}

int main(void) {
  require_ptrs();
  static const size_t sizes[] = {1, 24, 64, 512, 1000, 4000, 40000};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    void *p = malloc(sizes[i]);
    void *neighbour = malloc(sizes[i]);
    CHECK(p != NULL);
    char what[64];
    snprintf(what, sizeof what, "double free of malloc(%zu)", sizes[i]);
    expect_abort(what, free_twice, p, "free", "double free detected", p);
    free(p); /* the parent's copy is still live */
    free(neighbour);
  }
  void *c = calloc(10, 10);
  expect_abort("double free of calloc(10, 10)", free_twice, c, "free",
               "double free detected", c);
  free(c);
  void *a = aligned_alloc(64, 64);
  expect_abort("double free of aligned_alloc(64, 64)", free_twice, a, "free",
               "double free detected", a);
  free(a);
  void *l = malloc(100);
  expect_abort("double free after unrelated allocations", free_twice_later, l,
               "free", "double free detected", l);
  free(l);
  return test_result();
}
