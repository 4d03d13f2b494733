/* Statistics read while threads free each other's blocks (issue 8's
 * "exact statistics ... at every moment, whichever thread freed them").
 *
 * Four threads run a larson-style exchange: each allocates a block of 16 B
 * to 2 KiB, stamps it, swaps it into a random slot of a shared table and
 * frees the block it gets back after checking its stamp, so three frees in
 * four are remote. Every thread keeps the usable bytes it holds in an
 * atomic total (added after malloc, taken off before free), so at any
 * moment the program knows the bytes in use within the blocks in flight
 * (one per thread). Meanwhile main reads mallinfo2().uordblks and
 * ptrs_stats.allocated 40 times: at most 2 reads may have either off by
 * more than 5 % (+ 256 KiB) from the program's own total. After the
 * threads stop, within 1 % (+ 64 KiB).
 *
 * Before the statistics held the heaps' locks while reading the pages'
 * counts, the blocks other threads freed were counted in a first pass and
 * the pages a whole walk later: 4.6 to 29 MB read against 9.6 MB in use
 * (bench/larson 4), a failure here in every run (5 of 20 reads off). */
#include "mt_helper.h"
#include "ptrs.h"
#include <stdatomic.h>

/* TIMEOUT: 120 */

#define THREADS 4
#define SLOTS 16384
#define READS 40
/* Reads allowed off by more than 5 % (a snapshot that finds a heap's lock
 * busy through its bounded wait counts that heap's pending blocks in use:
 * 1 read of 20 on a machine loaded with two extra busy loops, a
 * reviewer). Before the fix, 5 of 20 reads were off. */
#define READS_OFF_ALLOWED 2

static _Atomic(char *) slots[SLOTS];
static atomic_long live_bytes; /* usable bytes of the blocks in the table */
static atomic_int stop;
static __typeof__(ptrs_stats_get) *stats_get;

static size_t pick_size(uint64_t *r) {
  uint64_t x = splitmix64(r);
  if ((x & 63) == 0)
    return 513 + (size_t)((x >> 6) % 1536);
  return 16 + (size_t)((x >> 6) % 497);
}

static char *make_block(uint64_t *r) {
  size_t n = pick_size(r);
  char *p = malloc(n);
  if (p == NULL)
    FAIL_EXIT("malloc(%zu) failed", n);
  size_t u = malloc_usable_size(p);
  /* Size in the first two bytes (the stamp checks the rest). */
  p[0] = (char)(n & 0xff);
  p[1] = (char)(n >> 8);
  stamp_block(p + 2, n - 2, (uint64_t)n);
  atomic_fetch_add_explicit(&live_bytes, (long)u, memory_order_relaxed);
  return p;
}

static void drop_block(char *p) {
  size_t n = (size_t)(unsigned char)p[0] | (size_t)(unsigned char)p[1] << 8;
  if (n < 16 || n > 2048 || !verify_block(p + 2, n - 2, (uint64_t)n))
    FAIL_EXIT("block %p: size or contents corrupted", (void *)p);
  atomic_fetch_sub_explicit(&live_bytes, (long)malloc_usable_size(p), memory_order_relaxed);
  free(p);
}

static void *worker(void *arg) {
  uint64_t r = 1000 + (uint64_t)(uintptr_t)arg;
  while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
    for (int i = 0; i < 256; i++) {
      char *p = make_block(&r);
      size_t k = (size_t)(splitmix64(&r) % SLOTS);
      char *old = atomic_exchange_explicit(&slots[k], p, memory_order_acq_rel);
      if (old != NULL)
        drop_block(old);
    }
  }
  return NULL;
}

/* Two more threads take statistics in a loop meanwhile: snapshots run
 * one at a time (two at once released each other's heap locks: a
 * reviewer). */
static void *stats_loop(void *arg) {
  (void)arg;
  size_t sink = 0;
  while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
    sink += mallinfo2().uordblks;
    mt_sleep_us(2000);
  }
  return (void *)sink;
}

static size_t allocated_now(void) {
  struct ptrs_stats s;
  memset(&s, 0, sizeof s);
  if (stats_get(&s) != 0)
    FAIL_EXIT("ptrs_stats_get failed");
  return s.allocated;
}

static int close_to(size_t reported, size_t base, long truth, long pct, long slack) {
  long got = (long)reported - (long)base;
  long diff = got > truth ? got - truth : truth - got;
  return diff <= truth * pct / 100 + slack;
}

int main(void) {
  require_ptrs();
  mt_start_watchdog(120);
  stats_get = (__typeof__(ptrs_stats_get) *)ptrs_symbol("ptrs_stats_get");
  if (stats_get == NULL)
    FAIL_EXIT("ptrs_stats_get not found");
  /* What is in use before the exchange (stdio, the test's own). */
  struct mallinfo2 m0 = mallinfo2();
  size_t a0 = allocated_now();
  uint64_t r = 7;
  for (int k = 0; k < SLOTS; k++)
    atomic_store(&slots[k], make_block(&r));
  pthread_t tid[THREADS], readers[2];
  for (long t = 0; t < THREADS; t++)
    tid[t] = mt_thread_create(worker, (void *)(intptr_t)t);
  for (int t = 0; t < 2; t++)
    readers[t] = mt_thread_create(stats_loop, NULL);
  int bad = 0;
  for (int i = 0; i < READS; i++) {
    mt_sleep_us(25000);
    long before = atomic_load(&live_bytes);
    size_t u = mallinfo2().uordblks;
    size_t a = allocated_now();
    long after = atomic_load(&live_bytes);
    long truth = (before + after) / 2;
    int ok_u = close_to(u, m0.uordblks, truth, 5, 256 * 1024);
    int ok_a = close_to(a, a0, truth, 5, 256 * 1024);
    printf("busy read %2d: in use %ld, uordblks %zu, allocated %zu%s\n", i, truth,
           u - m0.uordblks, a - a0, ok_u && ok_a ? "" : "  <- off by more than 5 %");
    bad += !ok_u || !ok_a;
  }
  atomic_store(&stop, 1);
  for (int t = 0; t < THREADS; t++)
    mt_thread_join(tid[t]);
  for (int t = 0; t < 2; t++)
    mt_thread_join(readers[t]);
  long truth = atomic_load(&live_bytes);
  size_t u = mallinfo2().uordblks;
  size_t a = allocated_now();
  printf("quiet: in use %ld, uordblks %zu, allocated %zu\n", truth, u - m0.uordblks, a - a0);
  printf("reads off by more than 5 %%: %d of %d (at most %d allowed)\n", bad, READS, READS_OFF_ALLOWED);
  CHECK(bad <= READS_OFF_ALLOWED);
  CHECK(close_to(u, m0.uordblks, truth, 1, 64 * 1024));
  CHECK(close_to(a, a0, truth, 1, 64 * 1024));
  for (int k = 0; k < SLOTS; k++)
    drop_block(atomic_load(&slots[k]));
  CHECK(atomic_load(&live_bytes) == 0);
  return test_result();
}
