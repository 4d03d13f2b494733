/* An example of a Redis-zmalloc-style wrapper over the ptrs API, and a test
 * of the API through it:
 *   zmalloc/zcalloc/zrealloc/zfree keep used_memory (an atomic counter) equal
 *     to the sum of ptrs_usable_size of the live blocks, also with several
 *     threads freeing each other's blocks;
 *   zmalloc_get_allocator_info reads allocated/active/resident from
 *     ptrs_stats_get;
 *   the out-of-memory handler is installed with ptrs_set_oom_handler (ptrs
 *     calls it with the request size, then returns NULL with ENOMEM);
 *   zmalloc_purge is ptrs_purge.
 *
 * A program linked with -lptrs would call the ptrs_* functions directly;
 * this one resolves them with dlsym so that it also works under LD_PRELOAD. */
#include "test_helper.h"
#include "ptrs.h"
#include <pthread.h>
#include <stdatomic.h>

/* ---- The wrapper (what a program such as Redis would carry). ---- */

static struct {
  __typeof__(ptrs_usable_size) *usable_size;
  __typeof__(ptrs_stats_get) *stats_get;
  __typeof__(ptrs_purge) *purge;
  __typeof__(ptrs_set_oom_handler) *set_oom_handler;
  __typeof__(ptrs_owns) *owns;
} ptrs;

static void zmalloc_init(void) {
#define RESOLVE(name) RESOLVE_INTO(ptrs, "ptrs_", name)
  RESOLVE(usable_size);
  RESOLVE(stats_get);
  RESOLVE(purge);
  RESOLVE(set_oom_handler);
  RESOLVE(owns);
#undef RESOLVE
}

static _Atomic size_t used_memory;

#define update_zmalloc_stat_alloc(n)                                         \
  atomic_fetch_add_explicit(&used_memory, (n), memory_order_relaxed)
#define update_zmalloc_stat_free(n)                                          \
  atomic_fetch_sub_explicit(&used_memory, (n), memory_order_relaxed)

/* Each returns NULL on failure, after ptrs has called the OOM handler. */
static void *zmalloc(size_t size) {
  void *p = malloc(size);
  if (p != NULL)
    update_zmalloc_stat_alloc(ptrs.usable_size(p));
  return p;
}

static void *zcalloc(size_t size) {
  void *p = calloc(1, size);
  if (p != NULL)
    update_zmalloc_stat_alloc(ptrs.usable_size(p));
  return p;
}

static void zfree(void *p) {
  if (p == NULL)
    return;
  update_zmalloc_stat_free(ptrs.usable_size(p));
  free(p);
}

static void *zrealloc(void *p, size_t size) {
  if (size == 0 && p != NULL) {
    zfree(p);
    return NULL;
  }
  if (p == NULL)
    return zmalloc(size);
  size_t old = ptrs.usable_size(p);
  void *q = realloc(p, size);
  if (q == NULL)
    return NULL; /* p is untouched and still counted */
  update_zmalloc_stat_free(old);
  update_zmalloc_stat_alloc(ptrs.usable_size(q));
  return q;
}

static size_t zmalloc_size(void *p) { return ptrs.usable_size(p); }

static size_t zmalloc_used_memory(void) {
  return atomic_load_explicit(&used_memory, memory_order_relaxed);
}

static int zmalloc_get_allocator_info(size_t *allocated, size_t *active,
                                      size_t *resident) {
  struct ptrs_stats s;
  *allocated = *active = *resident = 0;
  if (ptrs.stats_get(&s) != 0)
    return 0;
  *allocated = s.allocated;
  *active = s.active;
  *resident = s.resident;
  return 1;
}

static void zmalloc_set_oom_handler(void (*handler)(size_t)) {
  ptrs.set_oom_handler(handler);
}

static int zmalloc_purge(void) { return ptrs.purge(); }

/* ---- The test. ---- */

static _Atomic size_t oom_size;
static _Atomic int oom_calls;

static void record_oom(size_t size) {
  atomic_store(&oom_size, size);
  atomic_fetch_add(&oom_calls, 1);
}

enum { NBLOCKS = 4000 };
static void *blocks[NBLOCKS];

static size_t sum_usable(void) {
  size_t sum = 0;
  for (int i = 0; i < NBLOCKS; i++)
    if (blocks[i] != NULL)
      sum += zmalloc_size(blocks[i]);
  return sum;
}

static size_t pick_size(uint64_t *rng) {
  uint64_t r = splitmix64(rng);
  switch (r % 16) {
  case 0:
    return 65536 + (r >> 8) % (1u << 20); /* large */
  case 1:
    if ((r >> 4) % 64 == 0)
      return (2u << 20) + (r >> 12) % (4u << 20); /* huge, now and then */
    return 1 + (r >> 8) % 16384;
  default:
    return 1 + (r >> 8) % 512;
  }
}

/* Thread workers: each allocates into its own slice of `shared`, then frees
 * the slice of its neighbour (blocks another thread allocated). */
enum { THREADS = 4, PER_THREAD = 2000 };
static void *shared[THREADS][PER_THREAD];
static pthread_barrier_t barrier;

static void *worker(void *arg) {
  int id = (int)(intptr_t)arg;
  uint64_t rng = 1000 + (uint64_t)id;
  for (int round = 0; round < 3; round++) {
    for (int i = 0; i < PER_THREAD; i++) {
      void *p = (i % 3 == 0) ? zcalloc(pick_size(&rng)) : zmalloc(pick_size(&rng));
      if (p == NULL)
        FAIL_EXIT("zmalloc failed in thread %d", id);
      if (i % 5 == 0) {
        void *q = zrealloc(p, pick_size(&rng));
        if (q == NULL)
          FAIL_EXIT("zrealloc failed in thread %d", id);
        p = q;
      }
      shared[id][i] = p;
    }
    pthread_barrier_wait(&barrier);
    int victim = (id + 1) % THREADS;
    for (int i = 0; i < PER_THREAD; i++) {
      zfree(shared[victim][i]);
      shared[victim][i] = NULL;
    }
    pthread_barrier_wait(&barrier);
  }
  return NULL;
}

int main(void) {
  require_ptrs();
  zmalloc_init();
  zmalloc_set_oom_handler(record_oom);

  size_t allocated, active, resident;
  CHECK(zmalloc_get_allocator_info(&allocated, &active, &resident));
  CHECK(resident > 0);
  size_t allocated0 = allocated;

  /* Random single-threaded churn: used_memory is the sum of usable sizes
   * of the live blocks at every step. */
  uint64_t rng = 42;
  for (int step = 0; step < 3 * NBLOCKS; step++) {
    int i = (int)(splitmix64(&rng) % NBLOCKS);
    if (blocks[i] == NULL) {
      size_t n = pick_size(&rng);
      blocks[i] = (step % 4 == 0) ? zcalloc(n) : zmalloc(n);
      CHECK(blocks[i] != NULL);
      CHECK(ptrs.owns(blocks[i]));
      if (blocks[i] != NULL && step % 4 == 0) {
        const unsigned char *b = blocks[i];
        size_t nonzero = 0;
        for (size_t k = 0; k < n; k++)
          nonzero += b[k] != 0;
        CHECK(nonzero == 0);
      }
    } else if (step % 3 == 0) {
      void *q = zrealloc(blocks[i], pick_size(&rng));
      CHECK(q != NULL);
      if (q != NULL)
        blocks[i] = q;
    } else {
      zfree(blocks[i]);
      blocks[i] = NULL;
    }
    if (step % 997 == 0)
      CHECK(zmalloc_used_memory() == sum_usable());
  }
  size_t live = sum_usable();
  CHECK(zmalloc_used_memory() == live);
  CHECK(live > 0);
  fprintf(stderr, "used_memory with blocks live: %zu\n", zmalloc_used_memory());

  /* The allocator's view: it counts our blocks (and libc's own). */
  CHECK(zmalloc_get_allocator_info(&allocated, &active, &resident));
  fprintf(stderr, "allocated %zu active %zu resident %zu\n", allocated, active,
          resident);
  CHECK(allocated >= zmalloc_used_memory());
  CHECK(active >= allocated);
  CHECK(resident > 0);
  size_t allocated_live = allocated;

  /* Out of memory: the handler gets the size, the call returns NULL with
   * ENOMEM, and the counter is untouched. */
  size_t impossible = SIZE_MAX / 2;
  size_t before = zmalloc_used_memory();
  errno = 0;
  CHECK(zmalloc(test_size(impossible)) == NULL);
  CHECK(errno == ENOMEM);
  CHECK(atomic_load(&oom_calls) == 1);
  CHECK(atomic_load(&oom_size) == impossible);
  errno = 0;
  CHECK(zcalloc(test_size(impossible - 1)) == NULL);
  CHECK(errno == ENOMEM);
  CHECK(atomic_load(&oom_calls) == 2);
  CHECK(atomic_load(&oom_size) == impossible - 1);
  int some = 0;
  while (blocks[some] == NULL)
    some++;
  void *kept = blocks[some];
  errno = 0;
  CHECK(zrealloc(kept, test_size(impossible - 2)) == NULL);
  CHECK(errno == ENOMEM);
  CHECK(atomic_load(&oom_calls) == 3);
  CHECK(atomic_load(&oom_size) == impossible - 2);
  CHECK(ptrs.owns(kept)); /* still live */
  CHECK(zmalloc_used_memory() == before);
  CHECK(zmalloc_used_memory() == sum_usable());

  /* Free everything: back to 0, and the allocator's figures drop. */
  for (int i = 0; i < NBLOCKS; i++) {
    zfree(blocks[i]);
    blocks[i] = NULL;
  }
  CHECK(zmalloc_used_memory() == 0);
  /* Freeing ~100 MB leaves pages to give back: 1; then nothing is left: 0. */
  int purged = zmalloc_purge();
  CHECK(purged == 1);
  CHECK(zmalloc_purge() == 0);
  CHECK(zmalloc_get_allocator_info(&allocated, &active, &resident));
  fprintf(stderr, "after free and purge: allocated %zu active %zu resident %zu\n",
          allocated, active, resident);
  CHECK(allocated + live <= allocated_live);
  CHECK(allocated < allocated0 + (1u << 20));
  CHECK(resident > 0);

  /* Several threads, freeing each other's blocks. */
  pthread_barrier_init(&barrier, NULL, THREADS);
  pthread_t t[THREADS];
  for (int i = 0; i < THREADS; i++)
    CHECK(pthread_create(&t[i], NULL, worker, (void *)(intptr_t)i) == 0);
  for (int i = 0; i < THREADS; i++)
    pthread_join(t[i], NULL);
  pthread_barrier_destroy(&barrier);
  CHECK(zmalloc_used_memory() == 0);
  CHECK(atomic_load(&oom_calls) == 3);

  zmalloc_set_oom_handler(NULL);
  return test_result();
}
