/* calloc of a huge block served from the cache of freed huge mappings
 * (src/huge.rs, zero_for_calloc): the block reads as zero everywhere, and
 * the parts the earlier block of the mapping never wrote are not written
 * (nor faulted in) by calloc.
 *
 * A fresh tester's calloc of 1 to 64 MiB at random, one byte written per
 * 256 KiB, zeroed every block taken from the cache whole with writes:
 * 1.02 M page faults and 3.4 s for 300 rounds (glibc, whose blocks of that
 * size are fresh mappings: 63 k and 0.3 s).
 *
 * Checked, for blocks freed dirty (every byte written) or sparse (one byte
 * per 256 KiB written): calloc of a smaller, an equal and a larger size
 * (a cached mapping grown), at offsets from plain and aligned requests,
 * reads zero at every byte; and a calloc of 48 MiB on a cached 64 MiB
 * mapping whose block wrote one byte per 256 KiB faults fewer than 2 000
 * pages when one byte per 256 KiB is written again (before: 12 288). */
#include "test_helper.h"

#include <malloc.h>
#include <sys/resource.h>

#define MiB (1u << 20)

static long minor_faults(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_minflt;
}

static void check_zero(const unsigned char *p, size_t n, const char *what) {
  for (size_t i = 0; i < n; i++)
    if (p[i] != 0)
      FAIL_EXIT("%s: byte %zu of %zu is %#x", what, i, n, p[i]);
}

static void sparse_write(unsigned char *p, size_t n) {
  for (size_t i = 0; i < n; i += 256 << 10)
    p[i] = 0x5a;
  p[n - 1] = 0x5a;
}

int main(void) {
  static const size_t first[] = {8 * MiB, 20 * MiB, 5 * MiB + 12345};
  static const size_t then[] = {6 * MiB + 7, 20 * MiB, 30 * MiB, 3 * MiB};
  for (int dense = 0; dense < 2; dense++)
    for (size_t a = 0; a < sizeof first / sizeof first[0]; a++)
      for (size_t b = 0; b < sizeof then / sizeof then[0]; b++) {
        unsigned char *p = malloc(first[a]);
        if (p == NULL)
          FAIL_EXIT("malloc(%zu) failed", first[a]);
        if (dense)
          memset(p, 0xa5, first[a]);
        else
          sparse_write(p, first[a]);
        free(p);
        unsigned char *q = calloc(1, then[b]);
        if (q == NULL)
          FAIL_EXIT("calloc(%zu) failed", then[b]);
        check_zero(q, then[b], dense ? "after a dense block" : "after a sparse block");
        memset(q, 0x33, then[b]);
        free(q);
        /* An aligned huge block, then calloc at the plain offset. */
        void *r = NULL;
        if (posix_memalign(&r, 1 << 20, first[a]) != 0)
          FAIL_EXIT("posix_memalign failed");
        memset(r, 0x77, first[a]);
        free(r);
        q = calloc(then[b], 1);
        if (q == NULL)
          FAIL_EXIT("calloc failed");
        check_zero(q, then[b], "after an aligned block");
        free(q);
      }

  if (!under_memcheck()) {
    unsigned char *p = malloc(64 * MiB);
    if (p == NULL)
      FAIL_EXIT("malloc(64 MiB) failed");
    sparse_write(p, 64 * MiB);
    free(p);
    long before = minor_faults();
    unsigned char *q = calloc(48, MiB);
    if (q == NULL)
      FAIL_EXIT("calloc(48 MiB) failed");
    sparse_write(q, 48 * MiB);
    long faults = minor_faults() - before;
    printf("calloc(48 MiB) on a cached sparse mapping: %ld page faults\n", faults);
    CHECK(faults < 2000);
    free(q);
  }
  return test_result();
}
