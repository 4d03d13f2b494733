/* realloc: NULL pointer is malloc, size 0 frees and returns NULL (glibc),
 * content is preserved over growth and shrinking through all size ranges,
 * a failed realloc leaves the block intact, and a successful one leaves
 * errno alone (a huge block grown past a neighbour: mremap's first try in
 * place fails with ENOMEM before the move succeeds). */
#include "test_helper.h"
#include <malloc.h>

int main(void) {
  require_ptrs();

  /* realloc(NULL, n) behaves as malloc(n). */
  void *p = realloc(NULL, 100);
  CHECK(p != NULL);
  CHECK(is_aligned(p, 16) && test_owns(p));
  CHECK(malloc_usable_size(p) >= 100);
  free(p);
  p = realloc(NULL, test_size(0));
  CHECK(p != NULL); /* like malloc(0) */
  free(p);

  /* realloc(p, 0) frees p and returns NULL. */
  p = malloc(50);
  CHECK(p != NULL);
  CHECK(realloc(p, test_size(0)) == NULL);
  struct mallinfo2 before = mallinfo2();
  for (int i = 0; i < 2000; i++) {
    void *q = malloc(8000);
    CHECK(q != NULL);
    memset(q, 1, 8000);
    void *r = realloc(q, test_size(0));
    CHECK(r == NULL);
    if (r != NULL)
      break;
  }
  struct mallinfo2 after = mallinfo2();
  /* 2000 leaked blocks of 8000 bytes would be 16 MB. */
  CHECK(after.uordblks + after.hblkhd <
        before.uordblks + before.hblkhd + 4 * 1024 * 1024);

  /* Content preservation: small -> large -> huge -> small. */
  static const size_t chain[] = {1, 17, 100, 1000, 5000, 70000, 1 << 20,
                                 16 << 20, 3 << 20, 200 << 10, 30000, 1000,
                                 100, 3, 64, 64, 65, 130 << 10, 130 << 10,
                                 24, 40 << 20, 9};
  size_t cur = chain[0];
  p = malloc(cur);
  CHECK(p != NULL);
  if (p == NULL)
    return test_result();
  fill_pattern(p, cur, 99);
  for (size_t i = 1; i < sizeof chain / sizeof chain[0]; i++) {
    size_t next = chain[i];
    void *q = realloc(p, next);
    CHECK(q != NULL);
    if (q == NULL) {
      free(p);
      return test_result();
    }
    CHECK(is_aligned(q, 16));
    CHECK(malloc_usable_size(q) >= next);
    size_t keep = cur < next ? cur : next;
    size_t bad = check_pattern(q, keep, 99);
    if (bad != PATTERN_OK)
      fprintf(stderr, "realloc %zu -> %zu: byte %zu differs\n", cur, next,
              bad);
    CHECK(bad == PATTERN_OK);
    p = q;
    cur = next;
    fill_pattern(p, cur, 99);
  }
  free(p);

  /* A realloc that cannot be satisfied returns NULL with ENOMEM and
   * leaves the old block alone. */
  static const size_t olds[] = {40, 4000, 300000};
  for (size_t i = 0; i < 3; i++) {
    p = malloc(olds[i]);
    CHECK(p != NULL);
    if (p == NULL)
      continue;
    fill_pattern(p, olds[i], 5);
    static const size_t huge[] = {SIZE_MAX, SIZE_MAX - 4096,
                                  (size_t)PTRDIFF_MAX + 1, (size_t)1 << 62};
    for (size_t h = 0; h < 4; h++) {
      errno = 0;
      void *q = realloc(p, test_size(huge[h]));
      CHECK(q == NULL);
      CHECK(errno == ENOMEM);
      if (q != NULL) {
        p = q;
        break;
      }
    }
    CHECK(check_pattern(p, olds[i], 5) == PATTERN_OK);
    CHECK(malloc_usable_size(p) >= olds[i]);
    void *q = realloc(p, olds[i] * 2);
    CHECK(q != NULL);
    if (q) {
      CHECK(check_pattern(q, olds[i], 5) == PATTERN_OK);
      p = q;
    }
    free(p);
  }

  for (int k = 0; k < 8; k++) {
    char *h = malloc(5 << 20);
    void *next = malloc(1 << 20); /* likely right after it: growth moves */
    CHECK(h != NULL && next != NULL);
    if (h == NULL)
      break;
    memset(h, 7, 5 << 20);
    errno = 777;
    char *g = realloc(h, (size_t)(15 + k) << 20);
    CHECK(g != NULL);
    CHECK(errno == 777);
    if (g != NULL) {
      CHECK(g[0] == 7 && g[(5 << 20) - 1] == 7);
      free(g);
    }
    free(next);
  }
  return test_result();
}
