/* Multi-threaded stress: threads allocate blocks of random sizes with
 * malloc, calloc, realloc, aligned_alloc and posix_memalign, stamp them and
 * swap them into a shared transfer array, so that most blocks are verified
 * and freed by another thread than the one that allocated them. Every block
 * is verified before it is freed; alignment and malloc_usable_size are
 * checked at allocation.
 *
 * Usage: tst-mt-stress [threads [iterations-per-thread]] */
#include "mt_helper.h"

/* TIMEOUT: 120 */

#define SLOTS 1024
#define LOCAL 64

struct rec {
  void *p;
  size_t size;
  size_t align;
  uint64_t seed;
  uint64_t check;
};

static struct rec *slots[SLOTS];
static long iterations = 100000;

static uint64_t rec_check(const struct rec *r) {
  return ((uint64_t)(uintptr_t)r->p * 31 + r->size) ^ (r->seed * 7) ^
         (r->align << 3) ^ 0x5a5a5a5a5a5a5a5aULL;
}

/* Verify a block and its record, then free both. */
static void retire(struct rec *r) {
  MT_CHECK(r->check == rec_check(r));
  if (r->check != rec_check(r))
    return; /* the record is garbage: don't free through it */
  MT_CHECK(malloc_usable_size(r->p) >= r->size);
  MT_CHECK(((uintptr_t)r->p & (r->align - 1)) == 0);
  if (!mt_verify(r->p, r->size, r->seed)) {
    fprintf(stderr, "block %p size %zu seed %llx: stamp mismatch\n", r->p,
            r->size, (unsigned long long)r->seed);
    __atomic_add_fetch(&mt_failures, 1, __ATOMIC_RELAXED);
  }
  free(r->p);
  free(r);
}

static void check_new(void *p, size_t size, size_t align) {
  MT_CHECK(p != NULL);
  if (p == NULL)
    FAIL_EXIT("out of memory (size %zu)", size);
  MT_CHECK(((uintptr_t)p & 15) == 0);
  MT_CHECK(((uintptr_t)p & (align - 1)) == 0);
  MT_CHECK(malloc_usable_size(p) >= size);
}

static struct rec *make_block(uint64_t *rng) {
  size_t size = mt_random_size(rng, 1000);
  size_t align = 16;
  unsigned kind = (unsigned)(splitmix64(rng) % 100);
  void *p;
  if (kind < 70) {
    p = malloc(size);
    check_new(p, size, align);
  } else if (kind < 80) {
    size_t n = 1 + size % 7;
    size_t each = (size + n - 1) / n;
    size = n * each;
    p = calloc(n, each);
    check_new(p, size, align);
    MT_CHECK(mt_is_zero(p, size));
  } else if (kind < 90) {
    /* Grow or shrink an existing stamped block: the old contents must
     * survive the move (the stamp depends on the old address, so verify
     * with the seed adjusted for the new one). Huge sizes are more common
     * here than elsewhere, to reach the resizing of huge blocks (in place
     * and moved) often. */
    size = mt_random_size(rng, 40);
    size_t first = mt_random_size(rng, 40);
    uint64_t seed0 = splitmix64(rng);
    void *old = malloc(first);
    check_new(old, first, align);
    mt_stamp(old, first, seed0);
    uintptr_t old_addr = (uintptr_t)old;
    p = realloc(old, size);
    check_new(p, size, align);
    uint64_t moved = seed0 ^ old_addr ^ (uintptr_t)p;
    /* Check the kept head: all of it if the block was stamped whole, else
     * the first MT_STAMP_EDGE bytes (the stamp of a sampled region depends
     * on that region's own address, and the moved seed only fixes up the
     * one that starts the block). */
    size_t keep = first < size ? first : size;
    size_t n = first <= MT_STAMP_FULL ? keep
               : keep < MT_STAMP_EDGE ? keep
                                       : MT_STAMP_EDGE;
    int ok = verify_block(p, n, moved);
    if (!ok) {
      fprintf(stderr, "realloc(%zu -> %zu) lost contents\n", first, size);
      __atomic_add_fetch(&mt_failures, 1, __ATOMIC_RELAXED);
    }
  } else if (kind < 95) {
    align = (size_t)16 << (splitmix64(rng) % 9); /* 16 .. 4096 */
    size = (size + align - 1) / align * align;
    p = aligned_alloc(align, size);
    check_new(p, size, align);
  } else {
    align = (size_t)8 << (splitmix64(rng) % 10); /* 8 .. 4096 */
    void *q = NULL;
    int err = posix_memalign(&q, align, size);
    MT_CHECK(err == 0);
    p = q;
    if (align < 16)
      align = 16; /* still a malloc'd block: 16-byte aligned */
    check_new(p, size, align);
  }
  struct rec *r = malloc(sizeof *r);
  check_new(r, sizeof *r, 16);
  r->p = p;
  r->size = size;
  r->align = align;
  r->seed = splitmix64(rng);
  r->check = rec_check(r);
  mt_stamp(p, size, r->seed);
  return r;
}

static void *worker(void *arg) {
  uint64_t rng = 0x1234567ULL * ((uintptr_t)arg + 1);
  struct rec *local[LOCAL] = {0};
  for (long i = 0; i < iterations; i++) {
    struct rec *r = make_block(&rng);
    uint64_t x = splitmix64(&rng);
    if (x % 10 < 3) {
      /* Keep it locally for a while; freed by this thread. */
      struct rec **l = &local[(x >> 8) % LOCAL];
      if (*l)
        retire(*l);
      *l = r;
    } else {
      /* Publish it; whatever was in the slot is retired here. */
      struct rec *old =
          __atomic_exchange_n(&slots[(x >> 8) % SLOTS], r, __ATOMIC_ACQ_REL);
      if (old)
        retire(old);
    }
  }
  for (int i = 0; i < LOCAL; i++)
    if (local[i])
      retire(local[i]);
  return NULL;
}

int main(int argc, char **argv) {
  require_ptrs();
  long nthreads = mt_arg(argc, argv, 1, 4);
  iterations = mt_arg(argc, argv, 2, iterations);
  mt_start_watchdog(100);

  pthread_t t[64];
  if (nthreads > 64)
    nthreads = 64;
  for (long i = 0; i < nthreads; i++)
    t[i] = mt_thread_create(worker, (void *)(uintptr_t)i);
  for (long i = 0; i < nthreads; i++)
    mt_thread_join(t[i]);
  for (int i = 0; i < SLOTS; i++)
    if (slots[i])
      retire(slots[i]);
  return mt_result();
}
