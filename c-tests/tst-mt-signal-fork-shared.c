/* fork() from a signal handler that interrupts a thread of the shared heap
 * (threads beyond the arena cap share one heap under its lock; src/heap.rs,
 * fork_prepare, fork_parent, after_fork_child, SlowLock::lock).
 *
 * Four workers run beyond MALLOC_ARENA_MAX=2 (main takes the one thread
 * heap the cap leaves), so they allocate from the shared heap. Main sends
 * SIGUSR1 to worker 0 over and over; its handler calls fork(). The signal
 * may land while worker 0 is inside an allocation that holds the shared
 * heap's lock, or while it waits for that lock.
 *
 * parent  the child exits at once; the workers check the contents of every
 *         block they free. Releasing, after the fork, a lock the forking
 *         thread held already let the other workers into the shared heap
 *         in the middle of its update: live blocks overwritten or "free():
 *         corrupted remote free list", 2 runs of 4 (found by a fresh
 *         tester).
 * child   the child returns from the handler into worker 0's loop, then
 *         allocates 48 MiB, frees it and calls malloc_trim(0): RSS must
 *         come back within 16 MiB of where it started. A child forked while
 *         worker 0 waited for the lock counted itself as a waiter, found
 *         its counts cleared, and its decrement wrapped: every later sweep
 *         skipped the shared heap (203 children of 300 kept 48 MiB).
 *
 * Usage: tst-mt-signal-fork-shared [forks of each part (1500, 150)] */
#include "mt_helper.h"

#include <signal.h>
#include <sys/wait.h>

/* ENV: MALLOC_ARENA_MAX=2 */
/* TIMEOUT: 120 */

#define WORKERS 4
#define SLOTS 64

static volatile int stop;
static volatile int child_mode; /* part "child": the child checks its trim */
static volatile sig_atomic_t in_child;
static volatile pid_t last_child;
static long forks;

static void on_usr1(int sig) {
  (void)sig;
  pid_t c = fork();
  if (c == 0) {
    if (!child_mode)
      _exit(0);
    in_child = 1;
  } else if (c > 0) {
    last_child = c;
  }
}

static void child_check(void) {
  enum { N = 480, SIZE = 100000 };
  static char *v[N];
  long before = mt_rss_kib();
  for (int i = 0; i < N; i++) {
    v[i] = malloc(SIZE);
    if (v[i] == NULL)
      _exit(2);
    memset(v[i], 1, SIZE);
  }
  long full = mt_rss_kib();
  for (int i = 0; i < N; i++)
    free(v[i]);
  malloc_trim(0);
  long after = mt_rss_kib();
  if (after > before + 16 * 1024) {
    char msg[160];
    snprintf(msg, sizeof msg, "child: RSS %ld KiB before, %ld with 48 MiB live, %ld after free and malloc_trim(0)\n",
             before, full, after);
    mt_write_err(msg);
    _exit(1);
  }
  _exit(0);
}

static void *worker(void *arg) {
  long id = (long)arg;
  uint32_t s = (uint32_t)id + 1;
  unsigned char *p[SLOTS] = {0};
  size_t sz[SLOTS];
  if (id == 0) {
    sigset_t m;
    sigemptyset(&m);
    sigaddset(&m, SIGUSR1);
    pthread_sigmask(SIG_UNBLOCK, &m, NULL);
  }
  while (!__atomic_load_n(&stop, __ATOMIC_RELAXED)) {
    if (in_child)
      child_check();
    s = s * 1103515245u + 12345u;
    int i = (int)((s >> 8) % SLOTS);
    unsigned char stamp = (unsigned char)(id * SLOTS + i);
    if (p[i] != NULL) {
      for (size_t k = 0; k < sz[i]; k += 127)
        if (p[i][k] != stamp) {
          mt_write_err("error: a live block was overwritten\n");
          abort();
        }
      free(p[i]);
      p[i] = NULL;
    } else {
      s = s * 1103515245u + 12345u;
      sz[i] = (s >> 8) % 3 == 0 ? 200000 + (s >> 8) % 100000 : 16 + (s >> 8) % 3000;
      p[i] = malloc(sz[i]);
      if (p[i] == NULL) {
        mt_write_err("error: malloc failed\n");
        abort();
      }
      memset(p[i], stamp, sz[i]);
    }
  }
  for (int i = 0; i < SLOTS; i++)
    free(p[i]);
  return NULL;
}

/* Runs one part: `n` signals to worker 0; counts the children that failed
 * or hung (part "child") or failed (part "parent"). */
static void run_part(int child_part, long n) {
  child_mode = child_part;
  stop = 0;
  pthread_t t[WORKERS];
  for (long i = 0; i < WORKERS; i++)
    t[i] = mt_thread_create(worker, (void *)i);
  mt_sleep_us(10000);
  long bad = 0, hung = 0;
  for (long k = 0; k < n; k++) {
    last_child = 0;
    pthread_kill(t[0], SIGUSR1);
    for (int w = 0; w < 1000 && last_child == 0; w++)
      mt_sleep_us(100);
    pid_t c = last_child;
    if (c == 0)
      continue;
    forks++;
    int status = 0, w;
    for (w = 0; w < 5000; w++) {
      if (waitpid(c, &status, WNOHANG) == c)
        break;
      mt_sleep_us(1000);
    }
    if (w == 5000) {
      hung++;
      kill(c, SIGKILL);
      waitpid(c, &status, 0);
      continue;
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
      bad++;
  }
  __atomic_store_n(&stop, 1, __ATOMIC_RELAXED);
  for (int i = 0; i < WORKERS; i++)
    mt_thread_join(t[i]);
  printf("part %s: %ld signals, %ld children failed, %ld hung\n", child_part ? "child" : "parent", n, bad, hung);
  MT_CHECK(bad == 0);
  MT_CHECK(hung == 0);
}

int main(int argc, char **argv) {
#ifndef NO_PTRS
  require_ptrs();
#endif
  mt_start_watchdog(110);
  sigset_t m;
  sigemptyset(&m);
  sigaddset(&m, SIGUSR1);
  pthread_sigmask(SIG_BLOCK, &m, NULL);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_usr1;
  sa.sa_flags = SA_RESTART;
  sigaction(SIGUSR1, &sa, NULL);
  /* Main takes the one thread heap the cap leaves; the workers share. */
  void *volatile warm = malloc(1);
  run_part(0, mt_arg(argc, argv, 1, 1500));
  run_part(1, mt_arg(argc, argv, 2, 150));
  free(warm);
  printf("%ld forks\n", forks);
  return mt_result();
}
