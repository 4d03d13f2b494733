/* Producer/consumer: producer threads allocate blocks and pass them through
 * a bounded queue to consumer threads, which verify and free them, so every
 * free is remote (by a thread other than the allocating one). Consumers keep
 * a small window of recent blocks to vary lifetimes. The number of live
 * blocks is bounded (QCAP in the queue plus the consumers' windows), so
 * after the allocator has warmed up, the resident set must stay bounded
 * too: RSS after round 100 may exceed RSS after round 10 by at most twice
 * that live set (about 6 MB: blocks of 1.3 KB on average), where a leak of
 * 5 % of the blocks would add about 60 MB (TEST_LEAK_PERCENT=5 leaks them,
 * to see the check fail).
 *
 * Usage: tst-mt-producer-consumer [rounds [blocks-per-producer-per-round]] */
#include "mt_helper.h"

/* TIMEOUT: 120 */

#define PRODUCERS 2
#define CONSUMERS 2
#define QCAP 4096
#define WINDOW 256

struct item {
  void *p;
  size_t size;
  uint64_t seed;
};

static struct item queue[QCAP];
static size_t q_head, q_count;
static long popped; /* items popped this round */
static long round_total; /* items produced per round, all producers */
static pthread_mutex_t q_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t q_not_empty = PTHREAD_COND_INITIALIZER;
static pthread_cond_t q_not_full = PTHREAD_COND_INITIALIZER;
static pthread_barrier_t round_start, round_end;

static long rounds = 100;
static long per_producer = 5000;
static size_t produced_bytes; /* all rounds, all producers */
static int leak_percent;      /* TEST_LEAK_PERCENT: blocks not freed */

static void push(struct item it) {
  pthread_mutex_lock(&q_lock);
  while (q_count == QCAP)
    pthread_cond_wait(&q_not_full, &q_lock);
  queue[(q_head + q_count) % QCAP] = it;
  q_count++;
  pthread_cond_signal(&q_not_empty);
  pthread_mutex_unlock(&q_lock);
}

/* Pop an item; returns 0 when every item of this round has been popped. */
static int pop(struct item *it) {
  pthread_mutex_lock(&q_lock);
  while (q_count == 0 && popped < round_total)
    pthread_cond_wait(&q_not_empty, &q_lock);
  if (q_count == 0) {
    pthread_mutex_unlock(&q_lock);
    return 0;
  }
  *it = queue[q_head];
  q_head = (q_head + 1) % QCAP;
  q_count--;
  popped++;
  if (popped == round_total)
    pthread_cond_broadcast(&q_not_empty); /* wake the other consumers */
  pthread_cond_signal(&q_not_full);
  pthread_mutex_unlock(&q_lock);
  return 1;
}

static size_t pc_size(uint64_t *rng) {
  uint64_t r = splitmix64(rng);
  if (r % 100 < 95)
    return 1 + (size_t)((r >> 8) % 1024);
  return 1 + (size_t)((r >> 8) % (32 * 1024));
}

static void *producer(void *arg) {
  uint64_t rng = 0xabcdefULL + (uintptr_t)arg;
  for (long round = 0; round < rounds; round++) {
    pthread_barrier_wait(&round_start);
    for (long i = 0; i < per_producer; i++) {
      struct item it;
      it.size = pc_size(&rng);
      it.seed = splitmix64(&rng);
      it.p = malloc(it.size);
      __atomic_add_fetch(&produced_bytes, it.size, __ATOMIC_RELAXED);
      if (it.p == NULL)
        FAIL_EXIT("malloc(%zu) failed", it.size);
      MT_CHECK(((uintptr_t)it.p & 15) == 0);
      mt_stamp(it.p, it.size, it.seed);
      push(it);
    }
    pthread_barrier_wait(&round_end);
  }
  return NULL;
}

static void retire(struct item *it) {
  if (!mt_verify(it->p, it->size, it->seed)) {
    fprintf(stderr, "block %p size %zu: stamp mismatch\n", it->p, it->size);
    __atomic_add_fetch(&mt_failures, 1, __ATOMIC_RELAXED);
  }
  if (leak_percent == 0 || it->seed % 100 >= (uint64_t)leak_percent)
    free(it->p);
  it->p = NULL;
}

static void *consumer(void *arg) {
  (void)arg;
  struct item window[WINDOW];
  memset(window, 0, sizeof window);
  size_t next = 0;
  for (long round = 0; round < rounds; round++) {
    pthread_barrier_wait(&round_start);
    struct item it;
    while (pop(&it)) {
      if (window[next].p)
        retire(&window[next]);
      window[next] = it;
      next = (next + 1) % WINDOW;
    }
    pthread_barrier_wait(&round_end);
  }
  for (size_t i = 0; i < WINDOW; i++)
    if (window[i].p)
      retire(&window[i]);
  return NULL;
}

int main(int argc, char **argv) {
  require_ptrs();
  rounds = mt_arg(argc, argv, 1, rounds);
  per_producer = mt_arg(argc, argv, 2, per_producer);
  if (rounds < 11)
    rounds = 11;
  const char *leak = getenv("TEST_LEAK_PERCENT");
  leak_percent = leak ? atoi(leak) : 0;
  mt_start_watchdog(100);
  round_total = PRODUCERS * per_producer;
  pthread_barrier_init(&round_start, NULL, PRODUCERS + CONSUMERS + 1);
  pthread_barrier_init(&round_end, NULL, PRODUCERS + CONSUMERS + 1);

  pthread_t t[PRODUCERS + CONSUMERS];
  for (int i = 0; i < PRODUCERS; i++)
    t[i] = mt_thread_create(producer, (void *)(uintptr_t)i);
  for (int i = 0; i < CONSUMERS; i++)
    t[PRODUCERS + i] = mt_thread_create(consumer, NULL);

  long rss_early = -1, rss_late = -1;
  for (long round = 1; round <= rounds; round++) {
    pthread_barrier_wait(&round_start);
    pthread_barrier_wait(&round_end);
    /* Everyone is parked at the next round_start: reset the count. */
    pthread_mutex_lock(&q_lock);
    CHECK(q_count == 0);
    CHECK(popped == round_total);
    popped = 0;
    pthread_mutex_unlock(&q_lock);
    if (round == 10)
      rss_early = mt_rss_kib();
    if (round == rounds)
      rss_late = mt_rss_kib();
  }
  for (int i = 0; i < PRODUCERS + CONSUMERS; i++)
    mt_thread_join(t[i]);

  printf("RSS after round 10: %ld KiB, after round %ld: %ld KiB\n", rss_early,
         rounds, rss_late);
  size_t mean = produced_bytes / ((size_t)rounds * (size_t)round_total);
  long live_kib = (long)(mean * (QCAP + CONSUMERS * WINDOW) / 1024);
  printf("growth %ld KiB, bound %ld KiB (twice the live set: %ld blocks of "
         "%zu bytes on average)\n", rss_late - rss_early, 2 * live_kib,
         (long)(QCAP + CONSUMERS * WINDOW), mean);
  CHECK(rss_early > 0 && rss_late > 0);
  CHECK(rss_late - rss_early < 2 * live_kib);
  return mt_result();
}
