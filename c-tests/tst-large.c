/* Large blocks up to 64 MiB: writable over their whole size, zeroed by
 * calloc, and realloc grows and shrinks them preserving their content. */
#include "test_helper.h"
#include <malloc.h>

static void fill64(void *p, size_t n, uint64_t seed) {
  uint64_t *w = p;
  for (size_t i = 0; i < n / 8; i++)
    w[i] = (i * 0x9e3779b97f4a7c15ULL) ^ seed;
  unsigned char *b = p;
  for (size_t i = n & ~(size_t)7; i < n; i++)
    b[i] = (unsigned char)(i ^ seed);
}

static int check64(const void *p, size_t n, uint64_t seed) {
  const uint64_t *w = p;
  for (size_t i = 0; i < n / 8; i++)
    if (w[i] != ((i * 0x9e3779b97f4a7c15ULL) ^ seed))
      return 0;
  const unsigned char *b = p;
  for (size_t i = n & ~(size_t)7; i < n; i++)
    if (b[i] != (unsigned char)(i ^ seed))
      return 0;
  return 1;
}

int main(void) {
  require_ptrs();
  static const size_t sizes[] = {
    128 << 10, (128 << 10) + 1, 1 << 20, (1 << 20) - 1, 2 << 20, 4 << 20,
    (5 << 20) + 3, 8 << 20, 16 << 20, 32 << 20, (64 << 20) - 1, 64 << 20};
  enum { NS = sizeof sizes / sizeof sizes[0] };

  /* Several live at once. */
  void *p[NS];
  for (int i = 0; i < NS; i++) {
    p[i] = malloc(sizes[i]);
    CHECK(p[i] != NULL);
    if (p[i] == NULL)
      continue;
    CHECK(is_aligned(p[i], 16) && test_owns(p[i]));
    CHECK(malloc_usable_size(p[i]) >= sizes[i]);
    fill64(p[i], sizes[i], i);
  }
  for (int i = 0; i < NS; i++)
    if (p[i]) {
      CHECK(check64(p[i], sizes[i], i));
      free(p[i]);
    }

  /* calloc of large blocks is zeroed, also when reusing dirty memory. */
  for (int round = 0; round < 3; round++) {
    size_t n = (24 << 20) + (size_t)round * 4096;
    unsigned char *d = malloc(n);
    CHECK(d != NULL);
    if (d) {
      memset(d, 0xee, n);
      free(d);
    }
    uint64_t *c = calloc(1, n);
    CHECK(c != NULL);
    if (c) {
      size_t nz = 0;
      for (size_t i = 0; i < n / 8; i++)
        nz += c[i] != 0;
      CHECK(nz == 0);
      free(c);
    }
  }

  /* realloc chain through large sizes. */
  static const size_t chain[] = {1 << 20, 8 << 20, 64 << 20, 3 << 20,
                                 100 << 10, 200, 48 << 20, (48 << 20) + 5,
                                 (16 << 20) - 7, 40 << 20, 1000};
  size_t cur = chain[0];
  void *b = malloc(cur);
  CHECK(b != NULL);
  if (b == NULL)
    return test_result();
  fill64(b, cur, 1234);
  for (size_t i = 1; i < sizeof chain / sizeof chain[0]; i++) {
    size_t next = chain[i];
    void *q = realloc(b, next);
    CHECK(q != NULL);
    if (q == NULL)
      break;
    size_t keep = cur < next ? cur : next;
    int ok = check64(q, keep & ~(size_t)7, 1234);
    if (!ok)
      fprintf(stderr, "realloc %zu -> %zu lost content\n", cur, next);
    CHECK(ok);
    CHECK(malloc_usable_size(q) >= next);
    b = q;
    cur = next;
    fill64(b, cur, 1234);
  }
  free(b);
  return test_result();
}
