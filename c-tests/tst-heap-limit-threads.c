/* The heap limit holds when threads allocate at once: 8 threads released
 * together by a barrier allocate until malloc fails, keeping every block,
 * with huge blocks (3 MB, a mapping each), with large blocks (200 000 B,
 * spans of 4 MiB segments) and with small ones (3000 B). What ptrs maps
 * (ptrs_stats_get: mapped and its peak) and the bytes handed out must stay
 * within PTRS_HEAP_LIMIT (32 MiB, set by re-executing this test), and the
 * blocks' contents are checked. Each thread used to test the mapped
 * counters and map afterwards, so threads that tested at once all passed:
 * 16 blocks of 3 MB and 52 MB mapped under 32 MiB (fresh tester). */
#include "test_helper.h"
#include "ptrs.h"
#include <pthread.h>
#include <stdint.h>

#define THREADS 8
#define LIMIT (32u << 20)

static __typeof__(ptrs_stats_get) *stats_get;
static pthread_barrier_t start;
static size_t block_size;

struct result {
  size_t blocks;
  int bad;
};

static void *worker(void *arg) {
  struct result *r = arg;
  void **kept = NULL;
  size_t n = 0, cap = 0;
  pthread_barrier_wait(&start);
  for (;;) {
    unsigned char *p = malloc(block_size);
    if (p == NULL)
      break;
    memset(p, (int)((uintptr_t)p >> 4), block_size);
    if (n == cap) {
      /* The list itself is small: 4 KiB to start, doubling. */
      cap = cap ? cap * 2 : 512;
      void **grown = realloc(kept, cap * sizeof *kept);
      if (grown == NULL) {
        free(p);
        break;
      }
      kept = grown;
    }
    kept[n++] = p;
  }
  for (size_t i = 0; i < n; i++) {
    unsigned char *p = kept[i];
    for (size_t j = 0; j < block_size; j += 997)
      if (p[j] != (unsigned char)((uintptr_t)p >> 4))
        r->bad++;
  }
  r->blocks = n;
  /* Kept until every thread has stopped, so none reuses another's memory. */
  pthread_barrier_wait(&start);
  for (size_t i = 0; i < n; i++)
    free(kept[i]);
  free(kept);
  return NULL;
}

static void run(size_t size) {
  block_size = size;
  pthread_t t[THREADS];
  struct result res[THREADS];
  memset(res, 0, sizeof res);
  CHECK(pthread_barrier_init(&start, NULL, THREADS + 1) == 0);
  for (int i = 0; i < THREADS; i++)
    CHECK(pthread_create(&t[i], NULL, worker, &res[i]) == 0);
  pthread_barrier_wait(&start); /* go */
  /* Wait for the workers to stop allocating: the second barrier. */
  pthread_barrier_wait(&start);
  struct ptrs_stats s;
  stats_get(&s);
  for (int i = 0; i < THREADS; i++)
    pthread_join(t[i], NULL);
  pthread_barrier_destroy(&start);
  size_t blocks = 0;
  int bad = 0;
  for (int i = 0; i < THREADS; i++) {
    blocks += res[i].blocks;
    bad += res[i].bad;
  }
  printf("%zu-byte blocks: %zu handed out (%zu bytes), mapped %zu, peak "
         "mapped %zu, limit %u\n", size, blocks, blocks * size, s.mapped,
         s.peak_mapped, LIMIT);
  CHECK(bad == 0);
  CHECK(blocks > 0);
  CHECK(blocks * size <= LIMIT);
  CHECK(s.mapped <= LIMIT);
  CHECK(s.peak_mapped <= LIMIT);
}

int main(int argc, char **argv) {
  require_ptrs();
  stats_get = ptrs_symbol("ptrs_stats_get");
  CHECK(stats_get != NULL);
  if (stats_get == NULL)
    return test_result();
  if (argc < 2) {
    /* Re-executed with the limit set from the start. */
    setenv("PTRS_HEAP_LIMIT", "32M", 1);
    execl("/proc/self/exe", argv[0], "child", (char *)NULL);
    FAIL_EXIT("execl: %s", strerror(errno));
  }
  run(3000000);
  run(200000);
  run(3000);
  return test_result();
}
