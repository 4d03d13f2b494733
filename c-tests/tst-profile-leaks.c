/* The leak report at exit (PTRS_LEAK_REPORT=1, exact mode with
   PTRS_PROFILE_RATE=1) names the leaking function, and PTRS_LEAK_EXITCODE
   makes a leaking program exit with that status; a program without leaks
   keeps its status.  The test re-runs itself as the program under test.  */
/* TIMEOUT: 120 */
#include "test_helper.h"
#include <fcntl.h>
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

/* A daemon's start: every descriptor but 0 to 2 closed, then data files
   opened (they get the low numbers, the one of ptrs's copy of stderr
   among them), then a leak.  The report at exit must go to stderr, not
   into a data file.  */
static int
daemon_child (void)
{
  const char *dir = getenv ("LEAKS_DIR");
  if (dir == NULL)
    return 2;
  for (int fd = 3; fd < 1024; fd++)
    close (fd);
  for (int i = 0; i < 16; i++)
    {
      char path[600];
      snprintf (path, sizeof path, "%s/data%d", dir, i);
      int fd = open (path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
      if (fd < 0 || write (fd, "DATA", 4) != 4)
        return 2;
    }
  for (int i = 0; i < 5; i++)
    sink = leaky_function (1000);
  return 3;
}

static int
child (int leak)
{
  for (int i = 0; i < 10; i++)
    free (malloc (100 + i));
  if (leak == 1)
    for (int i = 0; i < 5; i++)
      sink = leaky_function (1000);
  /* One stack, blocks of two sizes (the profiler keeps a record per size
     bucket): one site in the report.  */
  static volatile size_t sizes[5] = { 1000, 1000, 1000, 200000, 200000 };
  if (leak == 2)
    for (int i = 0; i < 5; i++)
      sink = leaky_function (sizes[i]);   /* one call site */
  return 3;
}

/* Runs this program with `env`, stderr to `out`; returns the exit status. */
static int
run (const char *env, int leak, char *out, size_t outlen)
{
  char cmd[1024], exe[512];
  test_self_exe (exe, sizeof exe);
  snprintf (cmd, sizeof cmd, "env %s %s %s 2>&1", env, exe,
            leak == 3 ? "--daemon" : leak == 2 ? "--leak2" : leak ? "--leak" : "--noleak");
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
  if (argc > 1 && strcmp (argv[1], "--daemon") == 0)
    return daemon_child ();
  if (argc > 1)
    return child (strcmp (argv[1], "--leak2") == 0 ? 2 : strcmp (argv[1], "--leak") == 0);
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

  st = run ("PTRS_LEAK_REPORT=1 PTRS_PROFILE_RATE=1", 2, out, sizeof out);
  fprintf (stderr, "--- one stack, two sizes (status %d):\n%s", st, out);
  CHECK (st == 3);
  CHECK (strstr (out, "leak report: 403000 bytes in 5 blocks still allocated, from 1 site (") != NULL);

  char dir[] = "/tmp/tst-profile-leaks-XXXXXX";
  if (mkdtemp (dir) == NULL)
    FAIL_EXIT ("mkdtemp");
  char env[700];
  snprintf (env, sizeof env, "LEAKS_DIR=%s PTRS_LEAK_REPORT=1 PTRS_PROFILE_RATE=1", dir);
  st = run (env, 3, out, sizeof out);
  fprintf (stderr, "--- daemon (status %d):\n%s", st, out);
  CHECK (st == 3);
  CHECK (strstr (out, "leak report: 5000 bytes in 5 blocks") != NULL);
  for (int i = 0; i < 16; i++)
    {
      char path[800], data[64] = "";
      snprintf (path, sizeof path, "%s/data%d", dir, i);
      FILE *f = fopen (path, "r");
      size_t n = f ? fread (data, 1, sizeof data - 1, f) : 0;
      data[n] = 0;
      if (f)
        fclose (f);
      if (strcmp (data, "DATA") != 0)
        {
          fprintf (stderr, "%s holds %zu bytes: %.40s\n", path, n, data);
          CHECK (strcmp (data, "DATA") == 0);
        }
      unlink (path);
    }
  rmdir (dir);

  /* The report to a descriptor that is not open: -1 and EBADF.  */
  int (*leak_report) (int) = (int (*) (int)) ptrs_symbol ("ptrs_leak_report");
  if (leak_report == NULL)
    FAIL_EXIT ("ptrs_leak_report not found");
  /* This process never started the profiler: the report says so, not
     "no leaks" (which read as a clean bill), and counts no site.  */
  if (getenv ("PTRS_PROFILE") == NULL && getenv ("PTRS_LEAK_REPORT") == NULL)
    {
      int fds[2];
      CHECK (pipe (fds) == 0);
      CHECK (leak_report (fds[1]) == 0);
      close (fds[1]);
      char msg[512];
      ssize_t n = read (fds[0], msg, sizeof msg - 1);
      close (fds[0]);
      msg[n > 0 ? n : 0] = 0;
      fprintf (stderr, "--- report without the profiler: %s", msg);
      CHECK (strstr (msg, "the heap profiler has not run") != NULL);
      CHECK (strstr (msg, "no leaks") == NULL);
    }
  errno = 0;
  CHECK (fcntl (999, F_GETFD) == -1);
  errno = 0;
  CHECK (leak_report (999) == -1 && errno == EBADF);
  return test_result ();
}
