/* dlopen/dlclose of system libraries (which allocate through the dynamic
 * loader and libc) works with ptrs, repeatedly; code in the loaded
 * libraries that calls malloc gets ptrs memory; dlerror strings work. */
#include "test_helper.h"
#include <malloc.h>

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

  /* zlib, if installed: its allocations go through malloc. */
  void *z = dlopen("libz.so.1", RTLD_NOW);
  if (z == NULL) {
    fprintf(stderr, "libz.so.1 not found, skipping zlib part: %s\n",
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
    CHECK(dlclose(z) == 0);
  }

  /* Load and unload repeatedly: the loader's own allocations are freed. */
  struct mallinfo2 before = mallinfo2();
  for (int i = 0; i < 50; i++) {
    void *h = dlopen(i & 1 ? "libm.so.6" : "libz.so.1", RTLD_NOW | RTLD_LOCAL);
    if (h == NULL && (i & 1))
      CHECK(h != NULL);
    if (h != NULL)
      CHECK(dlclose(h) == 0);
    void *q = malloc(100);
    CHECK(q != NULL && test_owns(q));
    free(q);
  }
  struct mallinfo2 after = mallinfo2();
  CHECK(after.uordblks < before.uordblks + (1 << 20));
  return test_result();
}
