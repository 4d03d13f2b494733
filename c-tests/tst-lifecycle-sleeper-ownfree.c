/* Memory lifecycle: what a thread frees itself and then sleeps on goes
 * back to the OS (src/heap.rs, request_dormant_scan and
 * collect_dormant_heaps), as in a thread pool whose workers free their
 * job's memory and wait for the next job.
 *
 * For blocks of 64 B, 4 KiB and 100 000 B in turn: 4 workers each
 * allocate 16 MiB of such blocks (written), verify and free them all
 * themselves, and block on a semaphore. The main thread makes a slow path
 * every 2 ms (a 300 000-byte block, allocated, written and freed) and
 * must see RSS come back within 4 MiB of the start within 1.5 s. Only
 * blocks freed by other threads made the scan of sleeping owners look at
 * a heap, and the owner's own purge tick runs in its own slow paths: a
 * tester's 4 workers kept 43 MB resident for as long as they slept
 * (glibc: 3 MB). */
#include "mt_helper.h"
#include <semaphore.h>

#define WORKERS 4
#define PER_WORKER (16u << 20)

static size_t block_size;
static sem_t done, wake;

static void *worker(void *arg) {
  uint64_t seed = (uint64_t)(uintptr_t)arg;
  size_t n = PER_WORKER / block_size;
  char **v = malloc(n * sizeof *v);
  if (v == NULL)
    FAIL_EXIT("malloc failed");
  for (size_t i = 0; i < n; i++) {
    v[i] = malloc(block_size);
    if (v[i] == NULL)
      FAIL_EXIT("malloc(%zu) failed", block_size);
    mt_stamp(v[i], block_size, seed + i);
  }
  for (size_t i = 0; i < n; i++) {
    MT_CHECK(mt_verify(v[i], block_size, seed + i));
    free(v[i]);
  }
  free(v);
  sem_post(&done);
  sem_wait(&wake); /* sleeps without allocating */
  return NULL;
}

static void *volatile sink;

int main(void) {
  require_ptrs();
  mt_start_watchdog(120);
  sem_init(&done, 0, 0);
  sem_init(&wake, 0, 0);
  static const size_t sizes[] = {64, 4096, 100000};
  for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
    block_size = sizes[s];
    size_t start = rss_bytes();
    pthread_t t[WORKERS];
    for (int i = 0; i < WORKERS; i++)
      t[i] = mt_thread_create(worker, (void *)(uintptr_t)(i * 1000003 + s));
    for (int i = 0; i < WORKERS; i++)
      sem_wait(&done);
    size_t freed = rss_bytes();
    uint64_t t0 = mt_now_ms(), t1 = t0;
    size_t rss = freed;
    while (t1 - t0 < 1500) {
      char *p = malloc(300000);
      if (p == NULL)
        FAIL_EXIT("malloc(300000) failed");
      memset(p, 1, 300000);
      sink = p;
      free(p);
      mt_sleep_us(2000);
      rss = rss_bytes();
      t1 = mt_now_ms();
      if (rss <= start + (4u << 20))
        break;
    }
    printf("%zu-byte blocks: RSS at start %zu KiB, after the frees %zu KiB, "
           "%llu ms later %zu KiB\n",
           block_size, start >> 10, freed >> 10, (unsigned long long)(t1 - t0),
           rss >> 10);
    MT_CHECK(rss <= start + (4u << 20));
    for (int i = 0; i < WORKERS; i++)
      sem_post(&wake);
    for (int i = 0; i < WORKERS; i++)
      mt_thread_join(t[i]);
  }
  return mt_result();
}
