/* What ptrs does at exit: the leak report, its exit code and the
 * statistics table, in the order the program's own clean-up needs
 * (a tester's reports).
 *
 * Programs built with gcc at run time from the repository root (where
 * c-tests/run.sh starts this test), each run under a 60 s timeout:
 *   1. a program linked with a library that allocates a block on first
 *      use and frees it in its destructor, run with the exact leak report
 *      (PTRS_LEAK_REPORT=1 PTRS_PROFILE_RATE=1 PTRS_LEAK_EXITCODE=1),
 *      preloaded and linked with -lptrs: no leak, exit status 0 (the
 *      report ran before that destructor when libptrs was preloaded, and
 *      the program exited with 1; valgrind and ASan report nothing);
 *   2. the same with a real leak (a block whose pointer is dropped):
 *      status 1 and the report names its 12345 bytes;
 *   3. a program that turns show_stats, profile_rate=1, leak_report and
 *      leak_exitcode=3 on with ptrs_option_set, then leaks a block: the
 *      table is printed, the leak is reported, the status is 3 (each was
 *      accepted and read back, and none acted at exit: the exit handlers
 *      were registered only for variables set at start-up);
 *   4. a program on glibc's malloc that dlopens libptrs.so and dlcloses
 *      it: it exits normally (libptrs is linked -z nodelete, since its
 *      exit handler must stay mapped);
 *   5. a program that calls setlocale, bindtextdomain and textdomain, and
 *      touches the thread-local block of a dlopened library from main and
 *      from a thread, under the exact leak report: no leak, status 0 (the
 *      C library keeps that state for the process; 800 KB and 12 KB of it
 *      were reported, and GNU programs failed PTRS_LEAK_EXITCODE).
 * UNSUPPORTED without gcc or the library. */
/* TIMEOUT: 300 */
#include "test_helper.h"
#include <sys/stat.h>
#include <sys/wait.h>

static const char lib_src[] =
    "#include <stdlib.h>\n"
    "#include <string.h>\n"
    "static char *cache;\n"
    "char *lazy_get(void) {\n"
    "  if (!cache) { cache = malloc(4096); memset(cache, 1, 4096); }\n"
    "  return cache;\n"
    "}\n"
    "__attribute__((destructor)) static void lazy_fini(void) { free(cache); }\n";

/* A function that drops the only pointer to a 12345-byte block. */
#define LEAK_HERE_SRC                                                         \
  "__attribute__((noinline)) void leak_here(void) {\n"                       \
  "  char *volatile p = malloc(12345);\n"                                    \
  "  memset(p, 2, 12345);\n"                                                 \
  "  p = NULL;\n"                                                            \
  "}\n"

static const char prog_src[] =
    "#include <stdio.h>\n"
    "#include <stdlib.h>\n"
    "#include <string.h>\n"
    "char *lazy_get(void);\n"
    LEAK_HERE_SRC
    "int main(void) {\n"
    "  printf(\"%d\\n\", lazy_get()[100]);\n"
    "  if (getenv(\"LEAK\")) leak_here();\n"
    "  return 0;\n"
    "}\n";

static const char opts_src[] =
    "#define _GNU_SOURCE\n"
    "#include <dlfcn.h>\n"
    "#include <stdio.h>\n"
    "#include <stdlib.h>\n"
    "#include <string.h>\n"
    LEAK_HERE_SRC
    "int main(void) {\n"
    "  int (*set)(const char *, long long) = dlsym(RTLD_DEFAULT, \"ptrs_option_set\");\n"
    "  if (!set) return 10;\n"
    "  if (set(\"show_stats\", 1) || set(\"profile_rate\", 1) ||\n"
    "      set(\"leak_report\", 1) || set(\"leak_exitcode\", 3)) return 11;\n"
    "  leak_here();\n"
    "  return 0;\n"
    "}\n";

static const char dl_src[] =
    "#include <dlfcn.h>\n"
    "#include <stdio.h>\n"
    "#include <stdlib.h>\n"
    "int main(int argc, char **argv) {\n"
    "  if (argc < 2) return 10;\n"
    "  void *h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);\n"
    "  if (!h) { printf(\"dlopen: %s\\n\", dlerror()); return 11; }\n"
    "  if (!dlsym(h, \"ptrs_option_set\")) return 12;\n"
    "  if (dlclose(h) != 0) return 13;\n"
    "  free(malloc(100));\n"
    "  puts(\"dlclose ok\");\n"
    "  return 0;\n"
    "}\n";

static const char tls_src[] =
    "static __thread char big[100000];\n"
    "char *tls_get(void) { return big; }\n";

static const char runtime_src[] =
    "#include <dlfcn.h>\n"
    "#include <locale.h>\n"
    "#include <libintl.h>\n"
    "#include <pthread.h>\n"
    "#include <stdio.h>\n"
    "static char *(*get)(void);\n"
    "static void *th(void *a) { (void)a; get()[5] = 1; return NULL; }\n"
    "int main(void) {\n"
    "  setlocale(LC_ALL, \"\");\n"
    "  bindtextdomain(\"coreutils\", \"/usr/share/locale\");\n"
    "  textdomain(\"coreutils\");\n"
    "  void *h = dlopen(\"./libtlsx.so\", RTLD_NOW);\n"
    "  if (!h) return 10;\n"
    "  get = (char *(*)(void))dlsym(h, \"tls_get\");\n"
    "  get()[1] = 1;\n"
    "  pthread_t t;\n"
    "  if (pthread_create(&t, NULL, th, NULL)) return 11;\n"
    "  pthread_join(t, NULL);\n"
    "  puts(\"runtime ok\");\n"
    "  return 0;\n"
    "}\n";

static char tmp[] = "/tmp/tst-exit-hooks-XXXXXX";

static void write_file(const char *name, const char *text) {
  char path[600];
  snprintf(path, sizeof path, "%s/%s", tmp, name);
  FILE *f = fopen(path, "w");
  if (f == NULL)
    FAIL_EXIT("%s: %s", path, strerror(errno));
  fputs(text, f);
  fclose(f);
}

static char out[16384];

/* Runs `cmd` in the temporary directory; returns its exit status (-1 if
 * it did not exit); its stdout and stderr are left in `out`. */
static int run(const char *cmd) {
  char full[4096];
  snprintf(full, sizeof full, "cd '%s' && { %s ; } >out 2>&1", tmp, cmd);
  fflush(NULL);
  int status = system(full);
  char path[600];
  snprintf(path, sizeof path, "%s/out", tmp);
  out[0] = '\0';
  FILE *f = fopen(path, "r");
  if (f != NULL) {
    out[fread(out, 1, sizeof out - 1, f)] = '\0';
    fclose(f);
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static int expect(const char *what, const char *cmd, int status, const char *needle) {
  int got = run(cmd);
  int ok = got == status && (needle == NULL || strstr(out, needle) != NULL);
  printf("%s: status %d (want %d)%s%s\n", what, got, status,
         needle ? ", output has " : "", needle ? needle : "");
  if (!ok)
    fprintf(stderr, "%s: %s\n%s\n", what, cmd, out);
  return ok;
}

int main(void) {
  require_ptrs();
  char libdir[512], so[600];
  if (test_lib_dir(libdir, sizeof libdir) != 0)
    return EXIT_UNSUPPORTED;
  snprintf(so, sizeof so, "%s/libptrs.so", libdir);
  struct stat st;
  if (stat(so, &st) != 0 || system("command -v gcc >/dev/null 2>&1") != 0) {
    fprintf(stderr, "no gcc or %s\n", so);
    return EXIT_UNSUPPORTED;
  }
  if (mkdtemp(tmp) == NULL)
    FAIL_EXIT("mkdtemp: %s", strerror(errno));
  write_file("lazy.c", lib_src);
  write_file("prog.c", prog_src);
  write_file("opts.c", opts_src);
  write_file("dl.c", dl_src);
  write_file("tlsx.c", tls_src);
  write_file("runtime.c", runtime_src);
  char cmd[4096];
  snprintf(cmd, sizeof cmd,
           "gcc -O1 -shared -fPIC -o liblazy.so lazy.c && "
           "gcc -O1 -o prog prog.c -L. -llazy -Wl,-rpath,'%s' && "
           "gcc -O1 -o prog-linked prog.c -L. -llazy -L'%s' -lptrs "
           "-Wl,-rpath,'%s':'%s' && "
           "gcc -O1 -o opts opts.c -ldl && gcc -O1 -o dl dl.c -ldl && "
           "gcc -O1 -shared -fPIC -o libtlsx.so tlsx.c && "
           "gcc -O1 -o runtime runtime.c -ldl -lpthread",
           tmp, libdir, tmp, libdir);
  int built = run(cmd) == 0;
  if (!built)
    fprintf(stderr, "build: %s\n%s\n", cmd, out);
  CHECK(built);
  if (built) {
    const char *exact = "PTRS_LEAK_REPORT=1 PTRS_PROFILE_RATE=1 PTRS_LEAK_EXITCODE=1";
    snprintf(cmd, sizeof cmd, "timeout 60 env %s LD_PRELOAD='%s' ./prog", exact, so);
    CHECK(expect("preloaded, freed by a library destructor", cmd, 0, "no leaks"));
    snprintf(cmd, sizeof cmd, "timeout 60 env -u LD_PRELOAD %s ./prog-linked", exact);
    CHECK(expect("linked, freed by a library destructor", cmd, 0, "no leaks"));
    snprintf(cmd, sizeof cmd, "timeout 60 env LEAK=1 %s LD_PRELOAD='%s' ./prog", exact, so);
    CHECK(expect("preloaded, a real leak", cmd, 1, "12345 bytes in 1 block"));
    snprintf(cmd, sizeof cmd, "timeout 60 env LD_PRELOAD='%s' ./opts", so);
    CHECK(expect("options set at run time: leak report", cmd, 3, "12345 bytes in 1 block"));
    CHECK(strstr(out, " statistics\n") != NULL && strstr(out, "allocated: ") != NULL);
    /* The C library's runtime state (locale, message catalogs, a
     * dlopened library's thread-local blocks, the loader's own data) is
     * not a leak of the program (valgrind and LeakSanitizer agree). */
    snprintf(cmd, sizeof cmd, "timeout 60 env %s LD_PRELOAD='%s' ./runtime", exact, so);
    CHECK(expect("the C library's runtime state", cmd, 0, "no leaks"));
    snprintf(cmd, sizeof cmd, "timeout 60 env -u LD_PRELOAD ./dl '%s'", so);
    CHECK(expect("dlopen and dlclose of libptrs", cmd, 0, "dlclose ok"));
  }
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
  if (system(cmd) != 0)
    fprintf(stderr, "could not remove %s\n", tmp);
  return test_result();
}
