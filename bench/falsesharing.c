/* falsesharing: small objects allocated by one thread, written by another.
 *
 * T threads in a ring.  Each round, thread i allocates BATCH small objects
 * (8..64 bytes) and hands the batch to thread i+1 (bounded per-thread inbox),
 * then takes the batch thread i-1 made for it, writes every object WRITES
 * times (interleaved over the batch, volatile stores) and frees it.  So blocks
 * are written by a thread other than the one that allocated them, and freed
 * remotely too.  An allocator that places objects of two threads on one cache
 * line (shared heap, or reusing a remotely freed block next to the other
 * thread's live ones) makes the cores fight over the line and the run slows
 * down; one that keeps threads' memory apart stays at the no-sharing speed.
 * Work is fixed per thread; ops = number of object writes.
 *
 *   falsesharing [threads] [rounds_per_thread]
 */
#include "common.h"
#include <pthread.h>

#define BATCH 32
#define WRITES 256
#define QCAP 4

struct batch {
    volatile uint32_t *obj[BATCH];
};

struct inbox {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct batch *q[QCAP];
    int head, count;
} __attribute__((aligned(128)));

static struct inbox *boxes;
static long nthreads, rounds;

static void put(struct inbox *b, struct batch *x)
{
    pthread_mutex_lock(&b->lock);
    while (b->count == QCAP)
        pthread_cond_wait(&b->cond, &b->lock);
    b->q[(b->head + b->count) % QCAP] = x;
    b->count++;
    pthread_cond_broadcast(&b->cond);
    pthread_mutex_unlock(&b->lock);
}

static struct batch *take(struct inbox *b)
{
    pthread_mutex_lock(&b->lock);
    while (b->count == 0)
        pthread_cond_wait(&b->cond, &b->lock);
    struct batch *x = b->q[b->head];
    b->head = (b->head + 1) % QCAP;
    b->count--;
    pthread_cond_broadcast(&b->cond);
    pthread_mutex_unlock(&b->lock);
    return x;
}

static void *worker(void *arg)
{
    long me = (long)(uintptr_t)arg;
    uint64_t r = rng_seed((uint64_t)me + 77);
    uint64_t sum = 0;
    struct inbox *next = &boxes[(me + 1) % nthreads], *mine = &boxes[me];
    for (long i = 0; i < rounds; i++) {
        struct batch *b = xmalloc(sizeof *b);
        for (int j = 0; j < BATCH; j++) {
            size_t n = 8 + (size_t)(rng_next(&r) % 57);
            b->obj[j] = xmalloc(n);
            b->obj[j][0] = 0;
        }
        put(next, b);
        struct batch *in = take(mine);
        for (int w = 0; w < WRITES; w++)
            for (int j = 0; j < BATCH; j++)
                in->obj[j][0]++;
        for (int j = 0; j < BATCH; j++) {
            sum += in->obj[j][0];
            free((void *)in->obj[j]);
        }
        free(in);
    }
    return (void *)(uintptr_t)sum;
}

int main(int argc, char **argv)
{
    nthreads = arg_long(argc, argv, 1, 2);
    rounds = arg_long(argc, argv, 2, scaled(90000));
    boxes = aligned_alloc(128, sizeof(struct inbox) * (size_t)nthreads);
    if (!boxes)
        die("out of memory");
    for (long i = 0; i < nthreads; i++) {
        pthread_mutex_init(&boxes[i].lock, NULL);
        pthread_cond_init(&boxes[i].cond, NULL);
        boxes[i].head = boxes[i].count = 0;
    }
    pthread_t *tid = xmalloc(sizeof(pthread_t) * (size_t)nthreads);
    double t0 = now_s();
    for (long i = 0; i < nthreads; i++)
        if (pthread_create(&tid[i], NULL, worker, (void *)(uintptr_t)i))
            die("pthread_create");
    uint64_t sum = 0;
    for (long i = 0; i < nthreads; i++) {
        void *ret;
        pthread_join(tid[i], &ret);
        sum += (uint64_t)(uintptr_t)ret;
    }
    double t = now_s() - t0;
    free(tid);
    free(boxes);
    printf("time_s=%.4f\nops=%ld\nthreads=%ld\nchecksum=%llu\n", t,
           rounds * nthreads * BATCH * WRITES, nthreads, (unsigned long long)sum);
    return 0;
}
