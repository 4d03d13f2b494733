/* A C++ program linked with the static library libptrs.a (before
 * libstdc++, as `g++ prog.cc libptrs.a` puts it) gets ptrs's operators:
 * operator new is defined in the executable itself (dladdr), its blocks
 * are ptrs's, and a sized delete with the wrong size aborts with ptrs's
 * diagnostic. Builds the program with g++ from the repository root (where
 * c-tests/run.sh starts it); UNSUPPORTED without g++ or libptrs.a. */
#include "test_helper.h"

static const char prog_src[] =
    "#include <dlfcn.h>\n"
    "#include <cstdio>\n"
    "#include <cstring>\n"
    "#include <new>\n"
    "#include <climits>\n"
    "#include <stdlib.h>\n"
    "extern \"C\" int ptrs_owns(const void *);\n"
    "int main() {\n"
    "  Dl_info info;\n"
    "  void *f = reinterpret_cast<void *>(\n"
    "      static_cast<void *(*)(std::size_t)>(&::operator new));\n"
    "  char exe[PATH_MAX], obj[PATH_MAX];\n"
    "  if (!dladdr(f, &info) || !realpath(info.dli_fname, obj) ||\n"
    "      !realpath(\"/proc/self/exe\", exe)) return 2;\n"
    "  int *p = new int[25];\n"
    "  fprintf(stderr, \"operator new in %s, exe %s, same=%d, owns=%d\\n\",\n"
    "          obj, exe, strcmp(obj, exe) == 0, ptrs_owns(p));\n"
    "  volatile std::size_t wrong = 4000;\n"
    "  ::operator delete[](p, wrong);\n"
    "  fprintf(stderr, \"sized delete[] with a wrong size returned\\n\");\n"
    "  return 0;\n"
    "}\n";

int main(void) {
  require_ptrs();
  char lib[512];
  if (test_static_lib(lib, sizeof lib, "g++") != 0)
    return EXIT_UNSUPPORTED;
  char tmp[] = "/tmp/tst-cxx-static-XXXXXX";
  if (mkdtemp(tmp) == NULL)
    FAIL_EXIT("mkdtemp: %s", strerror(errno));
  char src[600], bin[600], log[600], cmd[4096];
  snprintf(src, sizeof src, "%s/prog.cc", tmp);
  snprintf(bin, sizeof bin, "%s/prog", tmp);
  snprintf(log, sizeof log, "%s/out", tmp);
  FILE *f = fopen(src, "w");
  if (f == NULL)
    FAIL_EXIT("%s: %s", src, strerror(errno));
  fputs(prog_src, f);
  fclose(f);
  /* Libs.private of ptrs.pc: what the Rust static library needs. */
  snprintf(cmd, sizeof cmd,
           "g++ -O1 -o '%s' '%s' '%s' -lpthread -ldl -lm -lrt -lutil -lgcc_s "
           ">'%s' 2>&1",
           bin, src, lib, log);
  int rc = system(cmd);
  char out[8192] = "";
  f = fopen(log, "r");
  if (f != NULL) {
    out[fread(out, 1, sizeof out - 1, f)] = '\0';
    fclose(f);
  }
  if (rc != 0)
    fprintf(stderr, "build failed: %s\n%s\n", cmd, out);
  CHECK(rc == 0);
  if (rc == 0) {
    /* Run it without LD_PRELOAD, stderr to the log. */
    snprintf(cmd, sizeof cmd, "env -u LD_PRELOAD '%s' 2>'%s'", bin, log);
    fflush(NULL);
    int status = system(cmd);
    f = fopen(log, "r");
    out[0] = '\0';
    if (f != NULL) {
      out[fread(out, 1, sizeof out - 1, f)] = '\0';
      fclose(f);
    }
    /* system() reports a child killed by a signal as 128 + N from the shell. */
    int aborted = (WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT) ||
                  (WIFEXITED(status) && WEXITSTATUS(status) == 128 + SIGABRT);
    CHECK(aborted);
    CHECK(strstr(out, "same=1, owns=1") != NULL);
    CHECK(strstr(out, "ptrs: operator delete[](): size or alignment does not "
                      "match the block: 0x") != NULL);
    CHECK(strstr(out, "returned") == NULL);
    if (test_failures)
      fprintf(stderr, "status %#x, output:\n%s\n", status, out);
  }
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
  if (system(cmd) != 0)
    fprintf(stderr, "could not remove %s\n", tmp);
  return test_result();
}
