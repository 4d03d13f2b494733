/* malloc_trim(0) returns 1 when it gave memory back to the system and 0
 * when there was nothing to give back (glibc's contract): 1 after 200 MiB
 * of small and medium blocks (16 B .. 64 KiB) are freed, and the resident
 * set size then drops back near where it started; 0 when called again at
 * once. */
#include "test_helper.h"
#include <malloc.h>
#include <sys/mman.h>

#define TARGET ((size_t)200 << 20)
#define MAXN 200000

int main(void) {
  require_ptrs();
  /* The pointer array lives outside the heap. */
  void **p = mmap(NULL, MAXN * sizeof(void *), PROT_READ | PROT_WRITE,
                  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED)
    FAIL_EXIT("mmap: %s", strerror(errno));
  free(malloc(100)); /* warm up */
  malloc_trim(0);
  CHECK(malloc_trim(0) == 0); /* nothing left to give back */
  size_t start = rss_bytes();

  uint64_t rng = 1;
  size_t total = 0, n = 0;
  while (total < TARGET && n < MAXN) {
    /* Log-uniform between 16 B and 64 KiB. */
    unsigned shift = 4 + (unsigned)(splitmix64(&rng) % 13);
    size_t sz = ((size_t)1 << shift) + splitmix64(&rng) % ((size_t)1 << shift);
    if (sz > 65536)
      sz = 65536;
    p[n] = malloc(sz);
    CHECK(p[n] != NULL);
    if (p[n] == NULL)
      break;
    memset(p[n], 0x5a, sz);
    total += sz;
    n++;
  }
  size_t peak = rss_bytes();
  fprintf(stderr, "start rss %zu KiB, %zu blocks %zu KiB, peak %zu KiB\n",
          start >> 10, n, total >> 10, peak >> 10);
  CHECK(peak >= start + TARGET / 2); /* the memory really was resident */

  /* Free in an interleaved order so no allocator gets it easy. */
  for (size_t i = 0; i < n; i += 2)
    free(p[i]);
  for (size_t i = 1; i < n; i += 2)
    free(p[i]);
  int r = malloc_trim(0);
  CHECK(r == 1);
  CHECK(malloc_trim(0) == 0);
  size_t end = rss_bytes();
  fprintf(stderr, "after free + malloc_trim(0) = %d: rss %zu KiB\n", r,
          end >> 10);
  CHECK(end <= start + ((size_t)16 << 20));

  /* The heap is still usable after trimming. */
  for (int i = 0; i < 1000; i++) {
    void *q = malloc((size_t)i * 61 + 1);
    CHECK(q != NULL);
    if (q)
      memset(q, 1, (size_t)i * 61 + 1);
    free(q);
  }
  /* 32 MiB more, written and freed: there is memory to give back again. */
  for (int i = 0; i < 128; i++) {
    p[i] = malloc(256 << 10);
    CHECK(p[i] != NULL);
    if (p[i])
      memset(p[i], 7, 256 << 10);
  }
  for (int i = 0; i < 128; i++)
    free(p[i]);
  CHECK(malloc_trim(1 << 20) == 1);
  CHECK(malloc_trim(1 << 20) == 0);
  munmap(p, MAXN * sizeof(void *));
  return test_result();
}
