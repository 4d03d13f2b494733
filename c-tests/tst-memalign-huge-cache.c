/* Blocks aligned above 64 KiB are huge mappings, and freed ones are kept
 * in the huge-block cache for the next aligned request (src/huge.rs,
 * alloc_with: a cached mapping has its header at its 4 MiB-aligned base,
 * so it serves any alignment below 4 MiB). Before, each such block was a
 * fresh mmap, mprotect and munmap (a tester's memalign(128 KiB) loop:
 * 0.94 s, glibc 0.62, mimalloc 0.009). A first version took a cached
 * mapping shorter than the new block's offset and crashed.
 *
 * Random alignments from 128 KiB to 8 MiB (the two largest are not
 * cached) and sizes from 1 B to twice the alignment, in a window of live
 * blocks, with plain huge mallocs mixed in; every block is checked for
 * its alignment and usable size, stamped, and verified before it is
 * freed. Then the pattern that crashed: small aligned mappings freed into
 * the cache, then a large alignment. */
#include "test_helper.h"
#include <malloc.h>

#define WINDOW 48
#define ITERS 4000

static uint64_t rng = 88172645463325252ull;
static uint64_t next(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}

struct slot {
  char *p;
  size_t size;
  int seed;
};

/* Stamp the first and last 4 KiB (or all of a smaller block). */
static void stamp(struct slot *s) {
  size_t head = s->size < 4096 ? s->size : 4096;
  fill_pattern(s->p, head, s->seed);
  if (s->size > 8192)
    fill_pattern(s->p + s->size - 4096, 4096, s->seed + 1);
}

static void verify_free(struct slot *s) {
  if (s->p == NULL)
    return;
  size_t head = s->size < 4096 ? s->size : 4096;
  CHECK(check_pattern(s->p, head, s->seed) == PATTERN_OK);
  if (s->size > 8192)
    CHECK(check_pattern(s->p + s->size - 4096, 4096, s->seed + 1) == PATTERN_OK);
  free(s->p);
  s->p = NULL;
}

int main(void) {
  require_ptrs();
  static struct slot w[WINDOW];
  for (int i = 0; i < ITERS; i++) {
    struct slot *s = &w[next() % WINDOW];
    verify_free(s);
    uint64_t r = next();
    size_t align = (size_t)128 << 10 << (r % 7); /* 128 KiB .. 8 MiB */
    size_t size = 1 + (size_t)((r >> 8) % (2 * align));
    void *p = NULL;
    if ((r >> 40) % 8 == 0) {
      size = (size_t)3 << 20; /* a plain huge block, cached the same way */
      p = malloc(size);
      CHECK(p != NULL);
    } else {
      int e = posix_memalign(&p, align, size);
      CHECK(e == 0);
      if (e != 0)
        p = NULL;
      else
        CHECK(((uintptr_t)p & (align - 1)) == 0);
    }
    if (p == NULL)
      continue;
    CHECK(malloc_usable_size(p) >= size);
    s->p = p;
    s->size = size;
    s->seed = i;
    stamp(s);
  }
  for (int k = 0; k < WINDOW; k++)
    verify_free(&w[k]);

  /* Small aligned mappings into the cache, then larger alignments that a
   * cached mapping shorter than their offset must not serve. */
  for (int round = 0; round < 20; round++) {
    void *small[8];
    for (int k = 0; k < 8; k++) {
      CHECK(posix_memalign(&small[k], 128 << 10, 100) == 0);
      memset(small[k], 1, 100);
    }
    for (int k = 0; k < 8; k++)
      free(small[k]);
    size_t align = (size_t)1 << (18 + round % 4); /* 256 KiB .. 2 MiB */
    char *big = NULL;
    CHECK(posix_memalign((void **)&big, align, 1000) == 0);
    if (big != NULL) {
      CHECK(((uintptr_t)big & (align - 1)) == 0);
      memset(big, 2, 1000);
      free(big);
    }
  }
  return test_result();
}
