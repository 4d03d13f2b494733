/* mixedlarge: mixed sizes up to 8 MiB, power-law distributed, small working set.
 *
 * A table of SLOTS objects; each step replaces a random slot with a new object
 * whose size follows a Pareto law (P(size > s) = (16/s)^0.8, capped at 8 MiB):
 * mostly small, ~1% above 4 KiB, ~0.1% above 64 KiB, a few per 10,000 of a
 * MiB or more.  One byte per 4 KiB page of each new object is written, so
 * allocators that keep returning/refaulting memory for big blocks pay for it.
 */
#include "common.h"
#include <math.h>

#define SLOTS 512
#define MAXSZ ((size_t)8 << 20)

static size_t pick_size(uint64_t *r)
{
    double u = rng_unit(r);
    double s = 16.0 * pow(1.0 - u, -1.0 / 0.8);
    return s >= (double)MAXSZ ? MAXSZ : (size_t)s;
}

int main(int argc, char **argv)
{
    long steps = arg_long(argc, argv, 1, scaled(18000000));
    uint64_t r = rng_seed(5);
    char *slot[SLOTS] = {0};
    size_t len[SLOTS] = {0};
    uint64_t sum = 0, bytes = 0;
    double t0 = now_s();
    for (long s = 0; s < steps; s++) {
        size_t k = (size_t)(rng_next(&r) % SLOTS);
        if (slot[k]) {
            sum += (unsigned char)slot[k][len[k] - 1];
            free(slot[k]);
        }
        size_t n = pick_size(&r);
        char *p = xmalloc(n);
        for (size_t off = 0; off < n; off += 4096)
            p[off] = (char)s;
        p[n - 1] = 1;
        slot[k] = p;
        len[k] = n;
        bytes += n;
    }
    for (int k = 0; k < SLOTS; k++)
        free(slot[k]);
    double t = now_s() - t0;
    printf("time_s=%.4f\nops=%ld\nbytes=%llu\nchecksum=%llu\n", t, steps,
           (unsigned long long)bytes, (unsigned long long)sum);
    return 0;
}
