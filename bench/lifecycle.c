/* lifecycle: the memory-lifecycle patterns of real programs, one per mode.
 *
 *   lifecycle rounds SIZE COUNT ROUNDS  build COUNT blocks of SIZE bytes (one
 *                                       byte written per 4 KiB), free all,
 *                                       repeat; faults and time per block
 *                                       from the second round on
 *   lifecycle largeset                  24 live blocks of 64 KiB..4 MiB
 *                                       (log-uniform) replaced at random,
 *                                       16 small replacements between
 *   lifecycle reallocgrow               string builders (exact size), vectors
 *                                       doubling to 4 MiB, buffers grown in
 *                                       64 KiB steps to 8 MiB
 *   lifecycle burst                     64 threads build and free ~1.5 MiB
 *                                       each and exit; RSS after 500 ms idle
 *   lifecycle exited                    a thread allocates ~66 MiB of small
 *                                       blocks and exits; main frees them and
 *                                       builds the same set: peak RSS
 *   lifecycle dormant                   thread A allocates the set and waits;
 *                                       B frees it; C builds the same: peak
 *   lifecycle latedtor                  3000 threads whose key destructor
 *                                       allocates in every round: RSS growth
 *   lifecycle idletrim                  a worker allocates 2 M blocks of
 *                                       64..160 B, frees all but 1 in 40000
 *                                       and blocks; main trims: RSS
 *
 * Output: key=value lines (see common.h).  Times in seconds, RSS in KiB.
 *
 * RSS trace: with LIFECYCLE_RSS_TRACE=PATH in the environment a sampler
 * thread writes "ms rss_kb" lines to PATH every 2 ms (ms since the sampler
 * started, RSS from /proc/self/statm) until the mode returns, then one last
 * sample.  The sampler allocates nothing: /proc/self/statm is opened once and
 * read with pread(2), lines are formatted by hand into a static buffer and
 * written with write(2).  Its thread (stack from mmap) exists under every
 * allocator alike; scripts/bench.sh runs traced runs apart from the timed ones.
 */
#include "common.h"

#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <sys/resource.h>

static long minflt(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_minflt;
}

static long peak_kb;
static void sample_peak(void)
{
    long r = rss_kb();
    if (r > peak_kb)
        peak_kb = r;
}

static void touch(char *p, size_t n)
{
    for (size_t o = 0; o < n; o += 4096)
        p[o] = 1;
    p[n - 1] = 1;
}

/* ---- RSS trace sampler ---------------------------------------------- */
static int trace_fd = -1, statm_fd = -1;
static int trace_stop;
static pthread_t trace_thread;
static char trace_buf[1 << 16];
static size_t trace_len;

static void trace_flush(void)
{
    size_t o = 0;
    while (o < trace_len) {
        ssize_t w = write(trace_fd, trace_buf + o, trace_len - o);
        if (w <= 0)
            break;
        o += (size_t)w;
    }
    trace_len = 0;
}

static void trace_put_u64(unsigned long v)
{
    char d[24];
    int n = 0;
    do {
        d[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        trace_buf[trace_len++] = d[--n];
}

static void trace_sample(const struct timespec *t0, long page_kb)
{
    char b[128];
    ssize_t n = pread(statm_fd, b, sizeof b - 1, 0);
    if (n <= 0)
        return;
    b[n] = 0;
    /* second field: resident pages */
    char *q = b;
    while (*q && *q != ' ')
        q++;
    unsigned long res = strtoul(q, NULL, 10);
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    long us = (t.tv_sec - t0->tv_sec) * 1000000L + (t.tv_nsec - t0->tv_nsec) / 1000;
    if (us < 0)
        us = 0;
    if (trace_len > sizeof trace_buf - 64)
        trace_flush();
    trace_put_u64((unsigned long)us / 1000);
    trace_buf[trace_len++] = '.';
    trace_put_u64((unsigned long)(us % 1000) / 100);
    trace_buf[trace_len++] = ' ';
    trace_put_u64(res * (unsigned long)page_kb);
    trace_buf[trace_len++] = '\n';
}

static void *trace_main(void *arg)
{
    (void)arg;
    long page_kb = sysconf(_SC_PAGESIZE) / 1024;
    struct timespec t0, next;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    next = t0;
    for (;;) {
        int stop = __atomic_load_n(&trace_stop, __ATOMIC_ACQUIRE);
        trace_sample(&t0, page_kb);
        if (stop)
            break;
        next.tv_nsec += 2000000;
        if (next.tv_nsec >= 1000000000) {
            next.tv_nsec -= 1000000000;
            next.tv_sec++;
        }
        /* late (the sampler was not scheduled): no catch-up burst */
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec > next.tv_sec || (now.tv_sec == next.tv_sec && now.tv_nsec > next.tv_nsec))
            next = now;
        clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
    }
    trace_flush();
    return NULL;
}

static void trace_start(void)
{
    const char *path = getenv("LIFECYCLE_RSS_TRACE");
    if (!path || !*path)
        return;
    trace_fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    statm_fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
    if (trace_fd < 0 || statm_fd < 0)
        die("LIFECYCLE_RSS_TRACE: cannot open the trace file or /proc/self/statm");
    if (pthread_create(&trace_thread, NULL, trace_main, NULL))
        die("LIFECYCLE_RSS_TRACE: cannot start the sampler thread");
}

static void trace_end(void)
{
    if (trace_fd < 0)
        return;
    __atomic_store_n(&trace_stop, 1, __ATOMIC_RELEASE);
    pthread_join(trace_thread, NULL);
    close(trace_fd);
    close(statm_fd);
    trace_fd = -1;
}

/* ---- rounds ---------------------------------------------------------- */
static int rounds(long size, long count, long nrounds)
{
    char **v = xmalloc((size_t)count * sizeof *v);
    double t_alloc = 0;
    long faults = 0;
    for (long r = 0; r < nrounds; r++) {
        long f0 = minflt();
        double t0 = now_s();
        for (long i = 0; i < count; i++) {
            v[i] = xmalloc((size_t)size);
            touch(v[i], (size_t)size);
        }
        double t1 = now_s();
        for (long i = 0; i < count; i++)
            free(v[i]);
        if (r > 0) {
            t_alloc += t1 - t0;
            faults += minflt() - f0;
        }
    }
    long measured = count * (nrounds - 1);
    printf("faults_per_block=%.3f\n", (double)faults / (double)measured);
    printf("us_per_malloc=%.3f\n", t_alloc * 1e6 / (double)measured);
    printf("time=%.4f\n", t_alloc);
    free(v);
    return 0;
}

/* ---- largeset -------------------------------------------------------- */
static int largeset(long steps)
{
    enum { LIVE = 24, SMALL = 4096 };
    char *big[LIVE] = {0};
    size_t bigsz[LIVE] = {0};
    char **small = xmalloc(SMALL * sizeof *small);
    uint64_t r = rng_seed(7);
    for (int i = 0; i < SMALL; i++)
        small[i] = xmalloc(16 + rng_range(&r, 0, 240));
    long f0 = minflt();
    double t0 = now_s();
    for (long s = 0; s < steps; s++) {
        int k = (int)(rng_next(&r) % LIVE);
        free(big[k]);
        /* log-uniform 64 KiB .. 4 MiB */
        double e = 16.0 + rng_unit(&r) * 6.0;
        size_t n = (size_t)__builtin_exp2(e);
        big[k] = xmalloc(n);
        bigsz[k] = n;
        touch(big[k], n);
        for (int j = 0; j < 16; j++) {
            int q = (int)(rng_next(&r) % SMALL);
            free(small[q]);
            small[q] = xmalloc(16 + rng_range(&r, 0, 240));
            small[q][0] = 1;
        }
        if ((s & 63) == 0)
            sample_peak();
    }
    double t = now_s() - t0;
    long faults = minflt() - f0;
    for (int i = 0; i < LIVE; i++)
        free(big[i]);
    /* two purge delays and one malloc call later (one that is not served
     * from a thread cache or free list: a fresh 256 KiB block) */
    usleep(25000);
    free(xmalloc(256 * 1024));
    printf("time=%.4f\nfaults=%ld\npeak_rss_kb=%ld\nrss_after_free_kb=%ld\n", t, faults, peak_kb,
           rss_kb());
    for (int i = 0; i < SMALL; i++)
        free(small[i]);
    free(small);
    (void)bigsz;
    return 0;
}

/* ---- largeheap ------------------------------------------------------- */
/* A heap of many segments in large blocks: grows to `count` blocks of
 * 256 KiB with nothing freed, then frees every other block (oldest first)
 * and allocates them again, twice. One byte per block is written, so the
 * figure is the allocator's search for room, not page faults. */
static int largeheap(long count)
{
    enum { SIZE = 256 * 1024 };
    char **v = xmalloc((size_t)count * sizeof *v);
    double t0 = now_s();
    for (long i = 0; i < count; i++) {
        v[i] = xmalloc(SIZE);
        v[i][0] = 1;
    }
    double grow = now_s() - t0;
    double refill = 0;
    for (int round = 0; round < 2; round++) {
        for (long i = round; i < count; i += 2)
            free(v[i]);
        double t1 = now_s();
        for (long i = round; i < count; i += 2) {
            v[i] = xmalloc(SIZE);
            v[i][0] = 1;
        }
        refill += now_s() - t1;
    }
    long refilled = count / 2 * 2;
    printf("grow_us_per_malloc=%.3f\nrefill_us_per_malloc=%.3f\ntime=%.4f\n", grow * 1e6 / (double)count,
           refill * 1e6 / (double)refilled, grow + refill);
    for (long i = 0; i < count; i++)
        free(v[i]);
    free(v);
    return 0;
}

/* ---- reallocgrow ----------------------------------------------------- */
static int reallocgrow(long reps)
{
    uint64_t r = rng_seed(3);
    long f0 = minflt();
    double t0 = now_s();
    for (long k = 0; k < reps; k++) {
        /* exact-size string builder */
        char *s = NULL;
        size_t len = 0, target = 64 * 1024 + rng_range(&r, 0, 256 * 1024);
        while (len < target) {
            size_t add = 1 + rng_range(&r, 0, 63);
            char *t = realloc(s, len + add + 1);
            if (!t)
                die("oom");
            s = t;
            memset(s + len, 'a', add);
            len += add;
            s[len] = 0;
        }
        free(s);
        /* vector doubling to 4 MiB */
        size_t cap = 16;
        char *v = xmalloc(cap);
        while (cap < (4u << 20)) {
            cap *= 2;
            v = realloc(v, cap);
            if (!v)
                die("oom");
            touch(v + cap / 2, cap / 2);
        }
        free(v);
        /* buffer grown in 64 KiB steps to 8 MiB */
        if ((k & 7) == 0) {
            char *b = NULL;
            for (size_t n = 65536; n <= (8u << 20); n += 65536) {
                b = realloc(b, n);
                if (!b)
                    die("oom");
                touch(b + n - 65536, 65536);
            }
            free(b);
        }
        sample_peak();
    }
    double t = now_s() - t0;
    printf("time=%.4f\nfaults=%ld\npeak_rss_kb=%ld\n", t, minflt() - f0, peak_kb);
    usleep(25000);
    free(xmalloc(256 * 1024));
    printf("rss_after_free_kb=%ld\n", rss_kb());
    return 0;
}

/* ---- burst ----------------------------------------------------------- */
static void *burst_thread(void *arg)
{
    uint64_t r = rng_seed((uint64_t)(uintptr_t)arg);
    enum { N = 3000 };
    char *v[N];
    size_t total = 0;
    int n = 0;
    while (total < 1536 * 1024 && n < N) {
        size_t sz = rng_range(&r, 0, 9) == 0 ? rng_range(&r, 1024, 16384) : rng_range(&r, 16, 512);
        v[n] = xmalloc(sz);
        memset(v[n], 1, sz);
        total += sz;
        n++;
    }
    for (int i = 0; i < n; i++)
        free(v[i]);
    return NULL;
}

static int burst(void)
{
    long start = rss_kb();
    enum { T = 64 };
    pthread_t th[T];
    for (long i = 0; i < T; i++)
        pthread_create(&th[i], NULL, burst_thread, (void *)i);
    long peak = 0;
    for (int i = 0; i < T; i++) {
        pthread_join(th[i], NULL);
        long x = rss_kb();
        if (x > peak)
            peak = x;
    }
    long after_join = rss_kb();
    usleep(500000);
    long idle = rss_kb();
    malloc_trim(0);
    printf("start_rss_kb=%ld\npeak_rss_kb=%ld\nafter_join_kb=%ld\nafter_idle_kb=%ld\nafter_trim_kb=%ld\n",
           start, peak, after_join, idle, rss_kb());
    return 0;
}

/* ---- exited / dormant ------------------------------------------------ */
enum { SET = 600000 };
static char **set;
static size_t set_size(long i) { return 64 + (size_t)((i * 37) % 128); }

static void build_set(void)
{
    for (long i = 0; i < SET; i++) {
        set[i] = xmalloc(set_size(i));
        memset(set[i], (int)i, set_size(i));
    }
}

static void free_set(void)
{
    for (long i = 0; i < SET; i++)
        free(set[i]);
}

static void *builder(void *arg) { (void)arg; build_set(); return NULL; }
static void *freer(void *arg) { (void)arg; free_set(); return NULL; }

static pthread_mutex_t dm = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t dc = PTHREAD_COND_INITIALIZER;
static int dormant_done;
static void *dormant_builder(void *arg)
{
    (void)arg;
    build_set();
    pthread_mutex_lock(&dm);
    dormant_done = 1;
    pthread_cond_broadcast(&dc);
    while (dormant_done != 2)
        pthread_cond_wait(&dc, &dm);
    pthread_mutex_unlock(&dm);
    return NULL;
}

static int exited(int dormant)
{
    set = xmalloc(SET * sizeof *set);
    long start = rss_kb();
    pthread_t a, b;
    if (dormant) {
        pthread_create(&a, NULL, dormant_builder, NULL);
        pthread_mutex_lock(&dm);
        while (dormant_done != 1)
            pthread_cond_wait(&dc, &dm);
        pthread_mutex_unlock(&dm);
    } else {
        pthread_create(&a, NULL, builder, NULL);
        pthread_join(a, NULL);
    }
    long built = rss_kb();
    if (dormant) {
        pthread_create(&b, NULL, freer, NULL);
        pthread_join(b, NULL);
    } else {
        free_set();
    }
    struct mallinfo2 mi = mallinfo2();
    long after_free_rss = rss_kb();
    peak_kb = 0;
    if (dormant) {
        pthread_create(&b, NULL, builder, NULL);
        pthread_join(b, NULL);
    } else {
        build_set();
    }
    sample_peak();
    printf("start_rss_kb=%ld\nbuilt_rss_kb=%ld\nafter_free_rss_kb=%ld\nuordblks_after_free=%zu\nrebuilt_rss_kb=%ld\n",
           start, built, after_free_rss, mi.uordblks, peak_kb);
    free_set();
    if (dormant) {
        pthread_mutex_lock(&dm);
        dormant_done = 2;
        pthread_cond_broadcast(&dc);
        pthread_mutex_unlock(&dm);
        pthread_join(a, NULL);
    }
    return 0;
}

/* ---- latedtor -------------------------------------------------------- */
static pthread_key_t late_key;
static void late_dtor(void *p)
{
    free(p);
    void *q = malloc(4096);
    memset(q, 1, 4096);
    pthread_setspecific(late_key, q); /* re-armed: runs again next round */
}
static void *late_thread(void *arg)
{
    (void)arg;
    void *p = malloc(100);
    pthread_setspecific(late_key, p);
    for (int i = 0; i < 50; i++)
        free(malloc(64 + i * 16));
    return NULL;
}
static int latedtor(long n)
{
    pthread_key_create(&late_key, late_dtor);
    long start = rss_kb();
    for (long i = 0; i < n; i++) {
        pthread_t t;
        pthread_create(&t, NULL, late_thread, NULL);
        pthread_join(t, NULL);
    }
    long end = rss_kb();
    malloc_trim(0);
    printf("start_rss_kb=%ld\nend_rss_kb=%ld\ngrowth_kb=%ld\nafter_trim_kb=%ld\n", start, end,
           end - start, rss_kb());
    return 0;
}

/* ---- idletrim -------------------------------------------------------- */
static pthread_mutex_t im = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t ic = PTHREAD_COND_INITIALIZER;
static int idle_state;
static void *idle_worker(void *arg)
{
    (void)arg;
    enum { N = 2000000 };
    char **v = xmalloc(N * sizeof *v);
    for (long i = 0; i < N; i++) {
        v[i] = xmalloc(64 + (size_t)(i % 97));
        v[i][0] = 1;
    }
    for (long i = 0; i < N; i++)
        if (i % 40000)
            free(v[i]);
    pthread_mutex_lock(&im);
    idle_state = 1;
    pthread_cond_broadcast(&ic);
    while (idle_state != 2)
        pthread_cond_wait(&ic, &im);
    pthread_mutex_unlock(&im);
    for (long i = 0; i < N; i += 40000)
        free(v[i]);
    free(v);
    return NULL;
}
static int idletrim(void)
{
    pthread_t t;
    pthread_create(&t, NULL, idle_worker, NULL);
    pthread_mutex_lock(&im);
    while (idle_state != 1)
        pthread_cond_wait(&ic, &im);
    pthread_mutex_unlock(&im);
    long before = rss_kb();
    int r = malloc_trim(0);
    long after = rss_kb();
    printf("before_trim_kb=%ld\nafter_trim_kb=%ld\ntrim_returned=%d\n", before, after, r);
    pthread_mutex_lock(&im);
    idle_state = 2;
    pthread_cond_broadcast(&ic);
    pthread_mutex_unlock(&im);
    pthread_join(t, NULL);
    return 0;
}

static int run_mode(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "";
    if (!strcmp(mode, "rounds"))
        return rounds(arg_long(argc, argv, 2, 16384), arg_long(argc, argv, 3, 20000),
                      arg_long(argc, argv, 4, 5));
    if (!strcmp(mode, "largeset"))
        return largeset(arg_long(argc, argv, 2, scaled(4000)));
    if (!strcmp(mode, "largeheap"))
        return largeheap(arg_long(argc, argv, 2, 20000));
    if (!strcmp(mode, "reallocgrow"))
        return reallocgrow(arg_long(argc, argv, 2, scaled(200)));
    if (!strcmp(mode, "burst"))
        return burst();
    if (!strcmp(mode, "exited"))
        return exited(0);
    if (!strcmp(mode, "dormant"))
        return exited(1);
    if (!strcmp(mode, "latedtor"))
        return latedtor(arg_long(argc, argv, 2, 3000));
    if (!strcmp(mode, "idletrim"))
        return idletrim();
    fprintf(stderr, "usage: lifecycle rounds|largeset|largeheap|reallocgrow|burst|exited|dormant|latedtor|idletrim\n");
    return 2;
}

int main(int argc, char **argv)
{
    trace_start();
    int rc = run_mode(argc, argv);
    fflush(stdout);
    trace_end();
    return rc;
}
