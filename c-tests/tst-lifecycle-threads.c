/* Memory lifecycle across threads (bench/lifecycle.c's burst, exited and
 * latedtor patterns; the policy is src/retain.rs and the heap hand-over at
 * thread exit in src/heap.rs). Each part runs in its own forked child, so
 * that one part's memory does not blur the next one's figures.
 *
 * burst     64 threads each build ~1.5 MiB of 16..16384-byte blocks, wait
 *           until all have (the peak), free them and exit. After the
 *           joins, RSS growth over the start must be at most 10 % (the issue asks 25 %) of
 *           (peak - start) + 3 MiB: exiting threads release what they
 *           emptied. After malloc_trim(0), within 2 MiB of the start.
 * exited    a thread allocates ~80 MiB of 64..192-byte blocks and exits;
 *           main frees them all (the blocks of an exited thread's heap)
 *           and builds the same set again. mallinfo2().uordblks after the
 *           frees must be at most 1 % of the working set (the freed blocks
 *           are counted free), and the peak RSS during the rebuild at most
 *           start + 1.5 x the working set (the emptied memory is reused,
 *           not mapped anew beside it).
 * exitedquiet  as exited, but main then makes no new segment: (a) it
 *           keeps allocating and freeing one 256 KiB block for 300 ms
 *           (slow paths of a live thread, none mapping anything); (b) the
 *           set is built and freed again and main calls ptrs_thread_idle().
 *           Each time RSS must come back to at most start + 10 % of the
 *           working set + 8 MiB: the exited thread's emptied pages are
 *           returned without a new thread adopting its heap and without
 *           malloc_trim (a tester's 577 MiB stayed resident).
 * sharedquiet  (a) under mallopt(M_ARENA_MAX, 2): the builder thread is
 *           beyond the cap and builds in the shared heap, which no thread
 *           exit parks (93 MiB stayed resident for a tester).
 * latedtor  THREADS (3000) threads, one after another, whose pthread-key
 *           destructor frees its block and mallocs 4 KiB again in each of
 *           the destructor rounds (allocation after the thread's heap was
 *           handed back): RSS growth must stay under 64 MiB (ptrs and glibc
 *           ~12 MiB; a heap lost per thread gave 96+ MiB).
 *
 * Usage: tst-lifecycle-threads [part [latedtor-threads]]
 *   part: burst, exited, exitedquiet, sharedquiet, dormant, latedtor or
 *   all (default). */
#include "mt_helper.h"

#include <sys/mman.h>

/* TIMEOUT: 240 */

#define MIB (1024L * 1024L)

static void *xmalloc(size_t n) {
  void *p = malloc(n);
  if (p == NULL)
    FAIL_EXIT("malloc(%zu) failed", n);
  return p;
}

/* ---- burst ---------------------------------------------------------- */

#define BURST_THREADS 64
static pthread_barrier_t burst_built, burst_go;

static void *burst_thread(void *arg) {
  uint64_t rng = (uint64_t)(uintptr_t)arg * 0x9e37 + 1;
  enum { N = 3000 };
  char **v = xmalloc(N * sizeof *v);
  size_t sizes[N];
  size_t total = 0;
  int n = 0;
  while (total < 1536 * 1024 && n < N) {
    uint64_t r = splitmix64(&rng);
    size_t sz = (r % 10 == 0) ? 1024 + (size_t)((r >> 8) % 15361)
                              : 16 + (size_t)((r >> 8) % 497);
    v[n] = xmalloc(sz);
    stamp_block(v[n], sz, (uint64_t)(uintptr_t)arg);
    sizes[n] = sz;
    total += sz;
    n++;
  }
  pthread_barrier_wait(&burst_built);
  pthread_barrier_wait(&burst_go);
  for (int i = 0; i < n; i++) {
    MT_CHECK(verify_block(v[i], sizes[i], (uint64_t)(uintptr_t)arg));
    free(v[i]);
  }
  free(v);
  return NULL;
}

static void part_burst(void) {
  pthread_t th[BURST_THREADS];
  pthread_barrier_init(&burst_built, NULL, BURST_THREADS + 1);
  pthread_barrier_init(&burst_go, NULL, BURST_THREADS + 1);
  long start = mt_rss_kib();
  for (long i = 0; i < BURST_THREADS; i++)
    th[i] = mt_thread_create(burst_thread, (void *)(i + 1));
  pthread_barrier_wait(&burst_built);
  long peak = mt_rss_kib();
  pthread_barrier_wait(&burst_go);
  for (int i = 0; i < BURST_THREADS; i++)
    mt_thread_join(th[i]);
  long after_join = mt_rss_kib();
  int trimmed = malloc_trim(0);
  long after_trim = mt_rss_kib();
  /* The issue asks for 25 %; ptrs gives ~2 %, so 10 % + 3 MiB still fails
     when exiting threads leave their memory resident (24 MiB seen).  */
  long bound_join = (peak - start) / 10 + 3 * 1024;
  printf("burst: start_kb=%ld peak_kb=%ld after_join_kb=%ld (growth %ld, "
         "bound %ld) after_trim_kb=%ld (growth %ld, bound 2048) trim=%d\n",
         start, peak, after_join, after_join - start, bound_join, after_trim,
         after_trim - start, trimmed);
  CHECK(peak - start >= 32 * 1024); /* the threads did build their sets */
  CHECK(after_join - start <= bound_join);
  CHECK(after_trim - start <= 2048);
}

/* ---- exited --------------------------------------------------------- */

#define SET 650000L
static char **set; /* mmap'd: not a malloc block, so not in uordblks */

static size_t set_size(long i) { return 64 + (size_t)((i * 37) % 129); }

static size_t working_set(void) {
  size_t ws = 0;
  for (long i = 0; i < SET; i++)
    ws += set_size(i);
  return ws;
}

static long rebuild_peak;

static void build_set(int sample) {
  for (long i = 0; i < SET; i++) {
    set[i] = xmalloc(set_size(i));
    memset(set[i], (int)(i & 0xff), set_size(i));
    if (sample && (i & 4095) == 0) {
      long r = mt_rss_kib();
      if (r > rebuild_peak)
        rebuild_peak = r;
    }
  }
  if (sample) {
    long r = mt_rss_kib();
    if (r > rebuild_peak)
      rebuild_peak = r;
  }
}

static void free_set(void) {
  for (long i = 0; i < SET; i++) {
    const unsigned char *b = (const unsigned char *)set[i];
    MT_CHECK(b[0] == (unsigned char)(i & 0xff) &&
             b[set_size(i) - 1] == (unsigned char)(i & 0xff));
    free(set[i]);
  }
}

static void *builder(void *arg) {
  (void)arg;
  build_set(0);
  return NULL;
}

static void part_exited(void) {
  set = mmap(NULL, SET * sizeof *set, PROT_READ | PROT_WRITE,
             MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (set == MAP_FAILED)
    FAIL_EXIT("mmap: %s", strerror(errno));
  memset(set, 0, SET * sizeof *set);
  size_t ws = working_set();
  long start = mt_rss_kib();
  mt_thread_join(mt_thread_create(builder, NULL));
  long built = mt_rss_kib();
  free_set();
  struct mallinfo2 mi = mallinfo2();
  long after_free = mt_rss_kib();
  rebuild_peak = 0;
  build_set(1);
  long ws_kib = (long)(ws / 1024);
  long bound = start + ws_kib * 3 / 2;
  printf("exited: working_set_kb=%ld start_kb=%ld built_kb=%ld "
         "after_free_kb=%ld uordblks_after_free=%zu (bound %zu) "
         "rebuild_peak_kb=%ld (bound %ld)\n",
         ws_kib, start, built, after_free, mi.uordblks, ws / 100,
         rebuild_peak, bound);
  CHECK(built - start >= ws_kib); /* the set was really built */
  CHECK(mi.uordblks <= ws / 100);
  CHECK(rebuild_peak <= bound);
  free_set();
  munmap(set, SET * sizeof *set);
}

/* ---- exitedquiet ---------------------------------------------------- */

static void exited_and_freed(void) {
  mt_thread_join(mt_thread_create(builder, NULL));
  free_set();
}

static void part_exitedquiet(int shared) {
  set = mmap(NULL, SET * sizeof *set, PROT_READ | PROT_WRITE,
             MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (set == MAP_FAILED)
    FAIL_EXIT("mmap: %s", strerror(errno));
  /* sharedquiet: main keeps its heap; the builder, beyond the cap, builds
   * in the shared heap, which is never parked. */
  if (shared)
    CHECK(mallopt(M_ARENA_MAX, 2) == 1);
  long ws_kib = (long)(working_set() / 1024);
  long start = mt_rss_kib();
  long bound = start + ws_kib / 10 + 8 * 1024;

  /* (a) later slow paths of the live thread. */
  exited_and_freed();
  long after_free = mt_rss_kib();
  struct timespec t0, t;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  long quiet = after_free, ms = 0;
  do {
    char *b = xmalloc(256 * 1024);
    b[0] = 1;
    free(b);
    usleep(1000);
    clock_gettime(CLOCK_MONOTONIC, &t);
    quiet = mt_rss_kib();
    ms = (t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000;
  } while (quiet > bound && ms < 300);
  printf("%s: working_set_kb=%ld start_kb=%ld after_free_kb=%ld "
         "after_slow_paths_kb=%ld after %ld ms (bound %ld)\n",
         shared ? "sharedquiet" : "exitedquiet", ws_kib, start, after_free, quiet, ms, bound);
  CHECK(after_free - start >= ws_kib / 2); /* there was something to return */
  CHECK(quiet <= bound);
  if (shared) {
    munmap(set, SET * sizeof *set);
    return;
  }

#ifndef NO_PTRS
  /* (b) ptrs_thread_idle(), at once. */
  void (*idle)(void) = (void (*)(void))ptrs_symbol("ptrs_thread_idle");
  CHECK(idle != NULL);
  if (idle != NULL) {
    exited_and_freed();
    long before_idle = mt_rss_kib();
    idle();
    long after_idle = mt_rss_kib();
    printf("exitedquiet: before_idle_kb=%ld after_idle_kb=%ld (bound %ld)\n",
           before_idle, after_idle, bound);
    CHECK(before_idle - start >= ws_kib / 2);
    CHECK(after_idle <= bound);
  }
#endif
  munmap(set, SET * sizeof *set);
}

/* ---- dormant -------------------------------------------------------- */
/* Thread A builds the set and blocks on a condition variable (its heap's
 * owner is alive but never runs); thread B frees every block; thread C
 * builds the same set again. The pages A's heap holds are entirely free:
 * C must reuse them (peak at most start + 1.5 x the working set), and the
 * statistics must not count them (uordblks within 1 % of the truth). */

static pthread_mutex_t dormant_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t dormant_cond = PTHREAD_COND_INITIALIZER;
static int dormant_state;

static void *dormant_owner(void *arg) {
  (void)arg;
  build_set(0);
  pthread_mutex_lock(&dormant_lock);
  dormant_state = 1;
  pthread_cond_broadcast(&dormant_cond);
  while (dormant_state != 2)
    pthread_cond_wait(&dormant_cond, &dormant_lock);
  pthread_mutex_unlock(&dormant_lock);
  return NULL;
}

static void *freer(void *arg) {
  (void)arg;
  free_set();
  return NULL;
}

static void *rebuilder(void *arg) {
  (void)arg;
  build_set(1);
  return NULL;
}

/* One round: A builds and sleeps, B frees. With `stats`, the statistics
 * are checked then; without, C rebuilds (no allocator call in between
 * that could collect A's pages for it) and its peak is checked. */
static void dormant_round(int stats) {
  size_t ws = working_set();
  long ws_kib = (long)(ws / 1024);
  long start = mt_rss_kib();
  dormant_state = 0;
  pthread_t a = mt_thread_create(dormant_owner, NULL);
  pthread_mutex_lock(&dormant_lock);
  while (dormant_state != 1)
    pthread_cond_wait(&dormant_cond, &dormant_lock);
  pthread_mutex_unlock(&dormant_lock);
  long built = mt_rss_kib();
  CHECK(built - start >= ws_kib);
  mt_thread_join(mt_thread_create(freer, NULL));
  if (stats) {
    struct mallinfo2 mi = mallinfo2();
    printf("dormant: working_set_kb=%ld uordblks_after_free=%zu (bound %zu)\n",
           ws_kib, mi.uordblks, ws / 100);
    CHECK(mi.uordblks <= ws / 100);
  } else {
    rebuild_peak = 0;
    mt_thread_join(mt_thread_create(rebuilder, NULL));
    long bound = start + ws_kib * 3 / 2;
    printf("dormant: working_set_kb=%ld start_kb=%ld built_kb=%ld "
           "rebuild_peak_kb=%ld (bound %ld)\n",
           ws_kib, start, built, rebuild_peak, bound);
    CHECK(rebuild_peak <= bound);
    free_set();
  }
  pthread_mutex_lock(&dormant_lock);
  dormant_state = 2;
  pthread_cond_broadcast(&dormant_cond);
  pthread_mutex_unlock(&dormant_lock);
  mt_thread_join(a);
}

static void part_dormant(void) {
  set = mmap(NULL, SET * sizeof *set, PROT_READ | PROT_WRITE,
             MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (set == MAP_FAILED)
    FAIL_EXIT("mmap: %s", strerror(errno));
  dormant_round(0);
  malloc_trim(0);
  dormant_round(1);
  munmap(set, SET * sizeof *set);
}

/* ---- latedtor ------------------------------------------------------- */

static pthread_key_t late_key;

static void late_dtor(void *p) {
  MT_CHECK(((unsigned char *)p)[0] == 0x5c);
  free(p);
  unsigned char *q = malloc(4096);
  MT_CHECK(q != NULL);
  if (q == NULL)
    return;
  memset(q, 0x5c, 4096);
  /* Re-armed: glibc runs the destructor again, up to
   * PTHREAD_DESTRUCTOR_ITERATIONS (4) rounds; the last block leaks, as
   * it would in the program this models. */
  pthread_setspecific(late_key, q);
}

static void *late_thread(void *arg) {
  (void)arg;
  unsigned char *p = malloc(100);
  MT_CHECK(p != NULL);
  if (p != NULL) {
    p[0] = 0x5c;
    pthread_setspecific(late_key, p);
  }
  for (int i = 0; i < 50; i++)
    free(malloc(64 + (size_t)i * 16));
  return NULL;
}

static void part_latedtor(long n) {
  if (pthread_key_create(&late_key, late_dtor) != 0)
    FAIL_EXIT("pthread_key_create failed");
  long start = mt_rss_kib();
  for (long i = 0; i < n; i++)
    mt_thread_join(mt_thread_create(late_thread, NULL));
  long end = mt_rss_kib();
  long bound = n * 64 * 1024 / 3000; /* 64 MiB for 3000 threads */
  printf("latedtor: threads=%ld start_kb=%ld end_kb=%ld growth_kb=%ld "
         "(bound %ld)\n",
         n, start, end, end - start, bound);
  CHECK(end - start < bound);
}

/* ---- driver --------------------------------------------------------- */

static int run_part(const char *name, long late_threads) {
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0)
    FAIL_EXIT("fork: %s", strerror(errno));
  if (pid == 0) {
    /* The child's verdict is its own part's: not the parts failed before. */
    test_failures = 0;
    mt_failures = 0;
    mt_start_watchdog(150);
    if (strcmp(name, "burst") == 0)
      part_burst();
    else if (strcmp(name, "exited") == 0)
      part_exited();
    else if (strcmp(name, "exitedquiet") == 0)
      part_exitedquiet(0);
    else if (strcmp(name, "sharedquiet") == 0)
      part_exitedquiet(1);
    else if (strcmp(name, "dormant") == 0)
      part_dormant();
    else
      part_latedtor(late_threads);
    fflush(NULL);
    _exit(mt_result());
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
    ;
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    fprintf(stderr, "part %s failed (status 0x%x)\n", name, status);
    return 1;
  }
  return 0;
}

int main(int argc, char **argv) {
#ifndef NO_PTRS
  require_ptrs();
#endif
  const char *part = argc > 1 ? argv[1] : "all";
  long late_threads = mt_arg(argc, argv, 2, 3000);
  static const char *const parts[] = {"burst", "exited", "exitedquiet", "sharedquiet",
                                      "dormant", "latedtor"};
  int ran = 0;
  for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
    if (strcmp(part, "all") != 0 && strcmp(part, parts[i]) != 0)
      continue;
    ran = 1;
    if (run_part(parts[i], late_threads) != 0)
      test_failures++;
  }
  if (!ran)
    FAIL_EXIT("unknown part '%s'", part);
  return test_result();
}
