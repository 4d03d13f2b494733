/* realloc: growth by realloc.
 *
 * NSTR string builders grow by small appends (1..24 bytes, realloc to the
 * exact new length each time) up to a random limit of 1..64 KiB, then are
 * freed and restarted; NVEC vectors of 8-byte elements double their capacity
 * with realloc (from 4 elements up to a random 1 Ki..256 Ki elements).  The
 * builders are interleaved at random, so in-place growth is not automatic.
 */
#include "common.h"

#define NSTR 16
#define NVEC 8

int main(int argc, char **argv)
{
    long steps = arg_long(argc, argv, 1, scaled(30000000));
    uint64_t r = rng_seed(3);
    char *str[NSTR];
    size_t slen[NSTR], slim[NSTR];
    uint64_t *vec[NVEC];
    size_t vlen[NVEC], vcap[NVEC], vlim[NVEC];
    uint64_t sum = 0, reallocs = 0;
    double t0 = now_s();
    for (int i = 0; i < NSTR; i++) {
        str[i] = xmalloc(1);
        str[i][0] = 0;
        slen[i] = 0;
        slim[i] = rng_range(&r, 1024, 65536);
    }
    for (int i = 0; i < NVEC; i++) {
        vcap[i] = 4;
        vlen[i] = 0;
        vec[i] = xmalloc(vcap[i] * sizeof(uint64_t));
        vlim[i] = (size_t)1024 << rng_range(&r, 0, 8);
    }
    for (long s = 0; s < steps; s++) {
        uint64_t x = rng_next(&r);
        if ((x & 7) != 0) { /* string append */
            int i = (int)((x >> 3) % NSTR);
            size_t add = 1 + (size_t)((x >> 8) % 24);
            char *p = realloc(str[i], slen[i] + add + 1);
            if (!p)
                die("out of memory");
            reallocs++;
            memset(p + slen[i], 'a' + (int)(s % 26), add);
            slen[i] += add;
            p[slen[i]] = 0;
            str[i] = p;
            if (slen[i] >= slim[i]) {
                sum += (unsigned char)p[slen[i] / 2];
                free(p);
                str[i] = xmalloc(1);
                str[i][0] = 0;
                slen[i] = 0;
                slim[i] = rng_range(&r, 1024, 65536);
            }
        } else { /* vector push of a few elements */
            int i = (int)((x >> 3) % NVEC);
            for (int k = 0; k < 16; k++) {
                if (vlen[i] == vcap[i]) {
                    if (vcap[i] >= vlim[i]) {
                        sum += vec[i][vlen[i] / 2];
                        free(vec[i]);
                        vcap[i] = 4;
                        vlen[i] = 0;
                        vec[i] = xmalloc(vcap[i] * sizeof(uint64_t));
                        vlim[i] = (size_t)1024 << rng_range(&r, 0, 8);
                    } else {
                        uint64_t *p = realloc(vec[i], 2 * vcap[i] * sizeof(uint64_t));
                        if (!p)
                            die("out of memory");
                        reallocs++;
                        vec[i] = p;
                        vcap[i] *= 2;
                    }
                }
                vec[i][vlen[i]] = (uint64_t)s + (uint64_t)k;
                vlen[i]++;
            }
        }
    }
    for (int i = 0; i < NSTR; i++)
        free(str[i]);
    for (int i = 0; i < NVEC; i++)
        free(vec[i]);
    double t = now_s() - t0;
    printf("time_s=%.4f\nops=%ld\nreallocs=%llu\nchecksum=%llu\n", t, steps,
           (unsigned long long)reallocs, (unsigned long long)sum);
    return 0;
}
