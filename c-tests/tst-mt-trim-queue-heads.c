/* Taking other threads' empty queue heads while they allocate
 * (src/heap.rs, take_empty_queue_heads and the handshake at alloc_bin):
 * a trimmer thread calls malloc_trim(0) in a loop, which gives back the
 * first page of every class above 1 KiB of every other thread whose
 * blocks are all free, while 4 workers allocate blocks of those classes
 * in the patterns that leave that page empty between two allocations:
 * one block at a time (malloc, write, check, free), a few at a time,
 * and aligned ones (posix_memalign, which allocates from the same
 * classes). A fifth thread frees blocks the workers hand it (remote
 * frees into the same pages). Every block's contents are verified before
 * it is freed, so a page taken from under a block being handed out, or
 * handed out twice, is seen (and a page given back twice, or a count in
 * `used` gone wrong, aborts on a later check of ptrs's own).
 *
 * Usage: tst-mt-trim-queue-heads [milliseconds (3000)] */
#include "mt_helper.h"

/* TIMEOUT: 120 */

#define WORKERS 4
#define HANDOFF 64

static const size_t sizes[] = {1040, 1536, 2048, 3000, 4096, 6000, 8192, 12000, 16384, 24000, 32768, 49152, 65536};
#define NSIZES (sizeof sizes / sizeof sizes[0])

static void *handoff[HANDOFF];
static volatile int stop;
static long trims, blocks;

static void *make(uint64_t *rng, size_t size, int aligned) {
  size_t *b;
  if (aligned) {
    size_t align = (size_t)64 << (splitmix64(rng) % 7); /* 64 B .. 4 KiB */
    void *p = NULL;
    if (posix_memalign(&p, align, size) != 0)
      return NULL;
    MT_CHECK(((uintptr_t)p & (align - 1)) == 0);
    b = p;
  } else {
    b = malloc(size);
    if (b == NULL)
      return NULL;
  }
  b[0] = size;
  mt_stamp(b + 1, size - sizeof(size_t), size ^ (uintptr_t)b);
  __atomic_add_fetch(&blocks, 1, __ATOMIC_RELAXED);
  return b;
}

static void check_free(void *p) {
  if (p == NULL)
    return;
  size_t *b = p;
  size_t size = b[0];
  int sane = size >= 1040 && size <= 65536;
  MT_CHECK(sane);
  if (sane)
    MT_CHECK(mt_verify(b + 1, size - sizeof(size_t), size ^ (uintptr_t)b));
  free(p);
}

static void *worker(void *arg) {
  uint64_t rng = (uint64_t)(uintptr_t)arg * 7919;
  void *few[8];
  while (!__atomic_load_n(&stop, __ATOMIC_RELAXED)) {
    uint64_t r = splitmix64(&rng);
    size_t size = sizes[r % NSIZES];
    /* Now and then a pause, with the pages empty, for the trimmer to take
     * them: the next allocation then races its take. */
    if ((r >> 28) % 8 == 0)
      mt_sleep_us(50 + (long)((r >> 32) % 300));
    switch ((r >> 8) % 4) {
    case 0: /* one at a time: the class's page empties after each */
      for (int i = 0; i < 32; i++) {
        void *b = make(&rng, size, 0);
        MT_CHECK(b != NULL);
        check_free(b);
      }
      break;
    case 1: { /* a few at a time */
      int n = 1 + (int)((r >> 16) % 8);
      for (int i = 0; i < n; i++)
        MT_CHECK((few[i] = make(&rng, size, 0)) != NULL);
      for (int i = n - 1; i >= 0; i--)
        check_free(few[i]);
      break;
    }
    case 2: /* aligned, one at a time */
      for (int i = 0; i < 16; i++) {
        void *b = make(&rng, size, 1);
        MT_CHECK(b != NULL);
        check_free(b);
      }
      break;
    default: { /* one for the freeing thread */
      void *b = make(&rng, size, (r >> 20) & 1);
      MT_CHECK(b != NULL);
      size_t k = (size_t)((r >> 24) % HANDOFF);
      check_free(__atomic_exchange_n(&handoff[k], b, __ATOMIC_ACQ_REL));
      break;
    }
    }
  }
  return NULL;
}

static void *freer(void *arg) {
  (void)arg;
  uint64_t rng = 4242;
  while (!__atomic_load_n(&stop, __ATOMIC_RELAXED)) {
    size_t k = (size_t)(splitmix64(&rng) % HANDOFF);
    check_free(__atomic_exchange_n(&handoff[k], NULL, __ATOMIC_ACQ_REL));
    sched_yield();
  }
  return NULL;
}

static void *trimmer(void *arg) {
  (void)arg;
  while (!__atomic_load_n(&stop, __ATOMIC_RELAXED)) {
    int r = malloc_trim(0);
    MT_CHECK(r == 0 || r == 1);
    trims++;
  }
  return NULL;
}

int main(int argc, char **argv) {
#ifndef NO_PTRS
  require_ptrs();
#endif
  long ms = mt_arg(argc, argv, 1, 3000);
  mt_start_watchdog(90);
  pthread_t th[WORKERS], t, f;
  t = mt_thread_create(trimmer, NULL);
  f = mt_thread_create(freer, NULL);
  for (long i = 0; i < WORKERS; i++)
    th[i] = mt_thread_create(worker, (void *)(i + 1));
  mt_sleep_us(ms * 1000);
  __atomic_store_n(&stop, 1, __ATOMIC_RELAXED);
  for (int i = 0; i < WORKERS; i++)
    mt_thread_join(th[i]);
  mt_thread_join(t);
  mt_thread_join(f);
  for (int i = 0; i < HANDOFF; i++)
    check_free(handoff[i]);
  printf("trim-queue-heads: %ld ms, %ld trims, %ld blocks\n", ms, trims, blocks);
  CHECK(trims > 0);
  CHECK(blocks > 0);
  return mt_result();
}
