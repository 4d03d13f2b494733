/* Pool benchmark: ptrs pools (default and bump mode) against APR pools,
 * mimalloc heaps and jemalloc arenas (each compiled in when its header is
 * found: -DHAVE_APR, -DHAVE_MIMALLOC, -DHAVE_JEMALLOC; see
 * scripts/bench.sh pools).
 *
 *   cycle    one request: create; 100 allocations of 16..256 B; 2 of
 *            8 KiB; destroy (microseconds per cycle, median of runs)
 *   destroy  destroy of a pool holding 1 k, 10 k, 100 k and 1 M blocks of
 *            64 B (ms, median of 3): time proportional to pages, not blocks
 *   pools    RSS growth with 10 000 live pools holding one 64 B block
 *            each (MiB), and RSS after destroying them all, relative to
 *            before they were made (MiB): at once; after two purge delays
 *            (PTRS_PURGE_DELAY, 10 ms) and one slow-path allocation; after
 *            malloc_trim(0)
 *
 * usage: pools SYSTEM   (ptrs, ptrs-bump, apr, mimalloc, jemalloc)
 * prints: SYSTEM cycle_us destroy_1k_ms destroy_10k_ms destroy_100k_ms
 *         destroy_1M_ms pools_mib after_mib after_delay_mib after_trim_mib
 *         (the four RSS figures n/a, and a line "# SYSTEM: ..." saying why,
 *         when the system cannot hold 10 000 pools: jemalloc's arenas) */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <malloc.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "ptrs.h"
#ifdef HAVE_APR
#include <apr_pools.h>
#endif
#ifdef HAVE_MIMALLOC
#include <mimalloc.h>
#endif
#ifdef HAVE_JEMALLOC
#include <jemalloc/jemalloc.h>
#endif

typedef void *(*create_fn)(void);
typedef void *(*alloc_fn)(void *pool, size_t size);
typedef void (*destroy_fn)(void *pool);

static void *ptrs_c(void) { return ptrs_pool_create(NULL); }
static void *ptrs_bump_c(void) {
  ptrs_pool_options o = {"bench", 0, PTRS_POOL_BUMP, NULL};
  return ptrs_pool_create(&o);
}
static void *ptrs_a(void *p, size_t n) { return ptrs_pool_malloc(p, n); }
static void ptrs_d(void *p) { ptrs_pool_destroy(p); }

#ifdef HAVE_APR
static void *apr_c(void) {
  apr_pool_t *p;
  apr_pool_create(&p, NULL);
  return p;
}
static void *apr_a(void *p, size_t n) { return apr_palloc(p, n); }
static void apr_d(void *p) { apr_pool_destroy(p); }
#endif
#ifdef HAVE_MIMALLOC
static void *mi_c(void) { return mi_heap_new(); }
static void *mi_a(void *p, size_t n) { return mi_heap_malloc(p, n); }
static void mi_d(void *p) { mi_heap_destroy(p); }
#endif
#ifdef HAVE_JEMALLOC
/* jemalloc refuses arenas.create (EAGAIN) once it has MALLOCX_ARENA_LIMIT
 * arenas (4095 in 5.3: MALLOCX_ARENA() encodes an arena index in 12 bits),
 * the automatic ones included: the 10 000-pool phase cannot run there. */
static int je_err;
static unsigned je_narenas;
static void *je_c(void) {
  unsigned ind;
  size_t sz = sizeof ind;
  int r = mallctl("arenas.create", &ind, &sz, NULL, 0);
  if (r != 0) {
    je_err = r;
    sz = sizeof je_narenas;
    mallctl("arenas.narenas", &je_narenas, &sz, NULL, 0);
    return NULL;
  }
  return (void *)(uintptr_t)(ind + 1);
}
static void *je_a(void *p, size_t n) {
  return mallocx(n, MALLOCX_ARENA((unsigned)(uintptr_t)p - 1) | MALLOCX_TCACHE_NONE);
}
static void je_d(void *p) {
  char name[64];
  snprintf(name, sizeof name, "arena.%u.destroy", (unsigned)(uintptr_t)p - 1);
  mallctl(name, NULL, NULL, NULL, 0);
}
#endif

static double now_us(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

static size_t rss(void) {
  FILE *f = fopen("/proc/self/statm", "r");
  unsigned long a = 0, b = 0;
  if (f) {
    if (fscanf(f, "%lu %lu", &a, &b) != 2)
      b = 0;
    fclose(f);
  }
  return b * (size_t)sysconf(_SC_PAGESIZE);
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
  const char *sys = argc > 1 ? argv[1] : "ptrs";
  create_fn c = NULL;
  alloc_fn a = NULL;
  destroy_fn d = NULL;
  if (!strcmp(sys, "ptrs")) c = ptrs_c, a = ptrs_a, d = ptrs_d;
  if (!strcmp(sys, "ptrs-bump")) c = ptrs_bump_c, a = ptrs_a, d = ptrs_d;
#ifdef HAVE_APR
  apr_initialize();
  if (!strcmp(sys, "apr")) c = apr_c, a = apr_a, d = apr_d;
#endif
#ifdef HAVE_MIMALLOC
  if (!strcmp(sys, "mimalloc")) c = mi_c, a = mi_a, d = mi_d;
#endif
#ifdef HAVE_JEMALLOC
  if (!strcmp(sys, "jemalloc")) c = je_c, a = je_a, d = je_d;
#endif
  if (c == NULL) {
    fprintf(stderr, "pools: %s not built in\n", sys);
    return 77;
  }
  /* request cycles: 7 runs of 20 000 cycles (jemalloc: 500), median */
  int cycles = !strcmp(sys, "jemalloc") ? 500 : 20000;
  double runs[7];
  uint64_t rng = 1;
  for (int r = 0; r < 7; r++) {
    double t0 = now_us();
    for (int i = 0; i < cycles; i++) {
      void *p = c();
      for (int k = 0; k < 100; k++) {
        rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
        char *b = a(p, 16 + (rng >> 33) % 241);
        b[0] = 1;
      }
      ((char *)a(p, 8192))[0] = 1;
      ((char *)a(p, 8192))[0] = 1;
      d(p);
    }
    runs[r] = (now_us() - t0) / cycles;
  }
  qsort(runs, 7, sizeof runs[0], cmp);
  double cycle_us = runs[3];
  /* destroy of 1 k .. 1 M blocks of 64 B: 3 runs each, median */
  static const int nblocks[4] = {1000, 10000, 100000, 1000000};
  double dmed[4];
  for (int k = 0; k < 4; k++) {
    double dms[3];
    for (int r = 0; r < 3; r++) {
      void *p = c();
      for (int i = 0; i < nblocks[k]; i++)
        ((char *)a(p, 64))[0] = 1;
      double t0 = now_us();
      d(p);
      dms[r] = (now_us() - t0) / 1000;
    }
    qsort(dms, 3, sizeof dms[0], cmp);
    dmed[k] = dms[1];
  }
  /* 10 000 live pools with one 64 B block each */
  enum { NP = 10000 };
  static void *pools[NP];
  malloc_trim(0); /* a baseline without what the phases above left */
  size_t before = rss();
  int made = 0;
  for (; made < NP; made++) {
    pools[made] = c();
    if (pools[made] == NULL)
      break; /* jemalloc: out of arenas */
    memset(a(pools[made], 64), 1, 64);
  }
  size_t during = rss();
  for (int i = 0; i < made; i++)
    d(pools[i]);
  size_t after = rss();
  /* the retention policy keeps freed memory resident 1 to 2 purge delays
   * (src/retain.rs): wait two, then one slow-path allocation (a large
   * block) lets it act */
  usleep(25000);
  free(malloc(200000));
  size_t after_delay = rss();
  malloc_trim(0);
  size_t after_trim = rss();
#define MIB(x) ((double)(x) / 1048576)
  if (made < NP) {
    printf("%s %.3f %.4f %.4f %.4f %.4f n/a n/a n/a n/a\n", sys, cycle_us, dmed[0], dmed[1], dmed[2], dmed[3]);
#ifdef HAVE_JEMALLOC
    printf("# %s: pool %d of %d could not be created (error %d): jemalloc caps arenas at %u"
           " (MALLOCX_ARENA_LIMIT; the index is 12 bits), automatic arenas included\n",
           sys, made + 1, NP, je_err, je_narenas);
#else
    printf("# %s: pool %d of %d could not be created\n", sys, made + 1, NP);
#endif
    return 0;
  }
  printf("%s %.3f %.4f %.4f %.4f %.4f %.1f %.1f %.1f %.1f\n", sys, cycle_us, dmed[0], dmed[1], dmed[2],
         dmed[3], MIB(during - before), MIB((double)after - (double)before),
         MIB((double)after_delay - (double)before), MIB((double)after_trim - (double)before));
  return 0;
}
