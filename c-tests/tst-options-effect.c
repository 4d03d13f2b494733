/* Options tested by their effect, not by reading them back:
 * - PTRS_LARGE_THRESHOLD (here 128 KiB) and mallopt(M_MMAP_THRESHOLD):
 *   a block above the threshold gets its own mapping (mallinfo2's hblks
 *   and hblkhd grow, and free gives the mapping back), one at the
 *   threshold does not;
 * - PTRS_RETAIN (here 16 MiB) and mallopt(M_TRIM_THRESHOLD): after 48 MiB
 *   of 1 MiB blocks are freed, the address space the process keeps
 *   (VmSize, the kernel's figure) is about the retained amount plus the
 *   one empty segment a heap keeps;
 * - PTRS_PURGE_DELAY (here 200 ms): 10 MiB of freed pages stay resident
 *   for the first delay and are returned to the system within two delays
 *   while the program keeps allocating (the README's promise).
 * (PTRS_ABORT_ON_ERROR=0 is tst-abort-off.) */
/* ENV: PTRS_LARGE_THRESHOLD=128K PTRS_RETAIN=16M PTRS_PURGE_DELAY=200 */
/* TIMEOUT: 60 */
#include "test_helper.h"
#include <fcntl.h>
#include <malloc.h>
#include <time.h>

#define MIB ((size_t)1 << 20)

/* VmSize and VmRSS in bytes, read without allocating (no stdio): reading
 * them must not be an allocator call. */
static size_t status_field(const char *name) {
  char buf[4096];
  int fd = open("/proc/self/status", O_RDONLY);
  if (fd < 0)
    FAIL_EXIT("open /proc/self/status");
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0)
    FAIL_EXIT("read /proc/self/status");
  buf[n] = '\0';
  char *at = strstr(buf, name);
  if (at == NULL)
    FAIL_EXIT("no %s", name);
  return strtoul(at + strlen(name) + 1, NULL, 10) << 10;
}
static size_t vm_size(void) { return status_field("VmSize"); }
static size_t vm_rss(void) { return status_field("VmRSS"); }

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Own mappings made by malloc(n): the change in hblks while the block is
 * live; checks hblkhd and that free gives it back. */
static int own_mapping(size_t n) {
  struct mallinfo2 a = mallinfo2();
  void *p = malloc(n);
  CHECK(p != NULL);
  memset(p, 1, n);
  struct mallinfo2 b = mallinfo2();
  free(p);
  struct mallinfo2 c = mallinfo2();
  int own = (int)(b.hblks - a.hblks);
  if (own) {
    CHECK(b.hblkhd >= a.hblkhd + n);
    CHECK(c.hblks == a.hblks);
    CHECK(c.hblkhd == a.hblkhd);
  } else {
    CHECK(b.hblkhd == a.hblkhd);
  }
  return own;
}

static void test_threshold(void) {
  CHECK(own_mapping(128 << 10) == 0);
  CHECK(own_mapping((128 << 10) + 1) == 1);
  CHECK(own_mapping(1 << 20) == 1);
  CHECK(mallopt(M_MMAP_THRESHOLD, 1 << 20) == 1);
  CHECK(own_mapping(128 << 10) == 0);
  CHECK(own_mapping(1 << 20) == 0);
  CHECK(own_mapping((1 << 20) + 1) == 1);
  CHECK(mallopt(M_MMAP_THRESHOLD, 128 << 10) == 1);
  CHECK(own_mapping((128 << 10) + 1) == 1);
}

/* Allocates 48 MiB in 1 MiB blocks (segments of their own heap's spans),
 * frees them, and returns how much address space stayed mapped two purge
 * delays later. */
static size_t kept_after_free(void) {
  enum { N = 48 };
  void *b[N];
  malloc_trim(0);
  size_t before = vm_size();
  for (int i = 0; i < N; i++) {
    b[i] = malloc(MIB);
    CHECK(b[i] != NULL);
    memset(b[i], 3, MIB);
  }
  size_t peak = vm_size();
  for (int i = 0; i < N; i++)
    free(b[i]);
  /* Freed memory stays resident (and mapped) for one to two purge delays
   * (reuse before refault); what PTRS_RETAIN bounds is what stays mapped
   * after that. Wait 2.25 delays, then make one slow-path call (a 300 KiB
   * block), where the decay tick runs. */
  usleep(450 * 1000);
  free(malloc(300 << 10));
  size_t after = vm_size();
  fprintf(stderr, "VmSize %zu MiB, with 48 MiB live %zu MiB, after free %zu MiB\n",
          before / MIB, peak / MIB, after / MIB);
  CHECK(peak >= before + N * MIB);
  return after > before ? after - before : 0;
}

static void test_retain(void) {
  CHECK(mallopt(M_MMAP_THRESHOLD, 2 << 20) == 1); /* 1 MiB from segments */
  /* Kept: the retained segments and one empty segment (4 MiB) per heap. */
  size_t kept = kept_after_free();
  fprintf(stderr, "PTRS_RETAIN=16M: %zu MiB kept\n", kept / MIB);
  CHECK(kept >= 16 * MIB);
  CHECK(kept <= (16 + 4 + 4) * MIB);
  CHECK(mallopt(M_TRIM_THRESHOLD, 0) == 1);
  kept = kept_after_free();
  fprintf(stderr, "M_TRIM_THRESHOLD 0: %zu MiB kept\n", kept / MIB);
  CHECK(kept <= (4 + 4) * MIB);
  CHECK(mallopt(M_TRIM_THRESHOLD, 32 << 20) == 1);
  kept = kept_after_free();
  fprintf(stderr, "M_TRIM_THRESHOLD 32 MiB: %zu MiB kept\n", kept / MIB);
  CHECK(kept >= 32 * MIB);
  CHECK(kept <= (32 + 4 + 4) * MIB);
  CHECK(mallopt(M_TRIM_THRESHOLD, 16 << 20) == 1);
  malloc_trim(0);
}

static void test_purge_delay(void) {
  const double delay = 200;
  enum { N = 80 };
  void *b[N];
  /* 80 spans of 256 KiB; every other one is freed, so the segments stay
   * in use and only the purge can give the freed pages back. */
  for (int i = 0; i < N; i++) {
    b[i] = malloc(256 << 10);
    CHECK(b[i] != NULL);
    memset(b[i], 5, 256 << 10);
  }
  size_t live = vm_rss();
  double t0 = now_ms();
  for (int i = 1; i < N; i += 2)
    free(b[i]);
  size_t freed = (N / 2) * ((size_t)256 << 10);
  /* Keep allocating (a large block comes and goes every 5 ms) and watch. */
  double dropped_at = -1;
  while (now_ms() - t0 < 4 * delay) {
    double t = now_ms() - t0;
    size_t rss = vm_rss();
    if (rss + freed * 3 / 4 <= live) {
      dropped_at = t;
      break;
    }
    /* (t is taken before RSS is read: a late reading counts late.) */
    void *p = malloc(300000);
    free(p);
    usleep(5000);
  }
  /* Not before the first delay, and by two delays (plus 150 ms for the
   * polling and a busy machine). */
  fprintf(stderr, "freed %zu MiB: RSS dropped by 3/4 of it after %.0f ms "
          "(delay %.0f ms)\n", freed / MIB, dropped_at, delay);
  CHECK(dropped_at >= delay);
  CHECK(dropped_at >= 0 && dropped_at <= 2 * delay + 150);
  for (int i = 0; i < N; i += 2)
    free(b[i]);
}

int main(void) {
  require_ptrs();
  test_threshold();
  test_retain();
  test_purge_delay();
  return test_result();
}
