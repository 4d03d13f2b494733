/* Signals interrupting allocation: SIGALRM from an interval timer every
 * millisecond and SIGUSR1 sent by a second thread (which allocates too)
 * interrupt the main thread, which mostly computes but also mallocs,
 * reallocs and frees. The handlers do only async-signal-safe work (count).
 * Handlers are installed without SA_RESTART, so system calls inside the
 * allocator (futex waits, mmap, ...) may fail with EINTR and must be
 * retried. Checks: no deadlock (watchdog), no corruption (stamps), and the
 * signals really arrived.
 *
 * Usage: tst-mt-signal [milliseconds] */
#include "mt_helper.h"

#include <sys/time.h>

/* TIMEOUT: 60 */

#define KEEP 256

static volatile sig_atomic_t alarms, usr1s;
static volatile int stop;
static pthread_t main_thread;

static void on_alarm(int sig) {
  (void)sig;
  alarms++;
}

static void on_usr1(int sig) {
  (void)sig;
  usr1s++;
}

static void *kicker(void *arg) {
  (void)arg;
  uint64_t rng = 99;
  void *blocks[32] = {0};
  size_t sizes[32] = {0};
  unsigned long n = 0;
  while (!__atomic_load_n(&stop, __ATOMIC_RELAXED)) {
    pthread_kill(main_thread, SIGUSR1);
    for (int k = 0; k < 8; k++) {
      unsigned i = (unsigned)(splitmix64(&rng) % 32);
      if (blocks[i]) {
        MT_CHECK(mt_verify(blocks[i], sizes[i], i));
        free(blocks[i]);
      }
      sizes[i] = mt_random_size(&rng, 100);
      blocks[i] = malloc(sizes[i]);
      if (blocks[i] == NULL)
        FAIL_EXIT("malloc failed");
      mt_stamp(blocks[i], sizes[i], i);
    }
    if (++n % 4 == 0)
      mt_sleep_us(100);
  }
  for (unsigned i = 0; i < 32; i++)
    free(blocks[i]);
  return NULL;
}

int main(int argc, char **argv) {
  require_ptrs();
  long ms = mt_arg(argc, argv, 1, 2000);
  mt_start_watchdog(50);
  main_thread = pthread_self();

  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0; /* no SA_RESTART */
  sa.sa_handler = on_alarm;
  sigaction(SIGALRM, &sa, NULL);
  sa.sa_handler = on_usr1;
  sigaction(SIGUSR1, &sa, NULL);

  /* The kicker must not take the signals meant for the main thread. */
  sigset_t set, old;
  sigemptyset(&set);
  sigaddset(&set, SIGALRM);
  sigaddset(&set, SIGUSR1);
  pthread_sigmask(SIG_BLOCK, &set, &old);
  pthread_t k = mt_thread_create(kicker, NULL);
  pthread_sigmask(SIG_SETMASK, &old, NULL);

  struct itimerval it;
  it.it_interval.tv_sec = 0;
  it.it_interval.tv_usec = 1000;
  it.it_value = it.it_interval;
  if (setitimer(ITIMER_REAL, &it, NULL) != 0)
    FAIL_EXIT("setitimer: %m");

  uint64_t rng = 1;
  void *blocks[KEEP] = {0};
  size_t sizes[KEEP] = {0};
  unsigned char work[4096];
  memset(work, 7, sizeof work);
  uint64_t hash = 0, ops = 0;
  uint64_t end = mt_now_ms() + (uint64_t)ms;
  while (mt_now_ms() < end) {
    /* Non-allocating work. */
    for (int r = 0; r < 4; r++)
      for (size_t i = 0; i < sizeof work; i++)
        hash = hash * 31 + work[i];
    /* Allocation work. */
    for (int r = 0; r < 16; r++) {
      unsigned i = (unsigned)(splitmix64(&rng) % KEEP);
      if (blocks[i]) {
        CHECK(mt_verify(blocks[i], sizes[i], i));
        if (splitmix64(&rng) % 4 == 0) {
          size_t nsize = mt_random_size(&rng, 200);
          void *p = realloc(blocks[i], nsize);
          if (p == NULL)
            FAIL_EXIT("realloc failed");
          blocks[i] = p;
          sizes[i] = nsize;
          mt_stamp(p, nsize, i);
          continue;
        }
        free(blocks[i]);
      }
      sizes[i] = mt_random_size(&rng, 200);
      blocks[i] = malloc(sizes[i]);
      if (blocks[i] == NULL)
        FAIL_EXIT("malloc failed");
      mt_stamp(blocks[i], sizes[i], i);
      ops++;
    }
  }
  memset(&it, 0, sizeof it);
  setitimer(ITIMER_REAL, &it, NULL);
  __atomic_store_n(&stop, 1, __ATOMIC_RELAXED);
  mt_thread_join(k);
  for (unsigned i = 0; i < KEEP; i++)
    if (blocks[i]) {
      CHECK(mt_verify(blocks[i], sizes[i], i));
      free(blocks[i]);
    }
  printf("%llu allocations, %d SIGALRM, %d SIGUSR1 (hash %llx)\n",
         (unsigned long long)ops, (int)alarms, (int)usr1s,
         (unsigned long long)hash);
  /* At 1 ms over ms milliseconds, even a loaded machine delivers some. */
  CHECK(alarms >= 20);
  CHECK(usr1s >= 20);
  return mt_result();
}
