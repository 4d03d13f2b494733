/* realloc that shrinks a large or huge block to half its size or more
 * keeps it where it is and gives back the memory past the new size
 * (src/alloc.rs realloc_generic, heap::shrink_large_in_place,
 * huge::resize's SHRINK_KEEP_MAX). Before, both kept their whole memory
 * resident until the block was freed, even through malloc_trim (a
 * tester: 100 MB shrunk to 50 MB kept 100 MB, glibc 50 MB; 8 blocks of
 * 1.9 MB shrunk to 1 MB kept 17 MB after malloc_trim, glibc 9 MB).
 *
 * Checks: the block stays in place with its contents, its usable size
 * follows the new size, and RSS falls by most of what was cut, for a huge
 * block at once and for large blocks after malloc_trim(0). The large
 * blocks' freed slices serve the next large allocation of this thread. */
#include "test_helper.h"
#include <malloc.h>

static void fill(unsigned char *p, size_t n, unsigned seed) {
  for (size_t i = 0; i < n; i += 4096)
    p[i] = (unsigned char)(seed + i / 4096);
  p[n - 1] = (unsigned char)seed;
}

static int check(const unsigned char *p, size_t n, size_t written, unsigned seed) {
  for (size_t i = 0; i < n; i += 4096)
    if (p[i] != (unsigned char)(seed + i / 4096))
      return 0;
  return n < written || p[written - 1] == (unsigned char)seed;
}

#define HUGE_FROM (100u * 1000 * 1000)
#define HUGE_TO (50u * 1000 * 1000)
#define LARGE_COUNT 8
#define LARGE_FROM 1900000
#define LARGE_TO (1 << 20)

int main(void) {
  require_ptrs();

  /* A huge block: the tail goes at once. */
  size_t start = rss_bytes();
  unsigned char *h = malloc(HUGE_FROM);
  if (h == NULL)
    FAIL_EXIT("malloc(%u) failed", HUGE_FROM);
  fill(h, HUGE_FROM, 7);
  size_t full = rss_bytes();
  unsigned char *h2 = realloc(h, HUGE_TO);
  size_t cut = rss_bytes();
  printf("huge: RSS at start %zu KiB, with 100 MB %zu KiB, after the shrink to 50 MB %zu KiB\n",
         start >> 10, full >> 10, cut >> 10);
  CHECK(h2 == h);
  CHECK(h2 != NULL && malloc_usable_size(h2) >= HUGE_TO &&
        malloc_usable_size(h2) < HUGE_TO + (1u << 20));
  CHECK(h2 != NULL && check(h2, HUGE_TO, HUGE_FROM, 7));
  CHECK(cut + (40u << 20) <= full);
  free(h2);

  /* Large blocks: their tails become free slices of the heap. */
  static unsigned char *b[LARGE_COUNT];
  start = rss_bytes();
  for (int i = 0; i < LARGE_COUNT; i++) {
    b[i] = malloc(LARGE_FROM);
    if (b[i] == NULL)
      FAIL_EXIT("malloc(%d) failed", LARGE_FROM);
    fill(b[i], LARGE_FROM, 11 + i);
  }
  full = rss_bytes();
  for (int i = 0; i < LARGE_COUNT; i++) {
    unsigned char *q = realloc(b[i], LARGE_TO);
    CHECK(q == b[i]);
    if (q == NULL)
      FAIL_EXIT("realloc to %d failed", LARGE_TO);
    CHECK(malloc_usable_size(q) >= LARGE_TO && malloc_usable_size(q) < LARGE_TO + (64u << 10));
    CHECK(check(q, LARGE_TO, LARGE_FROM, 11 + i));
  }
  malloc_trim(0);
  cut = rss_bytes();
  printf("large: RSS at start %zu KiB, with 8 x 1.9 MB %zu KiB, after the shrinks to 1 MiB "
         "and malloc_trim %zu KiB\n",
         start >> 10, full >> 10, cut >> 10);
  CHECK(cut + (5u << 20) <= full);
  /* The blocks can grow back, in place or not, with their contents. */
  for (int i = 0; i < LARGE_COUNT; i++) {
    unsigned char *q = realloc(b[i], LARGE_FROM);
    if (q == NULL)
      FAIL_EXIT("realloc back to %d failed", LARGE_FROM);
    CHECK(check(q, LARGE_TO, LARGE_FROM, 11 + i));
    fill(q, LARGE_FROM, 11 + i);
    b[i] = q;
  }
  for (int i = 0; i < LARGE_COUNT; i++) {
    CHECK(check(b[i], LARGE_FROM, LARGE_FROM, 11 + i));
    free(b[i]);
  }
  return test_result();
}
