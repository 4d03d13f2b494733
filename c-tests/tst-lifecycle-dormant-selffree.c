/* Memory lifecycle: blocks other threads free into the pages of a
 * sleeping owner are given back even where the owner had freed some of
 * those pages' blocks itself (src/heap.rs, remote_pushed, rewalk_dormant
 * and collect_dormant_heaps).
 *
 * An owner thread allocates 160 000 blocks of 256 B (40 MB, written),
 * frees every tenth itself and blocks on a semaphore. A second thread
 * verifies and frees the rest in eight batches 20 ms apart (so that scans
 * come between them), then blocks too. The main thread makes a slow path
 * every millisecond (a 100 000-byte and a 3000-byte block, allocated and
 * freed) and must see RSS come back within 12 MiB of the start within
 * 1.5 s of the last free. A free into a page its owner had taken off the
 * full list (by freeing a block of it) asked for no notification, and the
 * scan of sleeping owners looked only at notified pages: 43 MB stayed
 * resident for as long as the owner slept (a tester; glibc: 3 MB).
 *
 * The second phase does it again with an owner that wakes every 2 ms
 * while the blocks are being freed, allocating and freeing 500 blocks of
 * its own (verified), and sleeps only once they are all freed; the main
 * thread makes its slow paths only from then on. The owner's own slow
 * paths ran the scan, which skips the calling thread's heap, and cleared
 * the request that the others' frees had made, so nothing was given back
 * once it slept (another tester: 350 MB of 480 MB stayed). */
#include "mt_helper.h"
#include <semaphore.h>
#include <stdatomic.h>

#define BLOCKS 160000
#define SIZE 256
#define BATCHES 8
#define OWN 500

static char *blocks[BLOCKS];
static sem_t built, owner_wake, freer_wake;
static _Atomic int freed_all, bad, waking;

static void *owner(void *arg) {
  (void)arg;
  for (long i = 0; i < BLOCKS; i++) {
    blocks[i] = malloc(SIZE);
    if (blocks[i] == NULL) {
      atomic_store(&bad, 1);
      break;
    }
    fill_pattern(blocks[i], SIZE, (uint32_t)i);
  }
  for (long i = 0; i < BLOCKS; i += 10) {
    free(blocks[i]);
    blocks[i] = NULL;
  }
  sem_post(&built);
  static char *own[OWN];
  while (atomic_load(&waking) && !atomic_load(&freed_all)) {
    mt_sleep_us(2000);
    for (int j = 0; j < OWN; j++) {
      own[j] = malloc(SIZE);
      if (own[j] == NULL) {
        atomic_store(&bad, 1);
        return NULL;
      }
      fill_pattern(own[j], SIZE, (uint32_t)(j + 7777));
    }
    for (int j = 0; j < OWN; j++) {
      if (check_pattern(own[j], SIZE, (uint32_t)(j + 7777)) != PATTERN_OK)
        atomic_store(&bad, 1);
      free(own[j]);
    }
  }
  sem_wait(&owner_wake); /* sleeps: no allocator call until the end */
  return NULL;
}

static void *freer(void *arg) {
  (void)arg;
  free(malloc(64)); /* a heap of its own */
  sem_wait(&built);
  for (int b = 0; b < BATCHES; b++) {
    for (long i = b; i < BLOCKS; i += BATCHES) {
      if (blocks[i] == NULL)
        continue;
      if (check_pattern(blocks[i], SIZE, (uint32_t)i) != PATTERN_OK)
        atomic_store(&bad, 1);
      free(blocks[i]);
      blocks[i] = NULL;
    }
    mt_sleep_us(20000);
  }
  atomic_store(&freed_all, 1);
  sem_wait(&freer_wake);
  return NULL;
}

static void run_phase(int wake) {
  atomic_store(&freed_all, 0);
  atomic_store(&waking, wake);
  long start = mt_rss_kib();
  pthread_t o = mt_thread_create(owner, NULL);
  pthread_t f = mt_thread_create(freer, NULL);
  long peak = start, low = -1;
  int after = -1; /* slow-path rounds since the last free */
  for (int k = 0; k < 10000 && after < 1500; k++) {
    /* With a waking owner, this thread makes no allocator call until the
     * blocks are all freed: the owner's own slow paths are the only ones
     * meanwhile, as in the tester's program. */
    if (!(wake && !atomic_load(&freed_all)) && !mt_slow_path_round())
      atomic_store(&bad, 1);
    mt_sleep_us(1000);
    long r = mt_rss_kib();
    if (r > peak)
      peak = r;
    if (after < 0 && atomic_load(&freed_all))
      after = 0;
    if (after >= 0) {
      after++;
      if (r >= 0 && (low < 0 || r < low))
        low = r;
      if (low >= 0 && low <= start + 12 * 1024)
        break;
    }
  }
  sem_post(&owner_wake);
  sem_post(&freer_wake);
  pthread_join(o, NULL);
  pthread_join(f, NULL);
  printf("%s owner: RSS at start %ld KiB, peak %ld KiB, lowest within 1.5 s of the last free %ld KiB (bound %ld)\n",
         wake ? "waking" : "sleeping", start, peak, low, start + 12 * 1024);
  CHECK(peak > start + 32 * 1024);
  CHECK(low >= 0 && low <= start + 12 * 1024);
}

int main(void) {
#ifndef NO_PTRS
  require_ptrs();
#endif
  if (sem_init(&built, 0, 0) || sem_init(&owner_wake, 0, 0) || sem_init(&freer_wake, 0, 0))
    FAIL_EXIT("sem_init failed");
  free(malloc(64));
  run_phase(0);
  run_phase(1);
  CHECK(!atomic_load(&bad));
  return test_result();
}
