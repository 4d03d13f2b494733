/* Thread churn: thousands of short-lived threads, a few at a time, each
 * allocating a few KiB to a few hundred KiB, freeing most of it and leaving
 * a few blocks for the main thread to free after the thread has exited.
 * Whatever per-thread state the allocator keeps must be recycled: RSS after
 * all threads may exceed RSS after the first 500 by less than 8 MiB.
 *
 * Usage: tst-mt-thread-churn [threads [concurrent]] */
#include "mt_helper.h"

/* TIMEOUT: 120 */

#define MAX_CONCURRENT 16
#define LEFT 4
#define MAX_GROWTH_KIB (8L * 1024)

struct job {
  unsigned long id;
  void *left[LEFT];
  size_t left_size[LEFT];
};

static void *churn(void *arg) {
  struct job *job = arg;
  uint64_t rng = 0x7777ULL * (job->id + 1);
  enum { NB = 48 };
  void *b[NB];
  size_t sz[NB];
  /* Mostly small blocks; one in 16 threads also takes a few big ones. */
  int big = (job->id % 16) == 0;
  for (int i = 0; i < NB; i++) {
    uint64_t r = splitmix64(&rng);
    if (big && i < 3)
      sz[i] = 64 * 1024 + (size_t)(r % (192 * 1024));
    else if (r % 8 == 0)
      sz[i] = 1024 + (size_t)((r >> 8) % 8192);
    else
      sz[i] = 1 + (size_t)((r >> 8) % 512);
    b[i] = malloc(sz[i]);
    if (b[i] == NULL)
      FAIL_EXIT("malloc(%zu) failed", sz[i]);
    mt_stamp(b[i], sz[i], job->id + (uint64_t)i);
  }
  /* Leave LEFT blocks (spread over the array) for the main thread. */
  for (int i = 0; i < NB; i++) {
    if (i % (NB / LEFT) == NB / LEFT - 1) {
      job->left[i / (NB / LEFT)] = b[i];
      job->left_size[i / (NB / LEFT)] = sz[i];
      continue;
    }
    MT_CHECK(mt_verify(b[i], sz[i], job->id + (uint64_t)i));
    free(b[i]);
  }
  return NULL;
}

static void finish(pthread_t t, struct job *job) {
  mt_thread_join(t);
  for (int k = 0; k < LEFT; k++) {
    int i = k * (48 / LEFT) + 48 / LEFT - 1;
    MT_CHECK(mt_verify(job->left[k], job->left_size[k], job->id + (uint64_t)i));
    free(job->left[k]);
  }
}

int main(int argc, char **argv) {
  require_ptrs();
  long total = mt_arg(argc, argv, 1, 5000);
  long conc = mt_arg(argc, argv, 2, 4);
  if (conc > MAX_CONCURRENT)
    conc = MAX_CONCURRENT;
  if (total < 1000)
    total = 1000;
  mt_start_watchdog(110);

  static struct job jobs[MAX_CONCURRENT];
  pthread_t t[MAX_CONCURRENT];
  long rss_early = -1;
  long started = 0;
  while (started < total) {
    long n = conc;
    if (n > total - started)
      n = total - started;
    for (long i = 0; i < n; i++) {
      memset(&jobs[i], 0, sizeof jobs[i]);
      jobs[i].id = (unsigned long)(started + i);
      t[i] = mt_thread_create(churn, &jobs[i]);
    }
    for (long i = 0; i < n; i++)
      finish(t[i], &jobs[i]);
    started += n;
    if (rss_early < 0 && started >= 500)
      rss_early = mt_rss_kib();
  }
  long rss_late = mt_rss_kib();
  printf("RSS after 500 threads: %ld KiB, after %ld: %ld KiB\n", rss_early,
         total, rss_late);
  CHECK(rss_early > 0 && rss_late > 0);
  CHECK(rss_late - rss_early < MAX_GROWTH_KIB);
  return mt_result();
}
