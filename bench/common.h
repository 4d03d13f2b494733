/* Shared helpers for the ptrs benchmark workloads (the C files in bench/).
 *
 * Every workload prints its results as "key=value" lines on stdout; the
 * driver (scripts/bench.sh) stores them in bench/raw.csv.  The amount of
 * work is multiplied by the environment variable BENCH_SCALE (default 1).
 */
#ifndef PTRS_BENCH_COMMON_H
#define PTRS_BENCH_COMMON_H

#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static inline double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* xorshift64* : small, fast, good enough for picking sizes and slots. */
static inline uint64_t rng_next(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1DULL;
}

static inline uint64_t rng_seed(uint64_t k)
{
    uint64_t s = 0x9E3779B97F4A7C15ULL * (k + 1) ^ 0xD1B54A32D192ED03ULL;
    return s ? s : 1;
}

/* uniform in [lo, hi] */
static inline size_t rng_range(uint64_t *s, size_t lo, size_t hi)
{
    return lo + (size_t)(rng_next(s) % (uint64_t)(hi - lo + 1));
}

/* uniform double in [0, 1) */
static inline double rng_unit(uint64_t *s)
{
    return (double)(rng_next(s) >> 11) * (1.0 / 9007199254740992.0);
}

static inline double bench_scale(void)
{
    const char *e = getenv("BENCH_SCALE");
    double v = e ? atof(e) : 1.0;
    return v > 0 ? v : 1.0;
}

static inline long scaled(long base)
{
    double v = (double)base * bench_scale();
    return v < 1 ? 1 : (long)v;
}

static inline long arg_long(int argc, char **argv, int i, long def)
{
    if (argc > i) {
        long v = strtol(argv[i], NULL, 10);
        if (v > 0)
            return v;
    }
    return def;
}

/* Resident set size in KiB, from /proc/self/statm. */
static inline long rss_kb(void)
{
    long size = 0, res = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f)
        return -1;
    if (fscanf(f, "%ld %ld", &size, &res) != 2)
        res = -1;
    fclose(f);
    return res < 0 ? -1 : res * (sysconf(_SC_PAGESIZE) / 1024);
}

/* Keep the compiler from eliding allocations (gcc may remove an unused
 * malloc/free pair). */
static inline void escape(void *p)
{
    __asm__ volatile("" : : "g"(p) : "memory");
}

static inline void die(const char *msg)
{
    fprintf(stderr, "bench: %s\n", msg);
    exit(2);
}

static inline void *xmalloc(size_t n)
{
    void *p = malloc(n);
    if (!p)
        die("out of memory");
    return p;
}

#endif
