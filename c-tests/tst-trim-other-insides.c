/* malloc_trim(0) from one thread gives back the inside of the free blocks
 * of 8 KiB and more in another, sleeping thread's pages, even where each
 * page keeps a live block (src/heap.rs, take_empty_queue_heads with
 * `insides`): 4 workers each allocate 2 000 blocks of 8 to 32 KiB (about
 * 40 MB written in each), keep every tenth, free the rest themselves and
 * block on a semaphore; main calls malloc_trim(0), and RSS must drop by
 * at least half of what the workers freed. The owner pops from those
 * pages without a lock, so only a trim made after the handshake with it
 * (membarrier) may purge them; before, only a thread's own trim did
 * (tst-trim-block-insides). The workers then wake, check their kept
 * blocks, and allocate and fill the freed sizes again. */
#include "mt_helper.h"
#include <semaphore.h>

/* TIMEOUT: 60 */

#define WORKERS 4
#define N 2000

static sem_t done, wake;
static size_t size_of(int i) { return 8192 + (size_t)(i * 7919 % 24577); }

static void *worker(void *arg) {
  uint64_t seed = (uint64_t)(uintptr_t)arg;
  char **v = malloc(N * sizeof *v);
  if (v == NULL)
    FAIL_EXIT("malloc failed");
  for (int i = 0; i < N; i++) {
    v[i] = malloc(size_of(i));
    if (v[i] == NULL)
      FAIL_EXIT("malloc(%zu) failed", size_of(i));
    mt_stamp(v[i], size_of(i), seed + (uint64_t)i);
  }
  for (int i = 0; i < N; i++)
    if (i % 10 != 0) {
      MT_CHECK(mt_verify(v[i], size_of(i), seed + (uint64_t)i));
      free(v[i]);
      v[i] = NULL;
    }
  sem_post(&done);
  sem_wait(&wake); /* sleeps without allocating */
  for (int i = 0; i < N; i++) {
    if (v[i] != NULL) {
      MT_CHECK(mt_verify(v[i], size_of(i), seed + (uint64_t)i));
      free(v[i]);
    }
    char *b = malloc(size_of(i));
    MT_CHECK(b != NULL);
    if (b != NULL) {
      mt_stamp(b, size_of(i), seed ^ (uint64_t)i);
      MT_CHECK(mt_verify(b, size_of(i), seed ^ (uint64_t)i));
      free(b);
    }
  }
  free(v);
  return NULL;
}

int main(void) {
  require_ptrs();
  mt_start_watchdog(60);
  sem_init(&done, 0, 0);
  sem_init(&wake, 0, 0);
  size_t freed_bytes = 0;
  for (int i = 0; i < N; i++)
    if (i % 10 != 0)
      freed_bytes += size_of(i);
  freed_bytes *= WORKERS;
  pthread_t t[WORKERS];
  for (int i = 0; i < WORKERS; i++)
    t[i] = mt_thread_create(worker, (void *)(uintptr_t)(i * 1000003 + 5));
  for (int i = 0; i < WORKERS; i++)
    sem_wait(&done);
  size_t before = rss_bytes();
  malloc_trim(0);
  size_t after = rss_bytes();
  printf("workers freed %zu KiB; RSS %zu KiB before malloc_trim(0), %zu KiB after\n",
         freed_bytes >> 10, before >> 10, after >> 10);
  MT_CHECK(after + freed_bytes / 2 <= before);
  for (int i = 0; i < WORKERS; i++)
    sem_post(&wake);
  for (int i = 0; i < WORKERS; i++)
    mt_thread_join(t[i]);
  return mt_result();
}
