/* glibc_shim: force glibc's own malloc in programs that link another
 * allocator.  Debian's redis-server links libjemalloc.so.2 directly, so a run
 * "without preload" would measure jemalloc, not glibc.  Preloading this shim
 * routes the C allocation API back to glibc's ptmalloc (__libc_* entry points
 * and symbols looked up inside libc.so.6 itself).  Used by scripts/bench.sh
 * for the glibc column of programs that link an allocator. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stddef.h>

extern void *__libc_malloc(size_t);
extern void __libc_free(void *);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
extern void *__libc_valloc(size_t);
extern void *__libc_pvalloc(size_t);

void *malloc(size_t n) { return __libc_malloc(n); }
void free(void *p) { __libc_free(p); }
void *calloc(size_t a, size_t b) { return __libc_calloc(a, b); }
void *realloc(void *p, size_t n) { return __libc_realloc(p, n); }
void *memalign(size_t a, size_t n) { return __libc_memalign(a, n); }
void *valloc(size_t n) { return __libc_valloc(n); }
void *pvalloc(size_t n) { return __libc_pvalloc(n); }
void *aligned_alloc(size_t a, size_t n) { return __libc_memalign(a, n); }

static void *libc_sym(const char *name)
{
    static void *h;
    if (!h)
        h = dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
    return h ? dlsym(h, name) : NULL;
}

int posix_memalign(void **out, size_t a, size_t n)
{
    static int (*f)(void **, size_t, size_t);
    if (!f)
        f = (int (*)(void **, size_t, size_t))libc_sym("posix_memalign");
    return f(out, a, n);
}

size_t malloc_usable_size(void *p)
{
    static size_t (*f)(void *);
    if (!f)
        f = (size_t (*)(void *))libc_sym("malloc_usable_size");
    return f(p);
}

int malloc_trim(size_t pad)
{
    static int (*f)(size_t);
    if (!f)
        f = (int (*)(size_t))libc_sym("malloc_trim");
    return f(pad);
}
