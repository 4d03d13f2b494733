/* mallinfo2: uordblks grows by exactly the usable sizes of the small and
 * medium blocks allocated (at least the bytes asked for) and falls back to
 * where it was once they are freed; huge blocks count in uordblks + hblkhd
 * (their mappings), which also fall back after freeing; mallinfo (int
 * fields) agrees with mallinfo2. Any block not counted, or still counted
 * after its free, fails a check. Under memcheck (scripts/memcheck.sh),
 * blocks also hold a redzone of at least 16 bytes that usable sizes do not
 * count. */
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
  size_t usable = 0;
  for (int i = 0; i < N; i++)
    usable += malloc_usable_size(blocks[i]);
  if (m1.uordblks - m0.uordblks != usable)
    fprintf(stderr, "uordblks %zu -> %zu after allocating %zu bytes in blocks "
            "of %zu usable bytes\n", m0.uordblks, m1.uordblks, total, usable);
  CHECK(usable >= total);
  if (under_memcheck())
    CHECK(m1.uordblks - m0.uordblks >= usable + 16 * N);
  else
    CHECK(m1.uordblks - m0.uordblks == usable);
  /* Size classes waste at most a quarter of a block (and 16 B of a tiny one). */
  CHECK(usable <= total + total / 4 + 16 * N);

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
  if (m2.uordblks != m0.uordblks)
    fprintf(stderr, "uordblks %zu -> %zu -> %zu after freeing every block\n",
            m0.uordblks, m1.uordblks, m2.uordblks);
  CHECK(m2.uordblks == m0.uordblks);

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
  size_t grew = m3.uordblks + m3.hblkhd - (m2.uordblks + m2.hblkhd);
  fprintf(stderr, "4 x %zu bytes: uordblks + hblkhd grew by %zu\n", big, grew);
  CHECK(grew >= 4 * big);
  CHECK(grew <= 4 * (big + (1 << 20))); /* a header and rounding each */
  CHECK(m3.hblks >= m2.hblks + 4);
  for (int i = 0; i < 4; i++)
    free(l[i]);
  struct mallinfo2 m4 = mallinfo2();
  CHECK(m4.uordblks + m4.hblkhd == m2.uordblks + m2.hblkhd);
  CHECK(m4.hblks == m2.hblks);
  return test_result();
}
