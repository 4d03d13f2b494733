/* malloc_usable_size: 0 for NULL; otherwise at least the requested size,
 * the same on every call until the block is freed, and every usable byte
 * can be written and read back. */
#include "test_helper.h"
#include <malloc.h>

static void check_block(void *p, size_t n, uint32_t seed) {
  CHECK(p != NULL);
  if (p == NULL)
    return;
  size_t u = malloc_usable_size(p);
  if (u < n)
    fprintf(stderr, "usable size %zu < requested %zu\n", u, n);
  CHECK(u >= n);
  fill_pattern(p, u, seed);
  CHECK(malloc_usable_size(p) == u);
  CHECK(check_pattern(p, u, seed) == PATTERN_OK);
}

int main(void) {
  require_ptrs();
  CHECK(malloc_usable_size(NULL) == 0);

  /* Several blocks live together, each filled to its usable size, so an
   * over-reported usable size would corrupt a neighbour. */
  enum { N = 600 };
  static void *p[N];
  static size_t req[N], use[N];
  uint64_t rng = 5;
  for (int i = 0; i < N; i++) {
    size_t n = (i < 300) ? (size_t)i : splitmix64(&rng) % (300000 >> (i % 6));
    p[i] = malloc(n);
    req[i] = n;
    check_block(p[i], n, i);
    use[i] = p[i] ? malloc_usable_size(p[i]) : 0;
  }
  int bad = 0, changed = 0;
  for (int i = 0; i < N; i++) {
    if (p[i] == NULL)
      continue;
    if (malloc_usable_size(p[i]) != use[i])
      changed++;
    if (check_pattern(p[i], use[i], i) != PATTERN_OK)
      bad++;
  }
  CHECK(bad == 0);
  CHECK(changed == 0);
  for (int i = 0; i < N; i++)
    free(p[i]);
  (void)req;

  /* Other allocation functions. */
  void *c = calloc(33, 3);
  check_block(c, 99, 1);
  free(c);
  void *a = memalign(256, 1000);
  check_block(a, 1000, 2);
  free(a);
  void *al = aligned_alloc(4096, 5000);
  check_block(al, 5000, 3);
  free(al);
  void *pm = NULL;
  CHECK(posix_memalign(&pm, 64, 777) == 0);
  check_block(pm, 777, 4);
  free(pm);
  void *r = malloc(10);
  check_block(r, 10, 5);
  void *r2 = realloc(r, 50000);
  check_block(r2, 50000, 6);
  void *r3 = realloc(r2 ? r2 : r, 12);
  check_block(r3, 12, 7);
  free(r3);
  void *big = malloc(20 << 20);
  check_block(big, 20 << 20, 8);
  free(big);
  return test_result();
}
