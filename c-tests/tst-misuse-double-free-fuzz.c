/* Random double frees among random work (after a fresh tester's fuzzer):
 * each run, in a forked child, does a few hundred to a few thousand random
 * operations on blocks of a handful of sizes (malloc, calloc, realloc, free
 * by the owner, free by a helper thread, malloc_trim), frees one block that
 * is already free (by the owner or by the helper) at a random step, then
 * frees everything and allocates 1500 blocks more. The child tracks every
 * block it holds: a block handed out while it holds it already is a
 * failure (exit 42). Each run must end in SIGABRT with a "ptrs: " line on
 * stderr (the double free reported, at once or later), or, if the block
 * was never used again, in a normal exit; never in a crash, a hang (the
 * child has 20 s) or a block handed out twice. Nearly every run must
 * report it: the drain allocates from every page again. */
#include "test_helper.h"
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/wait.h>

enum { MAX_HELD = 4096, RUNS = 200 };

static uint64_t next_random(uint64_t *s) {
  *s ^= *s << 13;
  *s ^= *s >> 7;
  *s ^= *s << 17;
  return *s;
}

static void *held[MAX_HELD];
static int nheld;
static void *freed[MAX_HELD]; /* freed and not handed out since */
static int nfreed;

static _Atomic(uintptr_t) to_free; /* 0: idle, 1: stop, else a block */

static void *helper(void *unused) {
  (void)unused;
  for (;;) {
    uintptr_t p;
    while ((p = atomic_load(&to_free)) == 0)
      ;
    if (p == 1)
      return NULL;
    free((void *)p);
    atomic_store(&to_free, 0);
  }
}

static void free_by_helper(void *p) {
  atomic_store(&to_free, (uintptr_t)p);
  while (atomic_load(&to_free) != 0)
    ;
}

static void got(void *p, size_t n) {
  if (p == NULL)
    _exit(3);
  for (int i = 0; i < nheld; i++)
    if (held[i] == p)
      _exit(42); /* handed out twice */
  for (int i = 0; i < nfreed; i++)
    if (freed[i] == p) {
      freed[i] = freed[--nfreed];
      break;
    }
  if (nheld < MAX_HELD)
    held[nheld++] = p;
  memset(p, 0x5a, n);
}

static void gone(void *p) {
  if (nfreed < MAX_HELD)
    freed[nfreed++] = p;
}

static void *take_held(uint64_t *s) {
  int i = (int)(next_random(s) % (uint64_t)nheld);
  void *p = held[i];
  held[i] = held[--nheld];
  return p;
}

static const size_t sizes[] = {48, 48, 48, 64, 32, 200, 1000};

static void run(uint64_t seed) {
  uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
  pthread_t h;
  if (pthread_create(&h, NULL, helper, NULL) != 0)
    _exit(3);
  int steps = 200 + (int)(next_random(&s) % 2000);
  int inject = (int)(next_random(&s) % (uint64_t)steps);
  int by_helper = (int)(next_random(&s) % 2);
  int injected = 0;
  for (int step = 0; step < steps; step++) {
    if (step >= inject && !injected && nfreed > 0) {
      void *p = freed[next_random(&s) % (uint64_t)nfreed];
      injected = 1;
      if (by_helper)
        free_by_helper(test_ptr(p));
      else
        free(test_ptr(p));
      continue;
    }
    int op = (int)(next_random(&s) % 100);
    size_t n = sizes[next_random(&s) % 7];
    if (op < 45 || nheld == 0) {
      got(malloc(n), n);
    } else if (op < 75) {
      void *p = take_held(&s);
      free(p);
      gone(p);
    } else if (op < 92) {
      void *p = take_held(&s);
      free_by_helper(p);
      gone(p);
    } else if (op < 95) {
      void *p = take_held(&s);
      void *q = realloc(p, n);
      if (q != p)
        gone(p);
      got(q, n);
    } else if (op < 97) {
      malloc_trim(0);
    } else {
      got(calloc(1, 48), 48);
    }
  }
  while (nheld > 0) {
    void *p = held[--nheld];
    if (next_random(&s) % 2)
      free(p);
    else
      free_by_helper(p);
    gone(p);
  }
  for (int i = 0; i < 1500; i++) {
    size_t n = sizes[next_random(&s) % 7];
    got(malloc(n), n);
  }
  malloc_trim(0);
  atomic_store(&to_free, 1);
  pthread_join(h, NULL);
  _exit(injected ? 0 : 77);
}

int main(void) {
  require_ptrs();
  int reported = 0, unreported = 0, skipped = 0;
  for (uint64_t seed = 1; seed <= RUNS; seed++) {
    int fds[2];
    fflush(NULL);
    if (pipe(fds) != 0)
      FAIL_EXIT("pipe: %s", strerror(errno));
    pid_t pid = fork();
    if (pid < 0)
      FAIL_EXIT("fork: %s", strerror(errno));
    if (pid == 0) {
      struct rlimit no_core = {0, 0};
      setrlimit(RLIMIT_CORE, &no_core);
      alarm(20);
      close(fds[0]);
      dup2(fds[1], STDERR_FILENO);
      close(fds[1]);
      run(seed);
    }
    close(fds[1]);
    char out[4096];
    size_t len = 0;
    ssize_t r;
    while ((r = read(fds[0], out + len, sizeof out - 1 - len)) > 0 ||
           (r < 0 && errno == EINTR))
      if (r > 0)
        len += (size_t)r;
    out[len] = '\0';
    close(fds[0]);
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
      ;
    if (WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT && strstr(out, "ptrs: ") != NULL) {
      reported++;
    } else if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
      unreported++;
    } else if (WIFEXITED(st) && WEXITSTATUS(st) == 77) {
      skipped++; /* nothing was free at the chosen step */
    } else {
      fprintf(stderr, "seed %llu: %s %d (42: a block handed out twice), stderr: %.200s\n",
              (unsigned long long)seed, WIFSIGNALED(st) ? "signal" : "exit status",
              WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st), out);
      test_failures++;
    }
  }
  printf("%d runs: %d double frees reported, %d not reported, %d without one\n",
         RUNS, reported, unreported, skipped);
  CHECK(reported + unreported + skipped == RUNS);
  CHECK(reported >= (RUNS - skipped) * 95 / 100);
  return test_result();
}
