/* posix_memalign, memalign and aligned_alloc with alignments of 128 KiB to
 * 2 MiB and sizes up to the large threshold: served from spans of slices
 * that start at a multiple of the alignment within their segment
 * (src/heap.rs, alloc_large_aligned), no longer from a huge mapping each.
 *
 * A fresh tester's mix of plain malloc and posix_memalign of 64 B to 2 MiB
 * alignments, blocks replaced at random and written whole: 8.8 s and 1.05 M
 * page faults (glibc 3.8 s, 156 k), 6.0 s and 481 k with the spans.
 *
 * Checked: every alignment and size (1 byte to 1.9 MiB) is aligned, has
 * the usable size asked for, and keeps its contents while 48 others are
 * allocated, freed and reallocated around it; free_aligned_sized accepts
 * them; realloc keeps the contents, and a sized free with the size given
 * to realloc matches (a one-slice aligned block shrunk below half moves
 * to a size class: kept in place, it aborted as a mismatch). Then (not
 * under memcheck) a loop of 3 000 replacements among 24 live blocks of
 * random alignment and size, each written whole, must fault fewer pages
 * than a quarter of those it writes (a fresh mapping each: all of them;
 * measured 1.4 %, and 3.9 % with the huge mappings and their cache). */
#include "test_helper.h"

#include <malloc.h>
#include <stdint.h>
#include <sys/resource.h>

void free_aligned_sized(void *p, size_t align, size_t size) __attribute__((weak));
void free_sized(void *p, size_t size) __attribute__((weak));

#define KiB ((size_t)1 << 10)
#define LIVE 48

static long minor_faults(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_minflt;
}

static uint64_t rng = 88172645463325252u;
static uint64_t next(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}

struct block {
  unsigned char *p;
  size_t size, align;
  unsigned char fill;
};

static void check_block(const struct block *b, const char *when) {
  if ((uintptr_t)b->p % b->align != 0)
    FAIL_EXIT("%s: %p is not aligned to %zu", when, (void *)b->p, b->align);
  for (size_t i = 0; i < b->size; i += (b->size > 4096 ? 509 : 1))
    if (b->p[i] != b->fill)
      FAIL_EXIT("%s: block %p (%zu bytes, align %zu): byte %zu is %#x, not %#x", when, (void *)b->p, b->size,
                b->align, i, b->p[i], b->fill);
  if (b->p[b->size - 1] != b->fill)
    FAIL_EXIT("%s: last byte of %p changed", when, (void *)b->p);
}

static void make_block(struct block *b, size_t align, size_t size, int how) {
  void *p = NULL;
  if (how == 0) {
    if (posix_memalign(&p, align, size) != 0)
      FAIL_EXIT("posix_memalign(%zu, %zu) failed", align, size);
  } else if (how == 1) {
    p = memalign(align, size);
  } else {
    size_t rounded = (size + align - 1) / align * align;
    p = aligned_alloc(align, rounded);
    size = rounded;
  }
  if (p == NULL)
    FAIL_EXIT("allocation of %zu bytes aligned to %zu failed", size, align);
  if (malloc_usable_size(p) < size)
    FAIL_EXIT("usable size %zu < %zu", malloc_usable_size(p), size);
  b->p = p;
  b->size = size;
  b->align = align;
  b->fill = (unsigned char)(next() | 1);
  memset(b->p, b->fill, size);
}

static void drop_block(struct block *b) {
  check_block(b, "before free");
  if (free_aligned_sized != NULL && (next() & 1))
    free_aligned_sized(b->p, b->align, b->size);
  else
    free(b->p);
  b->p = NULL;
}

int main(void) {
  static const size_t sizes[] = {1, 100, 64 * KiB - 1, 64 * KiB + 1, 300 * KiB, 1024 * KiB, 1900 * KiB};
  static struct block live[LIVE];
  for (size_t align = 128 * KiB; align <= 2048 * KiB; align *= 2)
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
      for (int how = 0; how < 3; how++) {
        struct block b;
        make_block(&b, align, sizes[s], how);
        /* Churn around it. */
        for (int k = 0; k < 3 * LIVE; k++) {
          struct block *o = &live[next() % LIVE];
          if (o->p != NULL)
            drop_block(o);
          size_t oa = (size_t)1 << (4 + next() % 18);
          size_t os = 1 + next() % (oa < 256 * KiB ? 2 * oa : 512 * KiB);
          make_block(o, oa, os, (int)(next() % 2));
          if (k % 16 == 0) {
            check_block(o, "before realloc");
            size_t ns = 1 + next() % (2 * o->size + 64);
            unsigned char *q = realloc(o->p, ns);
            if (q == NULL)
              FAIL_EXIT("realloc failed");
            for (size_t i = 0; i < (ns < o->size ? ns : o->size); i += 97)
              if (q[i] != o->fill)
                FAIL_EXIT("realloc lost byte %zu", i);
            o->p = q;
            o->size = ns;
            o->align = 16;
            memset(q, o->fill, ns);
            if (free_sized != NULL && k % 32 == 0) {
              free_sized(o->p, o->size);
              o->p = NULL;
            }
          }
        }
        check_block(&b, "after churn");
        drop_block(&b);
      }
  for (int i = 0; i < LIVE; i++)
    if (live[i].p != NULL)
      drop_block(&live[i]);

  if (!under_memcheck()) {
    struct block ring[24] = {{0}};
    long pages = 0;
    long before = minor_faults();
    for (int i = 0; i < 3000; i++) {
      struct block *b = &ring[next() % 24];
      if (b->p != NULL)
        drop_block(b);
      size_t align = (size_t)1 << (17 + next() % 5);
      size_t size = align / 2 + next() % (align / 2);
      if (size > 1900 * KiB)
        size = 1900 * KiB;
      make_block(b, align, size, 0);
      pages += (long)((size + 4095) / 4096);
    }
    long faults = minor_faults() - before;
    printf("3000 aligned blocks: %ld page faults for %ld pages written\n", faults, pages);
    CHECK(faults * 4 < pages);
    for (int i = 0; i < 24; i++)
      if (ring[i].p != NULL)
        drop_block(&ring[i]);
  }
  return test_result();
}
