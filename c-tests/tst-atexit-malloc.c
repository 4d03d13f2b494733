/* malloc, realloc and free work inside atexit and on_exit handlers and in
 * destructors, also on blocks allocated in main, and after stdio has been
 * flushed. A handler that sees a problem ends the process with _exit(1);
 * the last destructor checks that every handler ran. */
#include "test_helper.h"
#include <malloc.h>

static void *from_main[8];
static int handlers_run;

static void fail_now(const char *msg) {
  /* stdio may already be closed down: write(2) directly. */
  ssize_t r = write(STDERR_FILENO, msg, strlen(msg));
  (void)r;
  _exit(1);
}

static void check_block_ok(void *p, size_t n, uint32_t seed, const char *msg) {
  if (p == NULL || check_pattern(p, n, seed) != PATTERN_OK)
    fail_now(msg);
}

static void handler_free_main_blocks(void) {
  for (int i = 0; i < 8; i++) {
    check_block_ok(from_main[i], 1000 * (size_t)(i + 1), i,
                   "atexit: block from main corrupted\n");
    free(from_main[i]);
    from_main[i] = NULL;
  }
  handlers_run++;
}

static void handler_alloc(void) {
  void *blocks[100];
  for (int i = 0; i < 100; i++) {
    blocks[i] = malloc((size_t)i * 100 + 1);
    if (blocks[i] == NULL || !test_owns(blocks[i]))
      fail_now("atexit: malloc failed or not served by ptrs\n");
    fill_pattern(blocks[i], (size_t)i * 100 + 1, i);
  }
  for (int i = 0; i < 100; i++) {
    check_block_ok(blocks[i], (size_t)i * 100 + 1, i, "atexit: corrupted\n");
    void *r = realloc(blocks[i], (size_t)i * 1000 + 5);
    if (r == NULL)
      fail_now("atexit: realloc failed\n");
    free(r);
  }
  void *big = malloc(20 << 20);
  if (big == NULL)
    fail_now("atexit: big malloc failed\n");
  memset(big, 1, 20 << 20);
  free(big);
  /* Register another handler from inside a handler. */
  handlers_run++;
}

static void handler_strdup(int status, void *arg) {
  if (status != 0)
    fail_now("on_exit: wrong status\n");
  char *s = strdup((const char *)arg);
  if (s == NULL || strcmp(s, "on_exit argument") != 0 || !test_owns(s))
    fail_now("on_exit: strdup failed\n");
  free(s);
  free(arg); /* the argument itself was malloc'd in main */
  handlers_run++;
}

static void late_handler(void) {
  void *p = calloc(100, 100);
  if (p == NULL)
    fail_now("late atexit: calloc failed\n");
  free(p);
  handlers_run++;
}

static void handler_registers_more(void) {
  if (atexit(late_handler) != 0)
    fail_now("atexit from a handler failed\n");
  handlers_run++;
}

__attribute__((destructor)) static void destructor(void) {
  void *p = malloc(12345);
  if (p == NULL || !test_owns(p))
    fail_now("destructor: malloc failed\n");
  memset(p, 2, 12345);
  void *q = realloc(p, 123456);
  if (q == NULL)
    fail_now("destructor: realloc failed\n");
  free(q);
  /* Every handler ran, and before this destructor. */
  if (handlers_run != 5) {
    char msg[64];
    snprintf(msg, sizeof msg, "destructor: %d of 5 handlers ran\n",
             handlers_run);
    fail_now(msg);
  }
  const char ok[] = "destructor: all handlers ran\n";
  ssize_t r = write(STDERR_FILENO, ok, sizeof ok - 1);
  (void)r;
}

int main(void) {
  require_ptrs();
  for (int i = 0; i < 8; i++) {
    from_main[i] = malloc(1000 * (size_t)(i + 1));
    CHECK(from_main[i] != NULL);
    if (from_main[i])
      fill_pattern(from_main[i], 1000 * (size_t)(i + 1), i);
  }
  char *arg = strdup("on_exit argument");
  CHECK(arg != NULL);
  /* Run in reverse order of registration. */
  CHECK(atexit(handler_free_main_blocks) == 0);
  CHECK(on_exit(handler_strdup, arg) == 0);
  CHECK(atexit(handler_alloc) == 0);
  CHECK(atexit(handler_registers_more) == 0);
  /* Leave stdout with buffered data that exit must flush. */
  setvbuf(stdout, NULL, _IOFBF, 1 << 16);
  printf("buffered output flushed at exit\n");
  if (test_failures)
    return test_result();
  exit(0);
}
