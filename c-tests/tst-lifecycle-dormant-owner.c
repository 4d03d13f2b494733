/* Memory lifecycle: what other threads free into the pages of a thread
 * that sleeps is given back within a few purge delays, while the other
 * threads keep running (src/heap.rs, collect_dormant_heaps; src/retain.rs,
 * tick).
 *
 * The main thread allocates 60 000 blocks of 16 B to 2 KiB (written) and
 * then only sleeps; two threads verify and free every block, then keep
 * running: every millisecond each allocates and frees a 100 000-byte
 * block and a 3000-byte one (slow paths, in memory they have already).
 * Within 1 s RSS must come back within 16 MiB of the start. The fully
 * freed pages of a sleeping owner were taken back only when some thread
 * mapped a new segment, and their free slices then waited for the
 * owner's own purge tick: 40 of the 64 MiB stayed resident for as long
 * as the owner slept. */
#include "mt_helper.h"
#include <stdatomic.h>

#define BLOCKS 60000
#define FREERS 2

static char *blocks[BLOCKS];
static _Atomic long next_index;
static _Atomic int stop, bad;
static pthread_barrier_t freed;

static size_t block_size(long i) {
  return 16 + (size_t)(i * 7919) % 2033;
}

static void *freer(void *arg) {
  (void)arg;
  free(malloc(64)); /* a heap of its own */
  for (;;) {
    long i = atomic_fetch_add(&next_index, 1);
    if (i >= BLOCKS)
      break;
    if (check_pattern(blocks[i], block_size(i), (uint32_t)i) != PATTERN_OK)
      atomic_store(&bad, 1);
    free(blocks[i]);
  }
  pthread_barrier_wait(&freed);
  while (!atomic_load(&stop)) {
    if (!mt_slow_path_round())
      atomic_store(&bad, 1);
    mt_sleep_us(1000);
  }
  return NULL;
}

int main(void) {
#ifndef NO_PTRS
  require_ptrs();
#endif
  long start = mt_rss_kib();
  for (long i = 0; i < BLOCKS; i++) {
    blocks[i] = malloc(block_size(i));
    if (blocks[i] == NULL)
      FAIL_EXIT("malloc(%zu) failed", block_size(i));
    fill_pattern(blocks[i], block_size(i), (uint32_t)i);
  }
  long built = mt_rss_kib();
  if (pthread_barrier_init(&freed, NULL, FREERS + 1) != 0)
    FAIL_EXIT("pthread_barrier_init failed");
  pthread_t t[FREERS];
  for (int i = 0; i < FREERS; i++)
    t[i] = mt_thread_create(freer, NULL);
  pthread_barrier_wait(&freed);
  /* From here on this thread makes no allocator call until the end. */
  long low = built;
  for (int k = 0; k < 100 && low > start + 16 * 1024; k++) {
    mt_sleep_us(10000);
    long r = mt_rss_kib();
    if (r >= 0 && r < low)
      low = r;
  }
  atomic_store(&stop, 1);
  for (int i = 0; i < FREERS; i++)
    pthread_join(t[i], NULL);
  printf("RSS at start %ld KiB, with the blocks %ld KiB, lowest within 1 s of their frees %ld KiB\n", start, built,
         low);
  CHECK(!atomic_load(&bad));
  CHECK(built > start + 32 * 1024);
  CHECK(low <= start + 16 * 1024);
  return test_result();
}
