/* Memory lifecycle: the heaps of exited threads give their free memory
 * back while the program makes only huge allocations (src/alloc.rs,
 * malloc_generic; src/free.rs, free_slow_inner; src/retain.rs, tick).
 *
 * The decay tick, which collects the parked heaps of exited threads a
 * purge delay after other threads freed into them, runs on the slow
 * paths of malloc and free. Huge blocks (above 2 MiB) bypass the heaps'
 * slow paths: a program that, after its threads exited and their blocks
 * were freed, made only huge allocations kept 60 to 780 MiB resident for
 * good (found by a fresh tester: /tmp/tester-a/parked_huge.c), until
 * malloc_trim(0) or any smaller allocation.
 *
 * Sixteen threads each allocate 6 MiB of small and large blocks (written)
 * and exit; the main thread frees every block, then only allocates,
 * writes and frees one 5 MiB block every 20 ms, for 1 s. RSS must then be
 * within 8 MiB of what malloc_trim(0) leaves. */
#include "mt_helper.h"
#include <malloc.h>

#define THREADS 16
#define BLOCKS 4000

static char *blocks[THREADS][BLOCKS];

static size_t block_size(int i) {
  return i % 50 == 0 ? 100000 : 16 + (size_t)(i * 37) % 400;
}

static void *worker(void *arg) {
  long id = (long)arg;
  for (int i = 0; i < BLOCKS; i++) {
    size_t n = block_size(i);
    blocks[id][i] = malloc(n);
    if (blocks[id][i] == NULL)
      FAIL_EXIT("malloc(%zu) failed", n);
    fill_pattern(blocks[id][i], n, (uint32_t)(id * BLOCKS + i));
  }
  return NULL;
}

int main(void) {
#ifndef NO_PTRS
  require_ptrs();
#endif
  long start = mt_rss_kib();
  pthread_t t[THREADS];
  for (long i = 0; i < THREADS; i++)
    t[i] = mt_thread_create(worker, (void *)i);
  for (int i = 0; i < THREADS; i++)
    pthread_join(t[i], NULL);
  long built = mt_rss_kib();
  for (int i = 0; i < THREADS; i++)
    for (int j = 0; j < BLOCKS; j++) {
      CHECK(check_pattern(blocks[i][j], block_size(j), (uint32_t)(i * BLOCKS + j)) == PATTERN_OK);
      free(blocks[i][j]);
    }
  for (int k = 0; k < 50; k++) {
    char *volatile huge = malloc(5 << 20);
    if (huge == NULL)
      FAIL_EXIT("malloc(5 MiB) failed");
    for (size_t off = 0; off < (5u << 20); off += 4096)
      huge[off] = (char)k;
    free(huge);
    mt_sleep_us(20000);
  }
  long settled = mt_rss_kib();
  malloc_trim(0);
  long trimmed = mt_rss_kib();
  printf("RSS at start %ld KiB, with the blocks %ld KiB, after 1 s of huge blocks only %ld KiB, "
         "after malloc_trim %ld KiB\n",
         start, built, settled, trimmed);
  CHECK(settled >= 0 && trimmed >= 0);
  CHECK(settled <= trimmed + 8 * 1024);
  return test_result();
}
