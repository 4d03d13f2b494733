/* Blocks freed by other threads while their owners exit and a third
 * thread trims in a loop, under an arena cap (mallopt(M_ARENA_MAX, 3)):
 * batches of 8 short-lived threads allocate 200 to 600 blocks each (8 B
 * to 100 KB, stamped), put them in a shared ring and exit; two long-lived
 * threads take blocks out of the ring, verify and free them (remote
 * frees into heaps that are parked, adopted, shared or being trimmed);
 * a trimmer calls malloc_trim(0), ptrs_purge() and mallinfo2() in a loop.
 * A fresh tester's program of this shape crashed in 3 runs of 20 (20 s
 * each) in the remote free: after pushing the block and the page on its
 * owner's notify list, the freeing thread read the page's descriptor,
 * whose segment the owner had meanwhile emptied and unmapped
 * (heap::remote_pushed). A stress test: it guards the code, it cannot
 * show the race every run. */
#include "mt_helper.h"
#include <malloc.h>

/* TIMEOUT: 120 */

#define RING 16384
#define BATCH 8

static void *volatile ring[RING];
static long wpos;
static int stop;
static int (*purge_all)(void);

struct hdr {
  size_t size;
  uint64_t seed;
};

static void check_free(void *p) {
  if (p == NULL)
    return;
  struct hdr *h = p;
  MT_CHECK(mt_verify((char *)p + sizeof *h, h->size - sizeof *h, h->seed));
  free(p);
}

static void *maker(void *arg) {
  uint64_t rng = (uint64_t)(uintptr_t)arg * 0x9e3779b97f4a7c15ull + 1;
  int n = 200 + (int)(splitmix64(&rng) % 400);
  for (int i = 0; i < n; i++) {
    uint64_t r = splitmix64(&rng);
    size_t size = sizeof(struct hdr) + 8 + (size_t)((r >> 8) % ((r & 7) == 0 ? 100000 : 1500));
    struct hdr *h = malloc(size);
    MT_CHECK(h != NULL);
    if (h == NULL)
      return NULL;
    h->size = size;
    h->seed = r;
    mt_stamp((char *)h + sizeof *h, size - sizeof *h, r);
    long w = __atomic_fetch_add(&wpos, 1, __ATOMIC_RELAXED) % RING;
    check_free(__atomic_exchange_n(&ring[w], h, __ATOMIC_ACQ_REL));
  }
  return NULL;
}

static void *freer(void *arg) {
  uint64_t rng = (uint64_t)(uintptr_t)arg;
  while (!__atomic_load_n(&stop, __ATOMIC_RELAXED)) {
    long i = (long)(splitmix64(&rng) % RING);
    check_free(__atomic_exchange_n(&ring[i], NULL, __ATOMIC_ACQ_REL));
  }
  return NULL;
}

static void *trimmer(void *arg) {
  (void)arg;
  while (!__atomic_load_n(&stop, __ATOMIC_RELAXED)) {
    malloc_trim(0);
    mt_sleep_us(2000);
    purge_all();
    struct mallinfo2 mi = mallinfo2();
    MT_CHECK(mi.uordblks < ((size_t)1 << 40));
    mt_sleep_us(2000);
  }
  return NULL;
}

int main(int argc, char **argv) {
  require_ptrs();
  purge_all = (int (*)(void))ptrs_symbol("ptrs_purge");
  if (purge_all == NULL)
    FAIL_EXIT("ptrs_purge missing");
  CHECK(mallopt(M_ARENA_MAX, 3) == 1);
  long ms = mt_arg(argc, argv, 1, 4000);
  mt_start_watchdog(100);
  pthread_t helpers[3] = {mt_thread_create(freer, (void *)1), mt_thread_create(freer, (void *)2),
                          mt_thread_create(trimmer, NULL)};
  uint64_t end = mt_now_ms() + (uint64_t)ms;
  long made = 0;
  while (mt_now_ms() < end) {
    pthread_t t[BATCH];
    for (int i = 0; i < BATCH; i++)
      t[i] = mt_thread_create(maker, (void *)(uintptr_t)(made + i + 1));
    for (int i = 0; i < BATCH; i++)
      mt_thread_join(t[i]);
    made += BATCH;
  }
  __atomic_store_n(&stop, 1, __ATOMIC_RELAXED);
  for (int i = 0; i < 3; i++)
    mt_thread_join(helpers[i]);
  for (int i = 0; i < RING; i++)
    check_free(ring[i]);
  fprintf(stderr, "%ld threads made blocks\n", made);
  return mt_result();
}
