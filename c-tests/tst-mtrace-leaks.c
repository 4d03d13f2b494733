/* mtrace()/muntrace() with MALLOC_TRACE: glibc's mtrace script reports the
   leaks of a program running on ptrs as under glibc.  The test re-runs
   itself with MALLOC_TRACE set, once on ptrs and (when the test is not
   linked with ptrs) once on glibc with libc_malloc_debug.so, feeds both
   traces to the `mtrace` script (Debian's libc-devtools) and compares the
   leaks it lists (size and caller; addresses differ between allocators).
   Skips (77) without the script.  */
/* TIMEOUT: 120 */
#include "test_helper.h"
#include <mcheck.h>
#include <sys/wait.h>
#include <unistd.h>

__attribute__ ((noinline)) void *
leak_here (size_t n)
{
  return malloc (n);
}

/* realloc's caller names the leak of a block realloc kept in place or
   moved with mremap (a fresh tester: ptrs wrote those lines without a
   caller, and the script printed the location as empty).  */
__attribute__ ((noinline)) void *
resize_here (void *p, size_t n)
{
  return realloc (p, n);
}
static const int resize_line = __LINE__ - 2;

static void *volatile sink;

static int
child (void)
{
  mtrace ();
  for (int i = 1; i <= 20; i++)
    free (malloc (i * 10));
  void *r = malloc (40);
  r = realloc (r, 4000);
  free (r);
  sink = leak_here (0x11);
  sink = leak_here (0x222);
  sink = calloc (3, 0x10);
  sink = resize_here (malloc (70000), 140000);     /* large, grown */
  sink = resize_here (malloc (3 << 20), 1 << 20);  /* huge, shrunk */
  sink = resize_here (malloc (200), 190);          /* small, kept */
  muntrace ();
  sink = malloc (77); /* after muntrace: not traced */
  return 0;
}

/* Runs `cmd`, returns its output (the "Memory not freed" table, with
   addresses cut).  */
static void
leaks_of (const char *env, const char *exe, const char *trace, char *out, size_t outlen)
{
  char cmd[2048];
  snprintf (cmd, sizeof cmd,
            "env %s MALLOC_TRACE=%s %s --child && mtrace %s %s | grep '^0x' | awk '{print $2, $3, $4}' | sort",
            env, trace, exe, exe, trace);
  FILE *f = popen (cmd, "r");
  if (!f)
    FAIL_EXIT ("popen");
  size_t len = fread (out, 1, outlen - 1, f);
  out[len] = 0;
  pclose (f);
}

int
main (int argc, char **argv)
{
  if (argc > 1 && strcmp (argv[1], "--child") == 0)
    return child ();
  require_ptrs ();
  if (system ("command -v mtrace >/dev/null 2>&1") != 0)
    {
      printf ("mtrace script not installed (Debian package libc-devtools)\n");
      return EXIT_UNSUPPORTED;
    }
  char exe[512];
  test_self_exe (exe, sizeof exe);
  char trace[64];
  snprintf (trace, sizeof trace, "/tmp/tst-mtrace-%d.trace", (int) getpid ());
  static char ours[8192], theirs[8192];
  leaks_of ("", exe, trace, ours, sizeof ours);
  fprintf (stderr, "--- ptrs:\n%s", ours);
  /* Six leaks, with their sizes, from leak_here (twice), main, and
     resize_here (three times, each naming its line).  */
  CHECK (strstr (ours, "0x11 at") != NULL);
  CHECK (strstr (ours, "0x222 at") != NULL);
  CHECK (strstr (ours, "0x30 at") != NULL);
  int lines = 0, resized = 0;
  for (char *p = ours; *p; p++)
    lines += *p == '\n';
  /* The call's line, or the closing brace's (where addr2line puts the
     return address of the call, which may be the function's last).  */
  for (int line = resize_line; line <= resize_line + 1; line++)
    {
      char where[64];
      snprintf (where, sizeof where, "tst-mtrace-leaks.c:%d\n", line);
      for (const char *p = ours; (p = strstr (p, where)) != NULL; p++)
        resized++;
    }
  CHECK (lines == 6);
  CHECK (resized == 3);
  const char *pre = getenv ("LD_PRELOAD");
  if (pre && strstr (pre, "libptrs"))
    {
      /* Preloaded: the same program on glibc, through its own mtrace.  */
      leaks_of ("-u LD_PRELOAD LD_PRELOAD=libc_malloc_debug.so.0", exe, trace, theirs, sizeof theirs);
      fprintf (stderr, "--- glibc:\n%s", theirs);
      CHECK (strcmp (ours, theirs) == 0);
    }
  unlink (trace);
  return test_result ();
}
