/* Memory lifecycle: a small page made on slices that held written memory
 * does not keep its uncarved tail resident past the purge delay
 * (src/heap.rs, purge_first_page_tail and purge_page_tails).
 *
 * A page carves its blocks a few at a time. A page of a class the program
 * uses for one or two blocks (here 40 KiB blocks, whose pages span 512
 * KiB) takes the free slices that fit best; when an earlier large block
 * had written them, the rest of the page stayed resident for as long as
 * the page lived (the realloc-growth workload, lifecycle reallocgrow:
 * 20 such pages, up to 6 MiB with the heap profiler on).
 *
 * Two cases. The first page of a class in a heap gives its tail back at
 * once (purge_first_page_tail): the test writes a 512 KiB block, frees
 * it, and at once allocates a 48 KiB block, whose new page takes those
 * slices; its tail must not be resident. A later page of the class is
 * left to the purge ticks (purge_page_tails): with a full page of 40 KiB
 * blocks live, the same steps make a second page on written slices,
 * whose tail is then resident (mincore), which shows the case was set
 * up; after three purge delays and slow paths (which run the heap's
 * purge tick), at most 16 KiB of it may be resident.
 */
#define _DEFAULT_SOURCE
#include "test_helper.h"
#include <sys/mman.h>
#include <unistd.h>

#define BIG (512u << 10)
#define SMALL (40u << 10)
#define PER_PAGE 12 /* blocks of 40 KiB in a 512 KiB page */
#define FIRST (48u << 10)

/* Resident KiB of [p, p + len), p and len multiples of 4 KiB. */
static long resident_kib(char *p, size_t len) {
  unsigned char vec[BIG / 4096];
  if (len / 4096 > sizeof vec || mincore(p, len, vec) != 0)
    FAIL_EXIT("mincore failed");
  long n = 0;
  for (size_t i = 0; i < len / 4096; i++)
    n += vec[i] & 1;
  return n * 4;
}

/* Writes and frees a 512 KiB block, then allocates a block of `size`
 * bytes that takes its slices in a new page; returns the block, and in
 * *tail and *end the range of the page's tail (from the first 4 KiB
 * boundary past the block to where the big block ended). */
static char *page_on_written_slices(size_t size, char **tail, char **end) {
  char *big = malloc(BIG - 64);
  if (big == NULL)
    FAIL_EXIT("malloc failed");
  memset(big, 1, BIG - 64);
  free(big);
  char *small = malloc(size);
  if (small == NULL)
    FAIL_EXIT("malloc failed");
  memset(small, 2, size);
  *tail = (char *)(((uintptr_t)small + size + 4095) & ~(uintptr_t)4095);
  *end = (char *)(((uintptr_t)big + BIG - 64) & ~(uintptr_t)4095);
  if (small != big || *end <= *tail)
    FAIL_EXIT("setup: the %zu-byte block did not take the freed slices (%p, big %p)", size, (void *)small, (void *)big);
  return small;
}

int main(void) {
#ifndef NO_PTRS
  require_ptrs();
#endif
  /* Warm up: the thread's heap and a segment with room. */
  free(malloc(100));
  char *tail, *end;

  /* The first page of the 48 KiB class. */
  char *first = page_on_written_slices(FIRST, &tail, &end);
  long at_once = resident_kib(tail, (size_t)(end - tail));
  printf("first page of a class: %ld KiB of its %ld KiB tail resident\n", at_once, (long)((end - tail) >> 10));
  if (at_once > 16)
    FAIL_EXIT("%ld KiB of the first page's uncarved tail resident", at_once);

  /* A second page of the 40 KiB class: the first one full (12 blocks). */
  char *fill[PER_PAGE];
  for (int i = 0; i < PER_PAGE; i++)
    if ((fill[i] = malloc(SMALL)) == NULL)
      FAIL_EXIT("malloc failed");
  char *small = page_on_written_slices(SMALL, &tail, &end);
  long before = resident_kib(tail, (size_t)(end - tail));
  if (before < 256)
    FAIL_EXIT("setup: only %ld KiB of the tail resident before the tick", before);
  for (int k = 0; k < 6; k++) {
    usleep(15000);
    /* Slow paths of the owner: a large block (alloc_large) and a new
     * small class (refill). */
    void *volatile l = malloc(300u << 10);
    void *volatile s = malloc(3000 + k * 16);
    free(l);
    free(s);
  }
  long after = resident_kib(tail, (size_t)(end - tail));
  printf("tail of %ld KiB: %ld KiB resident before, %ld KiB after\n", (long)((end - tail) >> 10), before, after);
  if (after > 16)
    FAIL_EXIT("%ld KiB of the page's uncarved tail still resident after three purge delays", after);
  free(small);
  for (int i = 0; i < PER_PAGE; i++)
    free(fill[i]);
  free(first);
  return 0;
}
