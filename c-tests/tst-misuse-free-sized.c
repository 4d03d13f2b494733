/* free_sized and free_aligned_sized (C23) with a size or alignment that
 * does not match the block abort (SIGABRT) with the line
 * "ptrs: free_sized(): size or alignment does not match the block: 0x<addr>"
 * (free_aligned_sized() for the other). Small, large and huge blocks,
 * aligned blocks with a size far below theirs, and a pool's bump blocks
 * (whose page's grain, 16 B, once passed for their size); a forked child
 * makes each call, the parent's blocks stay valid. */
#include "test_helper.h"
#include "ptrs.h"

typedef void (*free_sized_fn)(void *, size_t);
typedef void (*free_aligned_sized_fn)(void *, size_t, size_t);
static free_sized_fn fs;
static free_aligned_sized_fn fas;

struct bad {
  void *p;
  size_t size;
  size_t align; /* 0: free_sized */
};

static void bad_free(void *arg) {
  struct bad *b = arg;
  if (b->align == 0)
    fs(test_ptr(b->p), test_size(b->size));
  else
    fas(test_ptr(b->p), test_size(b->align), test_size(b->size));
}

static void expect_mismatch(const char *what, void *p, size_t size,
                            size_t align) {
  struct bad b = {p, size, align};
  expect_abort(what, bad_free, &b, align ? "free_aligned_sized" : "free_sized",
               "size or alignment does not match the block", p);
}

int main(void) {
  require_ptrs();
  fs = (free_sized_fn)ptrs_symbol("free_sized");
  fas = (free_aligned_sized_fn)ptrs_symbol("free_aligned_sized");
  if (fs == NULL || fas == NULL)
    FAIL_EXIT("free_sized or free_aligned_sized missing");

  void *s = malloc(100);
  expect_mismatch("malloc(100), free_sized 1000", s, 1000, 0);
  expect_mismatch("malloc(100), free_sized 8", s, 8, 0);
  void *m = malloc(4000);
  expect_mismatch("malloc(4000), free_sized 16", m, 16, 0);
  void *l = malloc(300000);
  expect_mismatch("malloc(300000), free_sized 1000", l, 1000, 0);
  void *h = malloc(8 << 20);
  expect_mismatch("malloc(8 MiB), free_sized 100", h, 100, 0);
  void *a = aligned_alloc(64, 64);
  uintptr_t bits = (uintptr_t)a;
  size_t wrong = (size_t)(bits & (~bits + 1)) * 2; /* a does not have it */
  expect_mismatch("aligned_alloc(64, 64), free_aligned_sized, wrong alignment",
                  a, 64, wrong);
  expect_mismatch("aligned_alloc(64, 64), free_aligned_sized, size 100000", a,
                  100000, 64);

  /* An aligned block is at most about twice the larger of its size and
   * alignment: 8 MiB aligned to 1 MiB is not a block of 100 bytes. */
  void *ha = aligned_alloc(1 << 20, 8 << 20);
  expect_mismatch("aligned_alloc(1 MiB, 8 MiB), free_aligned_sized 100", ha, 100, 1 << 20);
  void *la = aligned_alloc(4096, 300000);
  expect_mismatch("aligned_alloc(4096, 300000), free_aligned_sized 16", la, 16, 4096);

  /* A pool's bump and first-chunk blocks (functions resolved at run
   * time, the test also runs preloaded). */
  ptrs_pool *(*pool_create)(const ptrs_pool_options *) =
      (ptrs_pool *(*)(const ptrs_pool_options *))ptrs_symbol("ptrs_pool_create");
  void *(*pool_malloc)(ptrs_pool *, size_t) =
      (void *(*)(ptrs_pool *, size_t))ptrs_symbol("ptrs_pool_malloc");
  void (*pool_destroy)(ptrs_pool *) = (void (*)(ptrs_pool *))ptrs_symbol("ptrs_pool_destroy");
  CHECK(pool_create && pool_malloc && pool_destroy);
  if (pool_create && pool_malloc && pool_destroy) {
    for (unsigned flags = 0; flags <= PTRS_POOL_BUMP; flags += PTRS_POOL_BUMP) {
      ptrs_pool_options o = {"free-sized", 0, flags, NULL};
      ptrs_pool *pool = pool_create(&o);
      void *b = pool_malloc(pool, 1000);
      CHECK(b != NULL);
      expect_mismatch(flags ? "bump block of 1000, free_sized 8" : "pool block of 1000, free_sized 8",
                      b, 8, 0);
      expect_mismatch(flags ? "bump block of 1000, free_sized 3000" : "pool block of 1000, free_sized 3000",
                      b, 3000, 0);
      fs(b, 1000);
      pool_destroy(pool);
    }
  }

  /* The parent's blocks are intact and free with the right sizes. */
  fs(s, 100);
  fs(m, 4000);
  fs(l, 300000);
  fs(h, 8 << 20);
  fas(a, 64, 64);
  fas(ha, 1 << 20, 8 << 20);
  fas(la, 4096, 300000);
  return test_result();
}
