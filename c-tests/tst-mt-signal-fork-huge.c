/* fork() while another thread, churning huge blocks, is interrupted non-stop
 * by a signal handler that allocates: the handler can find its thread inside
 * the cache of freed huge mappings, holding that cache's lock (which does
 * not block signals), and wait for a lock the forking thread took in its
 * prepare handler (the shared heap's with PTRS_ARENA_MAX=2, or the
 * profiler's). The prepare handler must not then wait for the cache's lock
 * (a reviewer's program hung in 5 of 5 runs when it did); it takes it only
 * when free, and a child that forked while another thread held it forgets
 * the cache. The children allocate and free huge and small blocks.
 * (Allocating in a signal handler is not supported in general; this is
 * about the cache's lock adding no deadlock of its own.)
 *
 * Usage: tst-mt-signal-fork-huge [forks] */
/* ENV: PTRS_ARENA_MAX=2 */
/* TIMEOUT: 120 */
#include "mt_helper.h"

#include <stdatomic.h>

static pthread_t churner;
static atomic_int stop;
static atomic_long handled;

static void on_usr1(int sig) {
  (void)sig;
  int saved = errno;
  void *q = malloc(48);
  if (q != NULL)
    memset(q, 1, 48);
  free(q);
  handled++;
  errno = saved;
}

static void *churn(void *arg) {
  (void)arg;
  while (!stop) {
    char *p = malloc(5u << 20);
    MT_CHECK(p != NULL);
    if (p != NULL) {
      p[0] = 1;
      p[(5u << 20) - 1] = 2;
    }
    free(p);
  }
  return NULL;
}

static void *kick(void *arg) {
  (void)arg;
  while (!stop)
    pthread_kill(churner, SIGUSR1);
  return NULL;
}

int main(int argc, char **argv) {
  long forks = mt_arg(argc, argv, 1, 3000);
  if (under_memcheck())
    forks = 50;
  mt_start_watchdog(100);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_usr1;
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGUSR1, &sa, NULL);
  free(malloc(100));
  churner = mt_thread_create(churn, NULL);
  pthread_t kicker = mt_thread_create(kick, NULL);
  for (long i = 0; i < forks; i++) {
    pid_t c = fork();
    MT_CHECK(c >= 0);
    if (c == 0) {
      char *big = malloc(6u << 20), *small = malloc(100);
      if (big == NULL || small == NULL)
        _exit(3);
      memset(big, 7, 6u << 20);
      memset(small, 8, 100);
      free(big);
      free(small);
      _exit(0);
    }
    int st;
    MT_CHECK(waitpid(c, &st, 0) == c && WIFEXITED(st) && WEXITSTATUS(st) == 0);
  }
  stop = 1;
  mt_thread_join(kicker);
  mt_thread_join(churner);
  MT_CHECK(handled > 0);
  fprintf(stderr, "%ld forks, %ld signals handled\n", forks, (long)handled);
  return mt_result();
}
