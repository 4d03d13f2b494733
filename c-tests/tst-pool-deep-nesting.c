/* Deeply nested pools: a chain of 200 000 pools, each the child of the one
 * before, destroyed (and reset) through its root on a thread with a 256 KiB
 * stack, and a tree whose cleanups record the order they run in.
 *
 * ptrs_pool_destroy destroys the children of a pool before the pool; a
 * walk that recursed once per level overflowed a 256 KiB stack at about
 * 5 500 levels (tester). The order stays the documented one: each pool's
 * children newest first, then its cleanups, last added first.
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
  __typeof__(ptrs_pool_cleanup_add) *cleanup_add;
  __typeof__(ptrs_pool_of) *of;
} api;

#define RESOLVE(name) RESOLVE_INTO(api, "ptrs_pool_", name)

static ptrs_pool *make(unsigned flags, ptrs_pool *parent) {
  ptrs_pool_options o = {"deep", 0, flags, parent};
  ptrs_pool *p = api.create(&o);
  if (p == NULL)
    FAIL_EXIT("ptrs_pool_create: %s", strerror(errno));
  return p;
}

static long depth;
static long cleanups_run;
static void count_cleanup(void *arg) {
  (void)arg;
  cleanups_run++;
}

/* A chain of `depth` pools under a root, a block and (every 1000th pool)
 * a cleanup in each; returns the deepest pool. */
static ptrs_pool *build_chain(ptrs_pool *root, long *cleanups) {
  ptrs_pool *cur = root;
  *cleanups = 0;
  for (long i = 0; i < depth; i++) {
    cur = make(i % 3 == 1 ? PTRS_POOL_BUMP : 0, cur);
    char *b = api.malloc(cur, 24);
    CHECK(b != NULL);
    if (b != NULL)
      memset(b, 0x5a, 24);
    if (i % 1000 == 0) {
      CHECK(api.cleanup_add(cur, count_cleanup, NULL) == 0);
      ++*cleanups;
    }
  }
  return cur;
}

static void *chain_thread(void *arg) {
  (void)arg;
  long expect;
  /* reset of the root: the whole chain goes, the root stays */
  ptrs_pool *root = make(0, NULL);
  ptrs_pool *deepest = build_chain(root, &expect);
  void *probe = api.malloc(deepest, 40);
  CHECK(api.of(probe) == deepest);
  cleanups_run = 0;
  api.reset(root);
  CHECK(cleanups_run == expect);
  CHECK(api.of(probe) == NULL);
  void *again = api.malloc(root, 100);
  CHECK(again != NULL && api.of(again) == root);
  /* destroy of the root, with a new chain under it */
  deepest = build_chain(root, &expect);
  cleanups_run = 0;
  api.destroy(root);
  CHECK(cleanups_run == expect);
  /* a chain destroyed from its middle leaves the upper half usable */
  root = make(0, NULL);
  ptrs_pool *cur = root, *middle = NULL;
  for (long i = 0; i < depth; i++) {
    cur = make(0, cur);
    if (i == depth / 2)
      middle = cur;
  }
  api.destroy(middle);
  void *top = api.malloc(root, 10);
  CHECK(top != NULL && api.of(top) == root);
  api.destroy(root);
  return NULL;
}

/* ---- order in a tree ---- */

static char order[64];
static size_t order_len;
static void note(void *arg) {
  if (order_len + 1 < sizeof order)
    order[order_len++] = *(const char *)arg;
}

static void test_tree_order(void) {
  /* root
   *  |- a (oldest) -- a1 -- a2
   *  `- b (newest) -- b1, b2 (newest) -- b21
   * destroy(root): b's subtree newest first (b21, b2, b1, b), then a's
   * (a2, a1, a), then root's cleanups (last added first: 2, 1). */
  ptrs_pool *root = make(0, NULL);
  ptrs_pool *a = make(0, root);
  ptrs_pool *a1 = make(PTRS_POOL_BUMP, a);
  ptrs_pool *a2 = make(0, a1);
  ptrs_pool *b = make(0, root);
  ptrs_pool *b1 = make(0, b);
  ptrs_pool *b2 = make(PTRS_POOL_BUMP, b);
  ptrs_pool *b21 = make(0, b2);
  struct { ptrs_pool *p; const char *tag; } all[] = {
      {root, "1"}, {root, "2"}, {a, "a"}, {a1, "b"}, {a2, "c"},
      {b, "d"}, {b1, "e"}, {b2, "f"}, {b21, "g"},
  };
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
    CHECK(api.cleanup_add(all[i].p, note, (void *)all[i].tag) == 0);
  order_len = 0;
  api.destroy(root);
  order[order_len] = 0;
  if (strcmp(order, "gfedcba21") != 0) {
    fprintf(stderr, "cleanup order: %s (expected gfedcba21)\n", order);
    CHECK(0);
  }
}

int main(int argc, char **argv) {
  require_ptrs();
  RESOLVE(create);
  RESOLVE(destroy);
  RESOLVE(reset);
  RESOLVE(malloc);
  RESOLVE(cleanup_add);
  RESOLVE(of);
  depth = mt_arg(argc, argv, 1, 200000);
  /* memcheck runs every pool operation through its own bookkeeping */
  if (under_memcheck() && depth > 20000)
    depth = 20000;
  mt_start_watchdog(120);
  test_tree_order();
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, 256 * 1024);
  pthread_t t;
  if (pthread_create(&t, &attr, chain_thread, NULL) != 0)
    FAIL_EXIT("pthread_create failed");
  pthread_join(t, NULL);
  pthread_attr_destroy(&attr);
  return test_result();
}
