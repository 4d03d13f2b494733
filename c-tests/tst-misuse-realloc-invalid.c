/* realloc of a pointer ptrs did not hand out aborts the process (SIGABRT)
 * with the line "ptrs: realloc(): invalid pointer: 0x<address>"; realloc
 * of a block already freed (which it would otherwise copy from, or hand
 * back when the new size fits) with "ptrs: realloc(): double free
 * detected: 0x<address>", for small blocks, a pool's bump blocks and the
 * small blocks of a default pool's first chunk, and for large blocks freed
 * by their owner or by another thread, whose realloc to a size that would
 * keep them in place takes realloc's in-place path (block_fits_in_place),
 * which must tell a freed block from a live one. */
#include "test_helper.h"
#include "ptrs.h"
#include <malloc.h>
#include <pthread.h>
#include <sys/mman.h>

static void do_realloc(void *p) {
  void *q = realloc(p, 200);
  fprintf(stderr, "realloc returned %p\n", q);
}

static void do_realloc_small(void *p) {
  void *q = realloc(p, 40);
  fprintf(stderr, "realloc returned %p\n", q);
}

/* 150 000 bytes: a large block of 200 000 stays where it is (within its
 * usable size, above half of it). */
static void do_realloc_in_place(void *p) {
  void *q = realloc(p, 150000);
  fprintf(stderr, "realloc returned %p\n", q);
}

static void *free_in_thread(void *p) {
  free(p);
  return NULL;
}

static void do_realloc_big(void *p) {
  void *q = realloc(p, 1 << 20);
  fprintf(stderr, "realloc returned %p\n", q);
}

int main(void) {
  require_ptrs();
  char stack_buf[64];
  memset(stack_buf, 1, sizeof stack_buf);
  expect_abort("realloc of a stack address", do_realloc, stack_buf, "realloc",
               "invalid pointer", stack_buf);

  char *p = malloc(64);
  CHECK(p != NULL);
  expect_abort("realloc of malloc(64) + 8", do_realloc, p + 8, "realloc",
               "invalid pointer", p + 8);
  expect_abort("realloc of malloc(64) + 16 to 1 MiB", do_realloc_big, p + 16,
               "realloc", "invalid pointer", p + 16);
  free(p);

  char *big = malloc(3 << 20);
  CHECK(big != NULL);
  expect_abort("realloc of malloc(3 MiB) + 4096", do_realloc, big + 4096,
               "realloc", "invalid pointer", big + 4096);
  free(big);

  /* freed blocks: shrinking (fits in place) and growing */
  char *f = malloc(100);
  CHECK(f != NULL);
  char *keep = malloc(100); /* the page stays in use */
  free(f);
  /* a freed block has no usable bytes (glibc's answer for a free chunk;
   * under memcheck the read is memcheck's to report) */
  if (!under_memcheck())
    CHECK(malloc_usable_size(f) == 0);
  expect_abort("realloc of a freed malloc(100), smaller", do_realloc_small, f, "realloc",
               "double free detected", f);
  expect_abort("realloc of a freed malloc(100), larger", do_realloc, f, "realloc",
               "double free detected", f);
  free(keep);

  /* Large blocks, freed by their owner and by another thread, with a
   * live neighbour, and an interior pointer. */
  char *lkeep = malloc(300000);
  char *l = malloc(200000);
  char *l2 = malloc(200000);
  CHECK(lkeep != NULL && l != NULL && l2 != NULL);
  expect_abort("realloc of malloc(200000) + 4096", do_realloc_in_place, l + 4096,
               "realloc", "invalid pointer", l + 4096);
  free(l);
  expect_abort("realloc of a freed malloc(200000), in place", do_realloc_in_place, l,
               "realloc", "double free detected", l);
  pthread_t t;
  if (pthread_create(&t, NULL, free_in_thread, l2) == 0) {
    pthread_join(t, NULL);
    expect_abort("realloc of a malloc(200000) freed by another thread, in place",
                 do_realloc_in_place, l2, "realloc", "double free detected", l2);
  } else {
    CHECK(0);
  }
  free(lkeep);
  /* The same for pool blocks (resolved at run time: the test also runs
   * preloaded without -lptrs). */
  ptrs_pool *(*pool_create)(const ptrs_pool_options *) =
      (ptrs_pool *(*)(const ptrs_pool_options *))ptrs_symbol("ptrs_pool_create");
  void *(*pool_malloc)(ptrs_pool *, size_t) =
      (void *(*)(ptrs_pool *, size_t))ptrs_symbol("ptrs_pool_malloc");
  void (*pool_destroy)(ptrs_pool *) = (void (*)(ptrs_pool *))ptrs_symbol("ptrs_pool_destroy");
  CHECK(pool_create && pool_malloc && pool_destroy);
  if (pool_create && pool_malloc && pool_destroy) {
    for (unsigned flags = 0; flags <= PTRS_POOL_BUMP; flags += PTRS_POOL_BUMP) {
      ptrs_pool_options o = {"realloc-freed", 0, flags, NULL};
      ptrs_pool *pool = pool_create(&o);
      CHECK(pool != NULL);
      char *b = pool_malloc(pool, 300);
      CHECK(b != NULL && pool_malloc(pool, 300) != NULL);
      free(b);
      expect_abort(flags ? "realloc of a freed bump block, smaller"
                         : "realloc of a freed pool block, smaller",
                   do_realloc_small, b, "realloc", "double free detected", b);
      pool_destroy(pool);
    }
  }

  void *m = mmap(NULL, 1 << 16, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  CHECK(m != MAP_FAILED);
  if (m != MAP_FAILED) {
    expect_abort("realloc of mmap memory", do_realloc, m, "realloc",
                 "invalid pointer", m);
    munmap(m, 1 << 16);
  }
  return test_result();
}
