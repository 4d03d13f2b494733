/* poolfast: pool allocation against malloc, for instruction counting
 * (callgrind): "Allocation from a pool costs the same instructions as
 * malloc" (issue 10).
 *
 *   poolfast MODE N   N x { p = ALLOC(s); free(p); }, s cycling 16/32/64/128
 *
 * MODE: malloc (malloc/free), pool (ptrs_pool_malloc from a default-mode
 * pool, free), bump (a PTRS_POOL_BUMP pool, free). A warm-up allocates and
 * frees 200 blocks of each size first (so a pool is past its arena chunks
 * and has pages of every size), so (Ir(N) - Ir(0)) / N is the cost of one
 * pair. Run: valgrind --tool=callgrind ./poolfast MODE N
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "ptrs.h"

static const size_t sizes[4] = {16, 32, 64, 128};

static void escape(void *p) { __asm__ volatile("" : : "g"(p) : "memory"); }

int main(int argc, char **argv) {
  const char *mode = argc > 1 ? argv[1] : "pool";
  long n = argc > 2 ? atol(argv[2]) : 1000000;
  ptrs_pool *pool = NULL;
  if (strcmp(mode, "malloc")) {
    ptrs_pool_options o = {"poolfast", 0, strcmp(mode, "bump") ? 0u : PTRS_POOL_BUMP, NULL};
    pool = ptrs_pool_create(&o);
    if (!pool)
      return 1;
  }
  static void *warm[800];
  for (int i = 0; i < 800; i++) {
    warm[i] = pool ? ptrs_pool_malloc(pool, sizes[i & 3]) : malloc(sizes[i & 3]);
    escape(warm[i]);
  }
  for (int i = 0; i < 800; i++)
    free(warm[i]);
  if (pool) {
    for (long i = 0; i < n; i++) {
      void *p = ptrs_pool_malloc(pool, sizes[i & 3]);
      escape(p);
      free(p);
    }
    ptrs_pool_destroy(pool);
  } else {
    for (long i = 0; i < n; i++) {
      void *p = malloc(sizes[i & 3]);
      escape(p);
      free(p);
    }
  }
  return 0;
}
