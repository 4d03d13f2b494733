/* threadchurn: many short-lived threads.
 *
 * TOTAL threads are started CONC at a time (start CONC, join CONC, repeat).
 * Each thread allocates OBJS objects of 16..1024 bytes, frees and reallocates
 * some, then frees all but KEEP of them; the kept ones are freed by the main
 * thread after the join (blocks of an exited thread).  Reports the time and
 * the RSS at the end (memory the allocator keeps for dead threads shows up).
 *
 *   threadchurn [total_threads] [concurrent]
 */
#include "common.h"
#include <pthread.h>

#define OBJS 64
#define KEEP 4

struct job {
    uint64_t seed;
    void *kept[KEEP];
};

static void *worker(void *arg)
{
    struct job *j = arg;
    uint64_t r = j->seed;
    char *o[OBJS];
    for (int i = 0; i < OBJS; i++) {
        size_t n = rng_range(&r, 16, 1024);
        o[i] = xmalloc(n);
        o[i][0] = (char)i;
        o[i][n - 1] = (char)n;
    }
    for (int round = 0; round < 4; round++)
        for (int i = 0; i < OBJS; i += 2) {
            free(o[i]);
            size_t n = rng_range(&r, 16, 1024);
            o[i] = xmalloc(n);
            o[i][0] = (char)i;
        }
    for (int i = 0; i < OBJS; i++) {
        if (i < KEEP)
            j->kept[i] = o[i];
        else
            free(o[i]);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    long total = arg_long(argc, argv, 1, scaled(40000));
    long conc = arg_long(argc, argv, 2, 4);
    pthread_t *tid = xmalloc(sizeof(pthread_t) * (size_t)conc);
    struct job *jobs = xmalloc(sizeof(struct job) * (size_t)conc);
    double t0 = now_s();
    long started = 0;
    while (started < total) {
        long k = total - started < conc ? total - started : conc;
        for (long i = 0; i < k; i++) {
            jobs[i].seed = rng_seed((uint64_t)(started + i));
            if (pthread_create(&tid[i], NULL, worker, &jobs[i]))
                die("pthread_create");
        }
        for (long i = 0; i < k; i++) {
            pthread_join(tid[i], NULL);
            for (int m = 0; m < KEEP; m++)
                free(jobs[i].kept[m]);
        }
        started += k;
    }
    double t = now_s() - t0;
    long rss = rss_kb();
    free(tid);
    free(jobs);
    printf("time_s=%.4f\nthreads_total=%ld\nrss_final_kb=%ld\n", t, total, rss);
    return 0;
}
