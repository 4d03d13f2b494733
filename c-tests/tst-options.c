/* Options from the environment (PTRS_*, glibc's MALLOC_*_ and
 * GLIBC_TUNABLES), their warnings, and ptrs_option_set/get at run time.
 * The test re-executes itself with a given environment and checks what the
 * child reports. */
#include "test_helper.h"

#include <glob.h>
#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>

typedef int64_t (*get_fn)(const char *);
typedef int32_t (*set_fn)(const char *, int64_t);

static get_fn opt_get;
static set_fn opt_set;

/* Runs this program as "child MODE" with extra environment entries; returns
 * its stdout+stderr in buf and its exit status. */
static int run_child(const char *mode, char *const extra[], char *buf, size_t len) {
  int fds[2];
  if (pipe(fds) != 0) FAIL_EXIT("pipe");
  pid_t pid = fork();
  if (pid < 0) FAIL_EXIT("fork");
  if (pid == 0) {
    dup2(fds[1], 1);
    dup2(fds[1], 2);
    close(fds[0]);
    for (int i = 0; extra[i]; i++) putenv(extra[i]);
    execl("/proc/self/exe", "tst-options", "child", mode, (char *)NULL);
    _exit(127);
  }
  close(fds[1]);
  size_t got = 0;
  ssize_t n;
  while (got + 1 < len && (n = read(fds[0], buf + got, len - 1 - got)) > 0) got += (size_t)n;
  buf[got] = 0;
  close(fds[0]);
  int status;
  waitpid(pid, &status, 0);
  return status;
}

static int child(const char *mode) {
  opt_get = (get_fn)ptrs_symbol("ptrs_option_get");
  if (!opt_get) return 3;
  if (!strcmp(mode, "print")) {
    static const char *names[] = {"large_threshold", "purge_delay", "retain", "abort_on_error",
                                  "show_stats", "verbose", "heap_limit", "profile"};
    void *p = malloc(10);
    free(p);
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
      printf("%s=%lld\n", names[i], (long long)opt_get(names[i]));
    return 0;
  }
  if (!strcmp(mode, "limit")) {
    /* PTRS_HEAP_LIMIT=64M: a 100 MiB block is refused, and 1 MiB blocks
     * stop well before 100 of them. */
    errno = 0;
    void *big = malloc(100 << 20);
    if (big != NULL || errno != ENOMEM) return 4;
    void *blocks[200];
    int n = 0;
    while (n < 200 && (blocks[n] = malloc(1 << 20)) != NULL) n++;
    if (n >= 100 || n < 16) return 5;
    for (int i = 0; i < n; i++) free(blocks[i]);
    void *again = malloc(1 << 20);
    if (!again) return 6;
    free(again);
    printf("limit ok: %d blocks\n", n);
    return 0;
  }
  return 2;
}

static int has(const char *buf, const char *s) { return strstr(buf, s) != NULL; }

int main(int argc, char **argv) {
  if (argc == 3 && !strcmp(argv[1], "child")) return child(argv[2]);
  require_ptrs();
  opt_get = (get_fn)ptrs_symbol("ptrs_option_get");
  opt_set = (set_fn)ptrs_symbol("ptrs_option_set");
  CHECK(opt_get != NULL && opt_set != NULL);
  if (!opt_get || !opt_set) return test_result();

  static char buf[65536];
  int st;

  char *sizes[] = {"PTRS_LARGE_THRESHOLD=1M", "PTRS_PURGE_DELAY=25", "PTRS_RETAIN=0x100000",
                   "PTRS_ABORT_ON_ERROR=off", "PTRS_HEAP_LIMIT=3G", NULL};
  st = run_child("print", sizes, buf, sizeof buf);
  CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  CHECK(has(buf, "large_threshold=1048576\n"));
  CHECK(has(buf, "purge_delay=25\n"));
  CHECK(has(buf, "retain=1048576\n"));
  CHECK(has(buf, "abort_on_error=0\n"));
  CHECK(has(buf, "heap_limit=3221225472\n"));
  CHECK(has(buf, "profile=0\n"));
  CHECK(!has(buf, "warning"));

  /* The text option reads as set (1), not as its text's address; a delay
   * beyond i64::MAX ms reads as i64::MAX ("never", as ptrs_option_set's
   * largest), not wrapped. */
  char prefix[64];
  snprintf(prefix, sizeof prefix, "/tmp/tst-options-%d", (int)getpid());
  char profile_env[96];
  snprintf(profile_env, sizeof profile_env, "PTRS_PROFILE=%s", prefix);
  char *texts[] = {profile_env, "PTRS_PURGE_DELAY=18446744073709551615", NULL};
  st = run_child("print", texts, buf, sizeof buf);
  CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  CHECK(has(buf, "profile=1\n"));
  CHECK(has(buf, "purge_delay=9223372036854775807\n"));
  glob_t written;
  char pattern[96];
  snprintf(pattern, sizeof pattern, "%s.*.heap", prefix);
  if (glob(pattern, 0, NULL, &written) == 0) {
    for (size_t i = 0; i < written.gl_pathc; i++)
      unlink(written.gl_pathv[i]);
    globfree(&written);
  }

  /* glibc's knobs, and PTRS_* winning over them whatever the order. */
  char *glibc[] = {"MALLOC_TRIM_THRESHOLD_=65536", "GLIBC_TUNABLES=glibc.malloc.tcache_count=0:glibc.malloc.mmap_threshold=131072", NULL};
  st = run_child("print", glibc, buf, sizeof buf);
  CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  CHECK(has(buf, "large_threshold=131072\n"));
  CHECK(has(buf, "retain=65536\n"));
  char *both[] = {"PTRS_LARGE_THRESHOLD=256K", "MALLOC_MMAP_THRESHOLD_=4096", NULL};
  st = run_child("print", both, buf, sizeof buf);
  CHECK(has(buf, "large_threshold=262144\n"));

  /* Bad values and unknown names: defaults kept; a warning each only with
   * PTRS_VERBOSE on (tst-options-quiet checks the quiet case's stderr). */
  char *bad[] = {"PTRS_PURGE_DELAY=soon", "PTRS_VERBOSE=maybe", "PTRS_NO_SUCH_THING=1", NULL};
  st = run_child("print", bad, buf, sizeof buf);
  CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  CHECK(!has(buf, "warning"));
  CHECK(has(buf, "purge_delay=10\n"));
  CHECK(has(buf, "verbose=0\n"));
  char *bad_verbose[] = {"PTRS_PURGE_DELAY=soon", "PTRS_NO_SUCH_THING=1", "PTRS_VERBOSE=1", NULL};
  st = run_child("print", bad_verbose, buf, sizeof buf);
  CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  CHECK(has(buf, "ptrs: warning: PTRS_PURGE_DELAY=soon is not a valid value; using the default"));
  CHECK(has(buf, "ptrs: warning: unknown option PTRS_NO_SUCH_THING is ignored"));
  CHECK(has(buf, "purge_delay=10\n"));

  /* Statistics at exit. */
  char *stats[] = {"PTRS_SHOW_STATS=yes", NULL};
  st = run_child("print", stats, buf, sizeof buf);
  CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  CHECK(has(buf, "statistics"));
  CHECK(has(buf, "allocated:"));
  CHECK(has(buf, "resident:"));

  /* The heap limit. */
  char *limit[] = {"PTRS_HEAP_LIMIT=64M", NULL};
  st = run_child("limit", limit, buf, sizeof buf);
  CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  if (!(WIFEXITED(st) && WEXITSTATUS(st) == 0)) fprintf(stderr, "limit child: status %#x: %s\n", st, buf);

  /* Run-time access. */
  int64_t old = opt_get("purge_delay");
  CHECK(old == 10);
  CHECK(opt_set("purge_delay", 0) == 0);
  CHECK(opt_get("PTRS_PURGE_DELAY") == 0);
  void *p = malloc(1 << 20);
  CHECK(p != NULL);
  free(p);
  CHECK(opt_set("purge_delay", old) == 0);
  CHECK(opt_set("no_such_option", 1) == -1);
  CHECK(opt_get("no_such_option") == -1);
  CHECK(opt_set("retain", -5) == -1);
  CHECK(opt_set(NULL, 1) == -1);
  CHECK(opt_get(NULL) == -1);
  /* The prefix in any case, as ptrs.h says. */
  CHECK(opt_get("Ptrs_Purge_Delay") == old);
  CHECK(opt_get("ptrs_purge_delay") == old);
  CHECK(opt_get("PtRs_PuRgE_dElAy") == old);
  CHECK(opt_set("Ptrs_Purge_Delay", old) == 0);
  CHECK(opt_get("PTRS") == -1);
  CHECK(opt_get("PTRS_") == -1);
  /* The profiler's rate reads in bytes, the default's too (not 0), and
   * the running profiler's while it runs. */
  CHECK(opt_get("profile_rate") == 512 * 1024);
  int (*start)(size_t) = (int (*)(size_t))ptrs_symbol("ptrs_profile_start");
  int (*stop)(void) = (int (*)(void))ptrs_symbol("ptrs_profile_stop");
  CHECK(start != NULL && stop != NULL);
  if (start && stop && start(4096) == 0) {
    CHECK(opt_get("profile_rate") == 4096);
    CHECK(stop() == 0);
  }
  CHECK(opt_get("profile_rate") == 512 * 1024);
  return test_result();
}
