/* malloc returns distinct, 16-byte aligned, writable blocks owned by ptrs,
 * which stay intact while other blocks come and go. */
#include "test_helper.h"
#include <malloc.h>

#define N 2000

int main(void) {
  require_ptrs();
  static void *ptrs[N];
  static size_t sizes[N];
  uint64_t rng = 42;

  for (int i = 0; i < N; i++) {
    size_t sz;
    switch (i % 4) {
    case 0: sz = splitmix64(&rng) % 64 + 1; break;
    case 1: sz = splitmix64(&rng) % 1024 + 1; break;
    case 2: sz = splitmix64(&rng) % 32768 + 1; break;
    default: sz = splitmix64(&rng) % (512 * 1024) + 1; break;
    }
    sizes[i] = sz;
    ptrs[i] = malloc(sz);
    CHECK(ptrs[i] != NULL);
    if (ptrs[i] == NULL)
      return test_result();
    CHECK(is_aligned(ptrs[i], 16));
    CHECK(test_owns(ptrs[i]));
    CHECK(malloc_usable_size(ptrs[i]) >= sz);
    stamp_block(ptrs[i], sz, 7);
  }
  /* Free every third block, allocate replacements, then verify everything. */
  for (int i = 0; i < N; i += 3) {
    CHECK(verify_block(ptrs[i], sizes[i], 7));
    free(ptrs[i]);
    ptrs[i] = malloc(sizes[i]);
    CHECK(ptrs[i] != NULL);
    if (ptrs[i] == NULL)
      return test_result();
    CHECK(is_aligned(ptrs[i], 16));
    stamp_block(ptrs[i], sizes[i], 7);
  }
  int bad = 0;
  for (int i = 0; i < N; i++)
    if (!verify_block(ptrs[i], sizes[i], 7))
      bad++;
  CHECK(bad == 0);

  /* No two live blocks overlap (sort by address, compare neighbours). */
  for (int i = 1; i < N; i++) {
    void *p = ptrs[i];
    size_t s = sizes[i];
    int j = i - 1;
    while (j >= 0 && (uintptr_t)ptrs[j] > (uintptr_t)p) {
      ptrs[j + 1] = ptrs[j];
      sizes[j + 1] = sizes[j];
      j--;
    }
    ptrs[j + 1] = p;
    sizes[j + 1] = s;
  }
  int overlaps = 0;
  for (int i = 1; i < N; i++)
    if ((uintptr_t)ptrs[i - 1] + sizes[i - 1] > (uintptr_t)ptrs[i])
      overlaps++;
  CHECK(overlaps == 0);

  for (int i = 0; i < N; i++)
    free(ptrs[i]);
  return test_result();
}
