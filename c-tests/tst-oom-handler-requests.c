/* Which failed requests call the out-of-memory handler (ptrs.h,
 * ptrs_set_oom_handler): a pool's own limit refuses without it, also for a
 * request beyond ptrs's largest (SIZE_MAX, SIZE_MAX / 2, an aligned one);
 * an overflowing count * size in calloc, reallocarray and ptrs_pool_calloc
 * is a bad request, not a want of memory: ENOMEM without the handler; a
 * request no memory can satisfy (malloc(SIZE_MAX), malloc(2^50), in a pool
 * without a limit too) calls it once with the size. (A fresh tester found
 * the handler called for a limited pool's SIZE_MAX request, and for
 * calloc's overflow but not reallocarray's.) */
#include "test_helper.h"
#include "ptrs.h"
#include <stdint.h>

/* Resolved at run time (linked with -lptrs or preloaded). */
static __typeof__(ptrs_set_oom_handler) *set_handler;
static __typeof__(ptrs_pool_create) *pool_create;
static __typeof__(ptrs_pool_destroy) *pool_destroy;
static __typeof__(ptrs_pool_malloc) *pool_malloc;
static __typeof__(ptrs_pool_calloc) *pool_calloc;
static __typeof__(ptrs_pool_aligned_alloc) *pool_aligned_alloc;

/* volatile: the compiler assumes malloc calls no code of this file. */
static volatile int calls;
static volatile size_t last;
static void handler(size_t size) {
  calls++;
  last = size;
}

/* Checks one failed request: NULL, ENOMEM, and `want` handler calls. */
#define EXPECT(expr, want, want_size)                                        \
  do {                                                                       \
    calls = 0;                                                               \
    last = 0;                                                                \
    errno = 0;                                                               \
    void *volatile r_ = (void *)(expr);                                      \
    if (r_ != NULL || errno != ENOMEM || calls != (want) ||                  \
        ((want) && last != (want_size))) {                                   \
      fprintf(stderr, "%s: %p errno %d, handler called %d times (size "     \
              "%zu); expected NULL, ENOMEM, %d call(s)\n", #expr, r_,        \
              errno, calls, last, (want));                                   \
      test_failures++;                                                       \
    }                                                                        \
  } while (0)

int main(void) {
  require_ptrs();
  set_handler = ptrs_symbol("ptrs_set_oom_handler");
  pool_create = ptrs_symbol("ptrs_pool_create");
  pool_destroy = ptrs_symbol("ptrs_pool_destroy");
  pool_malloc = ptrs_symbol("ptrs_pool_malloc");
  pool_calloc = ptrs_symbol("ptrs_pool_calloc");
  pool_aligned_alloc = ptrs_symbol("ptrs_pool_aligned_alloc");
  if (!set_handler || !pool_create || !pool_destroy || !pool_malloc ||
      !pool_calloc || !pool_aligned_alloc)
    FAIL_EXIT("a ptrs function is missing");
  set_handler(handler);
  volatile size_t max = SIZE_MAX, two = 2, big = (size_t)1 << 50;

  ptrs_pool_options o = {.limit = 1 << 20};
  ptrs_pool *limited = pool_create(&o);
  ptrs_pool *plain = pool_create(NULL);
  CHECK(limited != NULL && plain != NULL);
  if (limited == NULL || plain == NULL)
    return test_result();

  EXPECT(pool_malloc(limited, 2 << 20), 0, 0);
  EXPECT(pool_malloc(limited, max), 0, 0);
  EXPECT(pool_malloc(limited, max / 2), 0, 0);
  EXPECT(pool_aligned_alloc(limited, 64, max), 0, 0);
  EXPECT(pool_calloc(limited, max, two), 0, 0);

  EXPECT(pool_calloc(plain, max, two), 0, 0);
  EXPECT(calloc(max, two), 0, 0);
  EXPECT(reallocarray(NULL, max, two), 0, 0);

  EXPECT(pool_malloc(plain, max), 1, max);
  EXPECT(malloc(max), 1, max);
  EXPECT(malloc(big), 1, big);
  EXPECT(calloc(big, 1), 1, big);

  set_handler(NULL);
  pool_destroy(limited);
  pool_destroy(plain);
  return test_result();
}
