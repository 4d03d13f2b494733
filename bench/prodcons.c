/* prodcons: producer threads allocate, consumer threads free.
 *
 * Producers allocate batches of BATCH objects (16..1024 bytes, written) and
 * push each batch through a bounded queue (capacity QCAP batches, mutex +
 * condition variables; the lock is taken once per batch, so the allocator
 * dominates).  Consumers read and free every object.  Every free is of a
 * block another thread allocated.  With T threads: P = max(1, T/2)
 * producers and C = max(1, T-P) consumers (T=1 still uses 1+1 threads).
 * Work is fixed per producer.
 *
 *   prodcons [threads] [objects_per_producer]
 */
#include "common.h"
#include <pthread.h>

#define BATCH 256
#define QCAP 64

struct batch {
    char *obj[BATCH];
};

static struct batch *queue[QCAP];
static int qhead, qtail, qcount, producers_left;
static pthread_mutex_t qlock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t qnotempty = PTHREAD_COND_INITIALIZER;
static pthread_cond_t qnotfull = PTHREAD_COND_INITIALIZER;
static long batches_per_producer;

static void push(struct batch *b)
{
    pthread_mutex_lock(&qlock);
    while (qcount == QCAP)
        pthread_cond_wait(&qnotfull, &qlock);
    queue[qtail] = b;
    qtail = (qtail + 1) % QCAP;
    qcount++;
    pthread_cond_signal(&qnotempty);
    pthread_mutex_unlock(&qlock);
}

static struct batch *pop(void)
{
    pthread_mutex_lock(&qlock);
    while (qcount == 0 && producers_left > 0)
        pthread_cond_wait(&qnotempty, &qlock);
    struct batch *b = NULL;
    if (qcount > 0) {
        b = queue[qhead];
        qhead = (qhead + 1) % QCAP;
        qcount--;
        pthread_cond_signal(&qnotfull);
    }
    pthread_mutex_unlock(&qlock);
    return b;
}

static void *producer(void *arg)
{
    uint64_t r = rng_seed((uint64_t)(uintptr_t)arg + 1000);
    for (long i = 0; i < batches_per_producer; i++) {
        struct batch *b = xmalloc(sizeof *b);
        for (int j = 0; j < BATCH; j++) {
            uint64_t x = rng_next(&r);
            size_t n = (x & 3) ? 16 + (size_t)((x >> 2) % 241) : 16 + (size_t)((x >> 2) % 1009);
            char *p = xmalloc(n);
            p[0] = (char)j;
            p[n - 1] = (char)n;
            b->obj[j] = p;
        }
        push(b);
    }
    pthread_mutex_lock(&qlock);
    producers_left--;
    pthread_cond_broadcast(&qnotempty);
    pthread_mutex_unlock(&qlock);
    return NULL;
}

static void *consumer(void *arg)
{
    (void)arg;
    uint64_t sum = 0;
    struct batch *b;
    while ((b = pop()) != NULL) {
        for (int j = 0; j < BATCH; j++) {
            sum += (unsigned char)b->obj[j][0];
            free(b->obj[j]);
        }
        free(b);
    }
    return (void *)(uintptr_t)sum;
}

int main(int argc, char **argv)
{
    long threads = arg_long(argc, argv, 1, 2);
    long per_producer = arg_long(argc, argv, 2, scaled(12000000));
    long np = threads / 2 > 0 ? threads / 2 : 1;
    long nc = threads - np > 0 ? threads - np : 1;
    batches_per_producer = per_producer / BATCH > 0 ? per_producer / BATCH : 1;
    producers_left = (int)np;
    pthread_t *tid = xmalloc(sizeof(pthread_t) * (size_t)(np + nc));
    double t0 = now_s();
    for (long i = 0; i < nc; i++)
        if (pthread_create(&tid[i], NULL, consumer, (void *)(uintptr_t)i))
            die("pthread_create");
    for (long i = 0; i < np; i++)
        if (pthread_create(&tid[nc + i], NULL, producer, (void *)(uintptr_t)i))
            die("pthread_create");
    uint64_t sum = 0;
    for (long i = 0; i < np + nc; i++) {
        void *ret;
        pthread_join(tid[i], &ret);
        sum += (uint64_t)(uintptr_t)ret;
    }
    double t = now_s() - t0;
    free(tid);
    printf("time_s=%.4f\nops=%ld\nthreads=%ld\nproducers=%ld\nconsumers=%ld\nchecksum=%llu\n", t,
           batches_per_producer * BATCH * np, np + nc, np, nc, (unsigned long long)sum);
    return 0;
}
