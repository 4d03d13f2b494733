/* fork() while other threads allocate, free and use stdio: the allocator's
 * locks must be consistent in the child (its fork handlers must take and
 * release them), so the child can malloc, free and start a thread of its
 * own. A child that has not exited 10 s after fork is taken for a deadlock.
 *
 * Usage: tst-mt-fork [forks] */
#include "mt_helper.h"

#include <sys/wait.h>

/* TIMEOUT: 180 */

#define ALLOC_THREADS 2
#define CHILD_TIMEOUT_MS 10000

static volatile int stop;

static void *alloc_worker(void *arg) {
  uint64_t rng = 0x5eed0000ULL + (uintptr_t)arg;
  enum { KEEP = 128 };
  void *blocks[KEEP] = {0};
  size_t sizes[KEEP] = {0};
  uint64_t seeds[KEEP] = {0};
  while (!__atomic_load_n(&stop, __ATOMIC_RELAXED)) {
    unsigned i = (unsigned)(splitmix64(&rng) % KEEP);
    if (blocks[i]) {
      MT_CHECK(mt_verify(blocks[i], sizes[i], seeds[i]));
      free(blocks[i]);
    }
    sizes[i] = mt_random_size(&rng, 200);
    seeds[i] = splitmix64(&rng);
    blocks[i] = malloc(sizes[i]);
    if (blocks[i] == NULL)
      FAIL_EXIT("malloc(%zu) failed", sizes[i]);
    mt_stamp(blocks[i], sizes[i], seeds[i]);
  }
  for (unsigned i = 0; i < KEEP; i++)
    if (blocks[i]) {
      MT_CHECK(mt_verify(blocks[i], sizes[i], seeds[i]));
      free(blocks[i]);
    }
  return NULL;
}

static void *stdio_worker(void *arg) {
  (void)arg;
  FILE *f = fopen("/dev/null", "w");
  if (f == NULL)
    FAIL_EXIT("fopen /dev/null: %m");
  unsigned long n = 0;
  while (!__atomic_load_n(&stop, __ATOMIC_RELAXED)) {
    fprintf(f, "line %lu: %s %g\n", n, "some text to format", n * 0.5);
    if (++n % 64 == 0) {
      fflush(NULL);
      /* Streams allocate their buffers with malloc. */
      FILE *g = fopen("/dev/null", "w");
      if (g) {
        setvbuf(g, NULL, _IOFBF, 1000 + n % 5000);
        fprintf(g, "%lu\n", n);
        fclose(g);
      }
    }
  }
  fclose(f);
  return NULL;
}

static void *child_thread(void *arg) {
  uint64_t rng = (uintptr_t)arg;
  for (int i = 0; i < 200; i++) {
    size_t size = mt_random_size(&rng, 50);
    void *p = malloc(size);
    if (p == NULL)
      return (void *)1;
    mt_stamp(p, size, i);
    if (!mt_verify(p, size, i))
      return (void *)1;
    free(p);
  }
  return NULL;
}

/* Runs in the child: exit status 0 if all went well. */
static int child_main(int n) {
  uint64_t rng = 0xc41dULL + (uint64_t)n;
  enum { NB = 300 };
  void *blocks[NB];
  size_t sizes[NB];
  for (int i = 0; i < NB; i++) {
    sizes[i] = mt_random_size(&rng, 100);
    blocks[i] = i % 5 == 0 ? calloc(1, sizes[i]) : malloc(sizes[i]);
    if (blocks[i] == NULL)
      return 2;
    mt_stamp(blocks[i], sizes[i], (uint64_t)i);
  }
  for (int i = 0; i < NB; i += 2) {
    blocks[i] = realloc(blocks[i], sizes[i] / 2 + 1);
    if (blocks[i] == NULL)
      return 2;
    sizes[i] = 0;
  }
  for (int i = 0; i < NB; i++) {
    if (sizes[i] && !mt_verify(blocks[i], sizes[i], (uint64_t)i))
      return 3;
    free(blocks[i]);
  }
  pthread_t t;
  if (pthread_create(&t, NULL, child_thread, (void *)(uintptr_t)n) != 0)
    return 4;
  void *ret = (void *)1;
  pthread_join(t, &ret);
  if (ret != NULL)
    return 5;
  FILE *f = fopen("/dev/null", "w");
  if (f == NULL)
    return 6;
  fprintf(f, "child %d\n", n);
  fclose(f);
  return 0;
}

int main(int argc, char **argv) {
  require_ptrs();
  long forks = mt_arg(argc, argv, 1, 200);
  mt_start_watchdog(170);

  pthread_t t[ALLOC_THREADS + 1];
  for (int i = 0; i < ALLOC_THREADS; i++)
    t[i] = mt_thread_create(alloc_worker, (void *)(uintptr_t)i);
  t[ALLOC_THREADS] = mt_thread_create(stdio_worker, NULL);

  for (long n = 0; n < forks; n++) {
    /* Let the workers run a little between forks. */
    void *p = malloc(100 + (size_t)n);
    free(p);
    mt_sleep_us(500);
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0)
      FAIL_EXIT("fork: %m");
    if (pid == 0)
      _exit(child_main((int)n));
    uint64_t deadline = mt_now_ms() + (uint64_t)(CHILD_TIMEOUT_MS * mt_timeout_factor());
    int status = 0;
    for (;;) {
      pid_t r = waitpid(pid, &status, WNOHANG);
      if (r == pid)
        break;
      if (r < 0)
        FAIL_EXIT("waitpid: %m");
      if (mt_now_ms() > deadline) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        FAIL_EXIT("fork %ld: child did not exit in %d ms (deadlock)", n,
                  CHILD_TIMEOUT_MS);
      }
      mt_sleep_us(200);
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      fprintf(stderr, "fork %ld: child status %#x (exit %d, signal %d)\n", n,
              status, WIFEXITED(status) ? WEXITSTATUS(status) : -1,
              WIFSIGNALED(status) ? WTERMSIG(status) : 0);
      CHECK(0);
    }
  }
  __atomic_store_n(&stop, 1, __ATOMIC_RELAXED);
  for (int i = 0; i < ALLOC_THREADS + 1; i++)
    mt_thread_join(t[i]);
  return mt_result();
}
