/* A C program for scripts/test-programs.sh to compile with gcc, with and
 * without ptrs preloaded into gcc, cc1, as and ld. The object files must be
 * identical, and so must the diagnostics and the program's output.
 * Contains one deliberate -Wunused-parameter warning (see scale()), so that
 * there is compiler stderr to compare. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- a string hash table ---- */
struct entry {
  char *key;
  long value;
  struct entry *next;
};

struct table {
  struct entry **buckets;
  size_t nbuckets, count;
};

static uint64_t hash_str(const char *s) {
  uint64_t h = 1469598103934665603ULL;
  while (*s)
    h = (h ^ (unsigned char)*s++) * 1099511628211ULL;
  return h;
}

static void table_init(struct table *t, size_t n) {
  t->buckets = calloc(n, sizeof *t->buckets);
  t->nbuckets = n;
  t->count = 0;
}

static void table_grow(struct table *t) {
  struct table bigger;
  table_init(&bigger, t->nbuckets * 2);
  for (size_t i = 0; i < t->nbuckets; i++) {
    struct entry *e = t->buckets[i];
    while (e) {
      struct entry *next = e->next;
      size_t b = hash_str(e->key) % bigger.nbuckets;
      e->next = bigger.buckets[b];
      bigger.buckets[b] = e;
      e = next;
    }
  }
  free(t->buckets);
  bigger.count = t->count;
  *t = bigger;
}

static long *table_get(struct table *t, const char *key) {
  size_t b = hash_str(key) % t->nbuckets;
  for (struct entry *e = t->buckets[b]; e; e = e->next)
    if (strcmp(e->key, key) == 0)
      return &e->value;
  if (t->count * 4 > t->nbuckets * 3) {
    table_grow(t);
    b = hash_str(key) % t->nbuckets;
  }
  struct entry *e = malloc(sizeof *e);
  e->key = strdup(key);
  e->value = 0;
  e->next = t->buckets[b];
  t->buckets[b] = e;
  t->count++;
  return &e->value;
}

static void table_free(struct table *t) {
  for (size_t i = 0; i < t->nbuckets; i++) {
    struct entry *e = t->buckets[i];
    while (e) {
      struct entry *next = e->next;
      free(e->key);
      free(e);
      e = next;
    }
  }
  free(t->buckets);
}

/* ---- a recursive-descent expression evaluator ---- */
struct parser {
  const char *p;
};

static long parse_expr(struct parser *ps);

static void skip_ws(struct parser *ps) {
  while (*ps->p == ' ')
    ps->p++;
}

static long parse_atom(struct parser *ps) {
  skip_ws(ps);
  if (*ps->p == '(') {
    ps->p++;
    long v = parse_expr(ps);
    skip_ws(ps);
    if (*ps->p == ')')
      ps->p++;
    return v;
  }
  if (*ps->p == '-') {
    ps->p++;
    return -parse_atom(ps);
  }
  long v = 0;
  while (*ps->p >= '0' && *ps->p <= '9')
    v = v * 10 + (*ps->p++ - '0');
  return v;
}

static long parse_term(struct parser *ps) {
  long v = parse_atom(ps);
  for (;;) {
    skip_ws(ps);
    char op = *ps->p;
    if (op != '*' && op != '/' && op != '%')
      return v;
    ps->p++;
    long r = parse_atom(ps);
    if (op == '*')
      v *= r;
    else if (r != 0)
      v = op == '/' ? v / r : v % r;
  }
}

static long parse_expr(struct parser *ps) {
  long v = parse_term(ps);
  for (;;) {
    skip_ws(ps);
    char op = *ps->p;
    if (op != '+' && op != '-')
      return v;
    ps->p++;
    long r = parse_term(ps);
    v = op == '+' ? v + r : v - r;
  }
}

static long eval(const char *s) {
  struct parser ps = {s};
  return parse_expr(&ps);
}

/* ---- sorting and number crunching ---- */
static int cmp_long(const void *a, const void *b) {
  long x = *(const long *)a, y = *(const long *)b;
  return (x > y) - (x < y);
}

static int scale(int value, int unused_factor) { /* deliberate warning */
  return value * 3;
}

static void matmul(size_t n, const double *a, const double *b, double *c) {
  for (size_t i = 0; i < n; i++)
    for (size_t j = 0; j < n; j++) {
      double s = 0;
      for (size_t k = 0; k < n; k++)
        s += a[i * n + k] * b[k * n + j];
      c[i * n + j] = s;
    }
}

int main(void) {
  struct table t;
  table_init(&t, 8);
  char word[32];
  uint64_t x = 42;
  for (int i = 0; i < 20000; i++) {
    x = x * 6364136223846793005ULL + 1442695040888963407ULL;
    snprintf(word, sizeof word, "w%llu", (unsigned long long)(x >> 50));
    (*table_get(&t, word))++;
  }
  long best = 0;
  for (size_t i = 0; i < t.nbuckets; i++)
    for (struct entry *e = t.buckets[i]; e; e = e->next)
      if (e->value > best)
        best = e->value;
  printf("distinct %zu, buckets %zu, max count %ld\n", t.count, t.nbuckets,
         best);
  table_free(&t);

  const char *exprs[] = {"1 + 2 * 3", "(1 + 2) * 3", "100 / 7 % 5 - -4",
                         "2 * (3 + (4 - 1) * 5) / 4", "-(-(-8)) * 9"};
  for (size_t i = 0; i < sizeof exprs / sizeof *exprs; i++)
    printf("%s = %ld\n", exprs[i], eval(exprs[i]));

  size_t n = 50000;
  long *v = malloc(n * sizeof *v);
  for (size_t i = 0; i < n; i++) {
    x = x * 6364136223846793005ULL + 1442695040888963407ULL;
    v[i] = (long)(x >> 40) - (1L << 23);
  }
  qsort(v, n, sizeof *v, cmp_long);
  printf("sorted: min %ld median %ld max %ld scaled %d\n", v[0], v[n / 2],
         v[n - 1], scale((int)(v[n / 2] % 1000), 7));
  free(v);

  size_t m = 64;
  double *a = malloc(m * m * sizeof *a), *b = malloc(m * m * sizeof *b);
  double *c = malloc(m * m * sizeof *c);
  for (size_t i = 0; i < m * m; i++) {
    a[i] = (double)(i % 7) - 3 + 0.25 * (double)(i % 3);
    b[i] = (double)(i % 5) * 0.5 + 0.001 * (double)i;
  }
  matmul(m, a, b, c);
  double trace = 0;
  for (size_t i = 0; i < m; i++)
    trace += c[i * m + i];
  printf("trace %.3f\n", trace);
  free(a);
  free(b);
  free(c);
  return 0;
}
