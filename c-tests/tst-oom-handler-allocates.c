/* An out-of-memory handler that allocates (logs with asprintf, say) when
 * memory is exhausted: its own failed allocations return NULL with ENOMEM
 * without calling it again (ptrs.h, ptrs_set_oom_handler). A tester's
 * handler recursed through 67 000 nested calls until the stack overflowed.
 * The heap is filled with 64 B blocks under PTRS_HEAP_LIMIT; the handler
 * allocates small and large blocks, which fail or succeed; its nesting
 * never exceeds 1, the failing malloc returns NULL with ENOMEM, and after
 * everything is freed the memory can be allocated again, with the handler
 * still installed and called again at the next exhaustion. */
/* ENV: PTRS_HEAP_LIMIT=64M */
#define _GNU_SOURCE
#include "test_helper.h"
#include "ptrs.h"

static __typeof__(ptrs_set_oom_handler) *set_handler;

static volatile int depth, max_depth, calls, inner_null;
static void handler(size_t size) {
  calls++;
  if (++depth > max_depth)
    max_depth = depth;
  char *msg = NULL;
  if (asprintf(&msg, "out of memory allocating %zu bytes", size) >= 0)
    free(msg);
  void *a = malloc(100), *b = malloc(1 << 20);
  if (a == NULL || b == NULL)
    inner_null++;
  free(a);
  free(b);
  depth--;
}

static size_t fill(void ***out) {
  size_t cap = 1 << 16, n = 0;
  void **v = malloc(cap * sizeof *v);
  CHECK(v != NULL);
  for (;;) {
    if (n == cap) {
      void **w = realloc(v, 2 * cap * sizeof *v);
      if (w == NULL)
        break;
      v = w;
      cap *= 2;
    }
    errno = 0;
    void *p = malloc(64);
    if (p == NULL) {
      CHECK(errno == ENOMEM);
      break;
    }
    memset(p, 0x11, 64);
    v[n++] = p;
  }
  *out = v;
  return n;
}

int main(void) {
  require_ptrs();
  if (under_memcheck()) {
    fprintf(stderr, "the heap limit is the engine's; memcheck mode allocates elsewhere\n");
    return EXIT_UNSUPPORTED;
  }
  set_handler = (__typeof__(set_handler))ptrs_symbol("ptrs_set_oom_handler");
  if (set_handler == NULL)
    FAIL_EXIT("ptrs_set_oom_handler not found");
  set_handler(handler);
  for (int round = 0; round < 2; round++) {
    calls = 0;
    max_depth = 0;
    void **v;
    size_t n = fill(&v);
    CHECK(n > 100000);
    CHECK(calls >= 1);
    CHECK(max_depth == 1);
    CHECK(inner_null >= 1);
    if (max_depth != 1 || calls < 1)
      fprintf(stderr, "round %d: %zu blocks, %d calls, nesting %d\n", round, n, calls, max_depth);
    for (size_t i = 0; i < n; i++)
      free(v[i]);
    free(v);
    void *big = malloc(32 << 20);
    CHECK(big != NULL);
    free(big);
  }
  set_handler(NULL);
  return test_result();
}
