/* A double free that free's own test does not see at once (free tests the
 * heads of the page's free lists, so a block freed twice with other frees
 * of its page in between gets past it) is caught before the block can be
 * handed out twice, and before the page's memory is given back:
 *
 * - at the allocation that would take the block a second time:
 *   "ptrs: malloc(): double free or write after free detected: 0x<block>";
 * - at the free that would take the page's count of blocks in use below
 *   zero, or when the page empties: "ptrs: free(): double free detected:
 *   0x<block>", naming the block freed twice;
 *
 * and a write into a freed block's free mark (a use after free) is caught
 * at the allocation that takes it. Each scenario runs in a forked child,
 * on blocks of one size class that the child's heap serves from one page.
 */
#include "test_helper.h"
#include <malloc.h>
#include <pthread.h>

/* Blocks of 48 bytes: a class that nothing else in this test uses. */
enum { SIZE = 48 };

static void *blocks[8];

static void fill(void) {
  for (int i = 0; i < 8; i++) {
    blocks[i] = malloc(SIZE);
    if (blocks[i] == NULL)
      _exit(3);
  }
}

/* b freed, c freed, b freed again: the list is b, c, b, c, ... Two
 * allocations take b and c; the third would take b again. */
static void late_double_free_then_allocate(void *unused) {
  (void)unused;
  void *b = blocks[1], *c = blocks[2];
  free(b);
  free(c);
  free(test_ptr(b));
  void *x = malloc(SIZE);
  void *y = malloc(SIZE);
  void *z = malloc(SIZE); /* aborts: b again */
  /* Reached only if the third allocation returned: never the same block. */
  if (z == x || z == y || x == y)
    fprintf(stderr, "handed out twice: %p %p %p\n", x, y, z);
}

/* The same, then every other block of the page is freed: the count of
 * blocks in use reaches zero while a block is still counted twice. */
static void late_double_free_then_empty(void *unused) {
  (void)unused;
  void *b = blocks[1], *c = blocks[2];
  free(b);
  free(c);
  free(test_ptr(b));
  for (int i = 0; i < 8; i++)
    if (i != 1 && i != 2)
      free(blocks[i]);
}

/* A thread that frees the pointers written to a pipe, one at a time. */
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

static void free_by_other_thread(void *p) {
  char ack;
  if (write(to_worker[1], &p, sizeof p) != (ssize_t)sizeof p ||
      read(from_worker[0], &ack, 1) != 1)
    _exit(3);
}

/* b and c freed by another thread (the page's remote list: c, b), then b
 * freed again by its owner, past free's test of the list heads: that push
 * links the remote list into the local one. Taking the remote list back
 * (malloc_trim does it at once) would count more blocks free than are out.
 */
static void remote_then_local_behind_the_head(void *unused) {
  (void)unused;
  pthread_t t;
  if (pipe(to_worker) != 0 || pipe(from_worker) != 0 ||
      pthread_create(&t, NULL, worker, NULL) != 0)
    _exit(3);
  for (int i = 4; i < 8; i++)
    free(blocks[i]);
  free_by_other_thread(blocks[1]);
  free_by_other_thread(blocks[2]);
  free(test_ptr(blocks[1]));
  malloc_trim(0);
  for (int i = 0; i < 8; i++)
    (void)malloc(SIZE);
}

/* A freed block's second word overwritten (its free mark), then the block
 * is taken again. */
static void write_after_free(void *unused) {
  (void)unused;
  void *b = blocks[3];
  free(b);
  ((volatile size_t *)test_ptr(b))[1] = 0x1234;
  (void)malloc(SIZE);
}

int main(void) {
  require_ptrs();
  fill();
  expect_abort("a block freed twice with a free in between, then allocated",
               late_double_free_then_allocate, NULL, "malloc",
               "double free or write after free detected", blocks[1]);
  expect_abort("a block freed twice with a free in between, then the page emptied",
               late_double_free_then_empty, NULL, "free", "double free detected",
               blocks[1]);
  expect_abort("a block freed by another thread, then by its owner behind "
               "the remote list's head",
               remote_then_local_behind_the_head, NULL, "free",
               "double free detected", blocks[1]);
  expect_abort("a freed block's free mark overwritten, then allocated",
               write_after_free, NULL, "malloc",
               "double free or write after free detected", blocks[3]);
  /* The parent's heap is untouched: its blocks come and go as usual. */
  for (int i = 0; i < 8; i++)
    free(blocks[i]);
  void *again[8];
  for (int i = 0; i < 8; i++) {
    again[i] = malloc(SIZE);
    CHECK(again[i] != NULL);
    for (int j = 0; j < i; j++)
      CHECK(again[i] != again[j]);
  }
  for (int i = 0; i < 8; i++)
    free(again[i]);
  return test_result();
}
