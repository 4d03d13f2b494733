/* The foreign-block cache (src/foreign.rs): when the threads with heaps
 * outnumber the CPUs four to one, a thread keeps the small blocks it
 * frees into other threads' pages and reuses them for its own next
 * allocations of their class.
 *
 * The process is pinned to one CPU, so that 12 threads are
 * oversubscribed on any machine. Each thread allocates blocks of 16 B
 * to 2 KiB (the classes the cache keeps), stamps them, swaps them into a
 * shared table at random and verifies and frees what it took out (mostly
 * other threads' blocks): every block's contents are checked, so a
 * block handed out twice, or one written by the cache while in use,
 * fails the test. Halfway, with every thread stopped at a barrier
 * (holding kept blocks), mallinfo2 and ptrs_stats_get must count exactly
 * the blocks in the table as in use (kept blocks are free); after the
 * threads exit (their kept blocks go back to their owners) and the
 * table is emptied, nothing may be left in use.
 *
 * Then, in forked children (same oversubscription: 7 threads with heaps
 * on one CPU), a kept block freed again must be reported:
 * - by the thread that keeps it: "free(): double free detected";
 * - by its owner, which then allocates it again while it is kept: the
 *   keeping thread's next allocation of that class reports
 *   "malloc(): double free or write after free detected" (the mark
 *   cleared by the owner's allocation) rather than handing it out a
 *   second time. */
#include "mt_helper.h"
#include "ptrs.h"
#include <sched.h>

#define THREADS 12
#define STEPS 40000
#define TABLE 4096

struct slot {
  char *p;
  size_t n;
  uint64_t seed;
};

static struct slot table[TABLE];
static pthread_mutex_t table_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_barrier_t halfway;
static int bad;

static void *worker(void *arg) {
  uint64_t rng = (uint64_t)(uintptr_t)arg * 0x9e3779b97f4a7c15u + 1;
  for (long i = 0; i < STEPS; i++) {
    if (i == STEPS / 2) {
      pthread_barrier_wait(&halfway); /* main reads the statistics */
      pthread_barrier_wait(&halfway);
    }
    uint64_t x = splitmix64(&rng);
    size_t n = 16 + (size_t)(x % 2033);
    char *p = malloc(n);
    if (p == NULL)
      FAIL_EXIT("malloc(%zu) failed", n);
    uint64_t seed = x >> 11;
    stamp_block(p, n, seed);
    size_t k = (size_t)(splitmix64(&rng) % TABLE);
    pthread_mutex_lock(&table_mu);
    struct slot old = table[k];
    table[k] = (struct slot){p, n, seed};
    pthread_mutex_unlock(&table_mu);
    if (old.p != NULL) {
      if (!verify_block(old.p, old.n, old.seed))
        __atomic_store_n(&bad, 1, __ATOMIC_RELAXED);
      free(old.p);
    }
  }
  return NULL;
}

static long long in_use_mallinfo(void) {
  struct mallinfo2 m = mallinfo2();
  return (long long)(m.uordblks + m.hblkhd);
}

static long long in_use_stats(__typeof__(ptrs_stats_get) *stats_get) {
  ptrs_stats s = {0};
  if (stats_get == NULL || stats_get(&s) != 0)
    return 0;
  return (long long)s.allocated;
}

static long long table_bytes(void) {
  long long sum = 0;
  for (int k = 0; k < TABLE; k++)
    if (table[k].p != NULL)
      sum += (long long)malloc_usable_size(table[k].p);
  return sum;
}

/* Children: 6 threads with heaps that wait, so that 7 heaps are owned
 * on one CPU. */
static pthread_mutex_t child_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t child_cv = PTHREAD_COND_INITIALIZER;

static void *sleeper(void *arg) {
  (void)arg;
  free(malloc(4000));
  pthread_mutex_lock(&child_mu);
  for (;;)
    pthread_cond_wait(&child_cv, &child_mu);
  return NULL;
}

static void start_sleepers(void) {
  for (int i = 0; i < 6; i++)
    mt_thread_create(sleeper, NULL);
  mt_sleep_us(50000);
}

/* A thread that first allocates (its own heap, of a class other than the
 * victim's), then frees the victim `times` times. */
struct freer_arg {
  char *victim;
  int times;
};

static void *freer(void *arg) {
  struct freer_arg *a = arg;
  free(malloc(64));
  for (int i = 0; i < a->times; i++)
    free(test_ptr(a->victim));
  return NULL;
}

static void kept_then_freed_again(void *victim) {
  start_sleepers();
  struct freer_arg a = {victim, 2};
  pthread_t t = mt_thread_create(freer, &a);
  pthread_join(t, NULL);
}

static char *victim2;
static int stage;
static pthread_mutex_t stage_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t stage_cv = PTHREAD_COND_INITIALIZER;

static void wait_stage(int s) {
  pthread_mutex_lock(&stage_mu);
  while (stage < s)
    pthread_cond_wait(&stage_cv, &stage_mu);
  pthread_mutex_unlock(&stage_mu);
}

static void set_stage(int s) {
  pthread_mutex_lock(&stage_mu);
  stage = s;
  pthread_cond_broadcast(&stage_cv);
  pthread_mutex_unlock(&stage_mu);
}

static void *keeper(void *arg) {
  (void)arg;
  free(malloc(64));
  free(victim2); /* kept by this thread */
  set_stage(1);
  wait_stage(2);
  /* The owner freed it again and took it back: this allocation of its
   * class must not hand it out a second time. */
  char *q = malloc(700);
  if (q == victim2)
    fprintf(stderr, "the block was handed out twice\n");
  return NULL;
}

static void kept_then_owner_frees_again(void *victim) {
  start_sleepers();
  victim2 = victim;
  pthread_t t = mt_thread_create(keeper, NULL);
  wait_stage(1);
  free(test_ptr(victim2)); /* the owner's second free */
  char *again = malloc(700); /* takes it back */
  if (again != victim2)
    fprintf(stderr, "the owner did not take its block back (%p, %p)\n", (void *)again, (void *)victim2);
  set_stage(2);
  pthread_join(t, NULL);
}

int main(void) {
#ifndef NO_PTRS
  require_ptrs();
#endif
  cpu_set_t one;
  CPU_ZERO(&one);
  CPU_SET(sched_getcpu() >= 0 ? sched_getcpu() : 0, &one);
  if (sched_setaffinity(0, sizeof one, &one) != 0)
    FAIL_EXIT("sched_setaffinity: %s", strerror(errno));
  __typeof__(ptrs_stats_get) *stats_get = ptrs_symbol("ptrs_stats_get");
  if (pthread_barrier_init(&halfway, NULL, THREADS + 1) != 0)
    FAIL_EXIT("pthread_barrier_init failed");
  long long base_mi = in_use_mallinfo(), base_st = in_use_stats(stats_get);
  pthread_t t[THREADS];
  for (long i = 0; i < THREADS; i++)
    t[i] = mt_thread_create(worker, (void *)(i + 1));
  pthread_barrier_wait(&halfway);
  long long live = table_bytes();
  long long mi = in_use_mallinfo(), st = in_use_stats(stats_get);
  pthread_barrier_wait(&halfway);
  for (int i = 0; i < THREADS; i++)
    pthread_join(t[i], NULL);
  CHECK(!bad);
  /* The table's blocks are the only change since the start, within 1 %
   * and 16 KiB (the threads' own bookkeeping). */
  printf("halfway: %lld bytes in the table; mallinfo2 %lld, ptrs_stats_get %lld (change since the start)\n", live,
         mi - base_mi, st - base_st);
  /* Memcheck mode's redzones are in the statistics, not in the usable
   * sizes (and it keeps no foreign blocks: every free goes to valgrind). */
  long long slack = live / 100 + 16 * 1024;
  if (!under_memcheck()) {
    CHECK(llabs((mi - base_mi) - live) <= slack);
    if (stats_get)
      CHECK(llabs((st - base_st) - live) <= slack);
  }
  for (int k = 0; k < TABLE; k++) {
    if (table[k].p != NULL) {
      CHECK(verify_block(table[k].p, table[k].n, table[k].seed));
      free(table[k].p);
      table[k].p = NULL;
    }
  }
  long long end_mi = in_use_mallinfo();
  printf("after the threads exited and the table was emptied: %lld bytes in use since the start\n",
         end_mi - base_mi);
  CHECK(end_mi - base_mi <= 16 * 1024);

  if (!under_memcheck()) {
    /* Allocated here, by the thread that forks: the child's main thread,
     * whose heap owns them there too. */
    char *v1 = malloc(700), *v2 = malloc(700);
    if (v1 == NULL || v2 == NULL)
      FAIL_EXIT("malloc(700) failed");
    memset(v1, 1, 700);
    memset(v2, 2, 700);
    expect_abort("a kept block freed again by its keeper", kept_then_freed_again, v1, "free",
                 "double free detected", v1);
    expect_abort("a kept block freed again and taken back by its owner", kept_then_owner_frees_again, v2,
                 "malloc", "double free or write after free detected", v2);
    free(v1);
    free(v2);
  }
  return test_result();
}
