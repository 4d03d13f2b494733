/* larson: larson-style server simulation.
 *
 * T threads share one table of slots.  Each step a thread allocates an object
 * of random size (16..512 bytes, a few up to 2 KiB), writes it, swaps it into
 * a random slot with an atomic exchange and frees whatever it got back.  The
 * old object was usually allocated by another thread, so most frees are
 * remote frees.  Work is fixed per thread (steps per thread), so throughput
 * (ops/s) is comparable across thread counts.
 *
 *   larson [threads] [steps_per_thread]
 */
#include "common.h"
#include <pthread.h>
#include <stdatomic.h>

#define SLOTS 32768

static _Atomic(char *) slots[SLOTS];
static long steps_per_thread;
static pthread_barrier_t start;

static size_t pick_size(uint64_t *r)
{
    uint64_t x = rng_next(r);
    if ((x & 63) == 0)
        return 513 + (size_t)((x >> 6) % 1536);
    return 16 + (size_t)((x >> 6) % 497);
}

static void *worker(void *arg)
{
    uint64_t r = rng_seed((uint64_t)(uintptr_t)arg + 100);
    uint64_t sum = 0;
    pthread_barrier_wait(&start);
    for (long i = 0; i < steps_per_thread; i++) {
        size_t n = pick_size(&r);
        char *p = xmalloc(n);
        p[0] = (char)n;
        p[n - 1] = (char)i;
        size_t k = (size_t)(rng_next(&r) % SLOTS);
        char *old = atomic_exchange_explicit(&slots[k], p, memory_order_acq_rel);
        if (old) {
            sum += (unsigned char)old[0];
            free(old);
        }
    }
    return (void *)(uintptr_t)sum;
}

int main(int argc, char **argv)
{
    long threads = arg_long(argc, argv, 1, 2);
    steps_per_thread = arg_long(argc, argv, 2, scaled(10000000));
    uint64_t r = rng_seed(7);
    for (long k = 0; k < SLOTS; k++) {
        size_t n = pick_size(&r);
        char *p = xmalloc(n);
        p[0] = (char)n;
        atomic_store(&slots[k], p);
    }
    pthread_t *tid = xmalloc(sizeof(pthread_t) * (size_t)threads);
    pthread_barrier_init(&start, NULL, (unsigned)threads + 1);
    for (long t = 0; t < threads; t++)
        if (pthread_create(&tid[t], NULL, worker, (void *)(uintptr_t)t))
            die("pthread_create");
    pthread_barrier_wait(&start);
    double t0 = now_s();
    uint64_t sum = 0;
    for (long t = 0; t < threads; t++) {
        void *ret;
        pthread_join(tid[t], &ret);
        sum += (uint64_t)(uintptr_t)ret;
    }
    double t = now_s() - t0;
    for (long k = 0; k < SLOTS; k++)
        free(atomic_load(&slots[k]));
    free(tid);
    printf("time_s=%.4f\nops=%ld\nthreads=%ld\nchecksum=%llu\n", t,
           steps_per_thread * threads, threads, (unsigned long long)sum);
    return 0;
}
