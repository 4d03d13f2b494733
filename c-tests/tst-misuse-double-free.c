/* Freeing the same block twice aborts the process (SIGABRT) with the line
 * "ptrs: free(): double free detected: 0x<address>" on stderr, for small
 * blocks, large ones (70 KB, 300 KB: spans of slices) and huge ones (8 MiB:
 * own mappings, then cached or unmapped), and when the two frees come from
 * different threads. The blocks are allocated in the parent; a forked child
 * frees one twice. */
#include "test_helper.h"
#include <malloc.h>
#include <pthread.h>

/* A thread that frees the pointers written to a pipe, one at a time. It
 * is started before the first free of a scenario: creating a thread
 * allocates, and could otherwise reuse the memory just freed. */
static int to_worker[2], from_worker[2];

static void *worker(void *unused) {
  (void)unused;
  void *p;
  while (read(to_worker[0], &p, sizeof p) == (ssize_t)sizeof p) {
    free(p);
    char ack = 1;
    if (write(from_worker[1], &ack, 1) != 1)
      break;
  }
  return NULL;
}

static void start_worker(void) {
  pthread_t t;
  if (pipe(to_worker) != 0 || pipe(from_worker) != 0 ||
      pthread_create(&t, NULL, worker, NULL) != 0)
    _exit(3);
}

static void free_by_other_thread(void *p) {
  char ack;
  if (write(to_worker[1], &p, sizeof p) != (ssize_t)sizeof p ||
      read(from_worker[0], &ack, 1) != 1)
    _exit(3);
}

/* The owner frees, then another thread frees again. */
static void free_here_then_there(void *p) {
  start_worker();
  free(p);
  free_by_other_thread(test_ptr(p));
}

/* Another thread frees (a remote free), then the owner frees again. */
static void free_there_then_here(void *p) {
  start_worker();
  free_by_other_thread(p);
  free(test_ptr(p));
}

/* Another thread frees it twice. */
static void free_there_twice(void *p) {
  start_worker();
  free_by_other_thread(p);
  free_by_other_thread(test_ptr(p));
}

static void free_twice(void *p) {
  free(p);
  free(test_ptr(p));
}

/* The block is freed, other blocks of the same size come and go, then the
 * stale pointer is freed again. */
static void free_twice_later(void *p) {
  size_t n = malloc_usable_size(p);
  free(p);
  void *x[4];
  for (int i = 0; i < 4; i++)
    x[i] = malloc(n * 2 + 4096);
  for (int i = 0; i < 4; i++)
    free(x[i]);
  free(test_ptr(p));
}

int main(void) {
  require_ptrs();
  static const size_t sizes[] = {1,     24,     64,        512, 1000,
                                 4000,  40000,  70000, 300000, (size_t)8 << 20};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    void *p = malloc(sizes[i]);
    void *neighbour = malloc(sizes[i]);
    CHECK(p != NULL);
    char what[64];
    snprintf(what, sizeof what, "double free of malloc(%zu)", sizes[i]);
    expect_abort(what, free_twice, p, "free", "double free detected", p);
    free(p); /* the parent's copy is still live */
    free(neighbour);
  }
  static const size_t thread_sizes[] = {64, 4000, 300000, (size_t)8 << 20};
  for (size_t i = 0; i < sizeof thread_sizes / sizeof thread_sizes[0]; i++) {
    size_t n = thread_sizes[i];
    void *p = malloc(n);
    void *neighbour = malloc(n);
    CHECK(p != NULL);
    char what[96];
    snprintf(what, sizeof what, "malloc(%zu) freed by its thread, then another", n);
    expect_abort(what, free_here_then_there, p, "free", "double free detected", p);
    snprintf(what, sizeof what, "malloc(%zu) freed by another thread, then its own", n);
    expect_abort(what, free_there_then_here, p, "free", "double free detected", p);
    snprintf(what, sizeof what, "malloc(%zu) freed twice by another thread", n);
    expect_abort(what, free_there_twice, p, "free", "double free detected", p);
    free(p);
    free(neighbour);
  }
  void *c = calloc(10, 10);
  expect_abort("double free of calloc(10, 10)", free_twice, c, "free",
               "double free detected", c);
  free(c);
  void *a = aligned_alloc(64, 64);
  expect_abort("double free of aligned_alloc(64, 64)", free_twice, a, "free",
               "double free detected", a);
  free(a);
  void *l = malloc(100);
  expect_abort("double free after unrelated allocations", free_twice_later, l,
               "free", "double free detected", l);
  free(l);
  return test_result();
}
