/* Shared helpers for the glibc-style c-tests.
 *
 * Each tst-*.c is one program testing one behaviour. Exit status: 0 pass,
 * 1 fail, 77 unsupported (glibc's convention). Every test calls
 * `require_ptrs()` first: it proves that the allocator serving this process
 * is ptrs, whether the program was linked with -lptrs or run under
 * LD_PRELOAD, by asking ptrs whether it owns a freshly malloc'd block.
 */
#ifndef PTRS_TEST_HELPER_H
#define PTRS_TEST_HELPER_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#define EXIT_UNSUPPORTED 77

static int test_failures;

/* CHECK(expr): record a failure with file and line, keep going. */
#define CHECK(expr)                                                          \
  do {                                                                       \
    if (!(expr)) {                                                           \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__,      \
              #expr);                                                        \
      test_failures++;                                                       \
    }                                                                        \
  } while (0)

/* FAIL_EXIT(fmt, ...): report and exit 1 at once. */
static inline void __attribute__((noreturn, format(printf, 1, 2)))
FAIL_EXIT(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("error: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  exit(1);
}

/* Look up a ptrs extension at run time, so the same source works when
 * linked with -lptrs and when run under LD_PRELOAD without linking. */
static inline void *ptrs_symbol(const char *name) {
  return dlsym(RTLD_DEFAULT, name);
}

/* RESOLVE_INTO(table, "ptrs_pool_", create): sets table.create to the
 * symbol ptrs_pool_create (typed as the field), or fails the test at once
 * when it is missing. Tests define RESOLVE(name) on top of it for their
 * own table and prefix. */
#define RESOLVE_INTO(table, prefix, name)                                    \
  do {                                                                       \
    (table).name = (__typeof__((table).name))ptrs_symbol(prefix #name);      \
    if ((table).name == NULL)                                                \
      FAIL_EXIT("symbol %s%s not found", prefix, #name);                    \
  } while (0)

/* True when scripts/memcheck.sh runs the test under valgrind's memcheck.
 * There ptrs gives every block a redzone and malloc_usable_size answers the
 * requested size (src/valgrind.rs), so figures that count whole blocks
 * differ from the usable sizes. */
static inline int under_memcheck(void) {
  return getenv("TEST_UNDER_MEMCHECK") != NULL;
}

/* Exit 1 unless ptrs serves this process's malloc. */
static inline void require_ptrs(void) {
  int (*owns)(const void *) = (int (*)(const void *))ptrs_symbol("ptrs_owns");
  if (owns == NULL)
    FAIL_EXIT("ptrs is not loaded (no ptrs_owns symbol)");
  void *p = malloc(78);
  if (p == NULL || !owns(p))
    FAIL_EXIT("malloc(78) = %p was not served by ptrs", p);
  free(p);
}

/* The path of the running test program (to re-run itself), into `out`
 * (`size` bytes); exits the test when /proc/self/exe cannot be read. */
static inline void test_self_exe(char *out, size_t size) {
  ssize_t n = readlink("/proc/self/exe", out, size - 1);
  if (n <= 0)
    FAIL_EXIT("readlink /proc/self/exe: %s", strerror(errno));
  out[n] = 0;
}

/* The directory of the library under test, made absolute: $PTRS_LIB_DIR
 * (as c-tests/run.sh sets it), else target/release from the repository
 * root (where run.sh starts every test). Returns 0, or -1 with a message
 * on stderr when it does not exist. */
static inline int test_lib_dir(char *out, size_t size) {
  const char *dir = getenv("PTRS_LIB_DIR");
  if (dir == NULL || *dir == '\0')
    dir = "target/release";
  char full[4096];
  if (realpath(dir, full) == NULL || strlen(full) >= size) {
    fprintf(stderr, "%s: %s\n", dir, strerror(errno));
    return -1;
  }
  strcpy(out, full);
  return 0;
}

/* For a test that builds a program against the static library: the path
 * of libptrs.a in the directory under test (see test_lib_dir), and a check
 * that `compiler` (gcc, g++) is installed. Returns 0, or EXIT_UNSUPPORTED
 * with a message on stderr when either is missing. */
static inline int test_static_lib(char *out, size_t size, const char *compiler) {
  char dir[4096], cmd[256];
  struct stat st;
  if (test_lib_dir(dir, sizeof dir) != 0)
    return EXIT_UNSUPPORTED;
  if ((size_t)snprintf(out, size, "%s/libptrs.a", dir) >= size || stat(out, &st) != 0) {
    fprintf(stderr, "%s/libptrs.a not found\n", dir);
    return EXIT_UNSUPPORTED;
  }
  snprintf(cmd, sizeof cmd, "command -v %s >/dev/null 2>&1", compiler);
  if (system(cmd) != 0) {
    fprintf(stderr, "no %s\n", compiler);
    return EXIT_UNSUPPORTED;
  }
  return 0;
}

/* The exit status of a test: 0 if every CHECK held, 1 otherwise. */
static inline int test_result(void) {
  if (test_failures)
    fprintf(stderr, "%d check(s) failed\n", test_failures);
  return test_failures ? 1 : 0;
}

/* splitmix64: a small deterministic PRNG for stress tests. */
static inline uint64_t splitmix64(uint64_t *state) {
  uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

/* Stamp a block with a pattern derived from its address and a seed, and
 * verify it later: catches overlapping blocks and corruption. */
static inline void stamp_block(void *p, size_t size, uint64_t seed) {
  unsigned char *b = (unsigned char *)p;
  uint64_t x = seed ^ (uint64_t)(uintptr_t)p;
  for (size_t i = 0; i < size; i++)
    b[i] = (unsigned char)(x >> ((i & 7) * 8)) ^ (unsigned char)i;
}

static inline int verify_block(const void *p, size_t size, uint64_t seed) {
  const unsigned char *b = (const unsigned char *)p;
  uint64_t x = seed ^ (uint64_t)(uintptr_t)p;
  for (size_t i = 0; i < size; i++)
    if (b[i] != ((unsigned char)(x >> ((i & 7) * 8)) ^ (unsigned char)i))
      return 0;
  return 1;
}

/* ---- Helpers added for the single-threaded behaviour tests. ---- */

#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

/* ptrs_owns(p) through dlsym, so it works in both link modes. */
static inline int test_owns(const void *p) {
  static int (*owns)(const void *);
  if (owns == NULL) {
    owns = (int (*)(const void *))ptrs_symbol("ptrs_owns");
    if (owns == NULL)
      FAIL_EXIT("ptrs is not loaded (no ptrs_owns symbol)");
  }
  return owns(p);
}

/* Launder a value through a volatile so the compiler can neither fold a
 * size into a warning (-Walloc-size-larger-than) nor track a pointer into
 * -Wuse-after-free / -Wfree-nonheap-object diagnostics. */
static inline size_t test_size(size_t n) {
  volatile size_t v = n;
  return v;
}
static inline void *test_ptr(const void *p) {
  void *volatile v = (void *)p;
  return v;
}

static inline int is_aligned(const void *p, size_t align) {
  return ((uintptr_t)p & (align - 1)) == 0;
}

/* An address-independent pattern (unlike stamp_block): survives realloc
 * moving the block. */
static inline unsigned char pattern_byte(size_t i, uint32_t seed) {
  uint32_t x = (uint32_t)i * 2654435761u ^ seed;
  return (unsigned char)(x ^ (x >> 13) ^ (x >> 24));
}
static inline void fill_pattern(void *p, size_t n, uint32_t seed) {
  unsigned char *b = (unsigned char *)p;
  for (size_t i = 0; i < n; i++)
    b[i] = pattern_byte(i, seed);
}
/* Index of the first wrong byte, or (size_t)-1 if all n bytes match. */
static inline size_t check_pattern(const void *p, size_t n, uint32_t seed) {
  const unsigned char *b = (const unsigned char *)p;
  for (size_t i = 0; i < n; i++)
    if (b[i] != pattern_byte(i, seed))
      return i;
  return (size_t)-1;
}
#define PATTERN_OK ((size_t)-1)

/* Resident set size of this process in bytes, from /proc/self/statm. */
static inline size_t rss_bytes(void) {
  FILE *f = fopen("/proc/self/statm", "r");
  unsigned long size = 0, resident = 0;
  if (f == NULL)
    FAIL_EXIT("cannot open /proc/self/statm");
  if (fscanf(f, "%lu %lu", &size, &resident) != 2)
    FAIL_EXIT("cannot parse /proc/self/statm");
  fclose(f);
  return (size_t)resident * (size_t)sysconf(_SC_PAGESIZE);
}

/* A "<field>: <n> kB" line of /proc/self/status, in bytes (`field`
 * without the colon, e.g. "VmSize"); exits the test when it is missing. */
static inline size_t proc_status_bytes(const char *field) {
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  size_t len = strlen(field), kb = 0;
  int found = 0;
  if (f == NULL)
    FAIL_EXIT("cannot open /proc/self/status");
  while (!found && fgets(line, sizeof line, f))
    found = strncmp(line, field, len) == 0 && line[len] == ':' &&
            sscanf(line + len + 1, " %zu kB", &kb) == 1;
  fclose(f);
  if (!found)
    FAIL_EXIT("no %s in /proc/self/status", field);
  return kb << 10;
}

/* Virtual size of this process in bytes (VmSize in /proc/self/status):
 * for address-space limits set a given headroom above current use. */
static inline size_t vm_size_bytes(void) {
  return proc_status_bytes("VmSize");
}

/* Run fn(arg) in a forked child whose stderr goes to a pipe. The child must
 * die of SIGABRT and its stderr must hold a line
 *   "ptrs: <func>(): <problem>: 0x<addr>"
 * Records CHECK failures (with the child's output) otherwise. */
static inline void expect_abort(const char *what, void (*fn)(void *), void *arg,
                                const char *func, const char *problem,
                                const void *addr) {
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
    fn(arg);
    _exit(0);
  }
  close(fds[1]);
  char out[8192];
  size_t len = 0;
  for (;;) {
    ssize_t r = read(fds[0], out + len, sizeof out - 1 - len);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      break;
    len += (size_t)r;
    if (len == sizeof out - 1)
      break;
  }
  out[len] = '\0';
  close(fds[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
    ;

  char prefix[256];
  snprintf(prefix, sizeof prefix, "ptrs: %s(): %s: 0x", func, problem);
  int found = 0, right_addr = 0;
  for (char *line = out; line != NULL && *line != '\0';) {
    char *nl = strchr(line, '\n');
    if (strncmp(line, prefix, strlen(prefix)) == 0) {
      found = 1;
      char *end;
      unsigned long long a = strtoull(line + strlen(prefix), &end, 16);
      if (end != line + strlen(prefix) &&
          (end == nl || *end == '\0') &&
          a == (unsigned long long)(uintptr_t)addr)
        right_addr = 1;
    }
    line = nl ? nl + 1 : NULL;
  }
  int aborted = WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT;
  if (!aborted || !found || !right_addr) {
    fprintf(stderr, "%s: expected SIGABRT and a line \"%s%llx\"\n", what,
            prefix, (unsigned long long)(uintptr_t)addr);
    if (WIFSIGNALED(status))
      fprintf(stderr, "  child died of signal %d\n", WTERMSIG(status));
    else
      fprintf(stderr, "  child exited with status %d\n", WEXITSTATUS(status));
    fprintf(stderr, "  child stderr: <<<%s>>>\n", out);
  }
  CHECK(aborted);
  CHECK(found);
  CHECK(right_addr);
}

#endif
