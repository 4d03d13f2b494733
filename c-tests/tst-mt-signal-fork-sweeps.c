/* fork() from signal handlers on several threads at once, while slow
 * paths of one thread hold locks another thread's fork needs (a tester's
 * programs, which hung in 5 runs of 5):
 *
 * Four threads allocate blocks of 16 B to 3 MiB, stamp them and swap them
 * through a shared table, so most frees are another thread's. An interval
 * timer sends SIGALRM every 500 us to the process (any thread takes it);
 * the handler forks and the child _exit(0)s at once. SIGCHLD is ignored
 * (no zombies). Part 1 runs that alone: the refill of a thread whose new
 * segment comes after other heaps were noticed dormant takes their locks
 * (collect_dormant_heaps). Part 2 adds a thread looping malloc_trim(0)
 * (other threads' heap locks, and the parked heaps' lock) and one looping
 * mallinfo2() (every live thread's heap lock while it counts).
 *
 * The cycle: thread A, inside such a sweep, holds thread B's heap lock (or
 * the parked heaps' lock) when its handler forks; ptrs's prepare handler
 * waits for glibc's stdio list lock, held by thread B, whose own fork
 * waits for the lock A holds. The sweeps now hold those locks with every
 * signal blocked. Each part runs 3 s and must end (watchdog); every block
 * is checked before it is freed. glibc's own malloc can deadlock here too
 * (the tester: 3 runs of 3), so this test is ptrs's promise, not POSIX's.
 * UNSUPPORTED under memcheck (thousands of forks of the tool). */
#include "mt_helper.h"
#include <stdatomic.h>
#include <sys/time.h>

/* TIMEOUT: 60 */

#define WORKERS 4
#define SLOTS 256

static _Atomic(char *) slots[SLOTS];
static atomic_int stop;
static atomic_long forks;

static void on_alarm(int sig) {
  (void)sig;
  int saved = errno;
  pid_t p = fork();
  if (p == 0)
    _exit(0);
  if (p > 0)
    atomic_fetch_add_explicit(&forks, 1, memory_order_relaxed);
  errno = saved;
}

static void check_free(char *p) {
  if (p == NULL)
    return;
  size_t n;
  memcpy(&n, p, sizeof n);
  if (n < 16 || n > (3u << 20) + 4096 || !verify_block(p + 8, n - 9 < 64 ? n - 9 : 64, n))
    FAIL_EXIT("block %p: size or contents corrupted", (void *)p);
  if ((unsigned char)p[n - 1] != (unsigned char)(n * 7))
    FAIL_EXIT("block %p: last byte corrupted", (void *)p);
  free(p);
}

static void *worker(void *arg) {
  uint64_t rng = 77 + (uint64_t)(uintptr_t)arg;
  while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
    uint64_t x = splitmix64(&rng);
    size_t n = (x & 3) == 0 ? 100000 + (size_t)(x >> 8) % 3000000 : 16 + (size_t)(x >> 8) % 4000;
    char *p = malloc(n);
    if (p == NULL)
      FAIL_EXIT("malloc(%zu) failed", n);
    memcpy(p, &n, sizeof n);
    stamp_block(p + 8, n - 9 < 64 ? n - 9 : 64, n);
    p[n - 1] = (char)(n * 7);
    check_free(atomic_exchange(&slots[splitmix64(&rng) % SLOTS], p));
  }
  return NULL;
}

static void *trimmer(void *arg) {
  (void)arg;
  while (!atomic_load_explicit(&stop, memory_order_relaxed))
    malloc_trim(0);
  return NULL;
}

static void *stats_reader(void *arg) {
  (void)arg;
  size_t sink = 0;
  while (!atomic_load_explicit(&stop, memory_order_relaxed))
    sink += mallinfo2().uordblks;
  return (void *)sink;
}

static void run_part(const char *name, int sweepers) {
  atomic_store(&stop, 0);
  atomic_store(&forks, 0);
  pthread_t th[WORKERS + 2];
  int n = 0;
  for (long i = 0; i < WORKERS; i++)
    th[n++] = mt_thread_create(worker, (void *)i);
  if (sweepers) {
    th[n++] = mt_thread_create(trimmer, NULL);
    th[n++] = mt_thread_create(stats_reader, NULL);
  }
  struct itimerval on = {{0, 500}, {0, 500}}, off = {{0, 0}, {0, 0}};
  setitimer(ITIMER_REAL, &on, NULL);
  uint64_t end = mt_now_ms() + 3000;
  while (mt_now_ms() < end)
    mt_sleep_us(10000);
  setitimer(ITIMER_REAL, &off, NULL);
  atomic_store(&stop, 1);
  for (int i = 0; i < n; i++)
    mt_thread_join(th[i]);
  for (int k = 0; k < SLOTS; k++)
    check_free(atomic_exchange(&slots[k], NULL));
  printf("%s: %ld forks from signal handlers\n", name, atomic_load(&forks));
  CHECK(atomic_load(&forks) > 0);
}

int main(void) {
  require_ptrs();
  if (under_memcheck()) {
    printf("thousands of forks under valgrind: skipped\n");
    return EXIT_UNSUPPORTED;
  }
  mt_start_watchdog(60);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_alarm;
  sa.sa_flags = SA_RESTART;
  sigaction(SIGALRM, &sa, NULL);
  struct sigaction sc;
  memset(&sc, 0, sizeof sc);
  sc.sa_handler = SIG_IGN;
  sc.sa_flags = SA_NOCLDWAIT;
  sigaction(SIGCHLD, &sc, NULL);
  run_part("workers", 0);
  run_part("workers, malloc_trim and mallinfo2 loops", 1);
  return mt_result();
}
