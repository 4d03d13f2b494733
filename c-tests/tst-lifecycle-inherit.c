/* Memory lifecycle: a thread that adopts the heap of an exited thread
 * inherits that thread's demand (src/heap.rs, INHERIT_MAX_MS): the free
 * memory of the heap stays resident while the new thread builds the same
 * working set again, instead of being purged by its first purge ticks
 * and faulted in again.
 *
 * A program that runs a fresh set of threads per request: waves of 4
 * threads, each allocating 250 blocks of 64 to 256 KiB (about 40 MB),
 * writing all of them, keeping 1 in 20 in a cache that later threads
 * evict from (remote frees into parked or adopted heaps), freeing the
 * rest and exiting. glibc hands its arenas to the next threads with their
 * memory: about 0.8 M page faults in 30 waves of 2 000 blocks a thread,
 * against 8.9 M for ptrs before (every wave faulted its 1.4 GB in again).
 *
 * Checked: from the fourth wave on, the minor page faults of the waves
 * are under two thirds of the pages their threads write (before: 74 to
 * 85 %; now 24 to 37 % on a quiet machine, up to 53 % on a loaded one,
 * where a thread that outlives the one whose heap it adopted has the
 * rest of its work purged and faulted in again). Contents of cached
 * blocks are checked when evicted. */
#include "mt_helper.h"
#include "request_cache.h"

#include <sys/resource.h>

#define WAVES 10
#define THREADS 4
#define PER_THREAD 250
#define CACHE 200

static void *cache_block[CACHE];
static size_t cache_len[CACHE];
static struct request_cache cache = {cache_block, cache_len, CACHE, 0, PTHREAD_MUTEX_INITIALIZER};
static size_t written[WAVES * THREADS];

static void *worker(void *arg) {
  long id = (long)arg;
  written[id] = request_run(&cache, (uint64_t)id, PER_THREAD, 64 << 10, 256 << 10);
  return NULL;
}

static long minor_faults(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_minflt;
}

int main(void) {
  require_ptrs();
  if (under_memcheck()) {
    fprintf(stderr, "counts page faults, which under valgrind are valgrind's\n");
    return EXIT_UNSUPPORTED;
  }
  long page = sysconf(_SC_PAGESIZE);
  long faults_late = 0, pages_late = 0;
  for (long w = 0; w < WAVES; w++) {
    long before = minor_faults();
    pthread_t t[THREADS];
    for (long i = 0; i < THREADS; i++)
      t[i] = mt_thread_create(worker, (void *)(w * THREADS + i));
    for (int i = 0; i < THREADS; i++)
      pthread_join(t[i], NULL);
    long faults = minor_faults() - before;
    long pages = 0;
    for (int i = 0; i < THREADS; i++)
      pages += (long)(written[w * THREADS + i] / (size_t)page);
    printf("wave %ld: %ld faults, %ld pages written\n", w, faults, pages);
    if (w >= 3) {
      faults_late += faults;
      pages_late += pages;
    }
  }
  printf("waves 3..%d: %ld faults for %ld pages written\n", WAVES - 1, faults_late, pages_late);
  CHECK(faults_late * 3 < pages_late * 2);
  request_cache_clear(&cache);
  return test_result();
}
