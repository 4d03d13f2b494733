/* Heap misuse that valgrind's memcheck must report in a program running on
 * ptrs, as it does on glibc: scripts/memcheck.sh runs this under memcheck
 * first and fails unless each of the marked lines is reported. Not a test
 * to run natively (it reads and writes memory it does not own).
 *
 * Each misuse is in its own function, so the report names it: */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static volatile char sink;

__attribute__((noinline)) static void use_after_free(void) {
  char *p = malloc(40);
  memset(p, 1, 40);
  free(p);
  sink = p[8]; /* "Invalid read" */
}

__attribute__((noinline)) static void overflow_into_slack(void) {
  char *p = malloc(20);
  ((volatile char *)p)[20] = 1; /* "Invalid write": past the request, inside ptrs's block */
  free(p);
}

__attribute__((noinline)) static void overflow_into_next(void) {
  char *p = malloc(32);
  char *q = malloc(32);
  ((volatile char *)p)[32] = 1; /* "Invalid write": past a request of a whole size class */
  free(q);
  free(p);
}

__attribute__((noinline)) static void uninitialised_read(void) {
  char *p = malloc(64);
  if (p[10] == 42) /* "Conditional jump ... uninitialised" */
    puts("42");
  free(p);
}

__attribute__((noinline)) static void realloc_old_block(void) {
  char *p = malloc(24);
  memset(p, 2, 24);
  char *q = realloc(p, 100000); /* moves: p is freed */
  sink = p[0];                  /* "Invalid read" */
  free(q);
}

/* ptrs's pool API (include/ptrs.h; declared here as the build has no -I). */
typedef struct ptrs_pool ptrs_pool;
typedef struct {
  const char *name;
  size_t limit;
  unsigned flags;
  ptrs_pool *parent;
} ptrs_pool_options;
extern ptrs_pool *ptrs_pool_create(const ptrs_pool_options *opts);
extern void *ptrs_pool_malloc(ptrs_pool *pool, size_t size);
extern void ptrs_pool_destroy(ptrs_pool *pool);
extern int ptrs_pool_cleanup_add(ptrs_pool *pool, void (*fn)(void *), void *arg);

__attribute__((noinline)) static void use_after_destroy(void) {
  ptrs_pool *pool = ptrs_pool_create(NULL);
  char *p = ptrs_pool_malloc(pool, 40);
  memset(p, 4, 40);
  ptrs_pool_destroy(pool); /* every block of the pool is freed */
  sink = p[0];             /* "Invalid read" */
}

__attribute__((noinline)) static void use_after_parent_destroy(void) {
  ptrs_pool *parent = ptrs_pool_create(NULL);
  ptrs_pool_options o = {"child", 0, 0, parent};
  ptrs_pool *child = ptrs_pool_create(&o);
  char *p = ptrs_pool_malloc(child, 5000);
  memset(p, 5, 5000);
  ptrs_pool_destroy(parent); /* the child and its blocks go with it */
  sink = p[0];               /* "Invalid read" */
}

static void read_block(void *arg) { sink = *(volatile char *)arg; }

/* Correct uses that must not be reported. */
__attribute__((noinline)) static int correct_uses(void) {
  int *z = calloc(64, sizeof *z);
  int bad = 0;
  for (int i = 0; i < 64; i++)
    bad |= z[i]; /* defined: calloc zeroes */
  char *r = realloc(z, 64 * sizeof *z + 4000);
  bad |= r[100]; /* kept by realloc: still defined */
  free(r);
  char *s = malloc(100);
  size_t n = malloc_usable_size(s);
  memset(s, 3, n);
  free(s);
  /* A cleanup reads a block of its pool: the blocks are freed after the
     cleanups run. */
  ptrs_pool *pool = ptrs_pool_create(NULL);
  char *b = ptrs_pool_malloc(pool, 64);
  memset(b, 6, 64);
  ptrs_pool_cleanup_add(pool, read_block, b);
  ptrs_pool_destroy(pool);
  return bad;
}

int main(void) {
  if (correct_uses())
    puts("calloc gave non-zero memory");
  use_after_free();
  overflow_into_slack();
  overflow_into_next();
  uninitialised_read();
  realloc_old_block();
  use_after_destroy();
  use_after_parent_destroy();
  return 0;
}
