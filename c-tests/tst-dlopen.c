/* dlopen/dlclose of system libraries (which allocate through the dynamic
 * loader and libc) works with ptrs, repeatedly; code in the loaded
 * libraries that calls malloc gets ptrs memory (zlib's deflate state, which
 * zlib allocates itself with calloc, is a block ptrs owns); dlerror strings
 * work. zlib (libz.so.1, package zlib1g; .ci/run installs it) is needed:
 * without it the test says so and exits 77 (UNSUPPORTED, counted as
 * skipped) after its other parts. */
#include "test_helper.h"
#include <malloc.h>

/* zlib's z_stream (zlib.h; its layout has not changed since zlib 1.0), so
 * that the test builds without zlib's development headers. deflateInit_
 * checks the size and fails with Z_VERSION_ERROR (-6) if it is wrong. */
typedef struct {
  const unsigned char *next_in;
  unsigned avail_in;
  unsigned long total_in;
  unsigned char *next_out;
  unsigned avail_out;
  unsigned long total_out;
  const char *msg;
  void *state; /* allocated by zlib (its zcalloc: calloc) */
  void *(*zalloc)(void *, unsigned, unsigned);
  void (*zfree)(void *, void *);
  void *opaque;
  int data_type;
  unsigned long adler;
  unsigned long reserved;
} zstream;

int main(void) {
  require_ptrs();

  void *m = dlopen("libm.so.6", RTLD_NOW | RTLD_LOCAL);
  CHECK(m != NULL);
  if (m != NULL) {
    double (*cosine)(double) = (double (*)(double))dlsym(m, "cos");
    double (*power)(double, double) =
        (double (*)(double, double))dlsym(m, "pow");
    CHECK(cosine != NULL && power != NULL);
    if (cosine && power) {
      CHECK(cosine(0.0) == 1.0);
      CHECK(power(2.0, 10.0) == 1024.0);
    }
    CHECK(dlclose(m) == 0);
  }

  /* A missing library: dlerror gives a message; the loader frees it. */
  for (int i = 0; i < 100; i++) {
    void *none = dlopen("libptrs-no-such-library.so.42", RTLD_NOW);
    CHECK(none == NULL);
    const char *err = dlerror();
    CHECK(err != NULL && strstr(err, "libptrs-no-such-library") != NULL);
  }
  CHECK(dlsym(RTLD_DEFAULT, "ptrs_no_such_symbol") == NULL);
  CHECK(dlerror() != NULL);

  /* zlib: its allocations go through malloc, to ptrs. */
  void *z = dlopen("libz.so.1", RTLD_NOW);
  int have_zlib = z != NULL;
  if (z == NULL) {
    fprintf(stderr, "UNSUPPORTED (zlib part): libz.so.1 not found: %s\n",
            dlerror());
  } else {
    const char *(*zver)(void) = (const char *(*)(void))dlsym(z, "zlibVersion");
    unsigned long (*bound)(unsigned long) =
        (unsigned long (*)(unsigned long))dlsym(z, "compressBound");
    int (*comp)(unsigned char *, unsigned long *, const unsigned char *,
                unsigned long) =
        (int (*)(unsigned char *, unsigned long *, const unsigned char *,
                 unsigned long))dlsym(z, "compress");
    int (*uncomp)(unsigned char *, unsigned long *, const unsigned char *,
                  unsigned long) =
        (int (*)(unsigned char *, unsigned long *, const unsigned char *,
                 unsigned long))dlsym(z, "uncompress");
    CHECK(zver != NULL && bound != NULL && comp != NULL && uncomp != NULL);
    if (zver && bound && comp && uncomp) {
      CHECK(zver()[0] == '1');
      unsigned long n = 1 << 20;
      unsigned char *src = malloc(n), *dst = malloc(bound(n)),
                    *back = malloc(n);
      CHECK(src && dst && back);
      if (src && dst && back) {
        fill_pattern(src, n, 1);
        memset(src, 'a', n / 2);
        unsigned long dlen = bound(n), blen = n;
        CHECK(comp(dst, &dlen, src, n) == 0);
        CHECK(dlen < n);
        CHECK(uncomp(back, &blen, dst, dlen) == 0);
        CHECK(blen == n && memcmp(src, back, n) == 0);
      }
      free(src);
      free(dst);
      free(back);
    }
    /* A block the library allocated itself: deflateInit_ callocs the
     * stream's state with zlib's default allocator. */
    int (*dinit)(zstream *, int, const char *, int) =
        (int (*)(zstream *, int, const char *, int))dlsym(z, "deflateInit_");
    int (*dend)(zstream *) = (int (*)(zstream *))dlsym(z, "deflateEnd");
    CHECK(dinit != NULL && dend != NULL && zver != NULL);
    if (dinit && dend && zver) {
      zstream strm;
      memset(&strm, 0, sizeof strm);
      int r = dinit(&strm, 6, zver(), (int)sizeof strm);
      CHECK(r == 0);
      if (r == 0) {
        CHECK(strm.state != NULL);
        if (strm.state != NULL && !test_owns(strm.state)) {
          fprintf(stderr, "zlib's deflate state %p is not a ptrs block\n",
                  strm.state);
          test_failures++;
        } else if (strm.state != NULL) {
          CHECK(malloc_usable_size(strm.state) > 0);
        }
        CHECK(dend(&strm) == 0);
      }
    }
    CHECK(dlclose(z) == 0);
  }

  /* Load and unload repeatedly: the loader's own allocations are freed. */
  struct mallinfo2 before = mallinfo2();
  for (int i = 0; i < 50; i++) {
    void *h = dlopen(i & 1 || !have_zlib ? "libm.so.6" : "libz.so.1",
                     RTLD_NOW | RTLD_LOCAL);
    CHECK(h != NULL);
    if (h != NULL)
      CHECK(dlclose(h) == 0);
    void *q = malloc(100);
    CHECK(q != NULL && test_owns(q));
    free(q);
  }
  struct mallinfo2 after = mallinfo2();
  CHECK(after.uordblks < before.uordblks + (1 << 20));
  if (!have_zlib && test_failures == 0)
    return EXIT_UNSUPPORTED; /* counted as skipped, not as a pass */
  return test_result();
}
