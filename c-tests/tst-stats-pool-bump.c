/* The process statistics (ptrs_stats_get's allocated, mallinfo2's
 * uordblks) count the blocks pools carve from their bump regions: a bump
 * pool's blocks and a default pool's first small blocks (from its arena
 * chunk).  Both added nothing before (a fresh tester: 10 000 live
 * 1000-byte bump blocks, and 10 000 pools with one 64-byte block each,
 * left allocated where it was).  Frees and destroys take them off again. */
#include "test_helper.h"
#include "ptrs.h"
#include <malloc.h>

#define NB 10000
#define NP 2000

static int (*stats_get)(struct ptrs_stats *);

static long long allocated(void) {
  struct ptrs_stats s;
  if (stats_get(&s) != 0)
    FAIL_EXIT("ptrs_stats_get failed");
  return (long long)s.allocated;
}

static void near(const char *what, long long got, long long want) {
  printf("%s: %lld (want %lld)\n", what, got, want);
  /* Slack for the test's own small allocations (stdio's buffer). */
  if (got < want - 8192 || got > want + 8192) {
    fprintf(stderr, "%s: %lld, want %lld\n", what, got, want);
    CHECK(0);
  }
}

int main(void) {
  require_ptrs();
  stats_get = (int (*)(struct ptrs_stats *))ptrs_symbol("ptrs_stats_get");
  struct ptrs_pool *(*create)(const struct ptrs_pool_options *) =
      (struct ptrs_pool *(*)(const struct ptrs_pool_options *))ptrs_symbol("ptrs_pool_create");
  void *(*pmalloc)(struct ptrs_pool *, size_t) =
      (void *(*)(struct ptrs_pool *, size_t))ptrs_symbol("ptrs_pool_malloc");
  void (*destroy)(struct ptrs_pool *) = (void (*)(struct ptrs_pool *))ptrs_symbol("ptrs_pool_destroy");
  if (!stats_get || !create || !pmalloc || !destroy)
    FAIL_EXIT("ptrs API not found");
  static void *blocks[NB];
  static struct ptrs_pool *pools[NP];
  printf("warm-up\n");
  long long base = allocated();

  /* A bump pool's blocks. */
  struct ptrs_pool_options bump = {"bump", 0, PTRS_POOL_BUMP, NULL};
  struct ptrs_pool *b = create(&bump);
  CHECK(b != NULL);
  for (int i = 0; i < NB; i++) {
    blocks[i] = pmalloc(b, 1000);
    CHECK(blocks[i] != NULL);
    memset(blocks[i], 1, 1000);
  }
  near("bump pool, 10000 x 1000 B", allocated() - base, 10000LL * 1008);
  struct mallinfo2 mi = mallinfo2();
  near("mallinfo2 uordblks", (long long)mi.uordblks - base, 10000LL * 1008);
  for (int i = 0; i < NB; i += 2)
    free(blocks[i]);
  near("bump pool, half freed", allocated() - base, 5000LL * 1008);
  destroy(b);
  near("bump pool destroyed", allocated() - base, 0);

  /* Default pools' first small blocks. */
  for (int i = 0; i < NP; i++) {
    pools[i] = create(NULL);
    CHECK(pools[i] != NULL);
    void *p = pmalloc(pools[i], 64);
    CHECK(p != NULL);
    memset(p, 2, 64);
  }
  near("2000 default pools with a 64-byte block", allocated() - base, NP * 64LL);
  for (int i = 0; i < NP; i++)
    destroy(pools[i]);
  near("default pools destroyed", allocated() - base, 0);
  return test_result();
}
