/* The leak report at exit (PTRS_LEAK_REPORT=1, exact mode with
   PTRS_PROFILE_RATE=1) names the leaking function, and PTRS_LEAK_EXITCODE
   makes a leaking program exit with that status; a program without leaks
   keeps its status.  The test re-runs itself as the program under test.  */
/* TIMEOUT: 120 */
#include "test_helper.h"
#include <sys/wait.h>
#include <unistd.h>

__attribute__ ((noinline)) void *
leaky_function (size_t n)
{
  char *p = malloc (n);
  if (p)
    memset (p, 1, n);
  return p;
}

static void *volatile sink;

static int
child (int leak)
{
  for (int i = 0; i < 10; i++)
    free (malloc (100 + i));
  if (leak)
    for (int i = 0; i < 5; i++)
      sink = leaky_function (1000);
  return 3;
}

/* Runs this program with `env`, stderr to `out`; returns the exit status. */
static int
run (const char *env, int leak, char *out, size_t outlen)
{
  char cmd[1024], exe[512];
  ssize_t n = readlink ("/proc/self/exe", exe, sizeof exe - 1);
  if (n <= 0)
    FAIL_EXIT ("readlink");
  exe[n] = 0;
  snprintf (cmd, sizeof cmd, "env %s %s %s 2>&1", env, exe, leak ? "--leak" : "--noleak");
  FILE *f = popen (cmd, "r");
  if (!f)
    FAIL_EXIT ("popen");
  size_t len = fread (out, 1, outlen - 1, f);
  out[len] = 0;
  int st = pclose (f);
  return WIFEXITED (st) ? WEXITSTATUS (st) : 128;
}

int
main (int argc, char **argv)
{
  if (argc > 1)
    return child (strcmp (argv[1], "--leak") == 0);
  require_ptrs ();
  static char out[1 << 16];

  int st = run ("PTRS_LEAK_REPORT=1 PTRS_PROFILE_RATE=1", 1, out, sizeof out);
  fprintf (stderr, "--- leaking run (status %d):\n%s", st, out);
  CHECK (st == 3);
  CHECK (strstr (out, "leak report: 5000 bytes in 5 blocks") != NULL);
  CHECK (strstr (out, "leaky_function+") != NULL);
  CHECK (strstr (out, "exact") != NULL);

  st = run ("PTRS_LEAK_REPORT=1 PTRS_PROFILE_RATE=1 PTRS_LEAK_EXITCODE=23", 1, out, sizeof out);
  CHECK (st == 23);
  st = run ("PTRS_LEAK_REPORT=1 PTRS_PROFILE_RATE=1 PTRS_LEAK_EXITCODE=23", 0, out, sizeof out);
  fprintf (stderr, "--- clean run (status %d):\n%s", st, out);
  CHECK (st == 3);
  CHECK (strstr (out, "no leaks") != NULL);
  CHECK (strstr (out, "leaky_function") == NULL);
  /* Sampled mode still reports something plausible for a big leak.  */
  st = run ("PTRS_LEAK_REPORT=1", 1, out, sizeof out);
  CHECK (st == 3);
  return test_result ();
}
