/* Cost of a malloc+free pair with the heap profiler sampling every
 * allocation (PTRS_PROFILE_RATE=1) at a given stack depth.
 *
 *   gcc -O2 -o build/profile_rate1 bench/profile_rate1.c
 *   LD_PRELOAD=target/release/libptrs.so PTRS_PROFILE=/tmp/p PTRS_PROFILE_RATE=1 \
 *       build/profile_rate1 DEPTH N
 *
 * Prints ns per pair. The recursion is built with -O2 (no frame pointers,
 * like Debian's code), so every frame needs the DWARF unwinder. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static volatile long sink;

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

__attribute__((noinline)) static void work(long n) {
  for (long i = 0; i < n; i++) {
    char *p = malloc(32 + (i & 63));
    p[0] = (char)i;
    sink += p[0];
    free(p);
  }
}

__attribute__((noinline)) static long recurse(int depth, long n) {
  if (depth <= 1) {
    work(n);
    return 1;
  }
  long r = recurse(depth - 1, n) + 1;
  sink += r;
  return r;
}

int main(int argc, char **argv) {
  int depth = argc > 1 ? atoi(argv[1]) : 10;
  long n = argc > 2 ? atol(argv[2]) : 200000;
  recurse(depth, n / 10); /* warm the caches */
  double t0 = now();
  recurse(depth, n);
  double t = now() - t0;
  printf("depth %d: %.1f ns per malloc+free pair\n", depth, t * 1e9 / n);
  return 0;
}
