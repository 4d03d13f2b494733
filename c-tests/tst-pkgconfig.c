/* `make install` and `make uninstall` into a staging directory, and the
 * installed pkg-config file in use:
 *   make install DESTDIR=<tmp> PREFIX=/usr puts libptrs.so.<version> (soname
 *     libptrs.so.0, checked with readelf when there is one), the links
 *     libptrs.so.0 and libptrs.so, libptrs.a, ptrs.h, ptrs.pc and ptrs-run
 *     in place;
 *   pkg-config (pointed into the staging directory) reports the version, and
 *     a program built with `pkg-config --cflags --libs ptrs` runs against the
 *     installed library: it prints ptrs_version() and ptrs_owns(malloc(..))
 *     is 1; the same with `pkg-config --static` and libptrs.a;
 *   the installed ptrs-run finds the installed library;
 *   make uninstall removes every file again.
 * Runs from the repository root (where c-tests/run.sh starts it); UNSUPPORTED
 * without a checkout, make, a C compiler or pkg-config. */
/* TIMEOUT: 300 */
#include "test_helper.h"
#include <libgen.h>
#include <sys/stat.h>
#include <unistd.h>

static char dest[256];     /* the DESTDIR */
static char logpath[300];  /* the output of the last command */
static char out[16384];    /* ... read back */

/* Runs a shell command, stdout and stderr to `logpath`, read back into
 * `out`. Returns the exit status, -1 if it did not exit. */
static int __attribute__((format(printf, 1, 2))) sh(const char *fmt, ...) {
  char cmd[8192];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(cmd, sizeof cmd, fmt, ap);
  va_end(ap);
  char full[8600];
  snprintf(full, sizeof full, "( %s ) >'%s' 2>&1 </dev/null", cmd, logpath);
  fflush(NULL);
  int st = system(full);
  out[0] = '\0';
  FILE *f = fopen(logpath, "r");
  if (f != NULL) {
    size_t n = fread(out, 1, sizeof out - 1, f);
    out[n] = '\0';
    fclose(f);
  }
  int rc = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  fprintf(stderr, "$ %s\n  -> %d\n%s", cmd, rc, out);
  return rc;
}

static int have(const char *prog) {
  char cmd[256];
  snprintf(cmd, sizeof cmd, "command -v '%s' >/dev/null 2>&1", prog);
  return system(cmd) == 0;
}

static int exists(const char *rel, int want_link) {
  char path[512];
  struct stat st;
  snprintf(path, sizeof path, "%s%s", dest, rel);
  if (lstat(path, &st) != 0) {
    fprintf(stderr, "missing: %s\n", path);
    return 0;
  }
  if (want_link != !!S_ISLNK(st.st_mode)) {
    fprintf(stderr, "%s: %s a symbolic link\n", path,
            want_link ? "not" : "unexpectedly");
    return 0;
  }
  return 1;
}

/* Replaces the word "-lptrs" in `s` by "-l:libptrs.a" (in place). */
static void use_static_lib(char *s, size_t cap) {
  char *p = strstr(s, "-lptrs");
  if (p == NULL || (p[6] != '\0' && p[6] != ' ' && p[6] != '\n'))
    return;
  char rest[4096];
  snprintf(rest, sizeof rest, "%s", p + 6);
  snprintf(p, cap - (size_t)(p - s), "-l:libptrs.a%s", rest);
}

static void chomp(char *s) {
  size_t n = strlen(s);
  while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == ' '))
    s[--n] = '\0';
}

static const char prog_src[] =
    "#define _GNU_SOURCE\n"
    "#include <ptrs.h>\n"
    "#include <dlfcn.h>\n"
    "#include <stdio.h>\n"
    "#include <stdlib.h>\n"
    "int main(void) {\n"
    "  void *p = malloc(100);\n"
    "  Dl_info info;\n"
    "  const char *where = \"?\";\n"
    "  if (dladdr((void *)ptrs_version, &info) && info.dli_fname)\n"
    "    where = info.dli_fname;\n"
    "  printf(\"version=%s owns=%d from=%s\\n\", ptrs_version(), "
    "ptrs_owns(p), where);\n"
    "  free(p);\n"
    "  return 0;\n"
    "}\n";

int main(void) {
  require_ptrs();
  struct stat st;
  if (stat("Makefile", &st) != 0 || stat("ptrs.pc.in", &st) != 0 ||
      stat("Cargo.toml", &st) != 0) {
    fprintf(stderr, "not run from a ptrs checkout\n");
    return EXIT_UNSUPPORTED;
  }
  const char *cc = getenv("CC");
  if (cc == NULL || *cc == '\0')
    cc = have("cc") ? "cc" : "gcc";
  if (!have("make") || !have(cc) || !have("sh")) {
    fprintf(stderr, "make or %s missing\n", cc);
    return EXIT_UNSUPPORTED;
  }
  if (!have("pkg-config")) {
    fprintf(stderr, "pkg-config missing (apt-get install pkg-config)\n");
    return EXIT_UNSUPPORTED;
  }

  /* Install the library this test runs against (the runner's PTRS_LIB_DIR):
   * the directory of the object that defines ptrs_owns. */
  char libdir[4096] = "target/release";
  Dl_info info;
  void *sym = ptrs_symbol("ptrs_owns");
  if (sym != NULL && dladdr(sym, &info) != 0 && info.dli_fname != NULL &&
      strstr(info.dli_fname, "libptrs.so") != NULL) {
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s", info.dli_fname);
    snprintf(libdir, sizeof libdir, "%s", dirname(tmp));
  }
  char lib[4200], staticlib[4200];
  snprintf(lib, sizeof lib, "%s/libptrs.so", libdir);
  snprintf(staticlib, sizeof staticlib, "%s/libptrs.a", libdir);
  if (stat(lib, &st) != 0 || stat(staticlib, &st) != 0) {
    fprintf(stderr, "%s or %s missing: build with make first\n", lib,
            staticlib);
    return EXIT_UNSUPPORTED;
  }

  const char *(*version)(void) =
      (const char *(*)(void))ptrs_symbol("ptrs_version");
  if (version == NULL)
    FAIL_EXIT("no ptrs_version");
  const char *v = version();

  snprintf(dest, sizeof dest, "/tmp/tst-pkgconfig-XXXXXX");
  if (mkdtemp(dest) == NULL)
    FAIL_EXIT("mkdtemp: %s", strerror(errno));
  snprintf(logpath, sizeof logpath, "%s.log", dest);

  /* A make started from `make test` must not join its jobserver. */
  const char *make = "env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -s";

  /* ---- make install ---- */
  int rc = sh("%s install DESTDIR='%s' PREFIX=/usr LIB='%s' STATICLIB='%s'",
              make, dest, lib, staticlib);
  CHECK(rc == 0);
  if (rc != 0)
    goto cleanup;

  char so_real[64];
  snprintf(so_real, sizeof so_real, "/usr/lib/libptrs.so.%s", v);
  CHECK(exists(so_real, 0));
  CHECK(exists("/usr/lib/libptrs.so.0", 1));
  CHECK(exists("/usr/lib/libptrs.so", 1));
  CHECK(exists("/usr/lib/libptrs.a", 0));
  CHECK(exists("/usr/include/ptrs.h", 0));
  CHECK(exists("/usr/lib/pkgconfig/ptrs.pc", 0));
  CHECK(exists("/usr/bin/ptrs-run", 0));
  char path[512];
  snprintf(path, sizeof path, "%s/usr/bin/ptrs-run", dest);
  CHECK(access(path, X_OK) == 0);
  /* The links resolve to the real file. */
  char a[4096], b[4096];
  snprintf(path, sizeof path, "%s/usr/lib/libptrs.so", dest);
  char *ra = realpath(path, a);
  snprintf(path, sizeof path, "%s%s", dest, so_real);
  char *rb = realpath(path, b);
  CHECK(ra != NULL && rb != NULL && strcmp(a, b) == 0);
  /* The header is the repository's. */
  CHECK(sh("cmp include/ptrs.h '%s/usr/include/ptrs.h'", dest) == 0);

  /* ---- the soname ---- */
  if (have("readelf")) {
    CHECK(sh("readelf -d '%s%s' | grep SONAME", dest, so_real) == 0);
    CHECK(strstr(out, "[libptrs.so.0]") != NULL);
  } else {
    fprintf(stderr, "no readelf: soname not checked\n");
  }

  /* ---- pkg-config, confined to the staging directory ---- */
  char pc[2048];
  snprintf(pc, sizeof pc,
           "env PKG_CONFIG_LIBDIR='%s/usr/lib/pkgconfig' PKG_CONFIG_PATH= "
           "PKG_CONFIG_SYSROOT_DIR='%s' PKG_CONFIG_ALLOW_SYSTEM_CFLAGS=1 "
           "PKG_CONFIG_ALLOW_SYSTEM_LIBS=1 pkg-config",
           dest, dest);
  CHECK(sh("%s --modversion ptrs", pc) == 0);
  chomp(out);
  CHECK(strcmp(out, v) == 0);
  CHECK(sh("%s --variable=prefix ptrs", pc) == 0);
  chomp(out);
  /* "/usr", under the sysroot for pkgconf, as is for pkg-config 0.29 */
  CHECK(strlen(out) >= 4 && strcmp(out + strlen(out) - 4, "/usr") == 0);

  CHECK(sh("%s --cflags --libs ptrs", pc) == 0);
  chomp(out);
  char flags[4096];
  snprintf(flags, sizeof flags, "%s", out);
  char want[512];
  snprintf(want, sizeof want, "-I%s/usr/include", dest);
  CHECK(strstr(flags, want) != NULL);
  snprintf(want, sizeof want, "-L%s/usr/lib", dest);
  CHECK(strstr(flags, want) != NULL);
  CHECK(strstr(flags, "-lptrs") != NULL);
  CHECK(strstr(flags, "-lpthread") == NULL); /* private: static only */

  CHECK(sh("%s --static --cflags --libs ptrs", pc) == 0);
  chomp(out);
  char static_flags[4096];
  snprintf(static_flags, sizeof static_flags, "%s", out);
  CHECK(strstr(static_flags, "-lptrs") != NULL);
  CHECK(strstr(static_flags, "-lpthread") != NULL);
  use_static_lib(static_flags, sizeof static_flags);

  /* ---- a program built with those flags, against the shared library ---- */
  snprintf(path, sizeof path, "%s/prog.c", dest);
  FILE *f = fopen(path, "w");
  CHECK(f != NULL);
  if (f == NULL)
    goto uninstall;
  fputs(prog_src, f);
  fclose(f);

  char expect[512];
  CHECK(sh("%s -std=gnu11 -Wall -Werror -o '%s/prog' '%s/prog.c' %s -ldl", cc,
           dest, dest, flags) == 0);
  CHECK(sh("env -u LD_PRELOAD LD_LIBRARY_PATH='%s/usr/lib' '%s/prog'", dest,
           dest) == 0);
  snprintf(expect, sizeof expect, "version=%s owns=1 from=%s/usr/lib/", v,
           dest);
  CHECK(strncmp(out, expect, strlen(expect)) == 0);
  CHECK(strstr(out, "libptrs.so") != NULL);
  /* It needs the soname, not the development link. */
  if (have("readelf")) {
    CHECK(sh("readelf -d '%s/prog' | grep NEEDED", dest) == 0);
    CHECK(strstr(out, "[libptrs.so.0]") != NULL);
  }

  /* ---- the same with the static library (Libs.private suffices) ---- */
  CHECK(sh("%s -std=gnu11 -Wall -Werror -o '%s/prog-static' '%s/prog.c' %s "
           "-ldl",
           cc, dest, dest, static_flags) == 0);
  CHECK(sh("env -u LD_PRELOAD '%s/prog-static'", dest) == 0);
  snprintf(expect, sizeof expect, "version=%s owns=1 from=", v);
  CHECK(strncmp(out, expect, strlen(expect)) == 0);
  CHECK(strstr(out, "libptrs.so") == NULL); /* ptrs is in the program */

  /* ---- the installed ptrs-run finds the installed library ---- */
  CHECK(sh("cd / && env -u LD_PRELOAD '%s/usr/bin/ptrs-run' sh -c "
           "'grep libptrs /proc/$$/maps'",
           dest) == 0);
  snprintf(expect, sizeof expect, "%s/usr/lib/libptrs.so", dest);
  CHECK(strstr(out, expect) != NULL);
  /* Without a command it explains (there is no bundled demo). */
  CHECK(sh("cd / && env -u LD_PRELOAD '%s/usr/bin/ptrs-run'", dest) != 0);
  CHECK(strstr(out, "ptrs-run:") != NULL);

uninstall:
  /* ---- make uninstall removes every file ---- */
  snprintf(path, sizeof path, "%s/prog.c", dest);
  unlink(path);
  snprintf(path, sizeof path, "%s/prog", dest);
  unlink(path);
  snprintf(path, sizeof path, "%s/prog-static", dest);
  unlink(path);
  CHECK(sh("%s uninstall DESTDIR='%s' PREFIX=/usr", make, dest) == 0);
  CHECK(sh("find '%s' ! -type d", dest) == 0);
  CHECK(out[0] == '\0'); /* nothing but directories left */

cleanup:
  sh("rm -rf '%s'", dest);
  unlink(logpath);
  return test_result();
}
