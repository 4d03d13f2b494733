/* Frees of blocks whose owner thread is gone: owner threads allocate blocks
 * and exit; other threads (and the main thread) then verify and free the
 * blocks; then new threads allocate again and must get usable memory. A
 * second phase races the owner's exit against remote frees: the owner
 * publishes its blocks and exits while freer threads are already freeing
 * them. Repeated for several cycles; RSS must stay bounded, i.e. memory
 * freed after its owner died is reused: every block is freed in each
 * cycle, so RSS after the last cycle may exceed RSS after cycle 4 by less
 * than one cycle's live set (the bytes the owners allocate per cycle) and,
 * after malloc_trim(0) (which also collects the exited threads' heaps), by at most
 * 2.5 % of the bytes the owners allocate per cycle, per cycle: half of
 * what a leak of 5 % of the blocks would add (TEST_LEAK_PERCENT=5 leaks
 * them, to see the check fail).
 *
 * Usage: tst-mt-exit-free [cycles] */
#include "mt_helper.h"

/* TIMEOUT: 120 */

#define OWNERS 6
#define PER_OWNER 1500
#define FREERS 3
#define NBLOCKS (OWNERS * PER_OWNER)
#include <malloc.h>

struct block {
  void *p;
  size_t size;
  uint64_t seed;
};

static struct block blocks[NBLOCKS];
static size_t owner_bytes; /* bytes the owners allocated, all cycles */
static int leak_percent;   /* TEST_LEAK_PERCENT: blocks freers skip */
/* Phase 2: published block count per owner (release/acquire). */
static int published[OWNERS];

static size_t ef_size(uint64_t *rng) {
  uint64_t r = splitmix64(rng);
  if (r % 500 == 0)
    return 128 * 1024 + (size_t)((r >> 12) % (512 * 1024));
  if (r % 10 == 0)
    return 1 + (size_t)((r >> 12) % 16384);
  return 1 + (size_t)((r >> 12) % 600);
}

static void alloc_block(struct block *b, uint64_t *rng) {
  b->size = ef_size(rng);
  b->seed = splitmix64(rng);
  b->p = (b->seed & 1) ? calloc(1, b->size) : malloc(b->size);
  if (b->p == NULL)
    FAIL_EXIT("allocation of %zu bytes failed", b->size);
  MT_CHECK(((uintptr_t)b->p & 15) == 0);
  mt_stamp(b->p, b->size, b->seed);
}

static void free_block(struct block *b) {
  if (!mt_verify(b->p, b->size, b->seed)) {
    fprintf(stderr, "block %p size %zu: stamp mismatch\n", b->p, b->size);
    __atomic_add_fetch(&mt_failures, 1, __ATOMIC_RELAXED);
  }
  free(b->p);
  b->p = NULL;
}

/* Owner: allocate PER_OWNER blocks, publishing each, then exit. */
static void *owner(void *arg) {
  uintptr_t o = (uintptr_t)arg;
  uint64_t rng = 0xfeedULL * (o + 1);
  for (int i = 0; i < PER_OWNER; i++) {
    alloc_block(&blocks[o * PER_OWNER + i], &rng);
    __atomic_add_fetch(&owner_bytes, blocks[o * PER_OWNER + i].size,
                       __ATOMIC_RELAXED);
    __atomic_store_n(&published[o], i + 1, __ATOMIC_RELEASE);
  }
  return NULL;
}

/* Freer f frees every block i with i % FREERS == f, waiting for it to be
 * published if its owner is still running. */
static void *freer(void *arg) {
  uintptr_t f = (uintptr_t)arg;
  for (int i = (int)f; i < NBLOCKS; i += FREERS) {
    int o = i / PER_OWNER;
    while (__atomic_load_n(&published[o], __ATOMIC_ACQUIRE) <= i % PER_OWNER)
      sched_yield();
    if (blocks[i].p != NULL && leak_percent && i % 100 < leak_percent)
      blocks[i].p = NULL; /* the deliberate leak */
    if (blocks[i].p != NULL) /* NULL: the main thread freed it already */
      free_block(&blocks[i]);
  }
  return NULL;
}

/* New threads after the frees: allocate, verify, free, and keep a few. */
static void *reuser(void *arg) {
  uint64_t rng = 0xbeefULL + (uintptr_t)arg;
  struct block mine[64];
  for (int round = 0; round < 20; round++) {
    for (int i = 0; i < 64; i++)
      alloc_block(&mine[i], &rng);
    for (int i = 0; i < 64; i++)
      free_block(&mine[i]);
  }
  return NULL;
}

static void cycle(int racing) {
  pthread_t ot[OWNERS], ft[FREERS];
  memset(published, 0, sizeof published);
  for (int o = 0; o < OWNERS; o++)
    ot[o] = mt_thread_create(owner, (void *)(uintptr_t)o);
  if (!racing) {
    /* Owners are gone (joined) before anyone frees. */
    for (int o = 0; o < OWNERS; o++)
      mt_thread_join(ot[o]);
    /* The main thread frees one block in seven itself. */
    for (int i = 0; i < NBLOCKS; i += 7)
      free_block(&blocks[i]);
    for (int i = 0; i < NBLOCKS; i++)
      if (i % 7 != 0 && blocks[i].p == NULL)
        FAIL_EXIT("block %d missing", i);
  }
  for (int f = 0; f < FREERS; f++)
    ft[f] = mt_thread_create(freer, (void *)(uintptr_t)f);
  if (racing)
    for (int o = 0; o < OWNERS; o++)
      mt_thread_join(ot[o]);
  for (int f = 0; f < FREERS; f++)
    mt_thread_join(ft[f]);
  for (int i = 0; i < NBLOCKS; i++)
    if (blocks[i].p != NULL)
      FAIL_EXIT("block %d was not freed", i);

  pthread_t rt[OWNERS];
  for (int r = 0; r < OWNERS; r++)
    rt[r] = mt_thread_create(reuser, (void *)(uintptr_t)r);
  for (int r = 0; r < OWNERS; r++)
    mt_thread_join(rt[r]);
}

int main(int argc, char **argv) {
  require_ptrs();
  long cycles = mt_arg(argc, argv, 1, 16);
  if (cycles < 5)
    cycles = 5;
  const char *leak = getenv("TEST_LEAK_PERCENT");
  leak_percent = leak ? atoi(leak) : 0;
  mt_start_watchdog(110);
  long rss_early = -1, raw_early = -1;
  for (long c = 0; c < cycles; c++) {
    cycle((int)(c & 1));
    if (c == 3) {
      raw_early = mt_rss_kib();
      malloc_trim(0);
      rss_early = mt_rss_kib();
    }
  }
  long raw_late = mt_rss_kib();
  malloc_trim(0);
  long rss_late = mt_rss_kib();
  long per_cycle_kib = (long)(owner_bytes / (size_t)cycles / 1024);
  long max_growth_kib = per_cycle_kib * (cycles - 4) / 40;
  printf("RSS after 4 cycles: %ld KiB, after %ld: %ld KiB (growth %ld KiB, "
         "bound %ld KiB; owners allocate %ld KiB per cycle)\n",
         rss_early, cycles, rss_late, rss_late - rss_early, max_growth_kib,
         per_cycle_kib);
  printf("before malloc_trim: %ld KiB, then %ld KiB (growth %ld KiB, bound "
         "%ld KiB)\n", raw_early, raw_late, raw_late - raw_early, per_cycle_kib);
  CHECK(rss_early > 0 && rss_late > 0);
  CHECK(raw_late - raw_early < per_cycle_kib);
  CHECK(rss_late - rss_early < max_growth_kib);
  return mt_result();
}
