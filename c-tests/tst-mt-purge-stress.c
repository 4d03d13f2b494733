/* Purging while threads allocate: a purger thread calls malloc_trim(0) in a
 * loop (it purges every heap's free pages, empty segments and cached huge
 * mappings: src/retain.rs, heap::purge_other_heaps) while 8 threads
 * allocate, free and hand blocks to each other through a shared array.
 * Every block's contents are verified before it is freed, so a page purged
 * (MADV_DONTNEED, read back as zeros) or reused under a live block is seen.
 * Meanwhile main forks during the sweeps: each child allocates and frees a
 * little (checking its blocks) and exits 0; the parent checks the status.
 *
 * Usage: tst-mt-purge-stress [milliseconds (3000)] */
#include "mt_helper.h"

/* TIMEOUT: 120 */

#define WORKERS 8
#define SLOTS 512

static void *slots[SLOTS];
static volatile int stop;
static long trims, trims_released, forks;

/* A block: its size in the first word, the rest stamped with seed = size. */
static void *make_block(uint64_t *rng) {
  size_t size = mt_random_size(rng, 200);
  if (size < 16)
    size = 16;
  size_t *b = malloc(size);
  if (b == NULL)
    return NULL;
  b[0] = size;
  mt_stamp(b + 1, size - sizeof(size_t), size ^ 0xabcdef);
  return b;
}

static void check_free(void *p) {
  if (p == NULL)
    return;
  size_t *b = p;
  size_t size = b[0];
  int sane = size >= 16 && size <= 4 * 1024 * 1024;
  MT_CHECK(sane);
  if (sane)
    MT_CHECK(mt_verify(b + 1, size - sizeof(size_t), size ^ 0xabcdef));
  free(p);
}

static void *worker(void *arg) {
  uint64_t rng = (uint64_t)(uintptr_t)arg * 104729;
  void *local[32] = {0};
  while (!__atomic_load_n(&stop, __ATOMIC_RELAXED)) {
    for (int i = 0; i < 64; i++) {
      uint64_t r = splitmix64(&rng);
      void *b = make_block(&rng);
      MT_CHECK(b != NULL);
      if (b == NULL)
        continue;
      if (r & 1) {
        size_t k = (size_t)((r >> 1) % SLOTS);
        check_free(__atomic_exchange_n(&slots[k], b, __ATOMIC_ACQ_REL));
      } else {
        size_t k = (size_t)((r >> 1) % 32);
        check_free(local[k]);
        local[k] = b;
      }
    }
    /* Now and then drop everything held locally: pages and segments empty
     * out, for the purger to take. */
    if (splitmix64(&rng) % 16 == 0)
      for (int k = 0; k < 32; k++) {
        check_free(local[k]);
        local[k] = NULL;
      }
  }
  for (int k = 0; k < 32; k++)
    check_free(local[k]);
  return NULL;
}

static void *purger(void *arg) {
  (void)arg;
  while (!__atomic_load_n(&stop, __ATOMIC_RELAXED)) {
    int r = malloc_trim(0);
    MT_CHECK(r == 0 || r == 1);
    trims++;
    trims_released += r;
  }
  return NULL;
}

static void fork_once(void) {
  pid_t pid = fork();
  if (pid < 0) {
    MT_CHECK(pid >= 0);
    return;
  }
  if (pid == 0) {
    uint64_t rng = 99;
    void *v[16];
    for (int i = 0; i < 16; i++)
      if ((v[i] = make_block(&rng)) == NULL)
        _exit(2);
    int bad = 0;
    for (int i = 0; i < 16; i++) {
      size_t *b = v[i];
      if (!mt_verify(b + 1, b[0] - sizeof(size_t), b[0] ^ 0xabcdef))
        bad = 1;
      free(b);
    }
    free(malloc(1 << 20)); /* a huge block too */
    _exit(bad ? 3 : 0);
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
    ;
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    char msg[96];
    snprintf(msg, sizeof msg, "forked child: status 0x%x\n", status);
    mt_write_err(msg);
    __atomic_add_fetch(&mt_failures, 1, __ATOMIC_RELAXED);
  }
  forks++;
}

int main(int argc, char **argv) {
#ifndef NO_PTRS
  require_ptrs();
#endif
  long ms = mt_arg(argc, argv, 1, 3000);
  mt_start_watchdog(90);
  pthread_t th[WORKERS], p;
  p = mt_thread_create(purger, NULL);
  for (long i = 0; i < WORKERS; i++)
    th[i] = mt_thread_create(worker, (void *)(i + 1));
  uint64_t end = mt_now_ms() + (uint64_t)ms;
  while (mt_now_ms() < end) {
    mt_sleep_us(20000);
    fork_once();
  }
  __atomic_store_n(&stop, 1, __ATOMIC_RELAXED);
  for (int i = 0; i < WORKERS; i++)
    mt_thread_join(th[i]);
  mt_thread_join(p);
  for (int i = 0; i < SLOTS; i++)
    check_free(slots[i]);
  printf("purge-stress: %ld ms, %ld trims (%ld released memory), %ld forks\n",
         ms, trims, trims_released, forks);
  CHECK(trims > 0);
  CHECK(forks > 0);
  return mt_result();
}
