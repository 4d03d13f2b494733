/* poolfast: pool allocation against malloc, for instruction counting
 * (callgrind): "Allocation from a pool costs the same instructions as
 * malloc" (issue 10).
 *
 *   poolfast MODE N   N x { p = ALLOC(s); free(p); }, s cycling 16/32/64/128
 *   poolfast cycle N / cyclebump N
 *                     N request cycles of bench/pools.c (create; 100
 *                     allocations of 16..256 B; 2 of 8 KiB; destroy), from
 *                     a default-mode or a PTRS_POOL_BUMP pool
 *
 * MODE: malloc (malloc/free), pool (ptrs_pool_malloc from a default-mode
 * pool, free), bump (a PTRS_POOL_BUMP pool, free). A warm-up allocates and
 * frees 200 blocks of each size first (so a pool is past its arena chunks
 * and has pages of every size), so (Ir(N) - Ir(0)) / N is the cost of one
 * pair. Every call to the allocator goes through one of the non-inlined
 * wrappers do_alloc, do_free, do_create, do_destroy, so callgrind's
 * inclusive cost of a wrapper divided by its calls is the cost of that
 * operation alone (plus the wrapper's call and return, 2 to 4 Ir):
 * `bash scripts/bench.sh poolcg` prints them. Run by hand:
 * valgrind --tool=callgrind ./poolfast MODE N
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include "ptrs.h"

static const size_t sizes[4] = {16, 32, 64, 128};

static void escape(void *p) { __asm__ volatile("" : : "g"(p) : "memory"); }

static ptrs_pool *pool;

__attribute__((noinline)) static void *do_alloc(size_t n) {
  return pool ? ptrs_pool_malloc(pool, n) : malloc(n);
}
__attribute__((noinline)) static void do_free(void *p) { free(p); }
__attribute__((noinline)) static ptrs_pool *do_create(unsigned flags) {
  ptrs_pool_options o = {"poolfast", 0, flags, NULL};
  return ptrs_pool_create(&o);
}
__attribute__((noinline)) static void do_destroy(ptrs_pool *p) { ptrs_pool_destroy(p); }

int main(int argc, char **argv) {
  const char *mode = argc > 1 ? argv[1] : "pool";
  long n = argc > 2 ? atol(argv[2]) : 1000000;
  if (!strncmp(mode, "cycle", 5)) {
    unsigned flags = strcmp(mode, "cyclebump") ? 0u : PTRS_POOL_BUMP;
    uint64_t rng = 1;
    for (long i = 0; i < n; i++) {
      pool = do_create(flags);
      if (!pool)
        return 1;
      for (int k = 0; k < 100; k++) {
        rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
        char *b = do_alloc(16 + (rng >> 33) % 241);
        b[0] = 1;
      }
      ((char *)do_alloc(8192))[0] = 1;
      ((char *)do_alloc(8192))[0] = 1;
      do_destroy(pool);
    }
    return 0;
  }
  if (strcmp(mode, "malloc")) {
    pool = do_create(strcmp(mode, "bump") ? 0u : PTRS_POOL_BUMP);
    if (!pool)
      return 1;
  }
  static void *warm[800];
  for (int i = 0; i < 800; i++) {
    warm[i] = do_alloc(sizes[i & 3]);
    escape(warm[i]);
  }
  for (int i = 0; i < 800; i++)
    do_free(warm[i]);
  for (long i = 0; i < n; i++) {
    void *p = do_alloc(sizes[i & 3]);
    escape(p);
    do_free(p);
  }
  if (pool)
    do_destroy(pool);
  return 0;
}
