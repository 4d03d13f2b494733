/* Memory a thread leaves for the decay tick goes back to the OS while that
 * thread goes on allocating only from pages it already has (malloc's fast
 * path, no slow path that would run the tick; src/heap.rs,
 * note_left_to_tick):
 *
 *   1. blocks it frees into the heap of a thread that has exited;
 *   2. blocks it frees into the heap of a thread that sleeps;
 *   3. huge blocks it frees itself (kept in the huge-mapping cache).
 *
 * Before the fix each stayed resident for as long as the program ran
 * (100 MiB of 512-byte blocks in 1 and 2, 49 MiB in 3; glibc: 3 MiB after
 * 1). Here the thread makes 20 pairs of 200-byte mallocs every 2 ms after
 * the frees, and RSS must fall by most of what was freed within 2 s. */
#include "mt_helper.h"

#define SMALL_SIZE 512
#define SMALL_COUNT (64 * 1024) /* 32 MiB of small blocks */
#define HUGE_SIZE (3u << 20)    /* above ptrs's large-block limit */
#define HUGE_COUNT 24           /* 72 MiB; the cache keeps at most 64 MiB */

static void *volatile sink;
static char *small[SMALL_COUNT];

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static int built, wake;

/* Allocates the small blocks; with arg non-null, then sleeps until woken. */
static void *builder(void *arg) {
  for (int i = 0; i < SMALL_COUNT; i++) {
    small[i] = malloc(SMALL_SIZE);
    if (small[i] == NULL)
      FAIL_EXIT("malloc(%d) failed", SMALL_SIZE);
    memset(small[i], (i & 0x7f) + 1, SMALL_SIZE);
  }
  pthread_mutex_lock(&lock);
  built = 1;
  pthread_cond_broadcast(&cond);
  if (arg != NULL)
    while (!wake)
      pthread_cond_wait(&cond, &lock);
  pthread_mutex_unlock(&lock);
  return NULL;
}

/* Makes only fast-path pairs until RSS is `drop` bytes below `before` or
 * 2 s have passed; returns the last RSS. */
static size_t pairs_until_drop(const char *what, size_t before, size_t drop) {
  uint64_t t0 = mt_now_ms();
  uint64_t t = 0;
  size_t rss = before;
  while (t < 2000) {
    for (int k = 0; k < 20; k++) {
      sink = malloc(200);
      free(sink);
    }
    mt_sleep_us(2000);
    rss = rss_bytes();
    t = mt_now_ms() - t0;
    if (rss + drop <= before)
      break;
  }
  printf("%s: RSS after the frees %zu KiB, %llu ms later %zu KiB\n", what,
         before >> 10, (unsigned long long)t, rss >> 10);
  return rss;
}

/* Frees the small blocks (built by another thread) and checks they go
 * back. */
static void free_small_and_wait(const char *what) {
  for (int i = 0; i < SMALL_COUNT; i++) {
    if (small[i][0] != (char)((i & 0x7f) + 1) ||
        small[i][SMALL_SIZE - 1] != (char)((i & 0x7f) + 1))
      FAIL_EXIT("%s: block %d changed", what, i);
    free(small[i]);
  }
  size_t freed = rss_bytes();
  size_t rss = pairs_until_drop(what, freed, 24u << 20);
  CHECK(rss + (24u << 20) <= freed);
}

int main(void) {
  require_ptrs();
  /* The 200-byte class's page exists before: the loops take only the
   * fast path. */
  for (int i = 0; i < 64; i++) {
    sink = malloc(200);
    free(sink);
  }

  /* 1. The owner has exited. */
  mt_thread_join(mt_thread_create(builder, NULL));
  free_small_and_wait("exited owner");

  /* 2. The owner sleeps. */
  built = 0;
  pthread_t sleeper = mt_thread_create(builder, (void *)1);
  pthread_mutex_lock(&lock);
  while (!built)
    pthread_cond_wait(&cond, &lock);
  pthread_mutex_unlock(&lock);
  free_small_and_wait("sleeping owner");
  pthread_mutex_lock(&lock);
  wake = 1;
  pthread_cond_broadcast(&cond);
  pthread_mutex_unlock(&lock);
  mt_thread_join(sleeper);

  /* 3. Huge blocks freed by this thread. */
  static char *huge[HUGE_COUNT];
  for (int i = 0; i < HUGE_COUNT; i++) {
    huge[i] = malloc(HUGE_SIZE);
    if (huge[i] == NULL)
      FAIL_EXIT("malloc(%u) failed", HUGE_SIZE);
    memset(huge[i], i + 1, HUGE_SIZE);
  }
  for (int i = 0; i < HUGE_COUNT; i++) {
    CHECK(huge[i][0] == (char)(i + 1) && huge[i][HUGE_SIZE - 1] == (char)(i + 1));
    free(huge[i]);
  }
  size_t freed = rss_bytes();
  size_t rss = pairs_until_drop("huge blocks", freed, 32u << 20);
  CHECK(rss + (32u << 20) <= freed);
  return test_result();
}
