/* Large blocks (64 KiB to 640 KiB: spans of slices in segments) in a heap
 * of many segments, allocated, freed and reallocated in the patterns that
 * the span search's shortcuts are for (src/heap.rs: the segments where
 * spans were freed lately, `Heap::span_hints`; the next-fit start,
 * `Heap::span_cursor`; the end learnt from a failed search,
 * `Heap::no_fit_stop`), for plain and aligned blocks: growth with no
 * free block, every other block freed and allocated again, random
 * replacement, with malloc_trim(0) between rounds so that segments left
 * empty leave the heap while the shortcuts may name them, and a second
 * thread that adopts the first one's heap after it exits and frees its
 * blocks.
 *
 * Before the shortcuts a search read the header of every segment until it
 * found a fit all resident: 20 000 blocks of 256 KiB averaged 9.3 us per
 * malloc and touch (mimalloc 2.3), and 10 000 blocks of 600 000 bytes
 * allocated into the holes of as many freed ones 25 us each (mimalloc
 * 0.2); the figures are in the benchmark notes, not checked here.
 *
 * Checked: every block keeps a stamp (its number and a fill byte) at each
 * 16 KiB and in its last byte through all of it, so two blocks sharing a
 * slice, or a block in a segment that left the heap, are seen. */
#include "mt_helper.h"

#include <malloc.h>
#include <stdint.h>
#include <string.h>

#define KiB ((size_t)1 << 10)
#define STRIDE (16 * KiB)

struct block {
  unsigned char *p;
  size_t size, align;
  uint32_t id;
};

static uint64_t rng = 0x9e3779b97f4a7c15u;
static uint64_t next(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}

static int count_blocks, count_steps;
static struct block *blocks;
static uint32_t next_id = 1;

static void stamp(struct block *b) {
  for (size_t off = 0; off + sizeof b->id < b->size; off += STRIDE)
    memcpy(b->p + off, &b->id, sizeof b->id);
  b->p[b->size - 1] = (unsigned char)b->id;
}

static void check(const struct block *b, const char *when) {
  if ((uintptr_t)b->p % b->align != 0)
    FAIL_EXIT("%s: block %u (%p) is not aligned to %zu", when, b->id, (void *)b->p, b->align);
  for (size_t off = 0; off + sizeof b->id < b->size; off += STRIDE) {
    uint32_t got;
    memcpy(&got, b->p + off, sizeof got);
    if (got != b->id)
      FAIL_EXIT("%s: block %u (%p, %zu bytes): stamp at %zu is %u", when, b->id, (void *)b->p, b->size, off, got);
  }
  if (b->p[b->size - 1] != (unsigned char)b->id)
    FAIL_EXIT("%s: block %u (%p): last byte changed", when, b->id, (void *)b->p);
}

/* One block in four is aligned to 128 KiB to 1 MiB (a span starting at a
 * multiple of the alignment: the aligned search, whose failures are
 * recorded too). */
static void fill(struct block *b) {
  uint64_t r = next();
  b->size = 64 * KiB + 1 + r % (576 * KiB);
  b->align = 1;
  if (r >> 60 < 4) {
    b->align = (128 * KiB) << (r >> 56 & 3);
    int err = posix_memalign((void **)&b->p, b->align, b->size);
    if (err != 0)
      FAIL_EXIT("posix_memalign(%zu, %zu) failed: %d", b->align, b->size, err);
  } else {
    b->p = malloc(b->size);
  }
  if (b->p == NULL)
    FAIL_EXIT("malloc(%zu) failed", b->size);
  b->id = next_id++;
  stamp(b);
}

static void release(struct block *b, const char *when) {
  check(b, when);
  free(b->p);
  b->p = NULL;
}

static void check_all(const char *when) {
  for (int i = 0; i < count_blocks; i++)
    if (blocks[i].p != NULL)
      check(&blocks[i], when);
}

/* Random replacement, with malloc_trim(0) every tenth of the steps. */
static void *replace(void *arg) {
  const char *who = arg;
  for (int s = 0; s < count_steps; s++) {
    struct block *b = &blocks[next() % (uint64_t)count_blocks];
    if (b->p != NULL)
      release(b, who);
    fill(b);
    if (s % (count_steps / 10) == 0) {
      malloc_trim(0);
      check_all(who);
    }
  }
  check_all(who);
  return NULL;
}

int main(void) {
  count_blocks = under_memcheck() ? 150 : 1500;
  count_steps = under_memcheck() ? 500 : 6000;
  mt_start_watchdog(under_memcheck() ? 600 : 120);
  blocks = calloc((size_t)count_blocks, sizeof *blocks);
  if (blocks == NULL)
    FAIL_EXIT("calloc failed");

  /* Growth: no block freed, so every search after the newest segment
   * fills finds no fit and maps a segment. */
  for (int i = 0; i < count_blocks; i++)
    fill(&blocks[i]);
  check_all("growth");

  /* Every other block freed, then allocated again: the holes are in
   * every segment, the newest freed first. */
  for (int round = 0; round < 3; round++) {
    for (int i = round % 2; i < count_blocks; i += 2)
      release(&blocks[i], "free every other");
    if (round == 1)
      malloc_trim(0); /* the holes purged: the search finds no fit resident */
    for (int i = round % 2; i < count_blocks; i += 2)
      fill(&blocks[i]);
    check_all("refill");
  }

  /* Half the blocks freed in random order, the empty segments given back
   * by malloc_trim, then the rest replaced at random. */
  for (int i = 0; i < count_blocks / 2; i++) {
    struct block *b = &blocks[next() % (uint64_t)count_blocks];
    if (b->p != NULL)
      release(b, "free half");
  }
  malloc_trim(0);
  check_all("after trim");
  replace("replace (main)");

  /* A thread replaces blocks and exits: its heap, with its hints and
   * cursor, is parked; a second thread adopts it, and main frees what the
   * threads left (frees into a parked or adopted heap). */
  for (int t = 0; t < 2; t++)
    mt_thread_join(mt_thread_create(replace, t == 0 ? "replace (thread 1)" : "replace (thread 2)"));
  for (int i = 0; i < count_blocks; i++)
    if (blocks[i].p != NULL)
      release(&blocks[i], "final free");
  malloc_trim(0);
  for (int i = 0; i < count_blocks; i++)
    fill(&blocks[i]);
  check_all("rebuilt");
  for (int i = 0; i < count_blocks; i++)
    release(&blocks[i], "end");
  free(blocks);
  printf("%d blocks, %d replacements per phase, %u blocks in all\n", count_blocks, count_steps, next_id - 1);
  return mt_result();
}
