/* Memory lifecycle: the heap of an exited thread keeps no free memory
 * resident (src/retain.rs, kept_free_bytes; src/heap.rs, release_free).
 *
 * A heap in use keeps free slices up to a quarter of its active bytes
 * resident past the purge delay, for a program that frees and rebuilds.
 * A heap whose thread exited has no one to reuse them: its free slices
 * must go back a purge delay or two after the exit, like the rest of it,
 * while other threads keep running slow paths.
 *
 * Eight threads, one after another, each allocate 32 MiB in blocks of
 * 100000 bytes (large blocks, two slices each), write them, free nine in
 * ten (every tenth stays live, so the segments stay in use) and exit.
 * The main thread then calls malloc and free of a large and of small
 * blocks every 20 ms (slow paths, which run the ticks) for 600 ms. RSS
 * then must be within 3 MiB of what malloc_trim(0) leaves afterwards.
 * When the kept share stayed with the exited threads' heaps it was 6.8
 * MiB above (found by a fresh tester: /tmp/tester7-w/park2.c), and nothing
 * but malloc_trim gave it back. */
#include "mt_helper.h"

#define THREADS 8
#define BLOCK 100000
#define PER_THREAD ((32u << 20) / BLOCK)

static char **blocks[THREADS];

static void *worker(void *arg) {
  long id = (long)arg;
  char **v = calloc(PER_THREAD, sizeof *v);
  if (v == NULL)
    FAIL_EXIT("calloc failed");
  for (size_t i = 0; i < PER_THREAD; i++) {
    v[i] = malloc(BLOCK);
    if (v[i] == NULL)
      FAIL_EXIT("malloc(%d) failed", BLOCK);
    memset(v[i], (int)(id + 1), BLOCK);
  }
  for (size_t i = 0; i < PER_THREAD; i++)
    if (i % 10 != 0) {
      free(v[i]);
      v[i] = NULL;
    }
  blocks[id] = v;
  return NULL;
}

int main(void) {
#ifndef NO_PTRS
  require_ptrs();
#endif
  for (long i = 0; i < THREADS; i++) {
    pthread_t t = mt_thread_create(worker, (void *)i);
    pthread_join(t, NULL);
  }
  long at_exit = mt_rss_kib();
  for (int k = 0; k < 30; k++) {
    mt_sleep_us(20000);
    void *volatile big = malloc(256 << 10);
    if (big == NULL)
      FAIL_EXIT("malloc failed");
    ((char *)big)[0] = 1;
    free(big);
    for (int j = 0; j < 100; j++) {
      void *volatile small = malloc(5000 + (size_t)j);
      if (small == NULL)
        FAIL_EXIT("malloc failed");
      ((char *)small)[0] = 1;
      free(small);
    }
  }
  long settled = mt_rss_kib();
  /* The live blocks are intact. */
  for (long i = 0; i < THREADS; i++)
    for (size_t j = 0; j < PER_THREAD; j += 10) {
      const char *b = blocks[i][j];
      CHECK(b[0] == (char)(i + 1) && b[BLOCK / 2] == (char)(i + 1) && b[BLOCK - 1] == (char)(i + 1));
    }
  malloc_trim(0);
  long trimmed = mt_rss_kib();
  printf("RSS after the exits %ld KiB, after 600 ms of slow paths %ld KiB, after malloc_trim %ld KiB\n",
         at_exit, settled, trimmed);
  CHECK(settled >= 0 && trimmed >= 0);
  CHECK(settled <= trimmed + 3 * 1024);
  for (long i = 0; i < THREADS; i++) {
    for (size_t j = 0; j < PER_THREAD; j += 10)
      free(blocks[i][j]);
    free(blocks[i]);
  }
  return test_result();
}
