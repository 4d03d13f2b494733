/* realloc (and ptrs_pool_realloc) of a pool block to a smaller size,
 * then free_sized with that size: a correct C23 program. A pool's bump
 * blocks (bump mode, and a default pool's first small blocks, carved from
 * its arena chunk) were shrunk in place keeping their old size, and the
 * free_sized aborted as a size mismatch (a fresh tester: 24 of 105 shrink
 * pairs in bump mode, 4 in default mode). Now a bump block shrunk in
 * place below half keeps its extent and accepts any size that fits
 * (pool::bump_shrink): the checks here are that no pair aborts, contents
 * survive, malloc_usable_size covers the new size (and, for a block that
 * moved, stays within the sized-free rule), the pool's statistics agree
 * with ptrs_pool_visit, and a block shrunk and grown back 10 000 times
 * keeps its pool's memory bounded: splitting the rest off as a freed
 * block, a first fix, carved a new block every cycle (160 MB for one
 * 16 000-byte block, another tester). Functions are resolved at run time
 * (the test also runs preloaded). */
#include "test_helper.h"
#include "ptrs.h"
#include <malloc.h>

static void (*fs)(void *, size_t);
static ptrs_pool *(*pool_create)(const ptrs_pool_options *);
static void *(*pool_malloc)(ptrs_pool *, size_t);
static void *(*pool_realloc)(ptrs_pool *, void *, size_t);
static void (*pool_destroy)(ptrs_pool *);
static int (*pool_stats)(const ptrs_pool *, ptrs_pool_stats *);
static int (*pool_visit)(ptrs_pool *, int (*)(void *, size_t, void *), void *);

static const size_t sizes[] = {1, 16, 64, 100, 500, 1000, 3000, 10000, 16000, 40000, 100000};
#define NSIZES (sizeof sizes / sizeof sizes[0])

static void fill(unsigned char *p, size_t n, unsigned seed) {
  for (size_t i = 0; i < n; i++)
    p[i] = (unsigned char)(i * 31 + seed);
}

static int same(const unsigned char *p, size_t n, unsigned seed) {
  for (size_t i = 0; i < n; i++)
    if (p[i] != (unsigned char)(i * 31 + seed))
      return 0;
  return 1;
}

struct walk {
  size_t blocks, bytes;
};

static int count(void *block, size_t usable, void *arg) {
  struct walk *w = arg;
  (void)block;
  w->blocks++;
  w->bytes += usable;
  return 0;
}

static void shrink_pairs(unsigned flags, int via_pool) {
  ptrs_pool_options o = {"shrink", 0, flags, NULL};
  for (size_t i = 0; i < NSIZES; i++)
    for (size_t j = 0; j < i; j++) {
      size_t n = sizes[i], m = sizes[j];
      ptrs_pool *pool = pool_create(&o);
      CHECK(pool != NULL);
      if (pool == NULL)
        return;
      /* A block before and after, so the shrunk one is in the middle of
       * its region. */
      unsigned char *before = pool_malloc(pool, 40);
      unsigned char *x = pool_malloc(pool, n);
      unsigned char *after = pool_malloc(pool, 24);
      CHECK(before && x && after);
      fill(before, 40, 1);
      fill(x, n, 2);
      fill(after, 24, 3);
      unsigned char *y = via_pool ? pool_realloc(pool, x, m) : realloc(x, m);
      CHECK(y != NULL);
      if (y == NULL)
        continue;
      CHECK(same(y, m, 2));
      size_t usable = malloc_usable_size(y);
      if (usable < m || (y != x && usable > 2 * m + 16))
        FAIL_EXIT("flags %u: %zu -> %zu: usable %zu", flags, n, m, usable);
      ptrs_pool_stats st;
      CHECK(pool_stats(pool, &st) == 0);
      struct walk w = {0, 0};
      CHECK(pool_visit(pool, count, &w) == 0);
      /* Under memcheck the statistics count the engine blocks, redzones
       * included, and visit the sizes asked for (tst-stats-pool-bump is
       * skipped there for the same reason). */
      if (w.blocks != 3 || st.blocks != 3 || (!under_memcheck() && w.bytes != st.allocated))
        FAIL_EXIT("flags %u: %zu -> %zu: visit %zu blocks %zu bytes, stats %zu blocks %zu bytes",
                  flags, n, m, w.blocks, w.bytes, st.blocks, st.allocated);
      fs(y, m);
      CHECK(same(before, 40, 1));
      CHECK(same(after, 24, 3));
      fs(before, 40);
      fs(after, 24);
      CHECK(pool_stats(pool, &st) == 0);
      CHECK(st.allocated == 0 && st.blocks == 0);
      pool_destroy(pool);
    }
}

int main(void) {
  require_ptrs();
  fs = (void (*)(void *, size_t))ptrs_symbol("free_sized");
  pool_create = (ptrs_pool * (*)(const ptrs_pool_options *)) ptrs_symbol("ptrs_pool_create");
  pool_malloc = (void *(*)(ptrs_pool *, size_t))ptrs_symbol("ptrs_pool_malloc");
  pool_realloc = (void *(*)(ptrs_pool *, void *, size_t))ptrs_symbol("ptrs_pool_realloc");
  pool_destroy = (void (*)(ptrs_pool *))ptrs_symbol("ptrs_pool_destroy");
  pool_stats = (int (*)(const ptrs_pool *, ptrs_pool_stats *))ptrs_symbol("ptrs_pool_stats_get");
  pool_visit = (int (*)(ptrs_pool *, int (*)(void *, size_t, void *), void *))ptrs_symbol("ptrs_pool_visit");
  if (!fs || !pool_create || !pool_malloc || !pool_realloc || !pool_destroy || !pool_stats || !pool_visit)
    FAIL_EXIT("a ptrs function is missing");
  for (int via_pool = 0; via_pool < 2; via_pool++) {
    shrink_pairs(0, via_pool);
    shrink_pairs(PTRS_POOL_BUMP, via_pool);
  }
  /* A bump block shrunk step by step, each step freed with its size at
   * the end. */
  ptrs_pool_options o = {"steps", 0, PTRS_POOL_BUMP, NULL};
  ptrs_pool *pool = pool_create(&o);
  unsigned char *p = pool_malloc(pool, 8000);
  fill(p, 8000, 9);
  for (size_t n = 8000; n > 1; n = n * 2 / 3) {
    p = realloc(p, n);
    CHECK(p != NULL && same(p, n, 9));
  }
  fs(p, 1);
  ptrs_pool_stats st;
  CHECK(pool_stats(pool, &st) == 0 && st.allocated == 0 && st.blocks == 0);
  pool_destroy(pool);
  /* One block shrunk and grown back 10 000 times, in both modes, freed
   * with free_sized after each shrink's size at the end. */
  for (unsigned flags = 0; flags <= PTRS_POOL_BUMP; flags += PTRS_POOL_BUMP) {
    ptrs_pool_options c = {"cycles", 0, flags, NULL};
    pool = pool_create(&c);
    p = pool_malloc(pool, 16000);
    fill(p, 16000, 5);
    for (int i = 0; i < 10000; i++) {
      p = realloc(p, 10);
      CHECK(p != NULL && same(p, 10, 5));
      p = realloc(p, 16000);
      CHECK(p != NULL && same(p, 10, 5));
      fill(p, 16000, 5);
    }
    p = realloc(p, 10);
    fs(p, 10);
    CHECK(pool_stats(pool, &st) == 0);
    /* Not under memcheck: memcheck mode's realloc moves every block (so
     * that valgrind sees the old one freed), and a bump pool keeps a
     * freed block's memory until its reset. */
    if (!under_memcheck() && st.active > (4u << 20))
      FAIL_EXIT("flags %u: the pool holds %zu bytes after 10 000 cycles of one block", flags, st.active);
    pool_destroy(pool);
  }
  return test_result();
}
