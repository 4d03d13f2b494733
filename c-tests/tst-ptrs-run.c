/* scripts/ptrs-run, run from the repository root (the runner starts tests
 * there; UNSUPPORTED elsewhere):
 *   it preloads ptrs into the command (libptrs is in the child's maps);
 *   --stats prints the statistics table on stderr at exit, whichever way
 *     the command ends (exit, _exit, never allocating);
 *   unknown PTRS_* names and bad values are reported once, by ptrs-run;
 *   --lib with a missing library fails with a message and runs nothing;
 *   -o NAME=VAL sets PTRS_NAME=VAL (-o PURGE_DELAY=0);
 *   the command's exit status and arguments pass through.
 * LD_PRELOAD is removed from the script's environment, so that the preload
 * build of this test proves nothing by inheritance. */
#include "test_helper.h"
#include <sys/stat.h>
#include <unistd.h>

#define SCRIPT "scripts/ptrs-run"

static char lib_opt[4200]; /* "--lib DIR/libptrs.so " or "" */

/* Runs `cmd` with sh, stdout and stderr captured separately. Returns the
 * exit status (-1 if it did not exit normally). */
static int run(const char *cmd, char *out, size_t out_n, char *err,
               size_t err_n) {
  char outp[] = "/tmp/tst-ptrs-run-out-XXXXXX";
  char errp[] = "/tmp/tst-ptrs-run-err-XXXXXX";
  int fo = mkstemp(outp), fe = mkstemp(errp);
  if (fo < 0 || fe < 0)
    FAIL_EXIT("mkstemp: %s", strerror(errno));
  char full[8192];
  snprintf(full, sizeof full, "env -u LD_PRELOAD %s >%s 2>%s </dev/null", cmd,
           outp, errp);
  fflush(NULL);
  int st = system(full);
  ssize_t n = pread(fo, out, out_n - 1, 0);
  out[n > 0 ? n : 0] = '\0';
  n = pread(fe, err, err_n - 1, 0);
  err[n > 0 ? n : 0] = '\0';
  close(fo);
  close(fe);
  unlink(outp);
  unlink(errp);
  fprintf(stderr, "$ %s\n  status %d\n  stdout: %s\n  stderr: %s\n", cmd,
          WIFEXITED(st) ? WEXITSTATUS(st) : -1, out, err);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

int main(int argc, char **argv) {
  require_ptrs();
  if (argc > 1 && (strcmp(argv[1], "--child") == 0 ||
                   strcmp(argv[1], "--child-exit") == 0)) {
    char *volatile p = malloc(test_size(1000));
    if (p == NULL)
      return 1;
    p[0] = 1;
    free(p);
    puts("child ok");
    if (strcmp(argv[1], "--child-exit") == 0) {
      fflush(stdout);
      _exit(5); /* no exit handlers */
    }
    return 0;
  }
  struct stat st;
  if (stat(SCRIPT, &st) != 0 || !(st.st_mode & S_IXUSR) ||
      stat("Cargo.toml", &st) != 0) {
    fprintf(stderr, "not run from a ptrs checkout (no ./%s)\n", SCRIPT);
    return EXIT_UNSUPPORTED;
  }
  if (system("command -v bash >/dev/null 2>&1") != 0) {
    fprintf(stderr, "no bash\n");
    return EXIT_UNSUPPORTED;
  }
  /* The library this test runs against (the runner's PTRS_LIB_DIR). */
  Dl_info info;
  void *sym = ptrs_symbol("ptrs_owns");
  if (sym != NULL && dladdr(sym, &info) != 0 && info.dli_fname != NULL &&
      info.dli_fname[0] == '/')
    snprintf(lib_opt, sizeof lib_opt, "--lib '%s' ", info.dli_fname);

  char out[16384], err[16384];
  char cmd[8192];

  /* The command runs with libptrs mapped. */
  snprintf(cmd, sizeof cmd,
           SCRIPT " %ssh -c 'grep -c libptrs /proc/$$/maps'", lib_opt);
  CHECK(run(cmd, out, sizeof out, err, sizeof err) == 0);
  CHECK(atoi(out) > 0);

  /* The same with the script's default library (target/release). */
  if (stat("target/release/libptrs.so", &st) == 0) {
    CHECK(run(SCRIPT " sh -c 'grep -c libptrs /proc/$$/maps'", out, sizeof out,
              err, sizeof err) == 0);
    CHECK(atoi(out) > 0);
  }

  /* Without it, the same command has no libptrs: the check means something. */
  CHECK(run("sh -c 'grep -c libptrs /proc/$$/maps'", out, sizeof out, err,
            sizeof err) != 0);
  CHECK(atoi(out) == 0);

  /* --stats: the table on stderr at exit, stdout untouched. The command is
   * this program (its --child mode allocates and exits through exit()). */
  char self[4096];
  test_self_exe(self, sizeof self);
  snprintf(cmd, sizeof cmd, SCRIPT " --stats %s'%s' --child", lib_opt, self);
  CHECK(run(cmd, out, sizeof out, err, sizeof err) == 0);
  CHECK(strcmp(out, "child ok\n") == 0);
  CHECK(strstr(err, "statistics") != NULL);
  CHECK(strstr(err, "allocated") != NULL);

  /* Every way out prints the table: a command that never calls malloc
   * (/bin/true: the table comes from ptrs's load-time initialisation), one
   * that ends with _exit (dash, Debian's sh, does even for `sh -c :`; so
   * does this program's --child-exit mode) and one that closes stderr in
   * its exit handlers (GNU coreutils' close_stdout: ptrs writes to its own
   * copy of fd 2). Exactly one table each. */
  static const char *const quiet_cmds[] = {
      "true", "/bin/true", "sh -c :", "sh -c 'exit 4'", "dash -c :",
      "cat /dev/null", NULL};
  for (int i = 0; quiet_cmds[i] != NULL; i++) {
    if (strncmp(quiet_cmds[i], "dash", 4) == 0 &&
        system("command -v dash >/dev/null 2>&1") != 0)
      continue;
    snprintf(cmd, sizeof cmd, SCRIPT " --stats %s%s", lib_opt, quiet_cmds[i]);
    int want = strstr(quiet_cmds[i], "exit 4") != NULL ? 4 : 0;
    CHECK(run(cmd, out, sizeof out, err, sizeof err) == want);
    const char *first = strstr(err, "statistics");
    if (first == NULL || strstr(first + 1, "statistics") != NULL ||
        strstr(err, "max mmap bytes") == NULL) {
      fprintf(stderr, "--stats %s: not exactly one whole table\n",
              quiet_cmds[i]);
      test_failures++;
    }
  }
  snprintf(cmd, sizeof cmd, SCRIPT " --stats %s'%s' --child-exit", lib_opt,
           self);
  CHECK(run(cmd, out, sizeof out, err, sizeof err) == 5);
  CHECK(strcmp(out, "child ok\n") == 0);
  CHECK(strstr(err, "allocated") != NULL);

  /* Arguments and the exit status pass through; options end at "--". */
  snprintf(cmd, sizeof cmd,
           SCRIPT " %s-- sh -c 'echo \"$0|$1\"; exit 3' 'a b' --stats",
           lib_opt);
  CHECK(run(cmd, out, sizeof out, err, sizeof err) == 3);
  CHECK(strcmp(out, "a b|--stats\n") == 0);
  CHECK(strstr(err, "allocated") == NULL);

  /* --lib with a missing file: fails, says so, runs nothing. */
  CHECK(run(SCRIPT " --lib /nonexistent/libptrs.so sh -c 'echo ran'", out,
            sizeof out, err, sizeof err) != 0);
  CHECK(strstr(out, "ran") == NULL);
  CHECK(strstr(err, "ptrs-run:") != NULL);
  CHECK(strstr(err, "not found") != NULL);

  /* --profile without a value, or with an empty one: a usage error (exit
   * 2, no shell error such as "$2: unbound variable"), nothing run (an
   * empty prefix wrote a hidden ./.<pid>.heap). */
  CHECK(run(SCRIPT " --profile", out, sizeof out, err, sizeof err) == 2);
  CHECK(strstr(err, "--profile needs a non-empty value") != NULL);
  CHECK(strstr(err, "unbound") == NULL);
  CHECK(run(SCRIPT " --profile '' sh -c 'echo ran'", out, sizeof out, err,
            sizeof err) == 2);
  CHECK(strstr(out, "ran") == NULL);
  CHECK(strstr(err, "--profile needs a non-empty value") != NULL);

  /* --lib with a file that is not a loadable library: fails with a message. */
  CHECK(run(SCRIPT " --lib Cargo.toml sh -c 'echo ran'", out, sizeof out, err,
            sizeof err) != 0);
  CHECK(strstr(out, "ran") == NULL);
  CHECK(strstr(err, "could not be preloaded") != NULL);

  /* -o NAME=VAL: the command sees PTRS_NAME=VAL, and ptrs accepts it (an
   * unknown option or a bad value would print a warning). */
  snprintf(cmd, sizeof cmd,
           SCRIPT " %s-o PURGE_DELAY=0 sh -c 'echo \"$PTRS_PURGE_DELAY\"'",
           lib_opt);
  CHECK(run(cmd, out, sizeof out, err, sizeof err) == 0);
  CHECK(strcmp(out, "0\n") == 0);
  snprintf(cmd, sizeof cmd, SCRIPT " %s-o PURGE_DELAY=0 true", lib_opt);
  CHECK(run(cmd, out, sizeof out, err, sizeof err) == 0);
  CHECK(err[0] == '\0');
  snprintf(cmd, sizeof cmd, SCRIPT " %s-o PURGE_DELAY=0 '%s' --child", lib_opt,
           self);
  CHECK(run(cmd, out, sizeof out, err, sizeof err) == 0);
  CHECK(strcmp(out, "child ok\n") == 0);
  CHECK(strstr(err, "ptrs") == NULL); /* no warning */
  /* ... whereas a bad value or an unknown PTRS_* name gets ptrs's one-line
   * warning, printed once by ptrs-run before the command starts (the
   * command itself stays quiet without PTRS_VERBOSE: tst-options-quiet). */
  snprintf(cmd, sizeof cmd,
           "PTRS_FOO=1 " SCRIPT " %s-o PURGE_DELAY=bogus '%s' --child",
           lib_opt, self);
  CHECK(run(cmd, out, sizeof out, err, sizeof err) == 0);
  CHECK(strcmp(out, "child ok\n") == 0);
  {
    static const char bad[] = "ptrs: warning: PTRS_PURGE_DELAY=bogus is not "
                              "a valid value; using the default\n";
    static const char unknown[] =
        "ptrs: warning: unknown option PTRS_FOO is ignored\n";
    /* Both, once each, and nothing else (in environment order). */
    CHECK(strstr(err, bad) != NULL);
    CHECK(strstr(err, unknown) != NULL);
    CHECK(strlen(err) == strlen(bad) + strlen(unknown));
  }

  /* -o without NAME=: a usage error, nothing run (it set PTRS_NAME=NAME
   * and ran the command: tester). */
  CHECK(run(SCRIPT " -o PURGE_DELAY sh -c 'echo ran'", out, sizeof out, err,
            sizeof err) == 2);
  CHECK(strstr(out, "ran") == NULL);
  CHECK(strstr(err, "-o needs NAME=VALUE") != NULL);
  CHECK(run(SCRIPT " -o =0 sh -c 'echo ran'", out, sizeof out, err,
            sizeof err) == 2);
  CHECK(strstr(out, "ran") == NULL);

  /* An unknown option is refused. */
  CHECK(run(SCRIPT " --no-such-option true", out, sizeof out, err,
            sizeof err) == 2);
  CHECK(strstr(err, "unknown option") != NULL);

  /* --help prints the usage and nothing else. */
  CHECK(run(SCRIPT " --help", out, sizeof out, err, sizeof err) == 0);
  CHECK(strncmp(out, "# Usage: ptrs-run", 17) == 0);
  CHECK(strstr(out, "set -euo") == NULL);

  return test_result();
}
