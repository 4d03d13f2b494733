/* Allocation during thread exit, and cancellation while holding memory.
 *
 * Exiting threads run pthread key destructors (several keys, one of which
 * sets its key again so that it runs in a second destructor pass) that
 * verify and free their values, free a __thread-owned buffer, and malloc,
 * verify and free further blocks: the allocator must serve a thread whose
 * own per-thread state may already be torn down. Other threads are
 * cancelled (pthread_cancel) while blocked at a cancellation point holding
 * allocated memory; a cleanup handler frees it.
 *
 * A few hundred threads of each kind; every destructor and cleanup handler
 * must have run, and RSS after all of them may exceed RSS after the first
 * fifty by less than 8 MiB (no per-thread leak).
 *
 * Usage: tst-mt-tls-dtor [threads-of-each-kind] */
#include "mt_helper.h"

/* TIMEOUT: 120 */

#define NKEYS 4
#define BATCH 4
#define MAX_GROWTH_KIB (8L * 1024)

struct val {
  void *p;
  size_t size;
  uint64_t seed;
};

static pthread_key_t keys[NKEYS];
static int dtor_calls;      /* total key destructor calls */
static int cleanup_calls;   /* total cancellation cleanup handler calls */
static int tls_frees;       /* __thread buffers freed by destructors */

static __thread void *tls_buf;
static __thread size_t tls_buf_size;
static __thread int resets;

static struct val *make_val(uint64_t seed, size_t size) {
  struct val *v = malloc(sizeof *v);
  if (v == NULL)
    FAIL_EXIT("malloc failed");
  v->size = size;
  v->seed = seed;
  v->p = malloc(size);
  if (v->p == NULL)
    FAIL_EXIT("malloc(%zu) failed", size);
  mt_stamp(v->p, v->size, v->seed);
  return v;
}

static void free_val(struct val *v) {
  MT_CHECK(mt_verify(v->p, v->size, v->seed));
  free(v->p);
  free(v);
}

/* Allocate about 100 KiB in blocks of various sizes, verify, free. */
static void churn(uint64_t seed) {
  void *b[24];
  size_t sz[24];
  for (int i = 0; i < 24; i++) {
    sz[i] = (size_t)16 << (i % 12); /* 16 B .. 32 KiB */
    b[i] = (i & 1) ? calloc(1, sz[i]) : malloc(sz[i]);
    if (b[i] == NULL)
      FAIL_EXIT("malloc(%zu) failed in destructor", sz[i]);
    if (i & 1)
      MT_CHECK(mt_is_zero(b[i], sz[i]));
    mt_stamp(b[i], sz[i], seed + (uint64_t)i);
  }
  for (int i = 23; i >= 0; i--) {
    MT_CHECK(mt_verify(b[i], sz[i], seed + (uint64_t)i));
    free(b[i]);
  }
}

static void key_dtor(void *arg) {
  struct val *v = arg;
  uint64_t seed = v->seed;
  free_val(v);
  churn(seed);
  __atomic_add_fetch(&dtor_calls, 1, __ATOMIC_RELAXED);
  if (tls_buf != NULL) {
    MT_CHECK(mt_verify(tls_buf, tls_buf_size, 0x715));
    free(tls_buf);
    tls_buf = NULL;
    __atomic_add_fetch(&tls_frees, 1, __ATOMIC_RELAXED);
  }
  /* Key 0's value says so: set it again once, for a second pass. */
  if (seed % NKEYS == 0 && resets == 0) {
    resets++;
    pthread_setspecific(keys[0], make_val(seed + NKEYS, 3000));
  }
  /* A big block too (mmap-sized for many allocators). */
  void *p = malloc(200000);
  MT_CHECK(p != NULL);
  free(p);
}

static void set_keys(uint64_t base) {
  tls_buf_size = 5000 + base % 3000;
  tls_buf = malloc(tls_buf_size);
  if (tls_buf == NULL)
    FAIL_EXIT("malloc failed");
  mt_stamp(tls_buf, tls_buf_size, 0x715);
  for (int k = 0; k < NKEYS; k++) {
    /* seed % NKEYS == k identifies the key */
    uint64_t seed = base * NKEYS * 2 + (uint64_t)k;
    pthread_setspecific(keys[k], make_val(seed, 64 + 977 * (size_t)k));
  }
}

static void *exiting_thread(void *arg) {
  uint64_t id = (uintptr_t)arg;
  set_keys(id);
  churn(id);
  return NULL; /* destructors run now */
}

struct held {
  void *blocks[8];
  size_t sizes[8];
};

static void cleanup_free(void *arg) {
  struct held *h = arg;
  for (int i = 0; i < 8; i++) {
    MT_CHECK(mt_verify(h->blocks[i], h->sizes[i], (uint64_t)i));
    free(h->blocks[i]);
  }
  free(h);
  churn(77);
  __atomic_add_fetch(&cleanup_calls, 1, __ATOMIC_RELAXED);
}

static void *cancelled_thread(void *arg) {
  uint64_t id = (uintptr_t)arg;
  set_keys(id);
  struct held *h = malloc(sizeof *h);
  if (h == NULL)
    FAIL_EXIT("malloc failed");
  for (int i = 0; i < 8; i++) {
    h->sizes[i] = (size_t)100 << i; /* up to 12.8 KB */
    h->blocks[i] = malloc(h->sizes[i]);
    if (h->blocks[i] == NULL)
      FAIL_EXIT("malloc failed");
    mt_stamp(h->blocks[i], h->sizes[i], (uint64_t)i);
  }
  pthread_cleanup_push(cleanup_free, h);
  for (;;)
    pause(); /* a cancellation point */
  pthread_cleanup_pop(1);
  return NULL;
}

int main(int argc, char **argv) {
  require_ptrs();
  long n = mt_arg(argc, argv, 1, 300);
  if (n < 100)
    n = 100;
  mt_start_watchdog(110);
  for (int k = 0; k < NKEYS; k++)
    if (pthread_key_create(&keys[k], key_dtor) != 0)
      FAIL_EXIT("pthread_key_create failed");

  long rss_early = -1;
  for (long done = 0; done < n; done += BATCH) {
    pthread_t e[BATCH], c[BATCH];
    for (int i = 0; i < BATCH; i++) {
      e[i] = mt_thread_create(exiting_thread, (void *)(uintptr_t)(done + i));
      c[i] = mt_thread_create(cancelled_thread,
                              (void *)(uintptr_t)(done + i + 1000000));
    }
    /* Cancel at once: the threads act on it at their first cancellation
     * point, which must not be inside malloc or free. */
    for (int i = 0; i < BATCH; i++)
      pthread_cancel(c[i]);
    for (int i = 0; i < BATCH; i++) {
      mt_thread_join(e[i]);
      void *ret = mt_thread_join(c[i]);
      CHECK(ret == PTHREAD_CANCELED);
    }
    if (done + BATCH >= 50 && rss_early < 0)
      rss_early = mt_rss_kib();
  }
  long threads = (n + BATCH - 1) / BATCH * BATCH;
  long rss_late = mt_rss_kib();
  printf("RSS after 50 threads of each kind: %ld KiB, after %ld: %ld KiB\n",
         rss_early, threads, rss_late);
  /* Per thread (both kinds): NKEYS destructors plus one second pass. */
  int expect_dtors = (int)(threads * 2 * (NKEYS + 1));
  CHECK(__atomic_load_n(&dtor_calls, __ATOMIC_RELAXED) == expect_dtors);
  CHECK(__atomic_load_n(&cleanup_calls, __ATOMIC_RELAXED) == (int)threads);
  CHECK(__atomic_load_n(&tls_frees, __ATOMIC_RELAXED) == (int)(threads * 2));
  if (__atomic_load_n(&dtor_calls, __ATOMIC_RELAXED) != expect_dtors)
    fprintf(stderr, "destructor calls: %d, expected %d\n", dtor_calls,
            expect_dtors);
  CHECK(rss_early > 0 && rss_late > 0);
  CHECK(rss_late - rss_early < MAX_GROWTH_KIB);
  return mt_result();
}
