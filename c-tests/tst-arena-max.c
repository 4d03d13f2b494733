/* The arena cap: mallopt(M_ARENA_MAX, 2) and MALLOC_ARENA_MAX=2.
 *
 * With a cap of n, ptrs lets the first n - 1 threads (at least one) that
 * need a heap own one and every later thread shares the shared heap
 * (src/heap.rs, thread_heap_slow; ptmalloc's reused_arena idea). The test
 * sets the cap first, then runs 64 threads that are all alive at once
 * (a barrier), each allocating blocks of random sizes, stamping them,
 * exchanging them with the other threads through a shared array and
 * verifying every block it frees. The heap count of the statistics line
 * "segments: N, heaps: N" (ptrs_stats_print) must then be at most 3
 * (2 + the shared heap); without the cap it is ~65.
 *
 * The same runs in a child started by fork + exec of this program with the
 * argument "child" and MALLOC_ARENA_MAX=2 in its environment (no mallopt).
 *
 * Usage: tst-arena-max [child] */
#include "mt_helper.h"

/* TIMEOUT: 120 */

#define THREADS 64
#define ITERS 3000
#define SLOTS 256

static void *slots[SLOTS];
static pthread_barrier_t all_alive;

/* A block: its size in the first word, the rest stamped with seed = size. */
static void *make_block(uint64_t *rng) {
  size_t size = 16 + (size_t)(splitmix64(rng) % 4000);
  if (splitmix64(rng) % 64 == 0)
    size = 16 + (size_t)(splitmix64(rng) % (256 * 1024));
  size_t *b = malloc(size);
  if (b == NULL)
    return NULL;
  b[0] = size;
  mt_stamp(b + 1, size - sizeof(size_t), size);
  return b;
}

static void check_free(void *p) {
  if (p == NULL)
    return;
  size_t *b = p;
  size_t size = b[0];
  MT_CHECK(size >= 16 && size < 16 + 256 * 1024);
  if (size >= 16 && size < 16 + 256 * 1024)
    MT_CHECK(mt_verify(b + 1, size - sizeof(size_t), size));
  free(p);
}

static void *worker(void *arg) {
  uint64_t rng = (uint64_t)(uintptr_t)arg * 7919;
  void *mine = make_block(&rng); /* the thread takes its heap now */
  MT_CHECK(mine != NULL);
  pthread_barrier_wait(&all_alive);
  for (int i = 0; i < ITERS; i++) {
    void *b = make_block(&rng);
    MT_CHECK(b != NULL);
    if (b == NULL)
      continue;
    size_t k = (size_t)(splitmix64(&rng) % SLOTS);
    check_free(__atomic_exchange_n(&slots[k], b, __ATOMIC_ACQ_REL));
  }
  pthread_barrier_wait(&all_alive);
  check_free(mine);
  return NULL;
}

static void stats_line(void *ctx, const char *line) {
  long *heaps = ctx;
  const char *h = strstr(line, "heaps: ");
  if (h != NULL)
    *heaps = strtol(h + 7, NULL, 10);
}

static long heap_count(void) {
  void (*print)(void (*)(void *, const char *), void *) =
      (void (*)(void (*)(void *, const char *), void *))ptrs_symbol(
          "ptrs_stats_print");
  if (print == NULL)
    FAIL_EXIT("no ptrs_stats_print symbol");
  long heaps = -1;
  print(stats_line, &heaps);
  if (heaps < 0)
    FAIL_EXIT("no \"heaps:\" in ptrs_stats_print's output");
  return heaps;
}

static void run_threads(const char *who) {
  pthread_t th[THREADS];
  pthread_barrier_init(&all_alive, NULL, THREADS);
  for (long i = 0; i < THREADS; i++)
    th[i] = mt_thread_create(worker, (void *)(i + 1));
  for (int i = 0; i < THREADS; i++)
    mt_thread_join(th[i]);
  for (int i = 0; i < SLOTS; i++)
    check_free(slots[i]);
  long heaps = heap_count();
  printf("%s: heaps=%ld after %d threads (bound 3)\n", who, heaps, THREADS);
  CHECK(heaps <= 3);
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "child") == 0) {
    require_ptrs();
    const char *env = getenv("MALLOC_ARENA_MAX");
    CHECK(env != NULL && strcmp(env, "2") == 0);
    mt_start_watchdog(100);
    run_threads("MALLOC_ARENA_MAX=2 child");
    return mt_result();
  }
  /* Before anything else makes a thread heap. */
  int r = mallopt(M_ARENA_MAX, 2);
  CHECK(r == 1);
  require_ptrs();
  mt_start_watchdog(100);
  run_threads("mallopt(M_ARENA_MAX, 2)");

  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0)
    FAIL_EXIT("fork: %s", strerror(errno));
  if (pid == 0) {
    setenv("MALLOC_ARENA_MAX", "2", 1);
    unsetenv("PTRS_ARENA_MAX");
    char *args[] = {argv[0], (char *)"child", NULL};
    execv(argv[0], args);
    _exit(127);
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
    ;
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    fprintf(stderr, "child with MALLOC_ARENA_MAX=2: status 0x%x\n", status);
    test_failures++;
  }
  return mt_result();
}
