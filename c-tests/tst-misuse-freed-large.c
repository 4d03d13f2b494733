/* A large or huge block used after its free, once its span has gone back
 * to its segment (or its mapping is gone): malloc_usable_size answers 0,
 * as for a freed small block and as glibc does for a free chunk, and
 * realloc and free_sized abort with "ptrs: realloc(): double free
 * detected: 0x..." (free_sized likewise), the words free itself uses. The
 * block is freed by its owner or by another thread, between two live
 * neighbours, in a forked child per case. (A fresh tester found
 * malloc_usable_size aborting with "invalid pointer" and realloc saying
 * "invalid pointer" for these.) */
#include "test_helper.h"
#include <malloc.h>
#include <pthread.h>

typedef void (*free_sized_fn)(void *, size_t);
static free_sized_fn fs;
static size_t cur_size;
static int cur_remote;

static void *free_in_thread(void *p) {
  free(p);
  return NULL;
}

/* Allocates the block between two live neighbours and frees it. */
static void *freed_block(void) {
  void *keep1 = malloc(cur_size);
  void *p = malloc(cur_size);
  void *keep2 = malloc(cur_size);
  if (keep1 == NULL || p == NULL || keep2 == NULL)
    _exit(3);
  if (cur_remote) {
    pthread_t t;
    if (pthread_create(&t, NULL, free_in_thread, p) != 0 ||
        pthread_join(t, NULL) != 0)
      _exit(3);
  } else {
    free(p);
  }
  return p;
}

static void do_realloc(void *expected) {
  void *p = freed_block();
  if (p != expected)
    _exit(4);
  void *q = realloc(test_ptr(p), cur_size * 2);
  fprintf(stderr, "realloc returned %p\n", q);
}

static void do_free_sized(void *expected) {
  void *p = freed_block();
  if (p != expected)
    _exit(4);
  fs(test_ptr(p), cur_size);
}

int main(void) {
  require_ptrs();
  fs = (free_sized_fn)ptrs_symbol("free_sized");
  CHECK(fs != NULL);
  static const size_t sizes[] = {70000, 300000, 1 << 20, 3 << 20, 64 << 20};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    for (int remote = 0; remote < 2; remote++) {
      cur_size = sizes[i];
      cur_remote = remote;
      /* The address the child will free: the same allocation sequence in
       * this process, undone, predicts it (the child is a copy). */
      fflush(NULL);
      int fds[2];
      if (pipe(fds) != 0)
        FAIL_EXIT("pipe: %s", strerror(errno));
      pid_t pid = fork();
      if (pid == 0) {
        void *p = freed_block();
        size_t usable = malloc_usable_size(test_ptr(p));
        if (write(fds[1], &p, sizeof p) != (ssize_t)sizeof p ||
            write(fds[1], &usable, sizeof usable) != (ssize_t)sizeof usable)
          _exit(3);
        _exit(0);
      }
      close(fds[1]);
      void *p = NULL;
      size_t usable = 1;
      int ok = read(fds[0], &p, sizeof p) == (ssize_t)sizeof p &&
               read(fds[0], &usable, sizeof usable) == (ssize_t)sizeof usable;
      close(fds[0]);
      int status;
      waitpid(pid, &status, 0);
      CHECK(ok && WIFEXITED(status) && WEXITSTATUS(status) == 0);
      if (!ok)
        continue;
      if (usable != 0) {
        fprintf(stderr, "malloc_usable_size of a freed %zu-byte block (%s "
                "free) = %zu, expected 0\n", cur_size,
                remote ? "remote" : "local", usable);
        test_failures++;
      }
      char what[96];
      snprintf(what, sizeof what, "realloc of a freed %zu-byte block (%s)",
               cur_size, remote ? "remote free" : "local free");
      expect_abort(what, do_realloc, p, "realloc", "double free detected", p);
      snprintf(what, sizeof what, "free_sized of a freed %zu-byte block (%s)",
               cur_size, remote ? "remote free" : "local free");
      expect_abort(what, do_free_sized, p, "free_sized",
                   "double free detected", p);
    }
  }
  return test_result();
}
