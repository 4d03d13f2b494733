/* Every size from 0 to 4096, then every 7th size up to 70000: the block is
 * 16-byte aligned, its usable size is at least the request, all usable
 * bytes can be written, and a window of 64 live blocks never overlaps. */
#include "test_helper.h"
#include <malloc.h>

#define WINDOW 64

struct live { unsigned char *p; size_t n; unsigned char tag; };

static int intact(const struct live *l) {
  for (size_t i = 0; i < l->n; i++)
    if (l->p[i] != l->tag)
      return 0;
  return 1;
}

int main(void) {
  require_ptrs();
  struct live win[WINDOW] = {{0}};
  int slot = 0, misaligned = 0, small_usable = 0, corrupt = 0, unowned = 0;
  size_t count = 0;

  for (size_t n = 0; n <= 70000; n += (n < 4096 ? 1 : 7)) {
    struct live *l = &win[slot];
    if (l->p != NULL) {
      if (!intact(l)) {
        if (corrupt < 5)
          fprintf(stderr, "block of %zu bytes at %p corrupted\n", l->n,
                  (void *)l->p);
        corrupt++;
      }
      free(l->p);
    }
    unsigned char *p = malloc(n);
    if (p == NULL) {
      fprintf(stderr, "malloc(%zu) failed\n", n);
      CHECK(p != NULL);
      break;
    }
    if (!is_aligned(p, 16))
      misaligned++;
    size_t u = malloc_usable_size(p);
    if (u < n)
      small_usable++;
    if ((count & 255) == 0 && !test_owns(p))
      unowned++;
    l->p = p;
    l->n = u;
    l->tag = (unsigned char)(n * 31 + 7);
    memset(p, l->tag, u);
    slot = (slot + 1) % WINDOW;
    count++;
  }
  for (int i = 0; i < WINDOW; i++) {
    if (win[i].p != NULL && !intact(&win[i]))
      corrupt++;
    free(win[i].p);
  }
  fprintf(stderr, "%zu sizes\n", count);
  CHECK(count > 13000);
  CHECK(misaligned == 0);
  CHECK(small_usable == 0);
  CHECK(corrupt == 0);
  CHECK(unowned == 0);
  return test_result();
}
