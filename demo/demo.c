/* The bundled demo workload that `make` runs under ptrs: a word-frequency
 * table built by several threads, with strings, a hash table that grows by
 * realloc, and blocks freed by threads other than the ones that made them.
 * It prints a checksum that does not depend on the allocator. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define THREADS 4
#define WORDS_PER_THREAD 200000

struct entry {
  char *word;
  unsigned count;
  struct entry *next;
};

struct table {
  struct entry **buckets;
  size_t nbuckets, size;
};

static uint64_t hash(const char *s) {
  uint64_t h = 1469598103934665603ULL;
  while (*s) h = (h ^ (unsigned char)*s++) * 1099511628211ULL;
  return h;
}

static void grow(struct table *t) {
  size_t n = t->nbuckets ? t->nbuckets * 2 : 64;
  struct entry **b = calloc(n, sizeof *b);
  if (!b) abort();
  for (size_t i = 0; i < t->nbuckets; i++)
    for (struct entry *e = t->buckets[i], *next; e; e = next) {
      next = e->next;
      size_t j = hash(e->word) & (n - 1);
      e->next = b[j];
      b[j] = e;
    }
  free(t->buckets);
  t->buckets = b;
  t->nbuckets = n;
}

static void add(struct table *t, const char *w) {
  if (t->size >= t->nbuckets) grow(t);
  size_t j = hash(w) & (t->nbuckets - 1);
  for (struct entry *e = t->buckets[j]; e; e = e->next)
    if (strcmp(e->word, w) == 0) { e->count++; return; }
  struct entry *e = malloc(sizeof *e);
  if (!e) abort();
  e->word = strdup(w);
  e->count = 1;
  e->next = t->buckets[j];
  t->buckets[j] = e;
  t->size++;
}

static void destroy(struct table *t) {
  for (size_t i = 0; i < t->nbuckets; i++)
    for (struct entry *e = t->buckets[i], *next; e; e = next) {
      next = e->next;
      free(e->word);
      free(e);
    }
  free(t->buckets);
}

static struct table tables[THREADS];

static void *work(void *arg) {
  int id = (int)(intptr_t)arg;
  uint64_t x = 88172645463325252ULL + (uint64_t)id;
  char word[32];
  for (int i = 0; i < WORDS_PER_THREAD; i++) {
    x ^= x << 13; x ^= x >> 7; x ^= x << 17;
    int len = 1 + (int)(x % 6);
    for (int k = 0; k < len; k++) word[k] = (char)('a' + (x >> (8 + 5 * k)) % 8);
    word[len] = 0;
    add(&tables[id], word);
  }
  return NULL;
}

static void *destroy_other(void *arg) {
  /* Free a table built by another thread: every free is remote. */
  destroy(&tables[(intptr_t)arg]);
  return NULL;
}

int main(void) {
  pthread_t th[THREADS];
  for (intptr_t i = 0; i < THREADS; i++) pthread_create(&th[i], NULL, work, (void *)i);
  for (int i = 0; i < THREADS; i++) pthread_join(th[i], NULL);
  uint64_t checksum = 0;
  size_t distinct = 0;
  for (int i = 0; i < THREADS; i++) {
    distinct += tables[i].size;
    for (size_t b = 0; b < tables[i].nbuckets; b++)
      for (struct entry *e = tables[i].buckets[b]; e; e = e->next)
        checksum += hash(e->word) * e->count;
  }
  for (intptr_t i = 0; i < THREADS; i++)
    pthread_create(&th[i], NULL, destroy_other, (void *)((i + 1) % THREADS));
  for (int i = 0; i < THREADS; i++) pthread_join(th[i], NULL);
  printf("demo: %d threads counted %d words, %zu distinct per-thread entries, checksum %016llx\n",
         THREADS, THREADS * WORDS_PER_THREAD, distinct, (unsigned long long)checksum);
  return 0;
}
