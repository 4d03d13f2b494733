/* A pool's limit bounds the memory of a bump pool too: freed bump blocks
 * are not reusable before a reset, so they keep counting against the
 * limit (ptrs.h, ptrs_pool_options.limit). A bump pool with a 1 MiB limit
 * that allocates and frees 1000 B blocks is refused (NULL, ENOMEM) after
 * about 1 MiB, not after 200 MiB (tester); a reset gives the room back; a
 * default-mode pool with the same limit reuses its freed blocks and is
 * never refused; a shared bump pool freed into by another thread behaves
 * as the bump pool.
 *
 * The functions are resolved with dlsym, so the test works linked with
 * -lptrs and under LD_PRELOAD. */
#include "mt_helper.h"
#include "ptrs.h"

static struct {
  __typeof__(ptrs_pool_create) *create;
  __typeof__(ptrs_pool_destroy) *destroy;
  __typeof__(ptrs_pool_reset) *reset;
  __typeof__(ptrs_pool_malloc) *malloc;
} api;

#define RESOLVE(name) RESOLVE_INTO(api, "ptrs_pool_", name)

#define LIMIT ((size_t)1 << 20)
#define BLOCK 1000
#define ROUNDS 200000

static ptrs_pool *make(unsigned flags) {
  ptrs_pool_options o = {"bump-limit", LIMIT, flags, NULL};
  ptrs_pool *p = api.create(&o);
  if (p == NULL)
    FAIL_EXIT("ptrs_pool_create: %s", strerror(errno));
  return p;
}

/* Allocates and frees BLOCK bytes until refused or ROUNDS; returns the
 * number of allocations that succeeded. */
static long churn(ptrs_pool *p, int *refused_errno) {
  for (long i = 0; i < ROUNDS; i++) {
    errno = 0;
    char *b = api.malloc(p, BLOCK);
    if (b == NULL) {
      *refused_errno = errno;
      return i;
    }
    memset(b, 0x3c, BLOCK);
    free(b);
  }
  *refused_errno = 0;
  return ROUNDS;
}

static void *freer(void *arg) {
  void **blocks = arg;
  for (size_t i = 0; blocks[i] != NULL; i++)
    free(blocks[i]);
  return NULL;
}

int main(void) {
  require_ptrs();
  RESOLVE(create);
  RESOLVE(destroy);
  RESOLVE(reset);
  RESOLVE(malloc);
  mt_start_watchdog(60);
  /* bump mode: refused after about LIMIT bytes of 1008-byte blocks */
  ptrs_pool *p = make(PTRS_POOL_BUMP);
  int e;
  long n = churn(p, &e);
  long most = (long)(LIMIT / (BLOCK + 8));
  /* under memcheck each block carries a redzone: fewer fit */
  long least = under_memcheck() ? most * 9 / 10 : most - 4;
  CHECK(n < ROUNDS);
  CHECK(e == ENOMEM);
  CHECK(n >= least && n <= most);
  if (n < least || n > most)
    fprintf(stderr, "bump pool refused after %ld blocks (expected about %ld)\n", n, most);
  /* a reset gives the room back */
  api.reset(p);
  long n2 = churn(p, &e);
  CHECK(n2 == n && e == ENOMEM);
  api.destroy(p);

  /* default mode: freed blocks are reused, never refused (its first
   * chunk's bump blocks, at most about 4 KiB, count as above) */
  p = make(0);
  n = churn(p, &e);
  CHECK(n == ROUNDS && e == 0);
  api.destroy(p);

  /* shared bump pool, its blocks freed by another thread */
  p = make(PTRS_POOL_BUMP | PTRS_POOL_SHARED);
  size_t cap = LIMIT / BLOCK + 2;
  void **blocks = calloc(cap + 1, sizeof *blocks);
  size_t k = 0;
  for (; k < cap; k++) {
    blocks[k] = api.malloc(p, BLOCK);
    if (blocks[k] == NULL)
      break;
  }
  CHECK(k < cap && k >= (size_t)least);
  mt_thread_join(mt_thread_create(freer, blocks));
  errno = 0;
  CHECK(api.malloc(p, BLOCK) == NULL && errno == ENOMEM);
  api.reset(p);
  void *b = api.malloc(p, BLOCK);
  CHECK(b != NULL);
  free(b);
  free(blocks);
  api.destroy(p);
  return test_result();
}
