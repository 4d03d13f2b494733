/* Under a heap limit (PTRS_HEAP_LIMIT, set here with ptrs_option_set), a
   request that fits once the memory freed just before is given back
   succeeds at once: a failing allocation first gives back what ptrs keeps
   after frees (cached segments and huge mappings, as malloc_trim(0) does)
   and tries again. It used to fail with ENOMEM until a purge delay had
   passed: 40 MiB freed, then malloc(50 MiB) under a 64 MiB limit. Small,
   large and huge blocks freed before; malloc, calloc, realloc,
   aligned_alloc and posix_memalign after. A request that cannot fit still
   fails with ENOMEM, and the out-of-memory handler is called once. */
#include "test_helper.h"
#include <malloc.h>

typedef int32_t (*option_set_fn)(const char *, int64_t);
typedef int64_t (*option_get_fn)(const char *);
typedef void (*handler_t)(size_t);

static int oom_calls;
static void count_oom(size_t size) {
  (void)size;
  oom_calls++;
}

static void fill_and_free(size_t block) {
  static void *v[8192];
  size_t n = 0, total = 0;
  while (total + block <= (40u << 20) && n < 8192) {
    v[n] = malloc(block);
    CHECK(v[n] != NULL);
    if (v[n] == NULL)
      break;
    memset(v[n], 1, block);
    total += block;
    n++;
  }
  for (size_t i = 0; i < n; i++)
    free(v[i]);
}

int main(void) {
  require_ptrs();
  if (under_memcheck())
    return EXIT_UNSUPPORTED; /* valgrind's own mappings count against no limit of ours */
  option_set_fn set = (option_set_fn)ptrs_symbol("ptrs_option_set");
  option_get_fn get = (option_get_fn)ptrs_symbol("ptrs_option_get");
  handler_t (*set_handler)(handler_t) = (handler_t (*)(handler_t))ptrs_symbol("ptrs_set_oom_handler");
  if (!set || !get || !set_handler)
    FAIL_EXIT("ptrs_option_set/get or ptrs_set_oom_handler missing");
  /* A long purge delay: nothing freed is given back on its own meanwhile. */
  CHECK(set("purge_delay", 60000) == 0);
  CHECK(set("heap_limit", 64 << 20) == 0);
  CHECK(get("heap_limit") == 64 << 20);
  static const size_t blocks[] = {1024, 64 << 10, 1 << 20, 4 << 20};
  for (size_t b = 0; b < sizeof blocks / sizeof blocks[0]; b++) {
    for (int how = 0; how < 5; how++) {
      fill_and_free(blocks[b]);
      errno = 0;
      void *p = NULL;
      switch (how) {
      case 0: p = malloc(50u << 20); break;
      case 1: p = calloc(1, 50u << 20); break;
      case 2: {
        void *q = malloc(100);
        p = realloc(q, 50u << 20);
        if (p == NULL)
          free(q);
        break;
      }
      case 3: p = aligned_alloc(1 << 20, 50u << 20); break;
      case 4: CHECK(posix_memalign(&p, 4096, 50u << 20) == 0); break;
      }
      if (p == NULL)
        fprintf(stderr, "block %zu, call %d: NULL, errno %d\n", blocks[b], how, errno);
      CHECK(p != NULL && errno == 0);
      if (p != NULL) {
        memset(p, 2, 50u << 20);
        free(p);
      }
    }
  }
  /* Beyond the limit whatever is given back: ENOMEM, the handler once. */
  handler_t old = set_handler(count_oom);
  fill_and_free(1 << 20);
  errno = 0;
  CHECK(malloc(80u << 20) == NULL && errno == ENOMEM);
  CHECK(oom_calls == 1);
  set_handler(old);
  CHECK(set("heap_limit", 0) == 0);
  return test_result();
}
