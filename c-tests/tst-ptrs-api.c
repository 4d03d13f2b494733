/* Every function of include/ptrs.h, with its edge cases: ptrs_version,
 * ptrs_owns, ptrs_usable_size, ptrs_stats_get (NULL, plausible and
 * consistent figures), ptrs_purge, ptrs_stats_print (callback and NULL =
 * stderr) and ptrs_set_oom_handler (returns the previous handler, is called
 * with the request size before NULL/ENOMEM).
 *
 * The functions are resolved with dlsym through a table typed from the
 * header, so the test works linked with -lptrs and under LD_PRELOAD. */
#include "test_helper.h"
#include "ptrs.h"
#include <ctype.h>
#include <malloc.h>
#include <unistd.h>

static struct {
  __typeof__(ptrs_version) *version;
  __typeof__(ptrs_owns) *owns;
  __typeof__(ptrs_usable_size) *usable_size;
  __typeof__(ptrs_stats_get) *stats_get;
  __typeof__(ptrs_purge) *purge;
  __typeof__(ptrs_stats_print) *stats_print;
  __typeof__(ptrs_set_oom_handler) *set_oom_handler;
} api;

#define RESOLVE(name) RESOLVE_INTO(api, "ptrs_", name)

/* ---- ptrs_version ---- */

/* The version in ./Cargo.toml's [package] (the runner starts tests in the
 * repository root), or "" if there is none. */
static void cargo_version(char *out, size_t n) {
  out[0] = '\0';
  FILE *f = fopen("Cargo.toml", "r");
  if (f == NULL)
    return;
  char line[256];
  int in_package = 0;
  while (fgets(line, sizeof line, f) != NULL) {
    if (line[0] == '[') {
      in_package = strncmp(line, "[package]", 9) == 0;
      continue;
    }
    char v[64];
    if (in_package && sscanf(line, "version = \"%63[^\"]\"", v) == 1) {
      snprintf(out, n, "%s", v);
      break;
    }
  }
  fclose(f);
}

static void test_version(void) {
  const char *v = api.version();
  CHECK(v != NULL);
  if (v == NULL)
    return;
  CHECK(api.version() == v);
  CHECK(*v != '\0');
  unsigned a, b, c;
  int end = -1;
  CHECK(sscanf(v, "%u.%u.%u%n", &a, &b, &c, &end) == 3 && end > 0);
  CHECK(end > 0 && (v[end] == '\0' || v[end] == '-' || v[end] == '+'));
  CHECK(isdigit((unsigned char)v[0]));
  char expected[64];
  cargo_version(expected, sizeof expected);
  if (expected[0] != '\0') {
    if (strcmp(v, expected) != 0)
      fprintf(stderr, "ptrs_version() = \"%s\", Cargo.toml says \"%s\"\n", v,
              expected);
    CHECK(strcmp(v, expected) == 0);
  }
}

/* ---- ptrs_owns and ptrs_usable_size ---- */

static void test_owns_and_usable_size(void) {
  int on_stack = 0;
  CHECK(api.owns(NULL) == 0);
  CHECK(api.owns(&on_stack) == 0);
  CHECK(api.owns((const void *)test_owns) == 0);
  CHECK(api.usable_size(NULL) == 0);

  static const size_t sizes[] = {1, 24, 100, 4000, 60000, 200000, 3 << 20};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    size_t n = sizes[i];
    char *p = malloc(test_size(n));
    CHECK(p != NULL);
    if (p == NULL)
      continue;
    CHECK(api.owns(p) == 1);
    CHECK(api.owns(p + n / 2) == 1); /* interior */
    CHECK(api.owns(p + n - 1) == 1); /* last byte */
    size_t u = api.usable_size(p);
    CHECK(u >= n);
    CHECK(u == malloc_usable_size(p));
    memset(p, 0xa5, u); /* all of it is usable */
    free(p);
  }

  /* A freed huge block (its own mapping) is no longer ptrs's memory. */
  size_t huge = 16u << 20;
  char *h = malloc(test_size(huge));
  CHECK(h != NULL);
  if (h != NULL) {
    CHECK(api.owns(h) == 1);
    CHECK(api.owns(h + huge - 1) == 1);
    CHECK(api.usable_size(h) >= huge);
    free(h);
    CHECK(api.owns(test_ptr(h)) == 0);
    CHECK(api.owns(test_ptr(h + huge / 2)) == 0);
  }

  /* calloc, realloc and the aligned functions hand out ptrs blocks too. */
  void *c = calloc(10, 10);
  CHECK(c != NULL && api.owns(c) == 1);
  void *r = realloc(c, 5000);
  CHECK(r != NULL && api.owns(r) == 1 && api.usable_size(r) >= 5000);
  free(r);
  void *a = aligned_alloc(4096, 4096);
  CHECK(a != NULL && api.owns(a) == 1 && is_aligned(a, 4096));
  free(a);
}

/* ---- ptrs_stats_get ---- */

static void dump(const char *what, const struct ptrs_stats *s) {
  fprintf(stderr,
          "%-22s allocated %zu active %zu resident %zu mapped %zu "
          "retained %zu peak_mapped %zu\n",
          what, s->allocated, s->active, s->resident, s->mapped, s->retained,
          s->peak_mapped);
}

/* The invariants any snapshot satisfies (single-threaded program). */
static void check_consistent(const char *what, const struct ptrs_stats *s) {
  int ok = s->allocated <= s->active && s->active <= s->mapped &&
           s->mapped <= s->peak_mapped && s->retained <= s->mapped &&
           s->resident > 0;
  if (!ok) {
    fprintf(stderr, "inconsistent statistics (%s):\n", what);
    dump(what, s);
  }
  CHECK(s->allocated <= s->active);
  CHECK(s->active <= s->mapped);
  CHECK(s->mapped <= s->peak_mapped);
  CHECK(s->retained <= s->mapped);
  CHECK(s->resident > 0);
}

static struct ptrs_stats snap(const char *what) {
  struct ptrs_stats s;
  memset(&s, 0xff, sizeof s);
  CHECK(api.stats_get(&s) == 0);
  check_consistent(what, &s);
  return s;
}

/* Allocates n blocks of `size` with nothing else in between, checks that
 * `allocated` grew by exactly their usable sizes, frees them. */
static void check_exact_growth(size_t size, size_t n) {
  void **b = calloc(n, sizeof *b);
  CHECK(b != NULL);
  if (b == NULL)
    return;
  struct ptrs_stats before, after;
  CHECK(api.stats_get(&before) == 0);
  for (size_t i = 0; i < n; i++)
    b[i] = malloc(test_size(size));
  CHECK(api.stats_get(&after) == 0);
  size_t usable = 0;
  for (size_t i = 0; i < n; i++) {
    CHECK(b[i] != NULL);
    usable += api.usable_size(b[i]);
  }
  char what[64];
  snprintf(what, sizeof what, "%zu x %zu bytes", n, size);
  check_consistent(what, &after);
  if (under_memcheck()) {
    /* Each block also holds a redzone of 16 bytes or more, which the
     * usable size (the requested size there) does not count. */
    CHECK(after.allocated - before.allocated >= usable + 16 * n);
    for (size_t i = 0; i < n; i++)
      free(b[i]);
    free(b);
    return;
  }
  if (after.allocated - before.allocated != usable) {
    fprintf(stderr, "%s: allocated grew by %zu, the blocks hold %zu\n", what,
            after.allocated - before.allocated, usable);
    dump("before", &before);
    dump("after", &after);
  }
  CHECK(after.allocated - before.allocated == usable);
  for (size_t i = 0; i < n; i++)
    free(b[i]);
  free(b);
}

static void test_stats(void) {
  CHECK(api.stats_get(NULL) == -1);
  /* The bounds below measure growth from a start with nothing kept for
   * reuse: memory retained from the earlier parts (a freed 16 MiB huge
   * mapping, in the cache since it holds 64 MiB) would serve part of this
   * live set without growing mapped or resident. */
  malloc_trim(0);
  struct ptrs_stats s0 = snap("start");

  /* 64 MiB in blocks of every range: allocated and mapped follow. */
  enum { N = 256 };
  void *blocks[N];
  size_t live = 0, written = 0;
  for (int i = 0; i < N; i++) {
    size_t n = (i % 4 == 0) ? 600000 : (i % 4 == 1) ? 40000 : 1000;
    if (i == N - 1)
      n = 32u << 20; /* one huge block */
    blocks[i] = malloc(test_size(n));
    CHECK(blocks[i] != NULL);
    memset(blocks[i], i, n);
    written += n;
    live += api.usable_size(blocks[i]);
  }
  struct ptrs_stats s1 = snap("blocks live");
  dump("start", &s0);
  dump("blocks live", &s1);
  fprintf(stderr, "live %zu bytes, written %zu\n", live, written);
  /* Bounds from the live set: allocated counts exactly the blocks' usable
   * bytes (under memcheck also a redzone of at least 16 bytes each); the
   * pages holding them and the mappings exceed them by at most 1/32 plus
   * a partly used page per size (2 MiB in all; 4 MiB more for mappings,
   * made a segment at a time): any block the figures miss fails. */
  if (under_memcheck())
    CHECK(s1.allocated >= s0.allocated + live + 16 * N);
  else
    CHECK(s1.allocated == s0.allocated + live);
  /* The blocks' footprint: their usable bytes natively; under memcheck,
   * where usable sizes are the requests, the engine's blocks (size class
   * and redzone), which allocated counts. */
  size_t grown = s1.allocated - s0.allocated;
  CHECK(s1.active >= s0.active + live);
  CHECK(s1.active <= s0.active + grown + grown / 32 + (2 << 20));
  CHECK(s1.mapped >= s0.mapped + live);
  CHECK(s1.mapped <= s0.mapped + grown + grown / 32 + (6 << 20));
  CHECK(s1.peak_mapped >= s1.mapped);
  CHECK(s1.peak_mapped >= s0.peak_mapped);
  /* Every byte asked for was written, so resident; the rest of each block
   * (at most one page of it) need not be. */
  CHECK(s1.resident + (size_t)N * 4096 >= s0.resident + written);

  for (int i = 0; i < N; i++)
    free(blocks[i]);
  struct ptrs_stats s2 = snap("freed");
  dump("freed", &s2);
  CHECK(s2.allocated == s0.allocated);
  CHECK(s2.peak_mapped >= s1.peak_mapped); /* a high-water mark */

  /* ptrs_purge returns 1 when it released something: here the freed pages
   * (PTRS_PURGE_DELAY is 10 ms, so most are still mapped and resident),
   * and 0 when called again at once, with nothing left to give back. */
  int r = api.purge();
  CHECK(r == 1);
  struct ptrs_stats s3 = snap("purged");
  CHECK(s3.mapped <= s2.mapped);
  CHECK(s3.allocated <= s2.allocated);
  CHECK(s3.peak_mapped == s2.peak_mapped);
  int r2 = api.purge();
  CHECK(r2 == 0);
  snap("purged again");

  /* allocated counts exactly the blocks handed out, also when they fill
   * their pages (8 blocks of 64 KiB fill a 512 KiB page). */
  check_exact_growth(48, 100);
  check_exact_growth(8192, 100);
  check_exact_growth(65536, 8);
  check_exact_growth(65536, 1);
  check_exact_growth(300000, 3);
  check_exact_growth(5u << 20, 1);
  snap("end");
}

/* ---- ptrs_stats_print ---- */

struct lines {
  int count;
  int bad; /* lines not ending in exactly one newline */
  int mentions_allocated;
  char text[8192];
  size_t len;
};

static void collect(void *ctx, const char *line) {
  struct lines *l = ctx;
  size_t n = strlen(line);
  l->count++;
  if (n == 0 || line[n - 1] != '\n' || memchr(line, '\n', n - 1) != NULL)
    l->bad++;
  if (strstr(line, "allocated") != NULL)
    l->mentions_allocated = 1;
  if (l->len + n < sizeof l->text) {
    memcpy(l->text + l->len, line, n + 1);
    l->len += n;
  }
}

static void test_stats_print(void) {
  void *keep = malloc(1000); /* something to report */
  static struct lines l;
  api.stats_print(collect, &l);
  CHECK(l.count >= 2);
  CHECK(l.bad == 0);
  CHECK(l.mentions_allocated);
  if (l.count < 2 || l.bad || !l.mentions_allocated)
    fprintf(stderr, "ptrs_stats_print wrote %d lines:\n%s", l.count, l.text);

  /* NULL callback: the table goes to stderr (fd 2). */
  char path[] = "/tmp/tst-ptrs-api-XXXXXX";
  int fd = mkstemp(path);
  CHECK(fd >= 0);
  if (fd >= 0) {
    unlink(path);
    fflush(stderr);
    int saved = dup(2);
    CHECK(saved >= 0);
    dup2(fd, 2);
    api.stats_print(NULL, NULL);
    dup2(saved, 2);
    close(saved);
    char buf[8192];
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    close(fd);
    CHECK(n > 0);
    buf[n > 0 ? n : 0] = '\0';
    CHECK(strstr(buf, "allocated") != NULL);
    int lines = 0;
    for (ssize_t i = 0; i < n; i++)
      lines += buf[i] == '\n';
    CHECK(lines >= 2);
    CHECK(n > 0 && buf[n - 1] == '\n');
  }
  free(keep);
}

/* ---- ptrs_set_oom_handler ---- */

static size_t oom_size_1, oom_size_2;
static int oom_calls_1, oom_calls_2;
static void oom_1(size_t size) {
  oom_size_1 = size;
  oom_calls_1++;
}
static void oom_2(size_t size) {
  oom_size_2 = size;
  oom_calls_2++;
}

static void test_oom_handler(void) {
  CHECK(api.set_oom_handler(oom_1) == NULL); /* none set at start */
  CHECK(api.set_oom_handler(oom_2) == oom_1);
  CHECK(api.set_oom_handler(oom_1) == oom_2);

  size_t impossible = SIZE_MAX / 2;
  errno = 0;
  void *p = malloc(test_size(impossible));
  CHECK(p == NULL);
  CHECK(errno == ENOMEM);
  CHECK(oom_calls_1 == 1 && oom_size_1 == impossible);
  CHECK(oom_calls_2 == 0);

  /* Successful allocations do not call it. */
  void *q = malloc(100);
  CHECK(q != NULL);
  CHECK(oom_calls_1 == 1);

  /* realloc failing leaves the block alone and reports the new size. */
  errno = 0;
  void *r = realloc(q, test_size(impossible + 1));
  CHECK(r == NULL);
  CHECK(errno == ENOMEM);
  CHECK(oom_calls_1 == 2 && oom_size_1 == impossible + 1);
  CHECK(api.owns(q) == 1);
  free(q);

  CHECK(api.set_oom_handler(oom_2) == oom_1);
  errno = 0;
  p = calloc(test_size(impossible), 1);
  CHECK(p == NULL && errno == ENOMEM);
  CHECK(oom_calls_2 == 1 && oom_size_2 == impossible);
  CHECK(oom_calls_1 == 2);

  /* NULL removes it: a failure then calls nothing. */
  CHECK(api.set_oom_handler(NULL) == oom_2);
  CHECK(api.set_oom_handler(NULL) == NULL);
  errno = 0;
  p = malloc(test_size(impossible));
  CHECK(p == NULL && errno == ENOMEM);
  CHECK(oom_calls_1 == 2 && oom_calls_2 == 1);
}

int main(void) {
  require_ptrs();
  RESOLVE(version);
  RESOLVE(owns);
  RESOLVE(usable_size);
  RESOLVE(stats_get);
  RESOLVE(purge);
  RESOLVE(stats_print);
  RESOLVE(set_oom_handler);

  test_version();
  test_owns_and_usable_size();
  test_stats();
  test_stats_print();
  test_oom_handler();
  return test_result();
}
