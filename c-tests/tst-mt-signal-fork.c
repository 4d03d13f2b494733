/* fork() from a signal handler: SIGUSR1 (sent by a second thread that
 * allocates continuously) and SIGALRM (interval timer) interrupt the main
 * thread, which mostly computes and sometimes allocates. When the main
 * thread was not inside malloc/free/realloc itself (a flag it sets around
 * those calls; fork is async-signal-safe only then), the handler forks; the
 * child mallocs, verifies and frees a few blocks of various sizes and
 * _exit(0)s. Meanwhile the second thread, and a third one that does
 * nothing but malloc and free, may hold allocator locks, which the
 * allocator's fork handling must cope with. The parent must not
 * deadlock (watchdog), every child must exit with status 0, and a child
 * still running 10 s after the last fork is taken for a deadlock.
 *
 * Usage: tst-mt-signal-fork [forks] */
#include "mt_helper.h"

#include <sys/time.h>
#include <sys/wait.h>

/* TIMEOUT: 90 */

#define MAX_FORKS 400
#define KEEP 128
#define CHILD_TIMEOUT_MS 10000

static volatile sig_atomic_t in_alloc;
static volatile sig_atomic_t nforks, fork_failures, skipped;
static volatile pid_t pids[MAX_FORKS];
static volatile int reaped[MAX_FORKS];
static int max_forks = 200;
static volatile int stop;
static pthread_t main_thread;

/* Runs in the child, inside the signal handler. */
static int child_work(int n) {
  uint64_t rng = 0xf0f0ULL + (uint64_t)n;
  void *b[40];
  size_t sz[40];
  for (int i = 0; i < 40; i++) {
    sz[i] = mt_random_size(&rng, 20);
    b[i] = malloc(sz[i]);
    if (b[i] == NULL)
      return 2;
    mt_stamp(b[i], sz[i], (uint64_t)i);
  }
  for (int i = 0; i < 40; i++) {
    if (!mt_verify(b[i], sz[i], (uint64_t)i))
      return 3;
    free(b[i]);
  }
  void *p = calloc(1000, 100);
  if (p == NULL)
    return 2;
  p = realloc(p, 300000);
  if (p == NULL)
    return 2;
  free(p);
  return 0;
}

static void handler(int sig) {
  (void)sig;
  int saved = errno;
  if (in_alloc) {
    skipped++;
  } else if (nforks < max_forks) {
    pid_t pid = fork();
    if (pid == 0)
      _exit(child_work(nforks));
    if (pid < 0)
      fork_failures++;
    else
      pids[nforks++] = pid;
  }
  errno = saved;
}

static void *kicker(void *arg) {
  (void)arg;
  uint64_t rng = 5;
  void *blocks[32] = {0};
  size_t sizes[32] = {0};
  unsigned long n = 0;
  while (!__atomic_load_n(&stop, __ATOMIC_RELAXED)) {
    if (++n % 16 == 0)
      pthread_kill(main_thread, SIGUSR1);
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
    if (n % 64 == 0)
      mt_sleep_us(200);
  }
  for (unsigned i = 0; i < 32; i++)
    free(blocks[i]);
  return NULL;
}

/* Allocates and frees small blocks as fast as it can, so that it is often
 * inside the allocator when the main thread forks. */
static void *hammer(void *arg) {
  (void)arg;
  uint64_t rng = 17;
  void *ring[64] = {0};
  unsigned n = 0;
  while (!__atomic_load_n(&stop, __ATOMIC_RELAXED)) {
    unsigned i = n++ % 64;
    if (ring[i]) {
      MT_CHECK(*(unsigned char *)ring[i] == (unsigned char)i);
      free(ring[i]);
    }
    ring[i] = malloc(16 + splitmix64(&rng) % 256);
    if (ring[i] == NULL)
      FAIL_EXIT("malloc failed");
    *(unsigned char *)ring[i] = (unsigned char)i;
  }
  for (unsigned i = 0; i < 64; i++)
    free(ring[i]);
  return NULL;
}

/* Reap finished children; returns how many are still running. */
static int reap(void) {
  int running = 0;
  int n = nforks;
  for (int i = 0; i < n; i++) {
    if (reaped[i])
      continue;
    int status;
    pid_t r = waitpid(pids[i], &status, WNOHANG);
    if (r == 0) {
      running++;
      continue;
    }
    reaped[i] = 1;
    if (r < 0) {
      fprintf(stderr, "waitpid(%d): %m\n", (int)pids[i]);
      CHECK(0);
    } else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      fprintf(stderr, "child %d: status %#x\n", i, status);
      CHECK(0);
    }
  }
  return running;
}

int main(int argc, char **argv) {
  require_ptrs();
  max_forks = (int)mt_arg(argc, argv, 1, max_forks);
  if (max_forks > MAX_FORKS)
    max_forks = MAX_FORKS;
  mt_start_watchdog(80);
  main_thread = pthread_self();

  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sigemptyset(&sa.sa_mask);
  sigaddset(&sa.sa_mask, SIGUSR1);
  sigaddset(&sa.sa_mask, SIGALRM);
  sa.sa_flags = SA_RESTART;
  sa.sa_handler = handler;
  sigaction(SIGALRM, &sa, NULL);
  sigaction(SIGUSR1, &sa, NULL);

  sigset_t set, old;
  sigemptyset(&set);
  sigaddset(&set, SIGALRM);
  sigaddset(&set, SIGUSR1);
  pthread_sigmask(SIG_BLOCK, &set, &old);
  pthread_t k = mt_thread_create(kicker, NULL);
  pthread_t h = mt_thread_create(hammer, NULL);
  pthread_sigmask(SIG_SETMASK, &old, NULL);

  struct itimerval it;
  it.it_interval.tv_sec = 0;
  it.it_interval.tv_usec = 3000;
  it.it_value = it.it_interval;
  if (setitimer(ITIMER_REAL, &it, NULL) != 0)
    FAIL_EXIT("setitimer: %m");

  uint64_t rng = 3;
  void *blocks[KEEP] = {0};
  size_t sizes[KEEP] = {0};
  unsigned char work[4096];
  memset(work, 3, sizeof work);
  uint64_t hash = 0;
  /* 30 s, stretched under valgrind (scripts/memcheck.sh) as the watchdogs are. */
  uint64_t end = mt_now_ms() + (uint64_t)(30000 * mt_timeout_factor());
  while (nforks < max_forks && mt_now_ms() < end) {
    for (int r = 0; r < 8; r++)
      for (size_t i = 0; i < sizeof work; i++)
        hash = hash * 31 + work[i];
    for (int r = 0; r < 4; r++) {
      unsigned i = (unsigned)(splitmix64(&rng) % KEEP);
      if (blocks[i])
        CHECK(mt_verify(blocks[i], sizes[i], i));
      size_t nsize = mt_random_size(&rng, 200);
      in_alloc = 1;
      if (blocks[i] && r == 0) {
        void *p = realloc(blocks[i], nsize);
        in_alloc = 0;
        if (p == NULL)
          FAIL_EXIT("realloc failed");
        blocks[i] = p;
      } else {
        free(blocks[i]);
        blocks[i] = malloc(nsize);
        in_alloc = 0;
        if (blocks[i] == NULL)
          FAIL_EXIT("malloc failed");
      }
      sizes[i] = nsize;
      mt_stamp(blocks[i], nsize, i);
    }
    reap();
  }
  memset(&it, 0, sizeof it);
  setitimer(ITIMER_REAL, &it, NULL);
  __atomic_store_n(&stop, 1, __ATOMIC_RELAXED);
  mt_thread_join(k);
  mt_thread_join(h);

  uint64_t deadline = mt_now_ms() + (uint64_t)(CHILD_TIMEOUT_MS * mt_timeout_factor());
  int running;
  while ((running = reap()) > 0 && mt_now_ms() < deadline)
    mt_sleep_us(1000);
  if (running > 0) {
    fprintf(stderr, "%d children still running %d ms after the last fork "
            "(deadlock)\n", running, CHILD_TIMEOUT_MS);
    for (int i = 0; i < nforks; i++)
      if (!reaped[i])
        kill(pids[i], SIGKILL);
    CHECK(0);
  }
  for (unsigned i = 0; i < KEEP; i++)
    if (blocks[i]) {
      CHECK(mt_verify(blocks[i], sizes[i], i));
      free(blocks[i]);
    }
  printf("%d forks from the handler (%d signals during allocation), hash "
         "%llx\n", (int)nforks, (int)skipped, (unsigned long long)hash);
  CHECK(fork_failures == 0);
  CHECK(nforks == max_forks);
  return mt_result();
}
