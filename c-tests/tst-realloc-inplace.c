/* realloc within the usable size keeps the block where it is; growing a
 * block one byte at a time does not move it on every call; shrinking and
 * growing large blocks keeps their content. */
#include "test_helper.h"
#include <malloc.h>

int main(void) {
  require_ptrs();

  /* Growing up to the usable size (and shrinking a little) is in place. */
  static const size_t sizes[] = {1, 20, 100, 1000, 3000, 20000, 100000};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    void *p = malloc(sizes[i]);
    CHECK(p != NULL);
    if (p == NULL)
      continue;
    size_t u = malloc_usable_size(p);
    CHECK(u >= sizes[i]);
    fill_pattern(p, u, 3);
    void *q = realloc(p, u);
    if (q != p)
      fprintf(stderr, "realloc(%p [usable %zu], %zu) moved to %p\n", p, u,
              u, q);
    CHECK(q == p);
    if (q == NULL) {
      free(p);
      continue;
    }
    CHECK(check_pattern(q, u, 3) == PATTERN_OK);
    /* Shrink by a little: still in place. */
    size_t smaller = u - u / 8;
    if (smaller == 0)
      smaller = 1;
    void *r = realloc(q, smaller);
    CHECK(r == q);
    if (r == NULL) {
      free(q);
      continue;
    }
    CHECK(check_pattern(r, smaller, 3) == PATTERN_OK);
    CHECK(malloc_usable_size(r) >= smaller);
    free(r);
  }

  /* Grow one byte at a time from 1 to 100000: the content survives, and
   * the block moves only when the new size exceeds its usable size (once
   * per size class and span size on the way: about 85 times), never while
   * it still fits. */
  size_t n = 1;
  unsigned char *p = malloc(n);
  CHECK(p != NULL);
  if (p == NULL)
    return test_result();
  p[0] = pattern_byte(0, 11);
  int moves = 0, corrupt = 0, outgrown = 0, moved_in_fit = 0;
  for (n = 2; n <= 100000; n++) {
    int fits = n <= malloc_usable_size(p);
    outgrown += !fits;
    unsigned char *q = realloc(p, n);
    if (q == NULL) {
      CHECK(q != NULL);
      break;
    }
    if (q != p) {
      moves++;
      moved_in_fit += fits;
      /* Verify everything when it moved. */
      if (check_pattern(q, n - 1, 11) != PATTERN_OK)
        corrupt++;
    }
    q[n - 1] = pattern_byte(n - 1, 11);
    p = q;
  }
  CHECK(corrupt == 0);
  CHECK(check_pattern(p, 100000, 11) == PATTERN_OK);
  fprintf(stderr, "%d moves for 99999 one-byte growths, %d of them past the "
          "usable size, %d moves of a block that still fit\n", moves,
          outgrown, moved_in_fit);
  CHECK(moved_in_fit == 0);
  CHECK(moves <= outgrown);
  /* Size classes are at most 25 % apart: about 4 per doubling from 16 B to
   * 64 KiB, then one per 64 KiB slice. (Under memcheck the usable size is
   * the requested one, so every growth outgrows it.) */
  if (!under_memcheck())
    CHECK(outgrown <= 100);

  /* Shrink it back one 100 bytes at a time. */
  for (n = 100000; n > 100; n -= 100) {
    unsigned char *q = realloc(p, n);
    CHECK(q != NULL);
    if (q == NULL)
      break;
    p = q;
  }
  CHECK(check_pattern(p, 100, 11) == PATTERN_OK);
  free(p);

  /* Large blocks: shrink to half and grow back. */
  size_t big = 32 << 20;
  p = malloc(big);
  CHECK(p != NULL);
  if (p == NULL)
    return test_result();
  fill_pattern(p, big, 21);
  unsigned char *q = realloc(p, big / 2);
  CHECK(q != NULL);
  if (q) {
    CHECK(check_pattern(q, big / 2, 21) == PATTERN_OK);
    p = q;
    q = realloc(p, big + 12345);
    CHECK(q != NULL);
    if (q) {
      CHECK(check_pattern(q, big / 2, 21) == PATTERN_OK);
      memset(q + big / 2, 0x5a, big / 2 + 12345);
      p = q;
    }
  }
  free(p);
  return test_result();
}
