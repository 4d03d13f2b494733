/* fastpath: tight malloc/free loops for instruction counting (callgrind).
 *
 *   fastpath pair  N   N x { p = malloc(s); free(p); }, s cycling 16/32/64/128
 *   fastpath batch N   N/100 x { 100 mallocs (same size cycle); 100 frees }
 *
 * One warm-up allocation of each size runs before the loop in both modes, so
 * the allocator's initialisation is part of the N=0 baseline and
 * (Ir(N) - Ir(0)) / N is the cost of one malloc+free pair.
 */
#include "common.h"

static const size_t sizes[4] = {16, 32, 64, 128};

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "pair";
    long n = argc > 2 ? atol(argv[2]) : 1000000;
    void *warm[4];
    for (int i = 0; i < 4; i++) {
        warm[i] = malloc(sizes[i]);
        escape(warm[i]);
    }
    for (int i = 0; i < 4; i++)
        free(warm[i]);
    if (!strcmp(mode, "batch")) {
        void *p[100];
        for (long i = 0; i < n / 100; i++) {
            for (int k = 0; k < 100; k++) {
                p[k] = malloc(sizes[k & 3]);
                escape(p[k]);
            }
            for (int k = 0; k < 100; k++)
                free(p[k]);
        }
    } else {
        for (long i = 0; i < n; i++) {
            void *p = malloc(sizes[i & 3]);
            escape(p);
            free(p);
        }
    }
    return 0;
}
