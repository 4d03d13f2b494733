/* Under an address-space limit (RLIMIT_AS a few hundred MiB above current
 * use), allocating until failure ends with NULL and ENOMEM (never a crash),
 * the failures of calloc, realloc, posix_memalign and aligned_alloc leave
 * everything intact, and after freeing, allocation succeeds again. */
#include "test_helper.h"
#include <malloc.h>

#define HEADROOM ((size_t)256 << 20)

struct node { struct node *next; };

/* Allocate blocks of size n into the list until malloc fails (or cap). */
static size_t fill(struct node **list, size_t n, size_t cap, int *errno_out) {
  size_t count = 0;
  for (; count < cap; count++) {
    errno = 0;
    struct node *b = malloc(n);
    if (b == NULL) {
      *errno_out = errno;
      return count;
    }
    b->next = *list;
    *list = b;
  }
  *errno_out = -1;
  return count;
}

static void free_list(struct node **list) {
  while (*list) {
    struct node *next = (*list)->next;
    free(*list);
    *list = next;
  }
}

int main(void) {
  require_ptrs();
  /* Warm up the paths used later (stdio, ptrs_owns lookup). */
  fprintf(stderr, "start\n");
  void *warm = malloc(100000);
  free(warm);
  (void)test_owns(NULL);

  struct rlimit rl;
  size_t limit = vm_size_bytes() + HEADROOM;
  rl.rlim_cur = rl.rlim_max = limit;
  if (setrlimit(RLIMIT_AS, &rl) != 0)
    FAIL_EXIT("setrlimit: %s", strerror(errno));

  /* A block that must survive the failures below. */
  char *keep = malloc(1000);
  CHECK(keep != NULL);
  if (keep == NULL)
    return test_result();
  fill_pattern(keep, 1000, 8);

  struct node *list = NULL;
  int e1, e2, e3;
  size_t n1 = fill(&list, 4 << 20, 10000, &e1);
  size_t n2 = fill(&list, 64 << 10, 100000, &e2);
  size_t n3 = fill(&list, 200, 10000000, &e3);
  fprintf(stderr, "4 MiB blocks: %zu (errno %d), 64 KiB: %zu (errno %d), "
          "200 B: %zu (errno %d)\n", n1, e1, n2, e2, n3, e3);
  CHECK(e1 == ENOMEM);
  CHECK(e2 == ENOMEM);
  CHECK(e3 == ENOMEM);
  /* The headroom was usable: at most an eighth of it lost to headers,
   * alignment and the segments of the small blocks (here: 62 of 64 4 MiB
   * blocks, then 98 % of the headroom in all). */
  CHECK(n1 >= HEADROOM / (4 << 20) * 7 / 8);
  CHECK(n1 <= HEADROOM / (4 << 20));
  size_t used = n1 * ((size_t)4 << 20) + n2 * ((size_t)64 << 10) + n3 * 200;
  fprintf(stderr, "%zu MiB of %zu MiB headroom in blocks\n", used >> 20,
          HEADROOM >> 20);
  CHECK(used >= HEADROOM * 7 / 8);

  /* Other functions fail cleanly while the limit is exhausted. */
  errno = 0;
  void *p = malloc(64 << 20);
  CHECK(p == NULL && errno == ENOMEM);
  errno = 0;
  p = calloc(1, 64 << 20);
  CHECK(p == NULL && errno == ENOMEM);
  errno = 0;
  p = calloc(4096, 4096);
  CHECK(p == NULL && errno == ENOMEM);
  errno = 0;
  char *r = realloc(keep, 64 << 20);
  CHECK(r == NULL && errno == ENOMEM);
  if (r != NULL)
    keep = r;
  CHECK(check_pattern(keep, 1000, 8) == PATTERN_OK);
  void *pm = (void *)1;
  errno = 1234;
  CHECK(posix_memalign(&pm, 4096, 64 << 20) == ENOMEM);
  CHECK(pm == (void *)1 && errno == ENOMEM); /* glibc 2.36 sets errno too */
  errno = 0;
  p = aligned_alloc(1 << 20, 64 << 20);
  CHECK(p == NULL && errno == ENOMEM);
  errno = 0;
  p = memalign(2 << 20, 64 << 20);
  CHECK(p == NULL && errno == ENOMEM);

  /* Free everything and allocate again. */
  free_list(&list);
  size_t again = fill(&list, 4 << 20, n1, &e1);
  fprintf(stderr, "after freeing: %zu 4 MiB blocks (before: %zu)\n", again,
          n1);
  /* All of it is usable again (one block of slack for what the heap keeps
   * of the small blocks' segments): a leak of 5 % of the freed memory
   * would cost three blocks. */
  CHECK(again + 1 >= n1);
  free_list(&list);

  char *big = malloc(64 << 20);
  CHECK(big != NULL);
  if (big != NULL) {
    memset(big, 0x42, 64 << 20);
    free(big);
  }
  r = realloc(keep, 32 << 20);
  CHECK(r != NULL);
  if (r != NULL) {
    CHECK(check_pattern(r, 1000, 8) == PATTERN_OK);
    keep = r;
  }
  free(keep);
  size_t small = fill(&list, 200, 100000, &e3);
  CHECK(small == 100000);
  free_list(&list);
  return test_result();
}
