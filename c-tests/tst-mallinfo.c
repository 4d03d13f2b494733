/* mallinfo2: uordblks grows by at least N after allocating N bytes in
 * small and medium blocks and falls again after they are freed; large
 * blocks count in uordblks + hblkhd; mallinfo (int fields) agrees with
 * mallinfo2. */
#include "test_helper.h"
#include <limits.h>
#include <malloc.h>

#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

enum { N = 4000 };
static void *blocks[N];

int main(void) {
  require_ptrs();
  struct mallinfo2 m0 = mallinfo2();

  size_t total = 0;
  for (int i = 0; i < N; i++) {
    size_t n = 16 + (size_t)(i % 200) * 157; /* 16 B .. ~31 KB */
    blocks[i] = malloc(n);
    CHECK(blocks[i] != NULL);
    if (blocks[i])
      memset(blocks[i], 1, n);
    total += n;
  }
  struct mallinfo2 m1 = mallinfo2();
  if (m1.uordblks < m0.uordblks + total)
    fprintf(stderr, "uordblks %zu -> %zu after allocating %zu bytes\n",
            m0.uordblks, m1.uordblks, total);
  CHECK(m1.uordblks >= m0.uordblks + total);
  /* And not absurdly more than asked (metadata, rounding). */
  CHECK(m1.uordblks <= m0.uordblks + total * 2 + (8 << 20));

  /* mallinfo reports the same numbers as int. */
  struct mallinfo2 a = mallinfo2();
  struct mallinfo b = mallinfo();
  CHECK(a.uordblks <= INT_MAX);
  CHECK((size_t)b.uordblks == a.uordblks);
  CHECK((size_t)b.fordblks == a.fordblks);
  CHECK((size_t)b.arena == a.arena);
  CHECK((size_t)b.hblkhd == a.hblkhd);
  CHECK((size_t)b.hblks == a.hblks);
  CHECK(b.uordblks >= 0 && b.fordblks >= 0 && b.arena >= 0);

  for (int i = 0; i < N; i++)
    free(blocks[i]);
  struct mallinfo2 m2 = mallinfo2();
  if (m2.uordblks + total / 2 > m1.uordblks)
    fprintf(stderr, "uordblks %zu -> %zu after freeing %zu bytes\n",
            m1.uordblks, m2.uordblks, total);
  CHECK(m2.uordblks + total / 2 <= m1.uordblks);
  CHECK(m2.uordblks <= m0.uordblks + (4 << 20));

  /* Large blocks: counted in uordblks or hblkhd. */
  size_t big = 8 << 20;
  void *l[4];
  for (int i = 0; i < 4; i++) {
    l[i] = malloc(big);
    CHECK(l[i] != NULL);
    if (l[i])
      memset(l[i], 2, big);
  }
  struct mallinfo2 m3 = mallinfo2();
  CHECK(m3.uordblks + m3.hblkhd >= m2.uordblks + m2.hblkhd + 4 * big);
  for (int i = 0; i < 4; i++)
    free(l[i]);
  struct mallinfo2 m4 = mallinfo2();
  CHECK(m4.uordblks + m4.hblkhd + 2 * big <= m3.uordblks + m3.hblkhd);
  return test_result();
}
