/* Statistics and malloc_trim when blocks are freed for a thread that is
 * alive but idle (a tester's reports):
 *
 * idle      8 threads each allocate 7 blocks of every size from 8 B to
 *           64 KiB (about 45 MB in all, no page of theirs full), then wait
 *           on a condition variable; main frees every block. A free into a
 *           page that is not full does not notify its owner, which would
 *           take the blocks back only at its next allocation of that size.
 *           mallinfo2().uordblks and ptrs_stats.allocated must drop to at
 *           most 1 % of the set (+ 64 KiB for stdio and the test), and
 *           after malloc_trim(0) RSS growth over the start must be at most
 *           40 % of the set (30 % measured, the first page of each
 *           freed block and the small classes' pages the idle threads
 *           still allocate from; 100 % before: it all stayed until the
 *           threads exited; glibc ~3 %).
 * peak      100 MB of small blocks, freed and trimmed, then 100 MB of
 *           4 MiB blocks: ptrs_stats.peak_mapped must stay below 1.5x the
 *           highest mapped figure seen (it added the two kinds' peaks).
 * active    after 20 000 blocks are freed, ptrs_stats.active (bytes of
 *           pages that hold a block in use) must be at most 1 MiB (it
 *           counted the empty pages heaps keep: 1.7 MB).
 * span2m    64 blocks of 2 MiB - 64 KiB + 1 (just above the largest large
 *           span): mapped at most 1.25x the bytes allocated (a segment of
 *           4 MiB each before: 2x). */
#include "mt_helper.h"
#include "ptrs.h"

/* TIMEOUT: 120 */

#define THREADS 8
#define PER_SIZE 7

static void *xmalloc(size_t n) {
  void *p = malloc(n);
  if (p == NULL)
    FAIL_EXIT("malloc(%zu) failed", n);
  return p;
}

static __typeof__(ptrs_stats_get) *stats_get;

static struct ptrs_stats stats(void) {
  struct ptrs_stats s;
  memset(&s, 0, sizeof s);
  if (stats_get(&s) != 0)
    FAIL_EXIT("ptrs_stats_get failed");
  return s;
}

/* ---- idle ------------------------------------------------------------ */

static size_t sizes[512];
static int nsizes;

static void make_sizes(void) {
  /* Every size class from 8 B to 64 KiB: steps of 16 up to 128, then 8
   * per power of two (the README's classes). */
  for (size_t s = 8; s <= 128; s += (s < 16 ? 8 : 16))
    sizes[nsizes++] = s;
  for (size_t base = 128; base < 65536; base *= 2)
    for (int i = 1; i <= 8; i++)
      sizes[nsizes++] = base + base / 8 * (size_t)i;
}

static char **blocks[THREADS];
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static int built, release_workers;

static void *worker(void *arg) {
  long t = (long)(intptr_t)arg;
  char **v = blocks[t];
  int n = 0;
  for (int i = 0; i < nsizes; i++)
    for (int k = 0; k < PER_SIZE; k++) {
      v[n] = xmalloc(sizes[i]);
      memset(v[n], (int)(t + 1), sizes[i]);
      n++;
    }
  pthread_mutex_lock(&lock);
  built++;
  pthread_cond_broadcast(&cond);
  while (!release_workers)
    pthread_cond_wait(&cond, &lock);
  pthread_mutex_unlock(&lock);
  return NULL;
}

static void part_idle(void) {
  make_sizes();
  size_t set = 0;
  for (int i = 0; i < nsizes; i++)
    set += sizes[i] * PER_SIZE * THREADS;
  for (int t = 0; t < THREADS; t++)
    blocks[t] = xmalloc((size_t)nsizes * PER_SIZE * sizeof(char *));
  struct mallinfo2 m0 = mallinfo2();
  long start = mt_rss_kib();
  pthread_t tid[THREADS];
  for (long t = 0; t < THREADS; t++)
    tid[t] = mt_thread_create(worker, (void *)(intptr_t)t);
  pthread_mutex_lock(&lock);
  while (built < THREADS)
    pthread_cond_wait(&cond, &lock);
  pthread_mutex_unlock(&lock);
  long built_kib = mt_rss_kib();
  for (int t = 0; t < THREADS; t++)
    for (int j = 0; j < nsizes * PER_SIZE; j++) {
      MT_CHECK(blocks[t][j][0] == (char)(t + 1));
      free(blocks[t][j]);
    }
  struct mallinfo2 m1 = mallinfo2();
  struct ptrs_stats s1 = stats();
  malloc_trim(0);
  long trimmed = mt_rss_kib();
  long set_kib = (long)(set / 1024);
  size_t slack = set / 100 + 64 * 1024;
  printf("idle: set_kb=%ld start_kb=%ld built_kb=%ld uordblks %zu -> %zu, "
         "allocated %zu (bound +%zu); after malloc_trim rss_kb=%ld (bound %ld)\n",
         set_kib, start, built_kib, m0.uordblks, m1.uordblks, s1.allocated, slack,
         trimmed, start + set_kib * 40 / 100);
  CHECK(built_kib - start >= set_kib * 9 / 10); /* the set was resident */
  CHECK(m1.uordblks <= m0.uordblks + slack);
  CHECK(s1.allocated <= m0.uordblks + slack);
  CHECK(trimmed - start <= set_kib * 40 / 100);
  pthread_mutex_lock(&lock);
  release_workers = 1;
  pthread_cond_broadcast(&cond);
  pthread_mutex_unlock(&lock);
  for (int t = 0; t < THREADS; t++) {
    mt_thread_join(tid[t]);
    free(blocks[t]);
  }
}

/* ---- peak ------------------------------------------------------------ */

static void part_peak(void) {
  enum { SMALL = 100 * 1024 * 1024 / 256, BIG = 25 };
  size_t seen = 0;
  char **v = xmalloc(SMALL * sizeof *v);
  for (int i = 0; i < SMALL; i++) {
    v[i] = xmalloc(256);
    v[i][0] = 1;
  }
  struct ptrs_stats s = stats();
  if (s.mapped > seen)
    seen = s.mapped;
  for (int i = 0; i < SMALL; i++)
    free(v[i]);
  free(v);
  malloc_trim(0);
  char *big[BIG];
  for (int i = 0; i < BIG; i++) {
    big[i] = xmalloc(4 << 20);
    big[i][0] = 1;
  }
  s = stats();
  if (s.mapped > seen)
    seen = s.mapped;
  printf("peak: highest mapped seen %zu, peak_mapped %zu\n", seen, s.peak_mapped);
  CHECK(s.peak_mapped >= seen);
  CHECK(s.peak_mapped < seen + seen / 2);
  for (int i = 0; i < BIG; i++)
    free(big[i]);
}

/* ---- active ---------------------------------------------------------- */

static void part_active(void) {
  enum { N = 20000 };
  char **v = xmalloc(N * sizeof *v);
  for (int i = 0; i < N; i++) {
    v[i] = xmalloc(16 + (size_t)(i % 64) * 16);
    v[i][0] = 1;
  }
  struct ptrs_stats full = stats();
  for (int i = 0; i < N; i++)
    free(v[i]);
  free(v);
  struct ptrs_stats s = stats();
  printf("active: with the blocks %zu, after freeing them %zu (allocated %zu)\n",
         full.active, s.active, s.allocated);
  CHECK(full.active >= full.allocated);
  CHECK(s.active >= s.allocated);
  CHECK(s.active <= 1024 * 1024);
}

/* ---- span2m ---------------------------------------------------------- */

static void part_span2m(void) {
  enum { N = 64 };
  const size_t size = (2 << 20) - (64 << 10) + 1;
  struct ptrs_stats s0 = stats();
  char *v[N];
  for (int i = 0; i < N; i++) {
    v[i] = xmalloc(size);
    v[i][0] = 1;
    v[i][size - 1] = 1;
  }
  struct ptrs_stats s = stats();
  size_t allocated = s.allocated - s0.allocated;
  size_t mapped = s.mapped > s0.mapped ? s.mapped - s0.mapped : 0;
  printf("span2m: %d blocks of %zu: allocated %zu, mapped %zu (%.2fx)\n", N, size,
         allocated, mapped, (double)mapped / (double)allocated);
  CHECK(allocated >= (size_t)N * size);
  CHECK(mapped <= allocated + allocated / 4);
  for (int i = 0; i < N; i++)
    free(v[i]);
}

/* ---- driver ---------------------------------------------------------- */

static int run_part(const char *name) {
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0)
    FAIL_EXIT("fork: %s", strerror(errno));
  if (pid == 0) {
    test_failures = 0;
    mt_failures = 0;
    mt_start_watchdog(100);
    if (strcmp(name, "idle") == 0)
      part_idle();
    else if (strcmp(name, "peak") == 0)
      part_peak();
    else if (strcmp(name, "active") == 0)
      part_active();
    else
      part_span2m();
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
  require_ptrs();
  if (under_memcheck())
    return EXIT_UNSUPPORTED; /* RSS and mapped figures are memcheck's */
  stats_get = (__typeof__(ptrs_stats_get) *)ptrs_symbol("ptrs_stats_get");
  if (stats_get == NULL)
    FAIL_EXIT("ptrs_stats_get not found");
  const char *part = argc > 1 ? argv[1] : "all";
  static const char *const parts[] = {"idle", "peak", "active", "span2m"};
  int ran = 0;
  for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
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
