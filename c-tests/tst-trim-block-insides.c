/* malloc_trim(0) and ptrs_thread_idle() give back the inside of the calling
 * thread's free blocks of 8 KiB and more even when each page keeps a live
 * block: 12 000 blocks of 8 to 32 KiB (about 240 MB written), every tenth
 * kept, the rest freed.  Before, each page that kept one block kept all of
 * its 512 KiB resident through the trim (a fresh tester: 279 MB after the
 * trim, glibc 38 MB).  The kept blocks keep their contents, and the freed
 * ones are handed out again and hold what is written into them (their
 * insides come back zero-filled).  */
#include "test_helper.h"
#include <malloc.h>
#include <sys/mman.h>

#define N 12000

static size_t size_of(int i) { return 8192 + (size_t)(i * 7919 % 24577); }

int main(void) {
  require_ptrs();
  void (*thread_idle)(void) = (void (*)(void))ptrs_symbol("ptrs_thread_idle");
  if (thread_idle == NULL)
    FAIL_EXIT("ptrs_thread_idle not found");
  void **p = mmap(NULL, N * sizeof(void *), PROT_READ | PROT_WRITE,
                  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED)
    FAIL_EXIT("mmap: %s", strerror(errno));
  free(malloc(100)); /* warm up */
  size_t base = rss_bytes();
  size_t written = 0;
  for (int i = 0; i < N; i++) {
    p[i] = malloc(size_of(i));
    if (p[i] == NULL)
      FAIL_EXIT("malloc(%zu) failed", size_of(i));
    fill_pattern(p[i], size_of(i), (uint32_t)i);
    written += size_of(i);
  }
  size_t full = rss_bytes();
  for (int round = 0; round < 2; round++) {
    for (int i = 0; i < N; i++)
      if (i % 10 != 0) {
        free(p[i]);
        p[i] = NULL;
      }
    if (round == 0)
      malloc_trim(0);
    else
      thread_idle();
    size_t after = rss_bytes();
    size_t kept = written / 10;
    printf("round %d: base %zu MiB, full %zu MiB, after %s %zu MiB (kept %zu MiB)\n", round,
           base >> 20, full >> 20, round == 0 ? "malloc_trim" : "ptrs_thread_idle", after >> 20,
           kept >> 20);
    /* The kept blocks and their first OS pages plus slack; before: over
     * 250 MiB. */
    CHECK(after < base + kept + kept + (24 << 20));
    for (int i = 0; i < N; i += 10)
      if (check_pattern(p[i], size_of(i), (uint32_t)i) != PATTERN_OK)
        FAIL_EXIT("kept block %d lost its contents", i);
    /* The freed blocks again: written and read back. */
    for (int i = 0; i < N; i++)
      if (i % 10 != 0) {
        p[i] = malloc(size_of(i));
        if (p[i] == NULL)
          FAIL_EXIT("malloc(%zu) failed", size_of(i));
        fill_pattern(p[i], size_of(i), (uint32_t)(i + 7 * round));
      }
    for (int i = 0; i < N; i++) {
      uint32_t seed = (uint32_t)(i % 10 != 0 ? i + 7 * round : i);
      if (check_pattern(p[i], size_of(i), seed) != PATTERN_OK)
        FAIL_EXIT("block %d (round %d) lost its contents", i, round);
    }
  }
  for (int i = 0; i < N; i++)
    free(p[i]);
  return test_result();
}
