/* churn: single-threaded churn of small objects with a live working set.
 *
 * A table of SLOTS live objects is filled, then each step frees a random slot
 * and puts a new object of a random size there.  Sizes are mostly 8..512
 * bytes, skewed towards small ones, with an occasional 513..4096.  Each new
 * object gets its first and last word written, and every freed object is
 * read, so allocators that hand out cold memory pay for it.
 */
#include "common.h"

#define SLOTS 100000

static size_t pick_size(uint64_t *r)
{
    uint64_t x = rng_next(r);
    unsigned sel = (unsigned)(x & 1023);
    if (sel < 20)                       /* ~2%: 513..4096 */
        return 513 + (size_t)((x >> 10) % 3584);
    if (sel < 640)                      /* ~60%: 8..128 */
        return 8 + (size_t)((x >> 10) % 121);
    return 8 + (size_t)((x >> 10) % 505); /* rest: 8..512 */
}

int main(int argc, char **argv)
{
    long steps = arg_long(argc, argv, 1, scaled(12000000));
    uint64_t r = rng_seed(1);
    char **slot = xmalloc(SLOTS * sizeof *slot);
    size_t *len = xmalloc(SLOTS * sizeof *len);
    uint64_t sum = 0;
    double t0 = now_s();
    for (long i = 0; i < SLOTS; i++) {
        len[i] = pick_size(&r);
        slot[i] = xmalloc(len[i]);
        slot[i][0] = (char)i;
        slot[i][len[i] - 1] = 1;
    }
    for (long i = 0; i < steps; i++) {
        size_t k = (size_t)(rng_next(&r) % SLOTS);
        sum += (unsigned char)slot[k][len[k] - 1];
        free(slot[k]);
        size_t n = pick_size(&r);
        char *p = xmalloc(n);
        p[0] = (char)i;
        p[n - 1] = 1;
        slot[k] = p;
        len[k] = n;
    }
    for (long i = 0; i < SLOTS; i++)
        free(slot[i]);
    double t = now_s() - t0;
    free(slot);
    free(len);
    printf("time_s=%.4f\nops=%ld\nchecksum=%llu\n", t, steps, (unsigned long long)sum);
    return 0;
}
