/* A huge block grown by realloc in 4 KiB steps from 2 MiB to 24 MiB
 * (a buffer appended to), then shrunk in steps back to 2 MiB: every byte
 * written survives every step (in place, or moved with mremap),
 * malloc_usable_size stays within a page of the size asked for, and the
 * bytes allocated that ptrs_stats_get reports follow the block
 * (mallinfo2's hblkhd is the mapped bytes, as glibc's). */
#include "test_helper.h"
#include "ptrs.h"
#include <malloc.h>

#define STEP 4096
#define FROM ((size_t)2 << 20)
#define TO ((size_t)24 << 20)

static int (*stats_get)(ptrs_stats *);

static size_t in_use(void) {
  ptrs_stats st;
  if (stats_get(&st) != 0)
    FAIL_EXIT("ptrs_stats_get failed");
  return st.allocated;
}

int main(void) {
  require_ptrs();
  stats_get = (int (*)(ptrs_stats *))ptrs_symbol("ptrs_stats_get");
  if (stats_get == NULL)
    FAIL_EXIT("ptrs_stats_get missing");
  size_t base = in_use();
  unsigned char *p = malloc(FROM);
  CHECK(p != NULL);
  if (p == NULL)
    return test_result();
  for (size_t off = 0; off < FROM; off += STEP)
    p[off] = (unsigned char)(off / STEP * 7 + 1);
  for (size_t n = FROM + STEP; n <= TO; n += STEP) {
    p = realloc(p, n);
    if (p == NULL)
      FAIL_EXIT("realloc to %zu failed", n);
    p[n - STEP] = (unsigned char)((n - STEP) / STEP * 7 + 1);
    size_t usable = malloc_usable_size(p);
    if (usable < n || usable > n + STEP)
      FAIL_EXIT("size %zu: usable %zu", n, usable);
    if (n % ((size_t)1 << 20) == 0) {
      size_t used = in_use() - base;
      if (used < n || used > n + (64 << 10))
        FAIL_EXIT("size %zu: %zu bytes in use", n, used);
    }
  }
  for (size_t off = 0; off < TO; off += STEP)
    if (p[off] != (unsigned char)(off / STEP * 7 + 1))
      FAIL_EXIT("byte at %zu changed after growth", off);
  for (size_t n = TO - STEP; n >= FROM; n -= 64 * STEP) {
    p = realloc(p, n);
    CHECK(p != NULL);
    if (p == NULL)
      return test_result();
    CHECK(malloc_usable_size(p) >= n && malloc_usable_size(p) <= n + STEP);
    for (size_t off = 0; off < n; off += STEP)
      if (p[off] != (unsigned char)(off / STEP * 7 + 1))
        FAIL_EXIT("byte at %zu changed after shrink to %zu", off, n);
  }
  free(p);
  CHECK(in_use() <= base + (64 << 10));
  return test_result();
}
