/* The leak report of a program linked with the static library libptrs.a,
 * both as a dynamically linked program (libc shared, no -rdynamic) and as
 * a fully static one (-static), at PTRS_PROFILE_RATE=1: every site's first
 * frame must be the program's function that allocated (malloc, calloc and
 * aligned_alloc paths), not one of ptrs's own frames and not a frame
 * further out. Before, the first variant lost the program's frames (ptrs's
 * object is the program itself, and its frames have no names there) and
 * the second aborted at start-up, sampling an allocation of the C
 * library's own start (a tester). A fourth variant builds the program
 * without unwind tables. Builds with gcc from the repository
 * root (where c-tests/run.sh starts it); UNSUPPORTED without gcc or
 * libptrs.a; the static variant is skipped, with a message, where the C
 * library has no static archive. */
#include "test_helper.h"

static const char prog_src[] =
    "#include <stdio.h>\n"
    "#include <stdlib.h>\n"
    "__attribute__((noinline)) void *leak_malloc(void) {\n"
    "  void *p = malloc(1000); __asm__ volatile(\"\" ::: \"memory\"); return p; }\n"
    "__attribute__((noinline)) void *leak_calloc(void) {\n"
    "  void *p = calloc(10, 100); __asm__ volatile(\"\" ::: \"memory\"); return p; }\n"
    "__attribute__((noinline)) void *leak_aligned(void) {\n"
    "  void *p = aligned_alloc(256, 1000); __asm__ volatile(\"\" ::: \"memory\"); return p; }\n"
    "void *volatile sink[300];\n"
    "int main(void) {\n"
    "  printf(\"%p %p %p\\n\", (void *)leak_malloc, (void *)leak_calloc,\n"
    "         (void *)leak_aligned);\n"
    "  fflush(stdout);\n"
    "  for (int i = 0; i < 100; i++) {\n"
    "    sink[3 * i] = leak_malloc();\n"
    "    sink[3 * i + 1] = leak_calloc();\n"
    "    sink[3 * i + 2] = leak_aligned();\n"
    "  }\n"
    "  return 0;\n"
    "}\n";

static char out[1 << 16];

static int read_file(const char *path) {
  FILE *f = fopen(path, "r");
  out[0] = '\0';
  if (f == NULL)
    return 0;
  out[fread(out, 1, sizeof out - 1, f)] = '\0';
  fclose(f);
  return 1;
}

/* Builds `prog` with `flags`, runs it with the leak report at rate 1 and
 * checks the first frame of every site. 0: the build failed (only allowed
 * where `optional`). */
static int check_variant(const char *tmp, const char *lib, const char *flags,
                         int optional) {
  char src[600], bin[600], log[600], addrs[600], cmd[4096];
  snprintf(src, sizeof src, "%s/prog.c", tmp);
  snprintf(bin, sizeof bin, "%s/prog", tmp);
  snprintf(log, sizeof log, "%s/log", tmp);
  snprintf(addrs, sizeof addrs, "%s/addrs", tmp);
  /* Libs.private of ptrs.pc: what the Rust static library needs. */
  snprintf(cmd, sizeof cmd,
           "gcc -O1 %s -o '%s' '%s' '%s' -lpthread -ldl -lm -lrt -lutil %s "
           ">'%s' 2>&1",
           flags, bin, src, lib, optional ? "" : "-lgcc_s", log);
  if (system(cmd) != 0) {
    read_file(log);
    if (optional) {
      fprintf(stderr, "skipped (%s): build failed:\n%.2000s\n", flags, out);
      return 0;
    }
    fprintf(stderr, "build failed: %s\n%s\n", cmd, out);
    CHECK(0);
    return 0;
  }
  snprintf(cmd, sizeof cmd,
           "env -u LD_PRELOAD PTRS_LEAK_REPORT=1 PTRS_PROFILE_RATE=1 '%s' "
           ">'%s' 2>'%s'",
           bin, addrs, log);
  fflush(NULL);
  int status = system(cmd);
  if (!(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
    read_file(log);
    fprintf(stderr, "%s: status %#x\n%s\n", flags, status, out);
    CHECK(0);
    return 1;
  }
  unsigned long fn[3] = {0, 0, 0};
  CHECK(read_file(addrs));
  CHECK(sscanf(out, "%lx %lx %lx", &fn[0], &fn[1], &fn[2]) == 3);
  CHECK(read_file(log));
  int found[3] = {0, 0, 0}, firsts = 0;
  for (char *l = strstr(out, "#0  0x"); l != NULL; l = strstr(l + 1, "#0  0x")) {
    unsigned long a = strtoul(l + 4, NULL, 16);
    firsts++;
    /* The function that holds `a`: the closest start below it (the three
     * are small and adjacent). */
    int best = -1;
    for (int i = 0; i < 3; i++)
      if (a > fn[i] && a < fn[i] + 96 && (best < 0 || fn[i] > fn[best]))
        best = i;
    if (best >= 0)
      found[best]++;
  }
  fprintf(stderr, "%s: %d sites; first frames in leak_malloc %d, leak_calloc %d, leak_aligned %d\n",
          flags, firsts, found[0], found[1], found[2]);
  CHECK(found[0] == 1 && found[1] == 1 && found[2] == 1);
  if (!(found[0] == 1 && found[1] == 1 && found[2] == 1))
    fprintf(stderr, "functions %#lx %#lx %#lx; report:\n%.6000s\n", fn[0], fn[1],
            fn[2], out);
  return 1;
}

int main(void) {
  require_ptrs();
  char lib[512];
  if (test_static_lib(lib, sizeof lib, "gcc") != 0)
    return EXIT_UNSUPPORTED;
  char tmp[] = "/tmp/tst-profile-static-XXXXXX";
  if (mkdtemp(tmp) == NULL)
    FAIL_EXIT("mkdtemp: %s", strerror(errno));
  char src[600];
  snprintf(src, sizeof src, "%s/prog.c", tmp);
  FILE *f = fopen(src, "w");
  if (f == NULL)
    FAIL_EXIT("%s: %s", src, strerror(errno));
  fputs(prog_src, f);
  fclose(f);
  check_variant(tmp, lib, "-no-pie", 0);
  check_variant(tmp, lib, "-pie -fpie", 0);
  /* Without unwind tables in the program: its first frame must stay (the
   * frame before it, malloc's, left its function start behind in libgcc's
   * context, and every frame was cut). */
  check_variant(tmp, lib, "-no-pie -fno-asynchronous-unwind-tables -fno-unwind-tables", 0);
  check_variant(tmp, lib, "-static", 1);
  char cmd[700];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
  if (system(cmd) != 0)
    fprintf(stderr, "could not remove %s\n", tmp);
  return test_result();
}
