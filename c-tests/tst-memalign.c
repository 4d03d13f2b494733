/* memalign: any power-of-two alignment from 1 to 4 MiB with sizes below
 * and above the alignment; a non-power-of-two alignment is rounded up to
 * the next power of two (glibc). */
#include "test_helper.h"
#include <malloc.h>

static size_t next_pow2(size_t x) {
  size_t p = 1;
  while (p < x)
    p <<= 1;
  return p;
}

static void try(size_t align, size_t size, size_t want_align) {
  void *p = memalign(test_size(align), test_size(size));
  if (p == NULL || !is_aligned(p, want_align))
    fprintf(stderr, "memalign(%zu, %zu) = %p\n", align, size, p);
  CHECK(p != NULL);
  if (p == NULL)
    return;
  CHECK(is_aligned(p, want_align));
  CHECK(is_aligned(p, 16));
  CHECK(test_owns(p));
  size_t u = malloc_usable_size(p);
  CHECK(u >= size);
  memset(p, 0xa5, u);
  fill_pattern(p, size, (uint32_t)align);
  CHECK(check_pattern(p, size, (uint32_t)align) == PATTERN_OK);
  free(p);
}

int main(void) {
  require_ptrs();
  for (size_t align = 1; align <= (4 << 20); align <<= 1) {
    static const size_t sizes[] = {0, 1, 8, 17, 100, 4095, 4096, 70000};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
      try(align, sizes[i], align);
    try(align, align - 1 ? align - 1 : 1, align);
    try(align, align, align);
    try(align, align + 1, align);
    try(align, 3 * align + 5, align);
  }
  try(2 << 20, 5 << 20, 2 << 20);
  try(4 << 20, 9 << 20, 4 << 20);

  /* Many live aligned blocks at once do not overlap and stay intact. */
  void *blocks[64];
  for (int i = 0; i < 64; i++) {
    size_t align = (size_t)1 << (4 + i % 10);
    blocks[i] = memalign(align, 100 + i * 37);
    CHECK(blocks[i] != NULL && is_aligned(blocks[i], align));
    if (blocks[i])
      fill_pattern(blocks[i], 100 + i * 37, i);
  }
  for (int i = 0; i < 64; i++)
    if (blocks[i]) {
      CHECK(check_pattern(blocks[i], 100 + i * 37, i) == PATTERN_OK);
      free(blocks[i]);
    }

  /* Non-power-of-two alignments round up. */
  static const size_t odd[] = {3, 5, 24, 33, 48, 100, 1000, 5000, 65537,
                               (3 << 20)};
  for (size_t i = 0; i < sizeof odd / sizeof odd[0]; i++) {
    try(odd[i], 10, next_pow2(odd[i]));
    try(odd[i], odd[i] * 2 + 1, next_pow2(odd[i]));
  }

  /* Impossible sizes fail with ENOMEM. */
  errno = 0;
  void *p = memalign(64, test_size(SIZE_MAX));
  CHECK(p == NULL && errno == ENOMEM);
  errno = 0;
  p = memalign(4096, test_size(SIZE_MAX - 8192));
  CHECK(p == NULL && errno == ENOMEM);
  errno = 0;
  p = memalign(1 << 20, test_size((size_t)PTRDIFF_MAX));
  CHECK(p == NULL && errno == ENOMEM);
  return test_result();
}
