/* The glibc-internal entry points __libc_malloc and friends and
 * __posix_memalign are served by ptrs, and mix freely with the public
 * functions. */
#include "test_helper.h"
#include <malloc.h>

#define SYM(type, name)                                                      \
  type name##_p = (type)ptrs_symbol(#name);                                  \
  CHECK(name##_p != NULL);                                                   \
  if (name##_p != NULL) {                                                    \
    Dl_info info;                                                            \
    CHECK(dladdr((void *)name##_p, &info) != 0);                             \
    CHECK(info.dli_fname != NULL && strstr(info.dli_fname, "libptrs"));      \
    if (info.dli_fname && !strstr(info.dli_fname, "libptrs"))                \
      fprintf(stderr, "%s comes from %s\n", #name, info.dli_fname);          \
  }

typedef void *(*malloc_fn)(size_t);
typedef void (*free_fn)(void *);
typedef void *(*calloc_fn)(size_t, size_t);
typedef void *(*realloc_fn)(void *, size_t);
typedef void *(*memalign_fn)(size_t, size_t);
typedef int (*posix_memalign_fn)(void **, size_t, size_t);

/* Not declared by glibc's headers. */
void *__libc_malloc(size_t);
void __libc_free(void *);

int main(void) {
  require_ptrs();

  /* Called directly, as a program linked against glibc would. */
  void *d = __libc_malloc(321);
  CHECK(d != NULL && test_owns(d));
  __libc_free(d);

  SYM(malloc_fn, __libc_malloc);
  SYM(free_fn, __libc_free);
  SYM(calloc_fn, __libc_calloc);
  SYM(realloc_fn, __libc_realloc);
  SYM(memalign_fn, __libc_memalign);
  SYM(malloc_fn, __libc_valloc);
  SYM(malloc_fn, __libc_pvalloc);
  SYM(posix_memalign_fn, __posix_memalign);
  if (test_failures)
    return test_result();

  size_t page = (size_t)sysconf(_SC_PAGESIZE);

  void *m = __libc_malloc_p(100);
  CHECK(m != NULL && test_owns(m) && is_aligned(m, 16));
  CHECK(malloc_usable_size(m) >= 100);
  memset(m, 1, 100);
  void *r = __libc_realloc_p(m, 100000);
  CHECK(r != NULL && test_owns(r));
  if (r) {
    CHECK(((unsigned char *)r)[99] == 1);
    m = r;
  }
  free(m); /* public free of an alias allocation */

  void *c = __libc_calloc_p(100, 100);
  CHECK(c != NULL && test_owns(c));
  if (c) {
    int nz = 0;
    for (int i = 0; i < 10000; i++)
      nz += ((unsigned char *)c)[i] != 0;
    CHECK(nz == 0);
  }
  __libc_free_p(c);

  void *a = __libc_memalign_p(4096, 100);
  CHECK(a != NULL && test_owns(a) && is_aligned(a, 4096));
  __libc_free_p(a);

  void *v = __libc_valloc_p(10);
  CHECK(v != NULL && test_owns(v) && is_aligned(v, page));
  __libc_free_p(v);

  void *pv = __libc_pvalloc_p(10);
  CHECK(pv != NULL && test_owns(pv) && is_aligned(pv, page));
  CHECK(pv == NULL || malloc_usable_size(pv) >= page);
  __libc_free_p(pv);

  void *pm = NULL;
  CHECK(__posix_memalign_p(&pm, 256, 1000) == 0);
  CHECK(pm != NULL && test_owns(pm) && is_aligned(pm, 256));
  __libc_free_p(pm);
  void *keep = (void *)1;
  CHECK(__posix_memalign_p(&keep, 24, 10) == EINVAL);
  CHECK(keep == (void *)1);

  /* public malloc freed by __libc_free. */
  void *x = malloc(5000);
  CHECK(x != NULL);
  __libc_free_p(x);
  __libc_free_p(NULL);

  /* Error behaviour matches the public names. */
  errno = 0;
  CHECK(__libc_malloc_p(test_size(SIZE_MAX)) == NULL && errno == ENOMEM);
  errno = 0;
  CHECK(__libc_calloc_p(test_size(SIZE_MAX), 2) == NULL && errno == ENOMEM);

  /* Many round trips: the aliases really free. */
  struct mallinfo2 before = mallinfo2();
  for (int i = 0; i < 2000; i++)
    __libc_free_p(__libc_malloc_p(10000));
  struct mallinfo2 after = mallinfo2();
  CHECK(after.uordblks + after.hblkhd <
        before.uordblks + before.hblkhd + (4 << 20));
  return test_result();
}
