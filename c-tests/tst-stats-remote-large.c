/* Statistics read by the owner of large blocks that another thread freed
 * (src/heap.rs, hold_for_statistics).
 *
 * A large block (above 64 KiB, below the 2 MiB huge threshold) freed by a
 * thread that does not own it reaches its owner only as a notification,
 * which the owner takes at its next slow path. A statistics snapshot
 * takes those pages back in the heaps of other threads; in the calling
 * thread's own heap it did not, and the walk counts a large page by its
 * count alone: the main thread allocated 100 blocks of 1 MB, another
 * thread freed them all, and main's own mallinfo2() read 100 MB in use
 * until main allocated again (found by a fresh tester:
 * /tmp/tester-a/srl4.c; glibc reads under 1 KiB).
 *
 * Here the main thread allocates 100 blocks of 1 MB (contents written), a
 * second thread verifies and frees them and then waits; main's
 * mallinfo2() and ptrs_stats_get() must both count them free, with no
 * allocation by main in between. */
#include "mt_helper.h"
#include "ptrs.h"
#include <malloc.h>

#define N 100
#define SIZE 1000000

static char *blocks[N];
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int freed, quit;

static void *freer(void *arg) {
  (void)arg;
  for (int i = 0; i < N; i++) {
    CHECK(check_pattern(blocks[i], SIZE, (uint32_t)i) == PATTERN_OK);
    free(blocks[i]);
  }
  pthread_mutex_lock(&mu);
  freed = 1;
  pthread_cond_broadcast(&cv);
  while (!quit)
    pthread_cond_wait(&cv, &mu);
  pthread_mutex_unlock(&mu);
  return NULL;
}

int main(void) {
#ifndef NO_PTRS
  require_ptrs();
#endif
  __typeof__(ptrs_stats_get) *stats_get = ptrs_symbol("ptrs_stats_get");
  struct mallinfo2 before = mallinfo2();
  ptrs_stats s0 = {0};
  if (stats_get)
    CHECK(stats_get(&s0) == 0);
  for (int i = 0; i < N; i++) {
    blocks[i] = malloc(SIZE);
    if (blocks[i] == NULL)
      FAIL_EXIT("malloc(%d) failed", SIZE);
    fill_pattern(blocks[i], SIZE, (uint32_t)i);
  }
  struct mallinfo2 full = mallinfo2();
  size_t in_use_full = (full.uordblks + full.hblkhd) - (before.uordblks + before.hblkhd);
  CHECK(in_use_full >= (size_t)N * SIZE);
  pthread_t t = mt_thread_create(freer, NULL);
  pthread_mutex_lock(&mu);
  while (!freed)
    pthread_cond_wait(&cv, &mu);
  pthread_mutex_unlock(&mu);
  /* No allocation by this thread from here to the readings. */
  struct mallinfo2 after = mallinfo2();
  ptrs_stats s1 = {0};
  if (stats_get)
    CHECK(stats_get(&s1) == 0);
  long long delta = (long long)(after.uordblks + after.hblkhd) - (long long)(before.uordblks + before.hblkhd);
  long long delta_stats = (long long)s1.allocated - (long long)s0.allocated;
  printf("in use: %zu bytes with the blocks, %lld after another thread freed them (ptrs_stats_get: %lld)\n",
         in_use_full, delta, delta_stats);
  CHECK(delta < 64 * 1024);
  if (stats_get)
    CHECK(delta_stats < 64 * 1024);
  pthread_mutex_lock(&mu);
  quit = 1;
  pthread_cond_broadcast(&cv);
  pthread_mutex_unlock(&mu);
  pthread_join(t, NULL);
  return test_result();
}
