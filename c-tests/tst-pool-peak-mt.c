/* A pool's peak_allocated while other threads free its blocks
 * (src/pool.rs, count_freed): never above the most bytes really live.
 * A freeing thread read the pool's allocated bytes after counting its
 * free, so one preempted between the two subtracted an old count of
 * freed bytes from a new count of allocated ones: a tester saw peaks of
 * 2 to 120 MB where at most 1.2 MB were live.
 *
 * For a default pool (one allocating thread) and a shared pool (three):
 * blocks of 16 to 1015 bytes go through a table of 256 slots to 3
 * freeing threads, which verify and free them. The program counts the
 * live bytes itself (usable sizes, added after each allocation and
 * subtracted before each free), so the pool's live bytes never exceed
 * its count by more than the blocks being allocated or freed at that
 * moment. The
 * allocating threads yield often, so that preemption between the two
 * counts happens on this 2-core machine. */
#include "mt_helper.h"
#include <malloc.h>
#include <sched.h>
#include <stdatomic.h>
#include "ptrs.h"

#define SLOTS 256
#define ALLOCS 100000
#define FREERS 3
#define MAX_ALLOCATORS 3

/* Resolved with dlsym: the test runs linked and preloaded. */
static struct {
  __typeof__(ptrs_pool_create) *create;
  __typeof__(ptrs_pool_malloc) *malloc;
  __typeof__(ptrs_pool_stats_get) *stats_get;
  __typeof__(ptrs_pool_destroy) *destroy;
} api;
#define RESOLVE(name) RESOLVE_INTO(api, "ptrs_pool_", name)

static ptrs_pool *pool;
static _Atomic(uintptr_t) slot[SLOTS];
static atomic_int done;
static atomic_long live, max_live;

static void *freer(void *arg) {
  int k = (int)(uintptr_t)arg;
  for (;;) {
    int finished = atomic_load(&done);
    for (int i = k; i < SLOTS; i += FREERS) {
      uintptr_t p = atomic_exchange(&slot[i], 0);
      if (p == 0)
        continue;
      size_t n = malloc_usable_size((void *)p);
      MT_CHECK(*(unsigned char *)p == (unsigned char)(n & 0xff));
      atomic_fetch_sub(&live, (long)n);
      free((void *)p);
    }
    if (finished)
      return NULL;
  }
}

static void *allocator(void *arg) {
  uint64_t s = 7 + (uintptr_t)arg;
  for (int i = 0; i < ALLOCS; i++) {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    unsigned char *p = api.malloc(pool, 16 + s % 1000);
    if (p == NULL)
      FAIL_EXIT("ptrs_pool_malloc failed");
    size_t n = malloc_usable_size(p);
    p[0] = (unsigned char)(n & 0xff);
    long l = atomic_fetch_add(&live, (long)n) + (long)n;
    long m = atomic_load(&max_live);
    while (l > m && !atomic_compare_exchange_weak(&max_live, &m, l))
      ;
    int k = (int)(s % SLOTS);
    uintptr_t expected = 0;
    while (!atomic_compare_exchange_weak(&slot[k], &expected, (uintptr_t)p)) {
      expected = 0;
      k = (k + 1) % SLOTS;
    }
    if (i % 64 == 0)
      sched_yield();
  }
  return NULL;
}

static void run(const char *what, unsigned flags, int allocators) {
  ptrs_pool_options o = {.name = what, .flags = flags};
  pool = api.create(&o);
  if (pool == NULL)
    FAIL_EXIT("ptrs_pool_create failed");
  atomic_store(&done, 0);
  atomic_store(&live, 0);
  atomic_store(&max_live, 0);
  pthread_t f[FREERS], a[MAX_ALLOCATORS];
  for (int i = 0; i < FREERS; i++)
    f[i] = mt_thread_create(freer, (void *)(uintptr_t)i);
  for (int i = 0; i < allocators; i++)
    a[i] = mt_thread_create(allocator, (void *)(uintptr_t)i);
  for (int i = 0; i < allocators; i++)
    mt_thread_join(a[i]);
  atomic_store(&done, 1);
  for (int i = 0; i < FREERS; i++)
    mt_thread_join(f[i]);
  ptrs_pool_stats st;
  CHECK(api.stats_get(pool, &st) == 0);
  long m = atomic_load(&max_live);
  printf("%s: peak_allocated %zu, most live by the program's count %ld, allocated at the end %zu\n",
         what, st.peak_allocated, m, st.allocated);
  CHECK(st.allocated == 0);
  /* The pool counts blocks the program's count does not: one being
   * allocated per allocating thread (counted by the pool, not yet added
   * by the program) and one being freed per freeing thread (subtracted
   * by the program, not yet freed). Each is at most 1015 bytes plus
   * rounding, so 1024. Under memcheck malloc_usable_size answers the
   * requested size while the pool counts whole blocks: a quarter more,
   * at most. */
  size_t bound = (size_t)m + (size_t)(allocators + FREERS) * 1024;
  if (under_memcheck())
    bound += (size_t)m / 4;
  CHECK(st.peak_allocated <= bound);
  CHECK(st.peak_allocated >= (size_t)m / 4);
  api.destroy(pool);
}

int main(void) {
  require_ptrs();
  mt_start_watchdog(120);
  RESOLVE(create);
  RESOLVE(malloc);
  RESOLVE(stats_get);
  RESOLVE(destroy);
  for (int round = 0; round < 3; round++) {
    run("default pool", 0, 1);
    run("shared pool", PTRS_POOL_SHARED, MAX_ALLOCATORS);
  }
  return mt_result();
}
