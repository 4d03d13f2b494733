/* Helpers for the multi-threaded c-tests (tst-mt-*). Include this header
 * first: it includes test_helper.h, which defines _GNU_SOURCE before any
 * system header. Usable from C (gnu11) and C++ (gnu++17). */
#ifndef PTRS_MT_HELPER_H
#define PTRS_MT_HELPER_H

#if defined(__cplusplus) && defined(_GNU_SOURCE)
/* g++ predefines _GNU_SOURCE as 1; test_helper.h defines it again. */
#undef _GNU_SOURCE
#endif
#include "test_helper.h"

#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

/* Resident set size of this process in KiB, from /proc/self/statm. Uses
 * only open/read/close so that it does not allocate. Returns -1 on error. */
static inline long mt_rss_kib(void) {
  char buf[128];
  int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return -1;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0)
    return -1;
  buf[n] = '\0';
  char *s = buf;
  while (*s && *s != ' ') /* skip "size" */
    s++;
  long pages = strtol(s, NULL, 10);
  return pages * (sysconf(_SC_PAGESIZE) / 1024);
}

/* Monotonic time in milliseconds. */
static inline uint64_t mt_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static inline void mt_sleep_us(long us) {
  struct timespec ts;
  ts.tv_sec = us / 1000000;
  ts.tv_nsec = (us % 1000000) * 1000;
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

/* One round of allocator slow paths in memory the thread has already: a
 * 100 000-byte block and a 3000-byte one, allocated and freed (the
 * lifecycle tests drive ptrs's decay tick with it, as a program that keeps
 * running would). Returns 0 when an allocation failed. */
static inline int mt_slow_path_round(void) {
  void *volatile a = malloc(100000);
  void *volatile b = malloc(3000);
  int ok = a != NULL && b != NULL;
  free(a);
  free(b);
  return ok;
}

/* pthread_create that exits the test on failure. */
static inline pthread_t mt_thread_create(void *(*fn)(void *), void *arg) {
  pthread_t t;
  int err = pthread_create(&t, NULL, fn, arg);
  if (err != 0)
    FAIL_EXIT("pthread_create: %s", strerror(err));
  return t;
}

static inline void *mt_thread_join(pthread_t t) {
  void *ret = NULL;
  int err = pthread_join(t, &ret);
  if (err != 0)
    FAIL_EXIT("pthread_join: %s", strerror(err));
  return ret;
}

/* Write a string to stderr without allocating (safe in signal handlers and
 * in forked children). */
static inline void mt_write_err(const char *s) {
  size_t len = strlen(s);
  while (len > 0) {
    ssize_t n = write(2, s, len);
    if (n <= 0)
      return;
    s += n;
    len -= (size_t)n;
  }
}

/* Watchdog: a thread (with every signal blocked) that ends the process with
 * status 1 if the test has not finished after `seconds`: a hang is a
 * deadlock, and reporting it beats waiting for the runner's timeout. */
static unsigned mt_watchdog_seconds;

static inline void *mt_watchdog_main(void *arg) {
  (void)arg;
  uint64_t deadline = mt_now_ms() + (uint64_t)mt_watchdog_seconds * 1000u;
  while (mt_now_ms() < deadline)
    mt_sleep_us(100000);
  mt_write_err("error: watchdog: test did not finish in time (deadlock?)\n");
  _exit(1);
}

/* TEST_TIMEOUT_FACTOR (scripts/memcheck.sh sets it for valgrind's
 * slowdown) scales the watchdog and child deadlines. */
static inline double mt_timeout_factor(void) {
  const char *f = getenv("TEST_TIMEOUT_FACTOR");
  double v = f ? atof(f) : 1.0;
  return v > 1.0 ? v : 1.0;
}

static inline void mt_start_watchdog(unsigned seconds) {
  seconds = (unsigned)(seconds * mt_timeout_factor());
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  mt_watchdog_seconds = seconds;
  pthread_t t = mt_thread_create(mt_watchdog_main, NULL);
  pthread_detach(t);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
}

/* A request size: mostly 1..1024, some up to 64 KiB, rarely up to 4 MiB
 * (one in `huge_one_in`; 0 disables huge sizes). */
static inline size_t mt_random_size(uint64_t *rng, unsigned huge_one_in) {
  uint64_t r = splitmix64(rng);
  unsigned pick = (unsigned)(r % 1000);
  r >>= 10;
  if (huge_one_in != 0 && (r % huge_one_in) == 0)
    return 64 * 1024 + (size_t)((r >> 16) % (4 * 1024 * 1024 - 64 * 1024));
  if (pick < 900)
    return 1 + (size_t)((r >> 16) % 1024);
  return 1 + (size_t)((r >> 16) % (64 * 1024));
}

/* Stamp/verify a block of any size. Blocks up to 16 KiB are stamped whole;
 * bigger ones get their first and last 8 KiB and one 4 KiB page every
 * 256 KiB, which keeps multi-MiB blocks cheap while still catching
 * overlapping blocks. The pattern comes from stamp_block (test_helper.h). */
#define MT_STAMP_FULL (16 * 1024)
#define MT_STAMP_EDGE (8 * 1024)
#define MT_STAMP_STRIDE (256 * 1024)

static inline void mt_stamp(void *p, size_t size, uint64_t seed) {
  unsigned char *b = (unsigned char *)p;
  if (size <= MT_STAMP_FULL) {
    stamp_block(b, size, seed);
    return;
  }
  stamp_block(b, MT_STAMP_EDGE, seed);
  stamp_block(b + size - MT_STAMP_EDGE, MT_STAMP_EDGE, seed);
  for (size_t off = MT_STAMP_STRIDE; off + 4096 < size - MT_STAMP_EDGE;
       off += MT_STAMP_STRIDE)
    stamp_block(b + off, 4096, seed);
}

static inline int mt_verify(const void *p, size_t size, uint64_t seed) {
  const unsigned char *b = (const unsigned char *)p;
  if (size <= MT_STAMP_FULL)
    return verify_block(b, size, seed);
  if (!verify_block(b, MT_STAMP_EDGE, seed) ||
      !verify_block(b + size - MT_STAMP_EDGE, MT_STAMP_EDGE, seed))
    return 0;
  for (size_t off = MT_STAMP_STRIDE; off + 4096 < size - MT_STAMP_EDGE;
       off += MT_STAMP_STRIDE)
    if (!verify_block(b + off, 4096, seed))
      return 0;
  return 1;
}

/* Check that the `size` bytes at p are zero (calloc), sampled like
 * mt_verify for big blocks. */
static inline int mt_is_zero(const void *p, size_t size) {
  const unsigned char *b = (const unsigned char *)p;
  size_t n = size <= 2 * MT_STAMP_FULL ? size : MT_STAMP_FULL;
  for (size_t i = 0; i < n; i++)
    if (b[i] != 0)
      return 0;
  if (n < size) {
    for (size_t i = size - MT_STAMP_FULL; i < size; i++)
      if (b[i] != 0)
        return 0;
    for (size_t off = MT_STAMP_STRIDE; off < size; off += MT_STAMP_STRIDE)
      if (b[off] != 0)
        return 0;
  }
  return 1;
}

/* A thread-safe failure counter for worker threads (CHECK's counter is a
 * plain int); mt_fail prints like CHECK does. */
static int mt_failures;

#define MT_CHECK(expr)                                                       \
  do {                                                                       \
    if (!(expr)) {                                                           \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__,      \
              #expr);                                                        \
      __atomic_add_fetch(&mt_failures, 1, __ATOMIC_RELAXED);                 \
    }                                                                        \
  } while (0)

/* The exit status: 0 if every CHECK and MT_CHECK held. */
static inline int mt_result(void) {
  int f = __atomic_load_n(&mt_failures, __ATOMIC_RELAXED);
  if (f) {
    fprintf(stderr, "%d check(s) failed in threads\n", f);
    test_failures += f;
  }
  return test_result();
}

/* Optional argv override: argv[i] as a positive number, else `dflt`. */
static inline long mt_arg(int argc, char **argv, int i, long dflt) {
  if (argc > i) {
    long v = strtol(argv[i], NULL, 0);
    if (v > 0)
      return v;
  }
  return dflt;
}

#endif
