/* Memory lifecycle: what goes back to the OS (src/retain.rs).
 *
 * idletrim     a worker allocates 2 M blocks of 64..160 bytes, frees all
 *              but one in 40000 and blocks (its heap stays owned, sparse);
 *              main calls malloc_trim(0), which must return 1 and leave RSS
 *              at most 32 MiB (the 16 MiB pointer array is still live;
 *              glibc gives ~22 MiB, ptrs ~22 MiB). The remaining blocks are
 *              then verified and freed.
 * largeset     24 live blocks of 64 KiB..4 MiB (about log-uniform) replaced
 *              random, 16 small replacements between; then all the large
 *              blocks are freed, and after 25 ms (two purge delays) and one
 *              malloc of 256 KiB (a slow-path call) RSS must be at most
 *              8 MiB above its level before the loop (ptrs ~1-3 MiB).
 * reallocgrow  string builders (exact-size realloc), vectors doubling to
 *              4 MiB, buffers grown in 64 KiB steps to 8 MiB; the same RSS
 *              bound after the same 25 ms + 256 KiB malloc.
 *
 * Usage: tst-lifecycle-trim [part]  (idletrim, largeset, reallocgrow or
 * all, the default). Each part runs in a forked child. */
#include "mt_helper.h"

/* TIMEOUT: 240 */

static void *xmalloc(size_t n) {
  void *p = malloc(n);
  if (p == NULL)
    FAIL_EXIT("malloc(%zu) failed", n);
  return p;
}

static void touch(char *p, size_t n) {
  for (size_t o = 0; o < n; o += 4096)
    p[o] = 1;
  p[n - 1] = 1;
}

/* Two purge delays and one malloc call that is served by a slow path. */
static long rss_after_settle(void) {
  mt_sleep_us(25000);
  void *p = xmalloc(256 * 1024);
  ((char *)p)[0] = 1;
  free(p);
  return mt_rss_kib();
}

/* ---- idletrim ------------------------------------------------------- */

#define IDLE_N 2000000L
#define IDLE_KEEP 40000L
static pthread_mutex_t im = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t ic = PTHREAD_COND_INITIALIZER;
static int idle_state;

static void *idle_worker(void *arg) {
  (void)arg;
  char **v = xmalloc(IDLE_N * sizeof *v);
  for (long i = 0; i < IDLE_N; i++) {
    size_t n = 64 + (size_t)(i % 97);
    v[i] = xmalloc(n);
    v[i][0] = (char)(i & 0x7f);
    v[i][n - 1] = (char)(i & 0x7f);
  }
  for (long i = 0; i < IDLE_N; i++)
    if (i % IDLE_KEEP)
      free(v[i]);
  pthread_mutex_lock(&im);
  idle_state = 1;
  pthread_cond_broadcast(&ic);
  while (idle_state != 2)
    pthread_cond_wait(&ic, &im);
  pthread_mutex_unlock(&im);
  for (long i = 0; i < IDLE_N; i += IDLE_KEEP) {
    size_t n = 64 + (size_t)(i % 97);
    MT_CHECK(v[i][0] == (char)(i & 0x7f) && v[i][n - 1] == (char)(i & 0x7f));
    free(v[i]);
  }
  free(v);
  return NULL;
}

static void part_idletrim(void) {
  pthread_t t = mt_thread_create(idle_worker, NULL);
  pthread_mutex_lock(&im);
  while (idle_state != 1)
    pthread_cond_wait(&ic, &im);
  pthread_mutex_unlock(&im);
  long before = mt_rss_kib();
  int r = malloc_trim(0);
  long after = mt_rss_kib();
  printf("idletrim: before_trim_kb=%ld after_trim_kb=%ld (bound 32768) "
         "trim_returned=%d\n",
         before, after, r);
  CHECK(r == 1);
  CHECK(after <= 32 * 1024);
  pthread_mutex_lock(&im);
  idle_state = 2;
  pthread_cond_broadcast(&ic);
  pthread_mutex_unlock(&im);
  mt_thread_join(t);
}

/* ---- largeset ------------------------------------------------------- */

static void part_largeset(long steps) {
  enum { LIVE = 24, SMALL = 4096 };
  char *big[LIVE] = {0};
  size_t bigsz[LIVE] = {0};
  char **small = xmalloc(SMALL * sizeof *small);
  uint64_t rng = 7;
  for (int i = 0; i < SMALL; i++)
    small[i] = xmalloc(16 + splitmix64(&rng) % 241);
  long start = mt_rss_kib();
  long peak = start;
  for (long s = 0; s < steps; s++) {
    int k = (int)(splitmix64(&rng) % LIVE);
    if (big[k] != NULL) {
      MT_CHECK(big[k][0] == (char)k && big[k][bigsz[k] - 1] == (char)k);
      free(big[k]);
    }
    /* 64 KiB .. 4 MiB, about log-uniform: an octave picked uniformly,
     * then a size uniform within it */
    uint64_t r = splitmix64(&rng);
    size_t octave = (size_t)1 << (16 + r % 6);
    size_t n = octave + (size_t)((r >> 8) % octave);
    big[k] = xmalloc(n);
    bigsz[k] = n;
    touch(big[k], n);
    big[k][0] = (char)k;
    big[k][n - 1] = (char)k;
    for (int j = 0; j < 16; j++) {
      int q = (int)(splitmix64(&rng) % SMALL);
      free(small[q]);
      small[q] = xmalloc(16 + splitmix64(&rng) % 241);
      small[q][0] = 1;
    }
    if ((s & 63) == 0) {
      long r = mt_rss_kib();
      if (r > peak)
        peak = r;
    }
  }
  for (int i = 0; i < LIVE; i++)
    free(big[i]);
  long after = rss_after_settle();
  printf("largeset: steps=%ld start_kb=%ld peak_kb=%ld rss_after_free_kb=%ld "
         "(growth %ld, bound 8192)\n",
         steps, start, peak, after, after - start);
  CHECK(peak - start >= 16 * 1024); /* the large blocks were resident */
  CHECK(after - start <= 8 * 1024);
  for (int i = 0; i < SMALL; i++)
    free(small[i]);
  free(small);
}

/* ---- reallocgrow ---------------------------------------------------- */

static void part_reallocgrow(long reps) {
  uint64_t rng = 3;
  long start = mt_rss_kib();
  long peak = start;
  for (long k = 0; k < reps; k++) {
    char *s = NULL;
    size_t len = 0, target = 64 * 1024 + splitmix64(&rng) % (256 * 1024 + 1);
    while (len < target) {
      size_t add = 1 + splitmix64(&rng) % 63;
      char *t = realloc(s, len + add + 1);
      if (t == NULL)
        FAIL_EXIT("realloc(%zu) failed", len + add + 1);
      s = t;
      memset(s + len, 'a' + (int)(len % 26), add);
      len += add;
      s[len] = 0;
    }
    /* spot-check the builder's contents survived every move */
    for (size_t i = 0; i < len; i += 4093)
      MT_CHECK(s[i] >= 'a' && s[i] <= 'z');
    free(s);
    size_t cap = 16;
    char *v = xmalloc(cap);
    v[0] = 0x33;
    while (cap < (4u << 20)) {
      cap *= 2;
      v = realloc(v, cap);
      if (v == NULL)
        FAIL_EXIT("realloc(%zu) failed", cap);
      MT_CHECK(v[0] == 0x33);
      touch(v + cap / 2, cap / 2);
    }
    free(v);
    if ((k & 7) == 0) {
      char *b = NULL;
      for (size_t n = 65536; n <= (8u << 20); n += 65536) {
        b = realloc(b, n);
        if (b == NULL)
          FAIL_EXIT("realloc(%zu) failed", n);
        touch(b + n - 65536, 65536);
      }
      free(b);
    }
    long r = mt_rss_kib();
    if (r > peak)
      peak = r;
  }
  long after = rss_after_settle();
  printf("reallocgrow: reps=%ld start_kb=%ld peak_kb=%ld "
         "rss_after_free_kb=%ld (growth %ld, bound 8192)\n",
         reps, start, peak, after, after - start);
  CHECK(after - start <= 8 * 1024);
}

/* ---- driver --------------------------------------------------------- */

static int run_part(const char *name) {
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0)
    FAIL_EXIT("fork: %s", strerror(errno));
  if (pid == 0) {
    /* The child's verdict is its own part's: not the parts failed before. */
    test_failures = 0;
    mt_failures = 0;
    mt_start_watchdog(150);
    if (strcmp(name, "idletrim") == 0)
      part_idletrim();
    else if (strcmp(name, "largeset") == 0)
      part_largeset(1000);
    else
      part_reallocgrow(60);
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
  static const char *const parts[] = {"idletrim", "largeset", "reallocgrow"};
  int ran = 0;
  for (size_t i = 0; i < 3; i++) {
    if (strcmp(part, "all") != 0 && strcmp(part, parts[i]) != 0)
      continue;
    ran = 1;
    if (run_part(parts[i]) != 0)
      test_failures++;
  }
  if (!ran)
    FAIL_EXIT("unknown part '%s'", part);
  return test_result();
}
