/* A block of a full page freed by another thread (the page asks its owner
 * to be told, and is told), then the owner frees another block of that
 * page (which takes the page off the full list while the notification is
 * still on its way, so the page keeps its flag bits), then the owner frees
 * the first block again: the second free aborts at once with "ptrs:
 * free(): double free detected: 0x<address>", for blocks of 64 B to 64 KiB.
 * (A fresh reviewer found the second free accepted, the error reported
 * only at the next allocation, when free's fast path compared the remote
 * list's head with its flag bits in place.) */
#include "test_helper.h"
#include <pthread.h>

static void *block_x, *block_y;

static void *free_x(void *unused) {
  (void)unused;
  free(block_x);
  return NULL;
}

/* In the forked child: the blocks were allocated by the parent. */
static void scenario(void *unused) {
  (void)unused;
  pthread_t t;
  if (pthread_create(&t, NULL, free_x, NULL) != 0 ||
      pthread_join(t, NULL) != 0)
    _exit(3);
  free(block_y);
  free(test_ptr(block_x)); /* the double free */
  fprintf(stderr, "the second free returned\n");
}

int main(void) {
  require_ptrs();
  static const size_t sizes[] = {64, 1024, 8192, 65536};
  /* Enough blocks that the first pages of each class are full. */
  enum { N = 2000 };
  static void *v[N];
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    for (int j = 0; j < N; j++) {
      v[j] = malloc(sizes[i]);
      CHECK(v[j] != NULL);
      if (v[j] == NULL)
        return test_result();
      memset(v[j], 0x5a, sizes[i]);
    }
    block_x = v[10];
    block_y = v[11];
    char what[96];
    snprintf(what, sizeof what, "remote free, owner's free, owner's double "
             "free (%zu B)", sizes[i]);
    expect_abort(what, scenario, NULL, "free", "double free detected",
                 block_x);
    for (int j = 0; j < N; j++)
      free(v[j]);
  }
  return test_result();
}
