/* Frees of blocks whose owner thread is gone: owner threads allocate blocks
 * and exit; other threads (and the main thread) then verify and free the
 * blocks; then new threads allocate again and must get usable memory. A
 * second phase races the owner's exit against remote frees: the owner
 * publishes its blocks and exits while freer threads are already freeing
 * them. Repeated for several cycles; RSS must stay bounded, i.e. memory
 * freed after its owner died is reused.
 *
 * Usage: tst-mt-exit-free [cycles] */
#include "mt_helper.h"

/* TIMEOUT: 120 */

#define OWNERS 6
#define PER_OWNER 1500
#define FREERS 3
#define NBLOCKS (OWNERS * PER_OWNER)
#define MAX_GROWTH_KIB (48L * 1024)

struct block {
  void *p;
  size_t size;
  uint64_t seed;
};

static struct block blocks[NBLOCKS];
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
  if (cycles < 4)
    cycles = 4;
  mt_start_watchdog(110);
  long rss_early = -1;
  for (long c = 0; c < cycles; c++) {
    cycle((int)(c & 1));
    if (c == 3)
      rss_early = mt_rss_kib();
  }
  long rss_late = mt_rss_kib();
  printf("RSS after 4 cycles: %ld KiB, after %ld: %ld KiB\n", rss_early, cycles,
         rss_late);
  CHECK(rss_early > 0 && rss_late > 0);
  CHECK(rss_late - rss_early < MAX_GROWTH_KIB);
  return mt_result();
}
