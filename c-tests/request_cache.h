/* The worker of a program that runs a fresh set of threads per request and
 * keeps some of their blocks in a shared cache, which later threads evict
 * from (tst-lifecycle-adopt-parked, tst-lifecycle-inherit): the pattern of
 * a fresh tester's thread-per-request program. Include after mt_helper.h. */
#ifndef PTRS_REQUEST_CACHE_H
#define PTRS_REQUEST_CACHE_H

#define REQUEST_MAX_BLOCKS 512

struct request_cache {
  void **block;
  size_t *len;
  long slots;
  long head;
  pthread_mutex_t lock;
};

/* One request: allocates `count` blocks (at most REQUEST_MAX_BLOCKS) of
 * `lo` to `hi` bytes from the seed, writes each whole with a byte derived
 * from its length, puts every 20th in the cache (FIFO: the oldest entry is
 * evicted, its contents checked and freed by this thread, a remote free
 * when another thread allocated it) and frees the rest. Returns the bytes
 * written. Exits the test on a failed malloc or an overwritten block. */
static inline size_t request_run(struct request_cache *c, uint64_t seed, int count, size_t lo, size_t hi) {
  void *tmp[REQUEST_MAX_BLOCKS];
  size_t len[REQUEST_MAX_BLOCKS];
  size_t written = 0;
  uint64_t s = seed * 2654435761u + 7;
  if (count > REQUEST_MAX_BLOCKS)
    FAIL_EXIT("request_run: %d blocks, at most %d", count, REQUEST_MAX_BLOCKS);
  for (int i = 0; i < count; i++) {
    s = s * 6364136223846793005u + 1442695040888963407u;
    len[i] = lo + (size_t)(s >> 33) % (hi - lo + 1);
    tmp[i] = malloc(len[i]);
    if (tmp[i] == NULL)
      FAIL_EXIT("malloc(%zu) failed", len[i]);
    memset(tmp[i], (int)(len[i] & 255), len[i]);
    written += len[i];
  }
  for (int i = 0; i < count; i++) {
    if (i % 20 != 0) {
      free(tmp[i]);
      continue;
    }
    pthread_mutex_lock(&c->lock);
    long h = c->head++ % c->slots;
    void *old = c->block[h];
    size_t old_len = c->len[h];
    c->block[h] = tmp[i];
    c->len[h] = len[i];
    pthread_mutex_unlock(&c->lock);
    if (old != NULL) {
      const unsigned char *b = (const unsigned char *)old;
      unsigned char want = (unsigned char)(old_len & 255);
      if (b[0] != want || b[old_len / 2] != want || b[old_len - 1] != want)
        FAIL_EXIT("cached block %p of %zu bytes was overwritten", old, old_len);
      free(old);
    }
  }
  return written;
}

/* Frees what the cache still holds. */
static inline void request_cache_clear(struct request_cache *c) {
  for (long i = 0; i < c->slots; i++) {
    free(c->block[i]);
    c->block[i] = NULL;
  }
}

#endif
