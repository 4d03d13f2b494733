/* A program that daemonizes while its output goes to a pipe must let the
   reader see end-of-file at once, with the heap profiler, the leak report
   and the statistics table on, as without them.  ptrs kept a private copy
   of stderr for its report at exit; when stderr was the pipe, that copy
   kept the pipe open after daemon(3) had pointed 0 to 2 at /dev/null, and
   a shell reading the program's output through $(...) waited until the
   daemon exited (a new-user tester).

   The test re-runs itself with the options set and both stdout and stderr
   on a pipe; the child prints a line, calls daemon(1, 0), allocates, and
   sleeps 4 s.  The reader must see the line and then end-of-file within
   2 s.  */
/* TIMEOUT: 60 */
#include "mt_helper.h"
#include <fcntl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void *volatile sink;

static int
daemon_child (void)
{
  printf ("started\n");
  fflush (stdout);
  if (daemon (1, 0) != 0)
    return 2;
  for (int i = 0; i < 1000; i++)
    {
      sink = malloc (100 + i);
      free (sink);
    }
  sink = malloc (5000); /* a leak for the report at exit */
  sleep (4);
  return 0;
}

/* Runs this program as the daemon with `env` set (NAME=VALUE, space
   separated), stdout and stderr on a pipe; returns the seconds until the
   pipe's end-of-file, with what was read in `out`.  */
static double
run (const char *env, char *out, size_t outlen)
{
  char exe[512];
  test_self_exe (exe, sizeof exe);
  int fds[2];
  if (pipe (fds) != 0)
    FAIL_EXIT ("pipe: %s", strerror (errno));
  uint64_t t0 = mt_now_ms ();
  pid_t pid = fork ();
  if (pid < 0)
    FAIL_EXIT ("fork: %s", strerror (errno));
  if (pid == 0)
    {
      dup2 (fds[1], 1);
      dup2 (fds[1], 2);
      close (fds[0]);
      close (fds[1]);
      char buf[512];
      snprintf (buf, sizeof buf, "%s", env);
      for (char *save, *kv = strtok_r (buf, " ", &save); kv != NULL;
           kv = strtok_r (NULL, " ", &save))
        putenv (strdup (kv));
      execl (exe, exe, "--daemon", (char *) NULL);
      _exit (127);
    }
  close (fds[1]);
  size_t len = 0;
  for (;;)
    {
      ssize_t r = read (fds[0], out + len, outlen - 1 - len);
      if (r < 0 && errno == EINTR)
        continue;
      if (r <= 0 || len + r >= outlen - 1)
        {
          if (r > 0)
            len += r;
          break;
        }
      len += r;
    }
  out[len] = 0;
  double t = (double) (mt_now_ms () - t0) / 1000.0;
  close (fds[0]);
  int st;
  waitpid (pid, &st, 0);
  return t;
}

int
main (int argc, char **argv)
{
  if (argc > 1 && strcmp (argv[1], "--daemon") == 0)
    return daemon_child ();
  require_ptrs ();
  char dir[] = "/tmp/tst-profile-daemon-pipe-XXXXXX";
  if (mkdtemp (dir) == NULL)
    FAIL_EXIT ("mkdtemp");
  char profile[700];
  snprintf (profile, sizeof profile, "PTRS_PROFILE=%s/prof", dir);
  const char *envs[] = {
    "X=1",
    profile,
    "PTRS_LEAK_REPORT=1",
    "PTRS_SHOW_STATS=1",
  };
  static char out[1 << 16];
  for (size_t i = 0; i < sizeof envs / sizeof envs[0]; i++)
    {
      double t = run (envs[i], out, sizeof out);
      printf ("%s: end-of-file after %.2f s, read: %s", envs[i], t, out);
      CHECK (strncmp (out, "started\n", 8) == 0);
      if (t >= 2.0)
        {
          printf ("  the pipe stayed open while the daemon slept\n");
          CHECK (t < 2.0);
        }
    }
  /* The daemons' profiles, once they exit (after their 4 s).  */
  sleep (5);
  char cmd[800];
  snprintf (cmd, sizeof cmd, "rm -rf %s", dir);
  if (system (cmd) != 0)
    printf ("could not remove %s\n", dir);
  return test_result ();
}
