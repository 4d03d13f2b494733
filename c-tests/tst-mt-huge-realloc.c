/* Huge blocks moved by realloc while other threads map and unmap huge
 * blocks: the granule that a moved block leaves behind may be reused by
 * another thread at once, so ptrs must forget it before it is unmapped.
 * (Regression test: the old order let a live block become "invalid".) */
/* TIMEOUT: 120 */
#include "test_helper.h"

#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

static atomic_int stop;
static atomic_long failures;

static void *mover(void *arg) {
  (void)arg;
  while (!atomic_load(&stop)) {
    char *p = malloc(3 << 20);
    char *q = malloc(3 << 20);
    if (!p || !q) { atomic_fetch_add(&failures, 1); break; }
    p[0] = 1;
    q[0] = 2;
    char *r = realloc(p, 12 << 20);
    if (!r || r[0] != 1) { atomic_fetch_add(&failures, 1); break; }
    r[(12 << 20) - 1] = 3;
    free(q);
    free(r);
  }
  return NULL;
}

static void *mapper(void *arg) {
  size_t k = (size_t)(intptr_t)arg;
  while (!atomic_load(&stop)) {
    size_t n = (3 << 20) + (k++ % 64) * 4096;
    char *r = malloc(n);
    if (!r) { atomic_fetch_add(&failures, 1); break; }
    r[n - 1] = 1;
    if (malloc_usable_size(r) < n) atomic_fetch_add(&failures, 1);
    free(r);
  }
  return NULL;
}

int main(void) {
  require_ptrs();
  pthread_t t[4];
  pthread_create(&t[0], NULL, mover, NULL);
  pthread_create(&t[1], NULL, mover, NULL);
  pthread_create(&t[2], NULL, mapper, (void *)1);
  pthread_create(&t[3], NULL, mapper, (void *)7);
  struct timespec ts = {3, 0};
  nanosleep(&ts, NULL);
  atomic_store(&stop, 1);
  for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
  CHECK(atomic_load(&failures) == 0);
  return test_result();
}
