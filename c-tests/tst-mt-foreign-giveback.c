/* The foreign-block cache gives back what its thread does not reuse
 * (src/foreign.rs, tick): a kept block keeps its page, and so its
 * segment, in use in the owner's heap.
 *
 * A producer thread allocates 60 000 blocks of 16 B to 2 KiB (the classes
 * the cache keeps), writes them, and then waits (alive: its heap stays
 * owned). 8 consumer threads, on the same single CPU (so that the threads
 * outnumber the CPUs and the cache is on), verify and free them in random
 * order, then keep running: every millisecond each allocates and frees a
 * 100 000-byte block and a 3000-byte one (slow paths, never the classes
 * they keep). Within 1 s, ptrs_stats_get's `active` (bytes of pages
 * holding a block in use; kept blocks are free) must fall under 4 MiB.
 * When the consumers kept their blocks for as long as they ran, their
 * pages stayed in use: 96 MB active and 427 MB resident for 9 KB in use,
 * in a tester's larger version (/tmp/tester-b/t_pin.c; 55 MB resident
 * without the cache), until malloc_trim. */
#include "mt_helper.h"
#include "ptrs.h"
#include <sched.h>
#include <stdatomic.h>

#define BLOCKS 60000
#define CONSUMERS 8

static char *blocks[BLOCKS];
static size_t sizes[BLOCKS];
static _Atomic int stop;
static _Atomic long next_index;
static _Atomic int bad;
static pthread_barrier_t produced, go, freed;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;

static void *producer(void *arg) {
  (void)arg;
  uint64_t rng = 42;
  for (long i = 0; i < BLOCKS; i++) {
    sizes[i] = 16 + (size_t)(splitmix64(&rng) % 2033);
    blocks[i] = malloc(sizes[i]);
    if (blocks[i] == NULL)
      FAIL_EXIT("malloc(%zu) failed", sizes[i]);
  }
  /* Shuffled, so that each consumer frees blocks from every page. */
  for (long i = BLOCKS - 1; i > 0; i--) {
    long j = (long)(splitmix64(&rng) % (uint64_t)(i + 1));
    char *b = blocks[i];
    size_t n = sizes[i];
    blocks[i] = blocks[j];
    sizes[i] = sizes[j];
    blocks[j] = b;
    sizes[j] = n;
  }
  for (long i = 0; i < BLOCKS; i++)
    fill_pattern(blocks[i], sizes[i], (uint32_t)i);
  pthread_barrier_wait(&produced);
  pthread_mutex_lock(&mu);
  while (!atomic_load(&stop))
    pthread_cond_wait(&cv, &mu);
  pthread_mutex_unlock(&mu);
  return NULL;
}

static void *consumer(void *arg) {
  (void)arg;
  free(malloc(64)); /* a heap of its own */
  pthread_barrier_wait(&produced);
  pthread_barrier_wait(&go);
  for (;;) {
    long i = atomic_fetch_add(&next_index, 1);
    if (i >= BLOCKS)
      break;
    if (check_pattern(blocks[i], sizes[i], (uint32_t)i) != PATTERN_OK)
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
  __typeof__(ptrs_stats_get) *stats_get = ptrs_symbol("ptrs_stats_get");
  if (stats_get == NULL) {
    printf("ptrs_stats_get not found: not running on ptrs\n");
    return EXIT_UNSUPPORTED;
  }
  cpu_set_t one;
  CPU_ZERO(&one);
  CPU_SET(sched_getcpu() >= 0 ? sched_getcpu() : 0, &one);
  if (sched_setaffinity(0, sizeof one, &one) != 0)
    FAIL_EXIT("sched_setaffinity: %s", strerror(errno));
  if (pthread_barrier_init(&produced, NULL, CONSUMERS + 2) != 0 ||
      pthread_barrier_init(&go, NULL, CONSUMERS + 1) != 0 ||
      pthread_barrier_init(&freed, NULL, CONSUMERS + 1) != 0)
    FAIL_EXIT("pthread_barrier_init failed");
  pthread_t p = mt_thread_create(producer, NULL);
  pthread_t t[CONSUMERS];
  for (int i = 0; i < CONSUMERS; i++)
    t[i] = mt_thread_create(consumer, NULL);
  pthread_barrier_wait(&produced);
  /* Measured before the consumers may free anything (`go`): they share
   * main's CPU, and a measurement after `produced` alone raced with their
   * first frees (CI once saw 26 MB of the 61 MB still active). */
  ptrs_stats built = {0};
  CHECK(stats_get(&built) == 0);
  pthread_barrier_wait(&go);
  pthread_barrier_wait(&freed);
  ptrs_stats s = {0};
  for (int k = 0; k < 100; k++) {
    mt_sleep_us(10000);
    CHECK(stats_get(&s) == 0);
    if (s.active < (4u << 20))
      break;
  }
  printf("active with the blocks %zu KiB; after their frees %zu KiB active, %zu KiB allocated\n",
         built.active >> 10, s.active >> 10, s.allocated >> 10);
  atomic_store(&stop, 1);
  pthread_mutex_lock(&mu);
  pthread_cond_broadcast(&cv);
  pthread_mutex_unlock(&mu);
  for (int i = 0; i < CONSUMERS; i++)
    pthread_join(t[i], NULL);
  pthread_join(p, NULL);
  CHECK(!atomic_load(&bad));
  CHECK(built.active > (32u << 20));
  CHECK(s.active < (4u << 20));
  return test_result();
}
