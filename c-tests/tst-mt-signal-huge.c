/* A signal handler that allocates and frees huge blocks while the thread it
 * interrupts is allocating and freeing huge blocks itself, so that the
 * handler often arrives while that thread is inside the cache of freed huge
 * mappings. The cache's lock records its holder and is held without
 * blocking signals: a handler on the holding thread goes around the cache
 * (a fresh mapping, an unmapping) rather than wait for itself. (glibc's
 * malloc is not async-signal-safe; ptrs promises this much for huge
 * blocks because its cache lock no longer blocks signals.) A second thread
 * does the same work without signals. Checks: no deadlock (watchdog), the
 * contents of every block (first and last page stamped), the signals
 * arrived, and the handler's blocks really were huge (malloc_usable_size).
 *
 * Usage: tst-mt-signal-huge [milliseconds] */
#include "mt_helper.h"

#include <sys/time.h>

/* TIMEOUT: 60 */

#define HUGE_A (5u << 20)
#define HUGE_B (3u << 20)

static volatile sig_atomic_t alarms, handler_fail;
static volatile int stop;
static uint64_t deadline;

static void stamp_ends(unsigned char *p, size_t size, unsigned char v) {
  memset(p, v, 4096);
  memset(p + size - 4096, v, 4096);
}

static int ends_ok(const unsigned char *p, size_t size, unsigned char v) {
  for (size_t i = 0; i < 4096; i++)
    if (p[i] != v || p[size - 4096 + i] != v)
      return 0;
  return 1;
}

static void on_alarm(int sig) {
  (void)sig;
  int saved = errno;
  alarms++;
  unsigned char *p = malloc(HUGE_B);
  if (p == NULL || malloc_usable_size(p) < HUGE_B) {
    handler_fail = 1;
  } else {
    stamp_ends(p, HUGE_B, 0xa5);
    if (!ends_ok(p, HUGE_B, 0xa5))
      handler_fail = 1;
  }
  free(p);
  errno = saved;
}

static void churn(unsigned char tag, long *rounds) {
  unsigned char *keep[4] = {0};
  size_t sizes[4] = {HUGE_A, HUGE_B, HUGE_A + 4096, HUGE_B + 8192};
  for (long i = 0; !stop && mt_now_ms() < deadline; i++) {
    int k = (int)(i & 3);
    if (keep[k] != NULL) {
      MT_CHECK(ends_ok(keep[k], sizes[k], (unsigned char)(tag + k)));
      free(keep[k]);
    }
    keep[k] = malloc(sizes[k]);
    MT_CHECK(keep[k] != NULL);
    if (keep[k] == NULL)
      break;
    stamp_ends(keep[k], sizes[k], (unsigned char)(tag + k));
    ++*rounds;
  }
  for (int k = 0; k < 4; k++) {
    if (keep[k] != NULL)
      MT_CHECK(ends_ok(keep[k], sizes[k], (unsigned char)(tag + k)));
    free(keep[k]);
  }
}

static void *other(void *arg) {
  long *rounds = arg;
  churn(0x40, rounds);
  return NULL;
}

int main(int argc, char **argv) {
  long ms = mt_arg(argc, argv, 1, 1500);
  mt_start_watchdog(40);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_alarm;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGALRM, &sa, NULL);
  long other_rounds = 0, main_rounds = 0;
  deadline = mt_now_ms() + (uint64_t)ms;
  pthread_t t = mt_thread_create(other, &other_rounds);
  struct itimerval it = {{0, 200}, {0, 200}};
  setitimer(ITIMER_REAL, &it, NULL);
  churn(0x10, &main_rounds);
  struct itimerval off = {{0, 0}, {0, 0}};
  setitimer(ITIMER_REAL, &off, NULL);
  stop = 1;
  mt_thread_join(t);
  MT_CHECK(!handler_fail);
  MT_CHECK(alarms > 10);
  /* valgrind runs one thread at a time: the other one may get few turns */
  long least = under_memcheck() ? 1 : 100;
  MT_CHECK(main_rounds >= least && other_rounds >= least);
  fprintf(stderr, "alarms %d, rounds %ld / %ld\n", (int)alarms, main_rounds, other_rounds);
  return mt_result();
}
