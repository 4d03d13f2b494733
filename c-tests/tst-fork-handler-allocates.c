/* fork() in a program where a fork prepare handler registered before
 * ptrs's own allocates: glibc runs prepare handlers in reverse order of
 * registration, so that handler runs after ptrs's, which holds ptrs's
 * locks across the fork. Its allocations must not wait for them (a
 * tester's library whose handler allocated 200 000 bytes hung in fork with
 * every signal blocked; glibc takes its malloc locks after all prepare
 * handlers, which a preloaded allocator cannot do).
 *
 * Three programs, built with gcc at run time from the repository root
 * (where c-tests/run.sh starts this test), each run under a 60 s timeout:
 *   1. a shared library whose constructor registers the handlers (it runs
 *      before libptrs.so's initialisation), and a program that forks 20
 *      times, run with LD_PRELOAD=libptrs.so;
 *   2. the same program linked with -lptrs listed after the library;
 *   3. a program linked with libptrs.a whose constructor(101) registers
 *      them, so they come before ptrs initialises at all;
 *   4. case 1 with the heap profiler sampling every allocation;
 *   5. case 1 under PTRS_HEAP_LIMIT, the handler asking for more than is
 *      left (NULL, ENOMEM, without the trim-and-retry of a normal failure).
 * Every prepare handler also calls malloc_trim(0).
 * The handlers allocate small, large (200 000 B) and huge (5 MiB) blocks,
 * from a thread that had no heap yet in case 3, and free them in the
 * parent and child handlers; the child allocates again after the fork.
 * UNSUPPORTED without gcc or the libraries. */
/* TIMEOUT: 300 */
#include "test_helper.h"
#include <sys/stat.h>
#include <sys/wait.h>

static const char lib_src[] =
    "#include <pthread.h>\n"
    "#include <stdlib.h>\n"
    "#include <string.h>\n"
    "static void *blocks[3];\n"
    "#include <malloc.h>\n"
    "static void prep(void) {\n"
    "  blocks[0] = malloc(100);\n"
    "  blocks[1] = malloc(200000);\n"
    "  blocks[2] = malloc(5 << 20);\n"
    "  for (int i = 0; i < 3; i++) if (blocks[i]) memset(blocks[i], i + 1, 100);\n"
    "  malloc_trim(0);\n"
    "  const char *big = getenv(\"HANDLER_BIG\");\n"
    "  if (big) free(malloc(strtoul(big, NULL, 0)));\n"
    "}\n"
    "static void done(void) { for (int i = 0; i < 3; i++) free(blocks[i]); }\n"
    "PRIO void reg(void) { pthread_atfork(prep, done, done); }\n";

static const char prog_src[] =
    "#include <stdio.h>\n"
    "#include <stdlib.h>\n"
    "#include <string.h>\n"
    "#include <unistd.h>\n"
    "#include <sys/wait.h>\n"
    "int main(void) {\n"
    "  char *hold = NULL;\n"
    "  if (getenv(\"PROG_HOLD\")) {\n"
    "    hold = malloc(40 << 20);\n"
    "    if (!hold) return 6;\n"
    "    memset(hold, 1, 40 << 20);\n"
    "  }\n"
    "  for (int i = 0; i < 20; i++) {\n"
    "    pid_t c = fork();\n"
    "    if (c < 0) return 3;\n"
    "    if (c == 0) {\n"
    "      char *p = malloc(300000), *q = malloc(64);\n"
    "      if (!p || !q) _exit(4);\n"
    "      memset(p, 7, 300000); memset(q, 8, 64);\n"
    "      free(p); free(q);\n"
    "      _exit(0);\n"
    "    }\n"
    "    int st;\n"
    "    if (waitpid(c, &st, 0) != c || !WIFEXITED(st) || WEXITSTATUS(st)) return 5;\n"
    "  }\n"
    "  free(hold);\n"
    "  puts(\"forks ok\");\n"
    "  return 0;\n"
    "}\n";

static char tmp[] = "/tmp/tst-fork-handler-XXXXXX";

static void write_file(const char *name, const char *prefix, const char *text) {
  char path[600];
  snprintf(path, sizeof path, "%s/%s", tmp, name);
  FILE *f = fopen(path, "w");
  if (f == NULL)
    FAIL_EXIT("%s: %s", path, strerror(errno));
  fputs(prefix, f);
  fputs(text, f);
  fclose(f);
}

static int run(const char *what, const char *cmd) {
  char full[4096];
  snprintf(full, sizeof full, "cd '%s' && { %s ; } >out 2>&1", tmp, cmd);
  fflush(NULL);
  int status = system(full);
  char path[600], out[4096] = "";
  snprintf(path, sizeof path, "%s/out", tmp);
  FILE *f = fopen(path, "r");
  if (f != NULL) {
    out[fread(out, 1, sizeof out - 1, f)] = '\0';
    fclose(f);
  }
  int ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
  if (!ok)
    fprintf(stderr, "%s: status %#x: %s\n%s\n", what, status, cmd, out);
  return ok;
}

int main(void) {
  require_ptrs();
  char libdir[512], so[600], a[600];
  if (test_lib_dir(libdir, sizeof libdir) != 0)
    return EXIT_UNSUPPORTED;
  snprintf(so, sizeof so, "%s/libptrs.so", libdir);
  snprintf(a, sizeof a, "%s/libptrs.a", libdir);
  struct stat st;
  if (stat(so, &st) != 0 || stat(a, &st) != 0 ||
      system("command -v gcc >/dev/null 2>&1") != 0) {
    fprintf(stderr, "no gcc, %s or %s\n", so, a);
    return EXIT_UNSUPPORTED;
  }
  if (mkdtemp(tmp) == NULL)
    FAIL_EXIT("mkdtemp: %s", strerror(errno));
  write_file("lib.c", "#define PRIO __attribute__((constructor))\n", lib_src);
  write_file("prog.c", "", prog_src);
  write_file("static.c", "#define PRIO __attribute__((constructor(101)))\n",
             lib_src);
  char cmd[4096];
  int built = run("build library",
                  "gcc -O1 -shared -fPIC -o libhandler.so lib.c -lpthread");
  snprintf(cmd, sizeof cmd,
           "gcc -O1 -o prog prog.c -Wl,--no-as-needed -L. -lhandler "
           "-Wl,-rpath,'%s' && "
           "gcc -O1 -o prog-linked prog.c -Wl,--no-as-needed -L. -lhandler "
           "-L'%s' -lptrs -Wl,-rpath,'%s':'%s' && "
           "gcc -O1 -o prog-static prog.c static.c '%s' -lpthread -ldl -lm "
           "-lrt -lutil -lgcc_s",
           tmp, libdir, tmp, libdir, a);
  built = built && run("build programs", cmd);
  CHECK(built);
  if (built) {
    /* timeout -s KILL: ptrs's prepare handler blocks every signal */
    snprintf(cmd, sizeof cmd,
             "LD_PRELOAD='%s' timeout -s KILL 60 ./prog",
             so);
    CHECK(run("preloaded", cmd));
    /* the heap profiler on, every allocation sampled: its lock is held
     * across the fork too (a second hang, found reviewing the fix) */
    snprintf(cmd, sizeof cmd,
             "PTRS_PROFILE=prof PTRS_PROFILE_RATE=1 LD_PRELOAD='%s' "
             "timeout -s KILL 60 ./prog",
             so);
    CHECK(run("preloaded, profiling", cmd));
    /* a handler's malloc that fails under the heap limit (40 MiB held, 30
     * MB more asked under 64 MiB): NULL at once, its retry after a trim
     * skipped (the trim waited for a lock ptrs holds across the fork: a
     * reviewer's hang); every handler also calls malloc_trim(0) */
    snprintf(cmd, sizeof cmd,
             "PTRS_HEAP_LIMIT=64M PROG_HOLD=1 HANDLER_BIG=30000000 "
             "LD_PRELOAD='%s' timeout -s KILL 60 ./prog",
             so);
    CHECK(run("preloaded, heap limit", cmd));
    CHECK(run("linked", "env -u LD_PRELOAD timeout -s KILL 60 ./prog-linked"));
    CHECK(run("static", "env -u LD_PRELOAD timeout -s KILL 60 ./prog-static"));
  }
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
  if (system(cmd) != 0)
    fprintf(stderr, "could not remove %s\n", tmp);
  return test_result();
}
