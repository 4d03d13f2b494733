/* ptrs's statistics calls are not cancellation points. A thread with a
 * pending (deferred) cancellation calls malloc_stats, mallinfo2,
 * ptrs_stats_get and ptrs_stats_print: each must finish its work (the whole
 * table printed, the figures filled in), and the thread must then be
 * cancelled at its next cancellation point, as with glibc (glibc's
 * tst-malloc-stats-cancellation). libc's open/read/close, used to read
 * /proc/self/statm, are cancellation points: with them the thread was
 * cancelled inside ptrs, a forced unwind through frames built with
 * panic = "abort". */
#include "test_helper.h"
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <ptrs.h>
#include <unistd.h>

static pthread_barrier_t gate;
static volatile int reached; /* how far the thread got */
static struct mallinfo2 info;
static struct ptrs_stats stats;
static int lines;

static void count_line(void *ctx, const char *line) {
  (void)ctx;
  (void)line;
  lines++;
}

static void *thread(void *arg) {
  (void)arg;
  /* Released with the cancellation request already pending;
   * pthread_barrier_wait is not a cancellation point. */
  pthread_barrier_wait(&gate);
  malloc_stats();
  reached = 1;
  info = mallinfo2();
  reached = 2;
  int (*get)(struct ptrs_stats *) =
      (int (*)(struct ptrs_stats *))ptrs_symbol("ptrs_stats_get");
  if (get != NULL && get(&stats) == 0)
    reached = 3;
  void (*print)(void (*)(void *, const char *), void *) =
      (void (*)(void (*)(void *, const char *), void *))ptrs_symbol(
          "ptrs_stats_print");
  if (print != NULL)
    print(count_line, NULL);
  reached = 4;
  void *p = malloc(100); /* malloc and free are not cancellation points */
  free(p);
  reached = 5;
  pthread_testcancel();
  reached = 6; /* must not get here */
  return NULL;
}

int main(void) {
  require_ptrs();
  char path[] = "/tmp/tst-stats-cancellation-XXXXXX";
  int fd = mkstemp(path);
  if (fd < 0)
    FAIL_EXIT("mkstemp: %s", strerror(errno));
  unlink(path);
  fflush(stderr);
  int saved_err = dup(2);
  if (saved_err < 0 || dup2(fd, 2) < 0)
    FAIL_EXIT("dup: %s", strerror(errno));

  pthread_t t;
  if (pthread_barrier_init(&gate, NULL, 2) != 0 ||
      pthread_create(&t, NULL, thread, NULL) != 0)
    FAIL_EXIT("pthread setup failed");
  CHECK(pthread_cancel(t) == 0);
  pthread_barrier_wait(&gate);
  void *rv = NULL;
  CHECK(pthread_join(t, &rv) == 0);

  dup2(saved_err, 2);
  close(saved_err);
  char text[65536];
  ssize_t n = pread(fd, text, sizeof text - 1, 0);
  text[n > 0 ? n : 0] = '\0';
  close(fd);

  CHECK(rv == PTHREAD_CANCELED);
  if (reached != 5)
    fprintf(stderr, "the thread stopped at step %d of 5\n", reached);
  CHECK(reached == 5);
  /* The whole table, to its last line. */
  CHECK(strstr(text, "statistics") != NULL);
  CHECK(strstr(text, "allocated:") != NULL);
  CHECK(strstr(text, "max mmap bytes") != NULL);
  CHECK(info.arena > 0);
  CHECK(stats.mapped > 0);
  CHECK(stats.resident > 0); /* read from /proc/self/statm */
  CHECK(lines > 5);
  if (test_failures)
    fprintf(stderr, "--- the thread's malloc_stats output ---\n%s", text);
  return test_result();
}
