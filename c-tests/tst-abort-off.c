/* PTRS_ABORT_ON_ERROR=0: each detected heap error prints its one-line
 * report as a warning on stderr and the program continues, with the block
 * left alone and the heap still consistent: a double free does not hand
 * the block out twice, an invalid pointer is ignored. stderr is captured
 * through a pipe (dup2'd onto fd 2) and each report checked. */
/* ENV: PTRS_ABORT_ON_ERROR=0 */
#include "test_helper.h"
#include <fcntl.h>
#include <malloc.h>

static int pipe_fds[2], saved_stderr;

static void capture_start(void) {
  if (pipe(pipe_fds) != 0)
    FAIL_EXIT("pipe");
  fcntl(pipe_fds[0], F_SETFL, O_NONBLOCK);
  saved_stderr = dup(2);
  dup2(pipe_fds[1], 2);
}

/* Restores stderr and returns what was written to it. */
static void capture_end(char *buf, size_t len) {
  dup2(saved_stderr, 2);
  close(saved_stderr);
  close(pipe_fds[1]);
  ssize_t n = read(pipe_fds[0], buf, len - 1);
  buf[n > 0 ? n : 0] = '\0';
  close(pipe_fds[0]);
}

static void expect_line(const char *out, const char *func, const char *problem,
                        const void *addr) {
  char want[256];
  snprintf(want, sizeof want, "ptrs: %s(): %s: %p\n", func, problem, addr);
  if (strstr(out, want) == NULL) {
    fprintf(stderr, "missing \"%.*s\" in <<<%s>>>\n", (int)strlen(want) - 1,
            want, out);
    CHECK(0);
  }
}

int main(void) {
  require_ptrs();
  char out[4096];
  static const size_t sizes[] = {64, 4000, 300000, (size_t)8 << 20};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    size_t n = sizes[i];
    char *keep = malloc(n);
    char *p = malloc(n);
    CHECK(keep != NULL && p != NULL);
    free(p);
    char local[64];
    capture_start();
    free(test_ptr(p));            /* double free */
    free(test_ptr(keep + 16));    /* interior pointer */
    free(test_ptr(local + 16));   /* stack */
    void *r = realloc(test_ptr(local + 16), 100);
    size_t u = malloc_usable_size(test_ptr(local + 16));
    capture_end(out, sizeof out);
    CHECK(r == NULL);
    CHECK(u == 0);
    expect_line(out, "free", "double free detected", p);
    expect_line(out, "free", "invalid pointer", keep + 16);
    expect_line(out, "free", "invalid pointer", local + 16);
    expect_line(out, "realloc", "invalid pointer", local + 16);
    expect_line(out, "malloc_usable_size", "invalid pointer", local + 16);
    /* The program continues; the double free did not put p on a free list
     * twice: two new blocks are distinct, and keep is intact. */
    memset(keep, 7, n);
    char *x = malloc(n), *y = malloc(n);
    CHECK(x != NULL && y != NULL && x != y);
    free(x);
    free(y);
    free(keep);
  }
  return test_result();
}
