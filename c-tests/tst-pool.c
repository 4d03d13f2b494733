/* Memory pools (include/ptrs.h, ptrs_pool_*): every function and its error
 * cases; contents kept across realloc (plain and ptrs_pool_realloc, both
 * modes); cleanups run last added first, after the children, nested pools
 * destroyed newest first with their parent (and by reset); limits (ENOMEM,
 * and room again after a free); statistics exact; ptrs_pool_visit
 * enumerates exactly the live blocks; a free after destroy is reported as
 * an invalid pointer; a pool handed between threads, its blocks freed by
 * other threads, a shared pool with 4 threads allocating at once, contents
 * verified.
 *
 * The functions are resolved with dlsym through a table typed from the
 * header, so the test works linked with -lptrs and under LD_PRELOAD. */
#include "mt_helper.h"
#include "ptrs.h"

#include <stdatomic.h>
#include <sys/mman.h>

/* Pool statistics count the engine's usable sizes. Under memcheck
 * malloc_usable_size gives the requested size (each block is request +
 * 16 B redzone, rounded), so there the statistics can only be larger. */
#define BYTES_EQ(stat, expect) (under_memcheck() ? (stat) >= (expect) : (stat) == (expect))

static struct {
  __typeof__(ptrs_pool_create) *create;
  __typeof__(ptrs_pool_destroy) *destroy;
  __typeof__(ptrs_pool_reset) *reset;
  __typeof__(ptrs_pool_malloc) *malloc;
  __typeof__(ptrs_pool_calloc) *calloc;
  __typeof__(ptrs_pool_realloc) *realloc;
  __typeof__(ptrs_pool_aligned_alloc) *aligned_alloc;
  __typeof__(ptrs_pool_strdup) *strdup;
  __typeof__(ptrs_pool_cleanup_add) *cleanup_add;
  __typeof__(ptrs_pool_of) *of;
  __typeof__(ptrs_pool_stats_get) *stats_get;
  __typeof__(ptrs_pool_visit) *visit;
} api;

#define RESOLVE(name) RESOLVE_INTO(api, "ptrs_pool_", name)

static const unsigned modes[] = {0, PTRS_POOL_BUMP, PTRS_POOL_SHARED};
static const char *mode_name(unsigned f) {
  return f == 0 ? "default" : f == PTRS_POOL_BUMP ? "bump" : "shared";
}

static ptrs_pool *make(unsigned flags, size_t limit, ptrs_pool *parent) {
  ptrs_pool_options o = {"test", limit, flags, parent};
  ptrs_pool *p = api.create(&o);
  if (p == NULL)
    FAIL_EXIT("ptrs_pool_create: %s", strerror(errno));
  return p;
}

static size_t live_bytes(ptrs_pool *p) {
  ptrs_pool_stats s;
  CHECK(api.stats_get(p, &s) == 0);
  return s.allocated;
}

/* ---- error cases ---- */

static void noop(void *arg) { (void)arg; }
static int visit_count(void *b, size_t u, void *arg) {
  (void)b; (void)u;
  ++*(size_t *)arg;
  return 0;
}

static void test_errors(void) {
  ptrs_pool_options bad = {NULL, 0, 4, NULL};
  errno = 0;
  CHECK(api.create(&bad) == NULL && errno == EINVAL);
  errno = 0;
  CHECK(api.malloc(NULL, 10) == NULL && errno == EINVAL);
  errno = 0;
  CHECK(api.calloc(NULL, 1, 10) == NULL && errno == EINVAL);
  errno = 0;
  CHECK(api.realloc(NULL, NULL, 10) == NULL && errno == EINVAL);
  errno = 0;
  CHECK(api.aligned_alloc(NULL, 64, 10) == NULL && errno == EINVAL);
  errno = 0;
  CHECK(api.strdup(NULL, "x") == NULL && errno == EINVAL);
  errno = 0;
  CHECK(api.cleanup_add(NULL, noop, NULL) == EINVAL && errno == EINVAL);
  errno = 0;
  CHECK(api.stats_get(NULL, NULL) == EINVAL && errno == EINVAL);
  errno = 0;
  size_t n = 0;
  CHECK(api.visit(NULL, visit_count, &n) == -1 && errno == EINVAL);
  errno = 0;
  api.destroy(NULL);
  CHECK(errno == EINVAL);
  errno = 0;
  api.reset(NULL);
  CHECK(errno == EINVAL);
  CHECK(api.of(NULL) == NULL);
  int local;
  CHECK(api.of(&local) == NULL);
  void *m = malloc(40);
  CHECK(api.of(m) == NULL);

  /* NULL options: a plain pool. */
  ptrs_pool *p = api.create(NULL);
  CHECK(p != NULL);
  errno = 0;
  CHECK(api.aligned_alloc(p, 48, 10) == NULL && errno == EINVAL);
  errno = 0;
  CHECK(api.strdup(p, NULL) == NULL && errno == EINVAL);
  errno = 0;
  CHECK(api.cleanup_add(p, NULL, NULL) == EINVAL && errno == EINVAL);
  ptrs_pool_stats s;
  errno = 0;
  CHECK(api.stats_get(p, NULL) == EINVAL && errno == EINVAL);
  CHECK(api.visit(p, NULL, NULL) == -1);
  errno = 0;
  CHECK(api.calloc(p, SIZE_MAX / 2, 3) == NULL && errno == ENOMEM);
  errno = 0;
  CHECK(api.malloc(p, test_size(SIZE_MAX - 100)) == NULL && errno == ENOMEM);
  /* realloc of a block that is not this pool's: EINVAL, block untouched. */
  errno = 0;
  CHECK(api.realloc(p, m, 100) == NULL && errno == EINVAL);
  ptrs_pool *q = api.create(NULL);
  void *qb = api.malloc(q, 10);
  errno = 0;
  CHECK(api.realloc(p, qb, 100) == NULL && errno == EINVAL);
  CHECK(api.of(qb) == q);
  /* A parent that is destroyed is EINVAL. */
  api.destroy(q);
  ptrs_pool_options orphan = {NULL, 0, 0, q};
  (void)orphan; /* q's memory may be reused: not passed (undefined). */
  /* A parent that is not a pool at all is EINVAL, also where nothing is
   * mapped (that crashed inside create): a malloc block, a stack address,
   * an unmapped page, a small integer. */
  char on_stack[256];
  void *gone = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  CHECK(gone != MAP_FAILED && munmap(gone, 4096) == 0);
  void *not_pools[] = {m, on_stack, gone, (void *)0x1234, (char *)qb + 16};
  for (size_t i = 0; i < sizeof not_pools / sizeof not_pools[0]; i++) {
    ptrs_pool_options bad_parent = {NULL, 0, 0, (ptrs_pool *)not_pools[i]};
    errno = 0;
    CHECK(api.create(&bad_parent) == NULL && errno == EINVAL);
  }
  CHECK(api.stats_get(p, &s) == 0 && s.allocated == 0 && s.blocks == 0);
  /* malloc(0) gives a unique block; realloc to 0 frees. */
  void *z = api.malloc(p, 0);
  CHECK(z != NULL && api.of(z) == p);
  CHECK(api.realloc(p, z, 0) == NULL);
  CHECK(api.stats_get(p, &s) == 0 && s.blocks == 0);
  errno = 1234;
  api.destroy(p);
  CHECK(errno == 1234); /* destroy preserves errno */
  free(m);
}

/* ---- allocation, contents, realloc, usable size, free, stats ---- */

static void test_basic(unsigned flags) {
  ptrs_pool *p = make(flags, 0, NULL);
  enum { N = 300 };
  static void *blk[N];
  static size_t sz[N];
  uint64_t rng = 42 + flags;
  size_t total = 0;
  for (int i = 0; i < N; i++) {
    size_t r = splitmix64(&rng);
    sz[i] = i % 50 == 49 ? 100000 + r % 300000 : (i % 97 == 3 ? 5u << 20 : r % 3000);
    blk[i] = (i % 3 == 0) ? api.calloc(p, 1, sz[i]) : api.malloc(p, sz[i]);
    CHECK(blk[i] != NULL);
    if (i % 3 == 0)
      for (size_t k = 0; k < sz[i]; k++)
        if (((unsigned char *)blk[i])[k] != 0) {
          CHECK(!"calloc block not zero");
          break;
        }
    CHECK(is_aligned(blk[i], 16));
    CHECK(api.of(blk[i]) == p);
    CHECK(test_owns(blk[i]));
    size_t u = malloc_usable_size(blk[i]);
    CHECK(u >= sz[i]);
    total += u;
    fill_pattern(blk[i], sz[i], (uint32_t)i);
  }
  ptrs_pool_stats s;
  CHECK(api.stats_get(p, &s) == 0);
  CHECK(BYTES_EQ(s.allocated, total));
  CHECK(s.blocks == N);
  CHECK(BYTES_EQ(s.peak_allocated, total));
  CHECK(s.active >= total);
  size_t n = 0;
  CHECK(api.visit(p, visit_count, &n) == 0 && n == N);
  /* realloc (plain and pool), growing and shrinking: contents kept, the
   * block stays in the pool. */
  for (int i = 0; i < N; i++) {
    size_t ns = (i % 2) ? sz[i] * 2 + 100 : sz[i] / 3;
    void *q = (i % 4 < 2) ? realloc(blk[i], ns) : api.realloc(p, blk[i], ns);
    CHECK(q != NULL);
    size_t keep = ns < sz[i] ? ns : sz[i];
    CHECK(check_pattern(q, keep, (uint32_t)i) == PATTERN_OK);
    CHECK(api.of(q) == p);
    blk[i] = q;
    sz[i] = ns;
    fill_pattern(blk[i], sz[i], (uint32_t)i + 7);
  }
  CHECK(api.visit(p, visit_count, &(size_t){0}) == 0);
  n = 0;
  api.visit(p, visit_count, &n);
  CHECK(n == N);
  /* free half (some with free_sized); the others keep their contents. */
  total = 0;
  for (int i = 0; i < N; i++) {
    if (i % 2) {
      free(blk[i]);
      blk[i] = NULL;
    } else {
      CHECK(check_pattern(blk[i], sz[i], (uint32_t)i + 7) == PATTERN_OK);
      total += malloc_usable_size(blk[i]);
    }
  }
  CHECK(api.stats_get(p, &s) == 0);
  CHECK(BYTES_EQ(s.allocated, total));
  CHECK(s.blocks == N / 2);
  n = 0;
  CHECK(api.visit(p, visit_count, &n) == 0);
  CHECK(n == N / 2);
  /* strdup and aligned_alloc */
  char *d = api.strdup(p, "hello, pool");
  CHECK(d != NULL && strcmp(d, "hello, pool") == 0 && api.of(d) == p);
  static const size_t aligns[] = {16, 32, 64, 256, 4096, 65536, 1 << 20};
  for (size_t k = 0; k < sizeof aligns / sizeof aligns[0]; k++) {
    void *a = api.aligned_alloc(p, aligns[k], 100 + k * 1000);
    CHECK(a != NULL && is_aligned(a, aligns[k]) && api.of(a) == p);
    fill_pattern(a, 100 + k * 1000, 9);
    if (k % 2)
      free(a);
  }
  /* reset: everything goes, the pool stays usable */
  api.reset(p);
  CHECK(api.stats_get(p, &s) == 0 && s.allocated == 0 && s.blocks == 0);
  n = 0;
  CHECK(api.visit(p, visit_count, &n) == 0 && n == 0);
  void *after = api.malloc(p, 64);
  CHECK(after != NULL && api.of(after) == p);
  CHECK(BYTES_EQ(live_bytes(p), malloc_usable_size(after)));
  api.destroy(p);
  CHECK(api.of(after) == NULL);
}

/* ---- visit: exactly the live blocks, stop value ---- */

struct seen {
  void **blocks;
  size_t n, found, bad;
};
static int visit_find(void *b, size_t u, void *arg) {
  struct seen *s = arg;
  for (size_t i = 0; i < s->n; i++)
    if (s->blocks[i] == b) {
      s->found++;
      if (u != malloc_usable_size(b))
        s->bad++;
      return 0;
    }
  s->bad++;
  return 0;
}
static int visit_stop(void *b, size_t u, void *arg) {
  (void)b; (void)u;
  return ++*(int *)arg == 5 ? 77 : 0;
}

static void test_visit(unsigned flags) {
  ptrs_pool *p = make(flags, 0, NULL);
  enum { N = 1000 };
  static void *all[N], *live[N];
  size_t nl = 0;
  for (int i = 0; i < N; i++)
    all[i] = api.malloc(p, (size_t)(i * 37) % 2000 + (i % 200 == 0 ? 300000 : 0));
  for (int i = 0; i < N; i++) {
    if (i % 3 == 1)
      free(all[i]);
    else
      live[nl++] = all[i];
  }
  struct seen s = {live, nl, 0, 0};
  CHECK(api.visit(p, visit_find, &s) == 0);
  CHECK(s.found == nl);
  CHECK(s.bad == 0);
  int calls = 0;
  CHECK(api.visit(p, visit_stop, &calls) == 77 && calls == 5);
  api.destroy(p);
}

/* A visitor that frees every block it is given (the documented use):
 * pages empty and segments with them while the walk goes on; with a
 * purge delay of 0 an emptied segment used to be given back at once and
 * the walk read it after (SIGSEGV). */
static int visit_free(void *b, size_t u, void *arg) {
  (void)u;
  ++*(size_t *)arg;
  free(b);
  return 0;
}

static void test_visit_free(unsigned flags, size_t large, int nlarge) {
  int32_t (*option_set)(const char *, int64_t) =
      (int32_t (*)(const char *, int64_t))ptrs_symbol("ptrs_option_set");
  int64_t (*option_get)(const char *) =
      (int64_t (*)(const char *))ptrs_symbol("ptrs_option_get");
  int64_t delay = option_get ? option_get("purge_delay") : -1;
  if (option_set)
    option_set("purge_delay", 0);
  ptrs_pool *p = make(flags, 0, NULL);
  for (int i = 0; i < nlarge; i++)
    CHECK(api.malloc(p, large) != NULL);
  for (int i = 0; i < 2000; i++)
    CHECK(api.malloc(p, (size_t)(i % 50) * 16 + 16) != NULL);
  size_t n = 0;
  CHECK(api.visit(p, visit_free, &n) == 0);
  CHECK(n == (size_t)nlarge + 2000);
  ptrs_pool_stats st;
  CHECK(api.stats_get(p, &st) == 0);
  CHECK(st.blocks == 0 && st.allocated == 0);
  n = 0;
  CHECK(api.visit(p, visit_count, &n) == 0 && n == 0);
  CHECK(api.malloc(p, large) != NULL);
  api.destroy(p);
  if (option_set && delay >= 0)
    option_set("purge_delay", delay);
}

/* ---- errno kept by successful allocations ----
 * A huge allocation that reuses a cached mapping first tries to grow it in
 * place with mremap, which fails with ENOMEM when the next pages are
 * taken; the allocation then succeeds elsewhere and must leave errno as
 * it was (it returned a block with errno ENOMEM). */
static void test_errno_kept(unsigned flags) {
  ptrs_pool *p = make(flags, 0, NULL);
  for (int round = 0; round < 4; round++) {
    void *b = api.malloc(p, 5u << 20);
    CHECK(b != NULL);
    free(b);
    void *hold = malloc(1u << 20); /* something mapped after it */
    errno = 0;
    void *c = api.malloc(p, (20u << 20) + (size_t)round * 4096);
    CHECK(c != NULL && errno == 0);
    errno = 0;
    void *d = realloc(c, 40u << 20);
    CHECK(d != NULL && errno == 0);
    free(d);
    free(hold);
  }
  api.destroy(p);
}

/* ---- visit while other threads free huge blocks ----
 * Frees are allowed from any thread at any time, also during a walk. The
 * walk used to read the next link of a huge block after its visitor ran:
 * freed meanwhile by another thread, the block was unmapped (SIGSEGV with
 * a purge delay of 0) or cached with its link cleared (the walk ended
 * early, skipping live blocks). */
#define RACE_BLOCKS 24
static void *race_blocks[RACE_BLOCKS];
/* The visitor asks the freer thread to free the block the walk goes to
 * next (-1: none yet, -2: stop) and waits for it to be done. */
static atomic_int race_request = -1, race_done = -1;

static void *free_on_request(void *arg) {
  (void)arg;
  for (;;) {
    int i = atomic_load(&race_request);
    if (i == -2)
      return NULL;
    if (i >= 0 && atomic_load(&race_done) != i) {
      free(race_blocks[i]);
      atomic_store(&race_done, i);
    }
  }
}

struct race_seen {
  int seen[RACE_BLOCKS];
  int other;
};

/* Blocks are listed newest first: the walk goes 23, 22, 21, ... While it
 * visits an even block, the odd block after it is freed by the other
 * thread, which is the block whose link the walk follows next. */
static int visit_and_free_next(void *b, size_t u, void *arg) {
  struct race_seen *r = arg;
  (void)u;
  int found = -1;
  for (int i = 0; i < RACE_BLOCKS; i++)
    if (race_blocks[i] == b)
      found = i;
  if (found < 0) {
    r->other++;
    return 0;
  }
  r->seen[found]++;
  if (found % 2 == 0 && found > 0) {
    atomic_store(&race_request, found - 1);
    while (atomic_load(&race_done) != found - 1)
      ;
  }
  return 0;
}

static void test_visit_huge_race(unsigned flags) {
  int32_t (*option_set)(const char *, int64_t) =
      (int32_t (*)(const char *, int64_t))ptrs_symbol("ptrs_option_set");
  int64_t (*option_get)(const char *) =
      (int64_t (*)(const char *))ptrs_symbol("ptrs_option_get");
  int64_t delay = option_get ? option_get("purge_delay") : -1;
  for (int round = 0; round < 2; round++) {
    /* round 0: freed mappings unmapped at once; round 1: cached */
    if (option_set)
      option_set("purge_delay", round == 0 ? 0 : 1000);
    ptrs_pool *p = make(flags, 0, NULL);
    for (int i = 0; i < RACE_BLOCKS; i++) {
      race_blocks[i] = api.malloc(p, 3u << 20);
      CHECK(race_blocks[i] != NULL);
      memset(race_blocks[i], i, 4096);
    }
    atomic_store(&race_request, -1);
    atomic_store(&race_done, -1);
    pthread_t t;
    CHECK(pthread_create(&t, NULL, free_on_request, NULL) == 0);
    struct race_seen r = {{0}, 0};
    CHECK(api.visit(p, visit_and_free_next, &r) == 0);
    atomic_store(&race_request, -2);
    CHECK(pthread_join(t, NULL) == 0);
    /* the even blocks and the first one (live for the whole walk) seen
     * once; the odd ones freed before the walk reached them not at all */
    for (int i = 0; i < RACE_BLOCKS; i++) {
      int want = (i % 2 == 0 || i == RACE_BLOCKS - 1) ? 1 : 0;
      if (r.seen[i] != want) {
        fprintf(stderr, "huge race (%s, round %d): block %d seen %d times, want %d\n",
                mode_name(flags), round, i, r.seen[i], want);
        test_failures++;
      }
    }
    CHECK(r.other == 0);
    for (int i = 0; i < RACE_BLOCKS; i += 2)
      CHECK(((unsigned char *)race_blocks[i])[4095] == (unsigned char)i);
    /* the blocks freed during the walk are gone from the pool */
    ptrs_pool_stats st;
    CHECK(api.stats_get(p, &st) == 0);
    CHECK(st.blocks == RACE_BLOCKS / 2 + 1);
    size_t n = 0;
    CHECK(api.visit(p, visit_count, &n) == 0 && n == RACE_BLOCKS / 2 + 1);
    api.destroy(p);
  }
  if (option_set && delay >= 0)
    option_set("purge_delay", delay);
}

/* A huge block freed twice during a walk (kept mapped for the walk, so
 * not caught as an unknown pointer) is still a double free. */
static int visit_free_twice(void *b, size_t u, void *arg) {
  (void)u;
  (void)arg;
  free(b);
  free(b);
  return 0;
}

static void visit_double_free(void *arg) {
  api.visit(arg, visit_free_twice, NULL);
}

static void test_visit_huge_double_free(void) {
  ptrs_pool *p = make(0, 0, NULL);
  void *b = api.malloc(p, 3u << 20);
  CHECK(b != NULL);
  expect_abort("double free of a huge block during a visit", visit_double_free, p, "free",
               "double free detected", b);
  api.destroy(p);
}

/* ---- cleanups and nesting ---- */

static char order[64];
static size_t order_len;
static void note(void *arg) { order[order_len++] = *(const char *)arg; }

static void test_nesting(void) {
  order_len = 0;
  ptrs_pool *root = make(0, 0, NULL);
  ptrs_pool *a = make(0, 0, root);
  ptrs_pool *b = make(PTRS_POOL_BUMP, 0, root);
  ptrs_pool *b1 = make(0, 0, b);
  CHECK(api.cleanup_add(root, note, "1") == 0);
  CHECK(api.cleanup_add(root, note, "2") == 0);
  CHECK(api.cleanup_add(a, note, "a") == 0);
  CHECK(api.cleanup_add(b, note, "b") == 0);
  CHECK(api.cleanup_add(b1, note, "c") == 0);
  void *ab = api.malloc(a, 100), *bb = api.malloc(b, 100), *cb = api.malloc(b1, 100);
  CHECK(api.of(ab) == a && api.of(bb) == b && api.of(cb) == b1);
  /* reset of root: children (newest first: b with its child, then a),
   * then root's cleanups, last first. */
  api.reset(root);
  order[order_len] = 0;
  CHECK(strcmp(order, "cba21") == 0);
  if (strcmp(order, "cba21") != 0)
    fprintf(stderr, "cleanup order after reset: %s\n", order);
  CHECK(api.of(ab) == NULL && api.of(bb) == NULL && api.of(cb) == NULL);
  /* the root stays usable; a new child and cleanup run on destroy */
  order_len = 0;
  ptrs_pool *c = make(0, 0, root);
  CHECK(api.cleanup_add(c, note, "x") == 0);
  CHECK(api.cleanup_add(root, note, "r") == 0);
  api.destroy(root);
  order[order_len] = 0;
  CHECK(strcmp(order, "xr") == 0);
  /* destroying a child alone unlinks it from its parent */
  ptrs_pool *r2 = make(0, 0, NULL);
  ptrs_pool *k1 = make(0, 0, r2);
  ptrs_pool *k2 = make(0, 0, r2);
  CHECK(api.cleanup_add(k2, note, "k") == 0);
  order_len = 0;
  api.destroy(k1);
  api.destroy(r2);
  order[order_len] = 0;
  CHECK(strcmp(order, "k") == 0);
}

/* ---- limits ---- */

/* The out-of-memory handler hears of a pool allocation that fails for
 * want of memory (it was never called for pools), not of one the pool's
 * limit refuses. */
static int oom_calls;
static size_t oom_size;
static void count_oom(size_t size) {
  oom_calls++;
  oom_size = size;
}

static void test_oom_handler(unsigned flags) {
  typedef void (*handler_t)(size_t);
  handler_t (*set_handler)(handler_t) =
      (handler_t (*)(handler_t))ptrs_symbol("ptrs_set_oom_handler");
  CHECK(set_handler != NULL);
  if (set_handler == NULL)
    return;
  handler_t old = set_handler(count_oom);
  ptrs_pool *p = make(flags, 0, NULL);
  oom_calls = 0;
  size_t huge = (size_t)1 << 50; /* more than the address space allows */
  errno = 0;
  CHECK(api.malloc(p, huge) == NULL && errno == ENOMEM);
  CHECK(oom_calls == 1 && oom_size == huge);
  CHECK(api.calloc(p, 1, huge) == NULL && errno == ENOMEM);
  CHECK(oom_calls == 2);
  void *b = api.malloc(p, 100);
  CHECK(b != NULL);
  CHECK(api.realloc(p, b, huge) == NULL && errno == ENOMEM);
  CHECK(oom_calls == 3);
  /* libc's realloc of a pool block: the same */
  errno = 0;
  CHECK(realloc(b, huge) == NULL && errno == ENOMEM);
  CHECK(oom_calls == 4);
  api.destroy(p);
  /* a limit's refusal is the pool's policy, not exhaustion */
  ptrs_pool *q = make(flags, 1000, NULL);
  oom_calls = 0;
  CHECK(api.malloc(q, 5000) == NULL && errno == ENOMEM);
  void *c = api.malloc(q, 100);
  CHECK(c != NULL);
  CHECK(api.realloc(q, c, 5000) == NULL && errno == ENOMEM);
  /* ... also through libc's realloc (a fresh tester: the handler was
   * called, after a trim of every heap) */
  errno = 0;
  CHECK(realloc(c, 5000) == NULL && errno == ENOMEM);
  CHECK(oom_calls == 0);
  api.destroy(q);
  set_handler(old);
}

static void test_limit(unsigned flags) {
  ptrs_pool *p = make(flags, 10000, NULL);
  void *blocks[200];
  int n = 0;
  errno = 0;
  while (n < 200 && (blocks[n] = api.malloc(p, 100)) != NULL)
    n++;
  CHECK(n > 0 && n < 200);
  CHECK(errno == ENOMEM);
  CHECK(live_bytes(p) <= 10000);
  CHECK(live_bytes(p) + 112 > 10000 - 112);
  errno = 0;
  CHECK(api.malloc(p, 20000) == NULL && errno == ENOMEM);
  CHECK(api.calloc(p, 1, 20000) == NULL);
  CHECK(api.realloc(p, blocks[0], 20000) == NULL && errno == ENOMEM);
  free(blocks[1]);
  free(blocks[2]);
  if (flags & PTRS_POOL_BUMP) {
    /* a freed bump block is held until reset: no room (ptrs.h, limit) */
    errno = 0;
    CHECK(api.malloc(p, 100) == NULL && errno == ENOMEM);
    api.reset(p);
  }
  CHECK(api.malloc(p, 100) != NULL); /* room again after a free */
  api.destroy(p);
}

/* ---- a free after destroy is reported ---- */

static void free_it(void *p) { free(p); }

static void malloc_from(void *p) { api.malloc(p, 32); }

struct pool_block {
  ptrs_pool *pool;
  void *block;
};

static void pool_realloc_it(void *arg) {
  struct pool_block *pb = arg;
  void *volatile q = api.realloc(pb->pool, pb->block, 200);
  (void)q;
}

static void test_stale_free(unsigned flags) {
  ptrs_pool *p = make(flags, 0, NULL);
  void *a = api.malloc(p, 64);
  void *b = api.malloc(p, 64);
  (void)a;
  api.destroy(p);
  CHECK(api.of(b) == NULL);
  char what[64];
  snprintf(what, sizeof what, "free after destroy (%s)", mode_name(flags));
  expect_abort(what, free_it, b, "free", "invalid pointer", b);
  /* an allocation from the pool just destroyed (kept in ptrs's cache of
   * destroyed pools, so its memory is still readable) is reported too, in
   * every mode (the fast paths are closed on destroy) */
  snprintf(what, sizeof what, "malloc from a destroyed pool (%s)", mode_name(flags));
  expect_abort(what, malloc_from, p, "ptrs_pool_malloc", "invalid pool", p);
  /* a double free of a live pool's block */
  ptrs_pool *q = make(flags, 0, NULL);
  void *c = api.malloc(q, 64);
  free(c);
  snprintf(what, sizeof what, "double free in a pool (%s)", mode_name(flags));
  expect_abort(what, free_it, c, "free", "double free detected", c);
  /* ptrs_pool_realloc of that freed block names itself (it said "realloc()") */
  struct pool_block pb = {q, c};
  snprintf(what, sizeof what, "ptrs_pool_realloc of a freed block (%s)", mode_name(flags));
  expect_abort(what, pool_realloc_it, &pb, "ptrs_pool_realloc", "double free detected", c);
  api.destroy(q);
}

/* ---- threads ---- */

struct handoff {
  ptrs_pool *pool;
  void **blocks;
  int from, to;
};

static void *alloc_part(void *arg) {
  struct handoff *h = arg;
  for (int i = h->from; i < h->to; i++) {
    h->blocks[i] = api.malloc(h->pool, (size_t)(i % 500) + 1);
    if (h->blocks[i] != NULL)
      fill_pattern(h->blocks[i], (size_t)(i % 500) + 1, (uint32_t)i);
  }
  return NULL;
}

static void *free_part(void *arg) {
  struct handoff *h = arg;
  for (int i = h->from; i < h->to; i++)
    if (i % 2 == 0) {
      free(h->blocks[i]);
      h->blocks[i] = NULL;
    }
  return NULL;
}

static void test_threads(void) {
  enum { N = 40000 };
  static void *blocks[N];
  /* A pool handed from thread to thread (joined in between: the join is
   * the synchronisation); its blocks freed by other threads. */
  ptrs_pool *p = make(0, 0, NULL);
  for (int t = 0; t < 4; t++) {
    struct handoff h = {p, blocks, t * N / 4, (t + 1) * N / 4};
    pthread_t th;
    pthread_create(&th, NULL, alloc_part, &h);
    pthread_join(th, NULL);
  }
  pthread_t fr[4];
  struct handoff hf[4];
  for (int t = 0; t < 4; t++) {
    hf[t] = (struct handoff){p, blocks, t * N / 4, (t + 1) * N / 4};
    pthread_create(&fr[t], NULL, free_part, &hf[t]);
  }
  for (int t = 0; t < 4; t++)
    pthread_join(fr[t], NULL);
  /* the pool, back here, reuses what others freed and keeps the rest */
  for (int i = 0; i < N; i += 2)
    blocks[i] = api.malloc(p, 32);
  int bad = 0;
  size_t total = 0;
  for (int i = 0; i < N; i++) {
    if (i % 2 && check_pattern(blocks[i], (size_t)(i % 500) + 1, (uint32_t)i) != PATTERN_OK)
      bad++;
    total += malloc_usable_size(blocks[i]);
  }
  CHECK(bad == 0);
  CHECK(BYTES_EQ(live_bytes(p), total));
  api.destroy(p);

  /* A shared pool: 4 threads allocate at once. */
  ptrs_pool *s = make(PTRS_POOL_SHARED, 0, NULL);
  pthread_t th[4];
  struct handoff hs[4];
  for (int t = 0; t < 4; t++) {
    hs[t] = (struct handoff){s, blocks, t * N / 4, (t + 1) * N / 4};
    pthread_create(&th[t], NULL, alloc_part, &hs[t]);
  }
  for (int t = 0; t < 4; t++)
    pthread_join(th[t], NULL);
  bad = 0;
  total = 0;
  for (int i = 0; i < N; i++) {
    if (blocks[i] == NULL || api.of(blocks[i]) != s ||
        check_pattern(blocks[i], (size_t)(i % 500) + 1, (uint32_t)i) != PATTERN_OK)
      bad++;
    else
      total += malloc_usable_size(blocks[i]);
  }
  CHECK(bad == 0);
  ptrs_pool_stats st;
  CHECK(api.stats_get(s, &st) == 0 && st.blocks == N && BYTES_EQ(st.allocated, total));
  api.destroy(s);
}

/* ---- frees by the allocating thread ---- */

/* Frees by the thread that allocates from a pool come back to it: every
 * free of a pool block goes on its page's remote list, which the pool takes
 * back when the page's free list runs out (src/pool.rs, `collect_direct`),
 * so a malloc/free loop takes no new pages and a freed block is handed out
 * again within one page's worth of allocations. */
static void test_free_reuse(void) {
  ptrs_pool *p = make(0, 0, NULL);
  void *warm[64];
  for (int i = 0; i < 64; i++)
    warm[i] = api.malloc(p, 48);
  void *a = api.malloc(p, 48);
  CHECK(a != NULL);
  free(a);
  ptrs_pool_stats st0, st;
  CHECK(api.stats_get(p, &st0) == 0 && st0.blocks == 64);
  int seen = 0, bad = 0;
  for (int i = 0; i < 100000; i++) {
    unsigned char *b = api.malloc(p, 48);
    if (b == NULL) {
      bad++;
      continue;
    }
    seen |= b == a;
    memset(b, i & 0xff, 48);
    free(b);
  }
  CHECK(bad == 0);
  CHECK(seen);
  CHECK(api.stats_get(p, &st) == 0 && st.blocks == 64 && st.active == st0.active);
  for (int i = 0; i < 64; i++)
    free(warm[i]);
  CHECK(api.stats_get(p, &st) == 0 && st.blocks == 0 && st.allocated == 0);
  CHECK(st.peak_allocated >= 65 * 48);
  api.destroy(p);
}

/* A use after free that overwrites the link of a freed pool block is
 * reported when the pool hands that block out again, as for malloc: the
 * frees put b (linking to a) on the page's remote list, the allocations
 * run the page's free list out, take the remote list back and pop b. */
struct pool_corrupt {
  ptrs_pool *pool;
  char *a, *b;
};

static void corrupt_then_pool_malloc(void *arg) {
  struct pool_corrupt *c = arg;
  free(c->a);
  free(c->b);
  memset(test_ptr(c->b), 0x41, 8);
  for (int i = 0; i < 100000; i++)
    if (api.malloc(c->pool, 48) == NULL)
      break;
  fprintf(stderr, "no report after 100000 allocations\n");
}

static void test_corrupted_link(void) {
  struct pool_corrupt c = {make(0, 0, NULL), NULL, NULL};
  for (int i = 0; i < 64; i++) /* past the arena chunks */
    CHECK(api.malloc(c.pool, 48) != NULL);
  c.a = api.malloc(c.pool, 48);
  c.b = api.malloc(c.pool, 48);
  CHECK(c.a != NULL && c.b != NULL);
  expect_abort("overwritten link of a freed pool block", corrupt_then_pool_malloc, &c,
               "malloc", "corrupted free list detected", c.b);
  api.destroy(c.pool);
}

/* The peak counts the most bytes live at any moment, also when the frees
 * that end it come from another thread (statistics record it at frees). */
static void *free_all(void *arg) {
  void **b = arg;
  for (int i = 0; i < 100; i++)
    free(b[i]);
  return NULL;
}

static void test_peak(unsigned flags) {
  ptrs_pool *p = make(flags, 0, NULL);
  void *b[100];
  size_t total = 0;
  for (int i = 0; i < 100; i++) {
    b[i] = api.malloc(p, 64);
    CHECK(b[i] != NULL);
    total += malloc_usable_size(b[i]);
  }
  pthread_t t;
  pthread_create(&t, NULL, free_all, b);
  pthread_join(t, NULL);
  void *c[10];
  size_t now = 0;
  for (int i = 0; i < 10; i++) {
    c[i] = api.malloc(p, 64);
    now += malloc_usable_size(c[i]);
  }
  ptrs_pool_stats st;
  CHECK(api.stats_get(p, &st) == 0);
  CHECK(BYTES_EQ(st.allocated, now));
  CHECK(BYTES_EQ(st.peak_allocated, total));
  /* and by the owner's own frees */
  for (int i = 0; i < 10; i++)
    free(c[i]);
  for (int i = 0; i < 5; i++)
    c[i] = api.malloc(p, 64);
  CHECK(api.stats_get(p, &st) == 0 && BYTES_EQ(st.peak_allocated, total));
  api.destroy(p);
}

/* A pool handed back and forth between two threads while the thread that
 * gave it away keeps freeing its own blocks (which must not touch the free
 * lists the new allocating thread pops from at that moment), and a third
 * thread frees other blocks of the pool all along. Every block handed out
 * is distinct and keeps its contents. */
enum { OWN_ROUNDS = 300, OWN_M = 200 };
static struct {
  ptrs_pool *pool;
  int turn;                /* round handed to the worker; -1: stop */
  int done;                /* last round the worker finished */
  void *mine[OWN_M];       /* the worker's blocks of the round */
  void *remote[OWN_M];     /* blocks for the remote freer */
  int remote_ready;        /* round whose remote[] is ready, 0: none */
  int remote_done;
} own;

static void *owner_worker(void *arg) {
  (void)arg;
  for (int r = 1; r <= OWN_ROUNDS; r++) {
    while (__atomic_load_n(&own.turn, __ATOMIC_ACQUIRE) < r)
      ;
    /* our turn to allocate: the main thread frees its own blocks now */
    for (int i = 0; i < OWN_M; i++) {
      size_t n = (size_t)(i % 7) * 16 + 16;
      own.mine[i] = api.malloc(own.pool, n);
      MT_CHECK(own.mine[i] != NULL);
      if (own.mine[i])
        fill_pattern(own.mine[i], n, (uint32_t)(r * OWN_M + i));
    }
    for (int i = 0; i < OWN_M; i++) {
      size_t n = (size_t)(i % 7) * 16 + 16;
      if (own.mine[i])
        MT_CHECK(check_pattern(own.mine[i], n, (uint32_t)(r * OWN_M + i)) == PATTERN_OK);
    }
    __atomic_store_n(&own.done, r, __ATOMIC_RELEASE);
  }
  return NULL;
}

static void *remote_freer(void *arg) {
  (void)arg;
  for (int r = 1; r <= OWN_ROUNDS; r++) {
    while (__atomic_load_n(&own.remote_ready, __ATOMIC_ACQUIRE) < r)
      ;
    for (int i = 0; i < OWN_M; i++)
      free(own.remote[i]);
    __atomic_store_n(&own.remote_done, r, __ATOMIC_RELEASE);
  }
  return NULL;
}

static int cmp_ptr(const void *a, const void *b) {
  uintptr_t x = (uintptr_t) * (void *const *)a, y = (uintptr_t) * (void *const *)b;
  return x < y ? -1 : x > y;
}

static void test_owner_handoff(void) {
  static void *keep[OWN_ROUNDS][OWN_M];
  static void *all[OWN_M * 4];
  own.pool = make(0, 0, NULL);
  pthread_t w, f;
  pthread_create(&w, NULL, owner_worker, NULL);
  pthread_create(&f, NULL, remote_freer, NULL);
  void *local[OWN_M];
  int bad = 0;
  for (int r = 1; r <= OWN_ROUNDS; r++) {
    /* our turn: allocate, for ourselves and for the remote freer */
    for (int i = 0; i < OWN_M; i++) {
      size_t n = (size_t)(i % 7) * 16 + 16;
      local[i] = api.malloc(own.pool, n);
      own.remote[i] = api.malloc(own.pool, n);
      if (!local[i] || !own.remote[i]) {
        bad++;
        continue;
      }
      memset(local[i], 0x5a, n);
      memset(own.remote[i], 0xa5, n);
    }
    __atomic_store_n(&own.remote_ready, r, __ATOMIC_RELEASE);
    /* hand the pool over, then free our blocks while the worker allocates */
    __atomic_store_n(&own.turn, r, __ATOMIC_RELEASE);
    for (int i = 0; i < OWN_M; i++)
      free(local[i]);
    while (__atomic_load_n(&own.done, __ATOMIC_ACQUIRE) < r)
      ;
    while (__atomic_load_n(&own.remote_done, __ATOMIC_ACQUIRE) < r)
      ;
    /* the worker's blocks of this round: distinct, contents intact; half
     * stay live to the end, half are freed here (by us, the allocating
     * thread again from the next allocation on) */
    memcpy(all, own.mine, sizeof own.mine);
    qsort(all, OWN_M, sizeof all[0], cmp_ptr);
    for (int i = 1; i < OWN_M; i++)
      if (all[i] == all[i - 1])
        bad++;
    for (int i = 0; i < OWN_M; i++) {
      size_t n = (size_t)(i % 7) * 16 + 16;
      if (check_pattern(own.mine[i], n, (uint32_t)(r * OWN_M + i)) != PATTERN_OK)
        bad++;
      if (i % 2) {
        free(own.mine[i]);
        keep[r - 1][i] = NULL;
      } else {
        keep[r - 1][i] = own.mine[i];
      }
    }
  }
  pthread_join(w, NULL);
  pthread_join(f, NULL);
  /* every kept block intact; the statistics count exactly them */
  size_t total = 0, count = 0;
  for (int r = 1; r <= OWN_ROUNDS; r++)
    for (int i = 0; i < OWN_M; i += 2) {
      size_t n = (size_t)(i % 7) * 16 + 16;
      if (check_pattern(keep[r - 1][i], n, (uint32_t)(r * OWN_M + i)) != PATTERN_OK)
        bad++;
      total += malloc_usable_size(keep[r - 1][i]);
      count++;
    }
  CHECK(bad == 0);
  ptrs_pool_stats st;
  CHECK(api.stats_get(own.pool, &st) == 0);
  CHECK(st.blocks == count);
  CHECK(BYTES_EQ(st.allocated, total));
  size_t visited = 0;
  CHECK(api.visit(own.pool, visit_count, &visited) == 0 && visited == count);
  api.destroy(own.pool);
}

/* fork while another thread allocates from its pool and frees the blocks
 * (with large blocks or a shared pool, the pool heap's slow-path lock held
 * in the free or the allocation; with huge blocks, the pool's huge-block
 * list lock): the child, where that thread does not exist, reads the
 * pool's statistics and takes the pool over at its first allocation, and
 * must not wait for a free or a lock that will never end. */
static int fork_stop;
static ptrs_pool *fork_pool;
static size_t fork_size;
static void *local_churn(void *arg) {
  (void)arg;
  while (!__atomic_load_n(&fork_stop, __ATOMIC_RELAXED)) {
    void *b[8];
    for (int i = 0; i < 8; i++)
      b[i] = api.malloc(fork_pool, fork_size);
    for (int i = 0; i < 8; i++)
      free(b[i]);
  }
  return NULL;
}

static void test_fork_owner(unsigned flags, size_t size) {
  fork_pool = make(flags, 0, NULL);
  fork_size = size;
  __atomic_store_n(&fork_stop, 0, __ATOMIC_RELAXED);
  pthread_t t;
  pthread_create(&t, NULL, local_churn, NULL);
  int hung = 0, bad = 0;
  for (int k = 0; k < 200 && !hung; k++) {
    pid_t pid = fork();
    if (pid == 0) {
      ptrs_pool_stats st;
      if (api.stats_get(fork_pool, &st) != 0)
        _exit(2);
      void *b = api.malloc(fork_pool, size);
      _exit(b != NULL ? 0 : 1);
    }
    int status = 0, waited = 0;
    while (waitpid(pid, &status, WNOHANG) == 0) {
      if (++waited > 5000) { /* 5 s */
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        hung = 1;
        break;
      }
      usleep(1000);
    }
    if (!hung && !(WIFEXITED(status) && WEXITSTATUS(status) == 0))
      bad++;
  }
  __atomic_store_n(&fork_stop, 1, __ATOMIC_RELAXED);
  pthread_join(t, NULL);
  if (hung || bad)
    fprintf(stderr, "fork with %s pool, %zu B blocks: %d hung, %d bad\n",
            flags & PTRS_POOL_SHARED ? "a shared" : "a", size, hung, bad);
  CHECK(hung == 0);
  CHECK(bad == 0);
  api.destroy(fork_pool);
}

/* fork while another thread frees the huge blocks the main thread
 * allocates from its pool (a free of a huge pool block takes the pool's
 * huge-block list lock): the child reads the pool's statistics and
 * allocates a huge block from it. A tester's children hung in 2 of 4 runs
 * of 500 forks, behind the list lock inherited held. */
enum { HF_RING = 64 };
static struct {
  void *ring[HF_RING];
  _Atomic unsigned head, tail; /* head: next to free; tail: next to fill */
  _Atomic int stop;
} hf;

static void *huge_freer(void *arg) {
  (void)arg;
  for (;;) {
    unsigned h = atomic_load(&hf.head);
    if (h == atomic_load(&hf.tail)) {
      if (atomic_load(&hf.stop))
        return NULL;
      sched_yield();
      continue;
    }
    free(hf.ring[h % HF_RING]);
    atomic_store(&hf.head, h + 1);
  }
}

static void test_fork_huge_freer(void) {
  ptrs_pool *p = make(0, 0, NULL);
  atomic_store(&hf.head, 0);
  atomic_store(&hf.tail, 0);
  atomic_store(&hf.stop, 0);
  pthread_t t;
  pthread_create(&t, NULL, huge_freer, NULL);
  int hung = 0, bad = 0;
  for (int f = 0; f < 1000 && !hung; f++) {
    for (int k = 0; k < 20; k++) {
      void *b = api.malloc(p, (size_t)3 << 20);
      if (b == NULL) {
        bad++;
        break;
      }
      while (atomic_load(&hf.tail) - atomic_load(&hf.head) >= HF_RING)
        sched_yield();
      unsigned tl = atomic_load(&hf.tail);
      hf.ring[tl % HF_RING] = b;
      atomic_store(&hf.tail, tl + 1);
    }
    pid_t pid = fork();
    if (pid == 0) {
      ptrs_pool_stats st;
      if (api.stats_get(p, &st) != 0)
        _exit(2);
      void *b = api.malloc(p, (size_t)3 << 20);
      _exit(b != NULL ? 0 : 1);
    }
    int status = 0, waited = 0;
    while (waitpid(pid, &status, WNOHANG) == 0) {
      if (++waited > 5000) { /* 5 s */
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        hung = 1;
        break;
      }
      usleep(1000);
    }
    if (!hung && !(WIFEXITED(status) && WEXITSTATUS(status) == 0))
      bad++;
  }
  atomic_store(&hf.stop, 1);
  pthread_join(t, NULL);
  if (hung || bad)
    fprintf(stderr, "fork while another thread frees huge pool blocks: %d hung, %d bad\n", hung, bad);
  CHECK(hung == 0);
  CHECK(bad == 0);
  api.destroy(p);
}

/* ---- many pools; RSS back after destroying them ---- */

static void test_many(unsigned flags) {
  enum { N = 2000 };
  static ptrs_pool *pools[N];
  for (int i = 0; i < N; i++) {
    pools[i] = make(flags, 0, NULL);
    void *b = api.malloc(pools[i], 64);
    CHECK(b != NULL);
    memset(b, 1, 64);
  }
  for (int i = 0; i < N; i++)
    api.destroy(pools[i]);
}

/* A pool whose name has control bytes is shown on one line of the
 * statistics table, each control byte as '?' (a newline in a name broke
 * the table: tester). */
static int name_lines, name_seen;
static void name_line(void *ctx, const char *line) {
  (void)ctx;
  if (strstr(line, "two") != NULL || strstr(line, "tail") != NULL)
    name_lines++;
  if (strstr(line, "  one?two?three-tail ") != NULL)
    name_seen = 1;
}

static void test_name_shown(void) {
  void (*print)(void (*)(void *, const char *), void *) =
      (void (*)(void (*)(void *, const char *), void *))ptrs_symbol("ptrs_stats_print");
  if (print == NULL)
    FAIL_EXIT("no ptrs_stats_print symbol");
  ptrs_pool_options o;
  memset(&o, 0, sizeof o);
  o.name = "one\ntwo\x01three-tail";
  struct ptrs_pool *p = api.create(&o);
  if (p == NULL)
    FAIL_EXIT("ptrs_pool_create failed");
  CHECK(api.malloc(p, 100) != NULL);
  print(name_line, NULL);
  printf("name: %d line(s), shown as one?two?three-tail: %d\n", name_lines, name_seen);
  CHECK(name_lines == 1);
  CHECK(name_seen);
  api.destroy(p);
}

int main(void) {
  require_ptrs();
  RESOLVE(create);
  RESOLVE(destroy);
  RESOLVE(reset);
  RESOLVE(malloc);
  RESOLVE(calloc);
  RESOLVE(realloc);
  RESOLVE(aligned_alloc);
  RESOLVE(strdup);
  RESOLVE(cleanup_add);
  RESOLVE(of);
  RESOLVE(stats_get);
  RESOLVE(visit);
  test_errors();
  for (size_t m = 0; m < sizeof modes / sizeof modes[0]; m++) {
    test_basic(modes[m]);
    test_visit(modes[m]);
  test_visit_free(0, 200000, 100);
  test_visit_free(0, 1000000, 20);
  test_visit_free(0, 40000, 500);
  test_visit_free(PTRS_POOL_SHARED, 200000, 100);
    test_limit(modes[m]);
    if (!under_memcheck())
      test_stale_free(modes[m]);
  }
  test_oom_handler(0);
  test_oom_handler(PTRS_POOL_BUMP);
  test_oom_handler(PTRS_POOL_SHARED);
  test_errno_kept(0);
  test_errno_kept(PTRS_POOL_BUMP);
  test_visit_huge_race(0);
  test_visit_huge_race(PTRS_POOL_SHARED);
  if (!under_memcheck())
    test_visit_huge_double_free();
  test_nesting();
  test_threads();
  test_free_reuse();
  if (!under_memcheck())
    test_corrupted_link();
  for (size_t m = 0; m < sizeof modes / sizeof modes[0]; m++)
    test_peak(modes[m]);
  test_owner_handoff();
  if (!under_memcheck()) {
    test_fork_owner(0, 32);
    test_fork_owner(0, 100000);
    test_fork_owner(PTRS_POOL_SHARED, 64);
    test_fork_owner(PTRS_POOL_SHARED, 100000);
    test_fork_owner(0, (size_t)3 << 20);
    test_fork_owner(PTRS_POOL_SHARED, (size_t)3 << 20);
    test_fork_huge_freer();
  }
  test_many(0);
  test_many(PTRS_POOL_BUMP);
  test_name_shown();
  return mt_result();
}
