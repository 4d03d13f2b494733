/* A stray PTRS_* variable must not change what a program prints. A child
 * process (this program with --child, under the same ptrs: inherited
 * LD_PRELOAD or linked) runs with an unknown PTRS_FOO=1, a bad
 * PTRS_PURGE_DELAY=soon and a GLIBC_TUNABLES entry ptrs does not know, and
 * writes one line to stderr; its stderr must be exactly that line (Python's
 * test_subprocess and ImageMagick's compare read their own stderr), and the
 * bad value must leave the default. With PTRS_VERBOSE=1 the same child
 * reports both problems in ptrs's one-line warnings. */
#include "test_helper.h"
#include <sys/wait.h>
#include <unistd.h>

static const char child_line[] = "child: stderr line\n";

/* Runs this program with --child and the extra environment `env` (NULL
 * terminated); its stderr goes to `err`, its stdout to `out`. Returns its
 * exit status, -1 if it did not exit. */
static int run_child(char *const env[], char *out, size_t out_n, char *err,
                     size_t err_n) {
  char outp[] = "/tmp/tst-options-quiet-out-XXXXXX";
  char errp[] = "/tmp/tst-options-quiet-err-XXXXXX";
  int fo = mkstemp(outp), fe = mkstemp(errp);
  if (fo < 0 || fe < 0)
    FAIL_EXIT("mkstemp: %s", strerror(errno));
  unlink(outp);
  unlink(errp);
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0)
    FAIL_EXIT("fork: %s", strerror(errno));
  if (pid == 0) {
    dup2(fo, 1);
    dup2(fe, 2);
    unsetenv("PTRS_VERBOSE");
    for (int i = 0; env[i] != NULL; i++)
      putenv(env[i]);
    execl("/proc/self/exe", "tst-options-quiet", "--child", (char *)NULL);
    _exit(126);
  }
  int st = 0;
  if (waitpid(pid, &st, 0) != pid)
    FAIL_EXIT("waitpid: %s", strerror(errno));
  ssize_t n = pread(fo, out, out_n - 1, 0);
  out[n > 0 ? n : 0] = '\0';
  n = pread(fe, err, err_n - 1, 0);
  err[n > 0 ? n : 0] = '\0';
  close(fo);
  close(fe);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

int main(int argc, char **argv) {
  require_ptrs();
  if (argc > 1 && strcmp(argv[1], "--child") == 0) {
    long long (*get)(const char *) =
        (long long (*)(const char *))ptrs_symbol("ptrs_option_get");
    char *volatile p = malloc(100);
    free(p);
    printf("purge_delay=%lld\n", get ? get("purge_delay") : -2);
    fflush(stdout);
    fputs(child_line, stderr);
    return 0;
  }
  char out[4096], err[4096];

  /* Quiet by default. */
  char *quiet[] = {"PTRS_FOO=1", "PTRS_PURGE_DELAY=soon",
                   "GLIBC_TUNABLES=glibc.malloc.mmap_threshold=lots", NULL};
  CHECK(run_child(quiet, out, sizeof out, err, sizeof err) == 0);
  if (strcmp(err, child_line) != 0)
    fprintf(stderr, "child's stderr, expected only its own line:\n%s", err);
  CHECK(strcmp(err, child_line) == 0);
  CHECK(strcmp(out, "purge_delay=10\n") == 0); /* the default stayed */

  /* With PTRS_VERBOSE=1 (wherever it stands in the environment), the
   * warnings are there, with the names. */
  char *verbose[] = {"PTRS_FOO=1", "PTRS_PURGE_DELAY=soon",
                     "GLIBC_TUNABLES=glibc.malloc.mmap_threshold=lots",
                     "PTRS_VERBOSE=1", NULL};
  CHECK(run_child(verbose, out, sizeof out, err, sizeof err) == 0);
  fprintf(stderr, "verbose child's stderr:\n%s", err);
  CHECK(strstr(err, "ptrs: warning: unknown option PTRS_FOO is ignored\n") !=
        NULL);
  CHECK(strstr(err, "ptrs: warning: PTRS_PURGE_DELAY=soon is not a valid "
                    "value; using the default\n") != NULL);
  CHECK(strstr(err, "glibc.malloc.mmap_threshold=lots") != NULL);
  CHECK(strstr(err, child_line) != NULL);
  CHECK(strcmp(out, "purge_delay=10\n") == 0);

  /* A good value is applied and, even verbose, draws no warning. */
  char *good[] = {"PTRS_PURGE_DELAY=25", "PTRS_VERBOSE=1", NULL};
  CHECK(run_child(good, out, sizeof out, err, sizeof err) == 0);
  CHECK(strstr(err, "warning") == NULL);
  CHECK(strcmp(out, "purge_delay=25\n") == 0);
  return test_result();
}
