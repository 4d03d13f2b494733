/* A C program gets ptrs's C++ operators without a C++ runtime:
 *   - libstdc++ is not loaded (libptrs.so has no NEEDED entry for it: the
 *     operators refer to the C++ runtime through weak symbols);
 *   - operator new / delete (looked up by their mangled names) are
 *     libptrs's and work; the sized delete checks its size (a mismatch
 *     aborts a forked child with the usual one-line diagnostic);
 *   - out of memory with no C++ runtime to throw std::bad_alloc: the
 *     nothrow form returns null, the throwing form reports
 *     "ptrs: fatal: operator new(...)" and aborts;
 *   - when libstdc++ arrives later, privately (dlopen RTLD_LOCAL, as a C
 *     program loading a C++ plugin), the out-of-memory path still finds its
 *     std::get_new_handler: the handler runs, and the nothrow form then
 *     returns null, the throwing form throws (uncaught in C: terminate). */
#include "test_helper.h"
#include <link.h>

typedef void *(*new_fn)(size_t);
typedef void *(*new_nothrow_fn)(size_t, const void *);
typedef void (*delete_sized_fn)(void *, size_t);
typedef void (*delete_fn)(void *);
typedef void (*handler_fn)(void);
typedef handler_fn (*set_handler_fn)(handler_fn);

static new_fn op_new;
static new_nothrow_fn op_new_nothrow;
static delete_sized_fn op_delete_sized;
static delete_fn op_delete;
static const char nothrow_tag = 0; /* std::nothrow_t is an empty struct */

static int seen_libstdcxx(struct dl_phdr_info *info, size_t size, void *data) {
  (void)size;
  if (info->dlpi_name != NULL && strstr(info->dlpi_name, "libstdc++") != NULL)
    *(int *)data = 1;
  return 0;
}

static int libstdcxx_loaded(void) {
  int seen = 0;
  dl_iterate_phdr(seen_libstdcxx, &seen);
  return seen;
}

static void *from_ptrs(const char *mangled) {
  void *f = dlsym(RTLD_DEFAULT, mangled);
  Dl_info info;
  if (f == NULL || !dladdr(f, &info) || info.dli_fname == NULL ||
      strstr(info.dli_fname, "libptrs") == NULL) {
    fprintf(stderr, "%s: %p is not libptrs's\n", mangled, f);
    return NULL;
  }
  return f;
}

/* Runs fn() in a forked child with stderr captured; returns the wait
 * status and the output in out. */
static int run_child(void (*fn)(void), char *out, size_t cap) {
  int fds[2];
  fflush(NULL);
  if (pipe(fds) != 0)
    FAIL_EXIT("pipe: %s", strerror(errno));
  pid_t pid = fork();
  if (pid < 0)
    FAIL_EXIT("fork: %s", strerror(errno));
  if (pid == 0) {
    struct rlimit no_core = {0, 0};
    setrlimit(RLIMIT_CORE, &no_core);
    close(fds[0]);
    dup2(fds[1], STDERR_FILENO);
    close(fds[1]);
    fn();
    _exit(0);
  }
  close(fds[1]);
  size_t len = 0;
  for (;;) {
    ssize_t r = read(fds[0], out + len, cap - 1 - len);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0 || (len += (size_t)r) == cap - 1)
      break;
  }
  out[len] = '\0';
  close(fds[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
    ;
  return status;
}

static void new_impossible(void) {
  void *p = op_new(test_size(SIZE_MAX / 2));
  fprintf(stderr, "operator new returned %p\n", p);
}

static int handler_calls;
static set_handler_fn set_handler;

static void counting_handler(void) {
  handler_calls++;
  fprintf(stderr, "handler call %d\n", handler_calls);
  if (handler_calls >= 2)
    set_handler(NULL);
}

static void bad_sized_delete(void *p) { op_delete_sized(p, test_size(5000)); }

int main(void) {
  require_ptrs();
  CHECK(!libstdcxx_loaded());

  op_new = (new_fn)from_ptrs("_Znwm");
  op_new_nothrow = (new_nothrow_fn)from_ptrs("_ZnwmRKSt9nothrow_t");
  op_delete_sized = (delete_sized_fn)from_ptrs("_ZdlPvm");
  op_delete = (delete_fn)from_ptrs("_ZdlPv");
  CHECK(op_new && op_new_nothrow && op_delete_sized && op_delete);
  if (!(op_new && op_new_nothrow && op_delete_sized && op_delete))
    return test_result();

  /* The operators work without a C++ runtime. */
  for (size_t n = 1; n <= (8u << 20); n *= 3) {
    void *p = op_new(n);
    CHECK(p != NULL && test_owns(p));
    memset(p, 1, n);
    if (n & 1)
      op_delete_sized(p, n);
    else
      op_delete(p);
  }
  void *q = op_new(100);
  expect_abort("sized delete of new(100) with 5000", bad_sized_delete, q,
               "operator delete", "size or alignment does not match the block",
               q);
  op_delete_sized(q, 100);

  /* Out of memory without a runtime. */
  CHECK(op_new_nothrow(test_size(SIZE_MAX / 2), &nothrow_tag) == NULL);
  char out[4096];
  int st = run_child(new_impossible, out, sizeof out);
  int aborted = WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT;
  int said = strstr(out, "ptrs: fatal: operator new(") != NULL &&
             strstr(out, "no C++ runtime") != NULL;
  if (!aborted || !said)
    fprintf(stderr, "new without a runtime: status %#x, stderr <<<%s>>>\n", st,
            out);
  CHECK(aborted);
  CHECK(said);
  CHECK(!libstdcxx_loaded());

  /* libstdc++ loaded later, privately. */
  void *h = dlopen("libstdc++.so.6", RTLD_NOW | RTLD_LOCAL);
  if (h == NULL) {
    fprintf(stderr, "no libstdc++.so.6 (%s): late-runtime part skipped\n",
            dlerror());
    return test_result();
  }
  CHECK(dlsym(RTLD_DEFAULT, "_ZSt15set_new_handlerPFvvE") == NULL);
  set_handler = (set_handler_fn)dlsym(h, "_ZSt15set_new_handlerPFvvE");
  CHECK(set_handler != NULL);
  if (set_handler == NULL)
    return test_result();
  handler_calls = 0;
  set_handler(counting_handler);
  CHECK(op_new_nothrow(test_size(SIZE_MAX / 2), &nothrow_tag) == NULL);
  CHECK(handler_calls == 2);

  /* The throwing form: the handler runs, then std::bad_alloc is thrown,
   * which C cannot catch: std::terminate says so and aborts. */
  handler_calls = 0;
  set_handler(counting_handler);
  st = run_child(new_impossible, out, sizeof out);
  aborted = WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT;
  said = strstr(out, "handler call 2") != NULL &&
         strstr(out, "std::bad_alloc") != NULL;
  if (!aborted || !said)
    fprintf(stderr, "new with a late runtime: status %#x, stderr <<<%s>>>\n",
            st, out);
  CHECK(aborted);
  CHECK(said);
  set_handler(NULL);
  return test_result();
}
