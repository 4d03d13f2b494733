/* frag: fragmentation and memory return.
 *
 * 1. allocate N objects of 16..256 bytes (fully written)       -> rss_alloc_kb
 * 2. free a random 90% of them                                  -> rss_free_kb
 * 3. allocate objects of 300..600 bytes totalling the freed (requested)
 *    volume (they do not fit the holes of a size-segregated heap) -> rss_refill_kb
 * 4. free everything                                            -> rss_freeall_kb
 * 5. malloc_trim(0), looked up with dlsym so the preloaded
 *    allocator's version is used when it exports one            -> rss_trim_kb
 * RSS is read from /proc/self/statm after each phase.
 */
#include "common.h"
#include <dlfcn.h>

int main(int argc, char **argv)
{
    long n = arg_long(argc, argv, 1, scaled(500000));
    uint64_t r = rng_seed(11);
    double t0 = now_s();
    long rss0 = rss_kb();
    char **obj = xmalloc((size_t)n * sizeof *obj);
    unsigned short *len = xmalloc((size_t)n * sizeof *len);
    for (long i = 0; i < n; i++) {
        size_t sz = rng_range(&r, 16, 256);
        len[i] = (unsigned short)sz;
        obj[i] = xmalloc(sz);
        memset(obj[i], (int)(i & 0xff), sz);
    }
    long rss_alloc = rss_kb();

    size_t freed = 0;
    long kept = 0;
    for (long i = 0; i < n; i++) {
        if (rng_next(&r) % 10 != 0) {
            freed += len[i];
            free(obj[i]);
        } else {
            obj[kept++] = obj[i];
        }
    }
    free(len);
    long rss_free = rss_kb();

    long cap = n, cnt = kept;
    size_t filled = 0;
    while (filled < freed) {
        size_t sz = rng_range(&r, 300, 600);
        if (cnt == cap) {
            cap *= 2;
            char **o = realloc(obj, (size_t)cap * sizeof *obj);
            if (!o)
                die("out of memory");
            obj = o;
        }
        obj[cnt] = xmalloc(sz);
        memset(obj[cnt], (int)(cnt & 0xff), sz);
        cnt++;
        filled += sz;
    }
    long rss_refill = rss_kb();

    for (long i = 0; i < cnt; i++)
        free(obj[i]);
    free(obj);
    long rss_freeall = rss_kb();

    int (*trim)(size_t) = (int (*)(size_t))dlsym(RTLD_DEFAULT, "malloc_trim");
    int trimmed = trim ? trim(0) : -1;
    long rss_trim = rss_kb();
    double t = now_s() - t0;

    printf("time_s=%.4f\nobjects=%ld\nfreed_bytes=%zu\nrefill_bytes=%zu\n", t, n, freed, filled);
    printf("rss_start_kb=%ld\nrss_alloc_kb=%ld\nrss_free_kb=%ld\nrss_refill_kb=%ld\n"
           "rss_freeall_kb=%ld\nrss_trim_kb=%ld\ntrim_ret=%d\n",
           rss0, rss_alloc, rss_free, rss_refill, rss_freeall, rss_trim, trimmed);
    return 0;
}
