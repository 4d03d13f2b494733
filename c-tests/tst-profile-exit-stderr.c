/* What ptrs prints at exit (the leak report, PTRS_SHOW_STATS's table)
   goes to stderr as it was at start, or nowhere: never into a file that
   took descriptor 2 later.  A fresh tester saw the report written inside
   the program's own data file when the program closed fd 2 (stderr a
   pipe, so ptrs kept no copy of it) or started with fd 2 closed, and then
   opened the file, which got number 2.

   The test re-runs itself; the child leaks a block, optionally closes
   fd 2, opens a data file (number 2 when 2 was free), writes "DATA" and
   exits.  Cases, each with the leak report and with the statistics:
   - stderr a pipe, the child closes fd 2: the file holds "DATA" only;
   - the child started with fd 2 closed: the file holds "DATA" only;
   - stderr a file, the child closes fd 2: the file holds "DATA" only and
     the report reaches the stderr file (through ptrs's copy of it);
   - stderr a pipe, left open: the report reaches the pipe.  */
/* TIMEOUT: 60 */
#include "test_helper.h"
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

static void *volatile sink;

static int
child (const char *data, int close2)
{
  sink = malloc (777);
  if (close2)
    close (2);
  int fd = open (data, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (fd < 0 || write (fd, "DATA", 4) != 4)
    return 2;
  return 0; /* the file stays open, as many programs leave it */
}

/* Runs the child with `env` (one NAME=VALUE) and fd 2 set up as `how`:
   'p' a pipe, 'f' the file `errpath`, 'c' closed.  Returns what came
   through the pipe ('p') in `out`.  */
static void
run (const char *env, char how, int close2, const char *data,
     const char *errpath, char *out, size_t outlen)
{
  char exe[512];
  test_self_exe (exe, sizeof exe);
  int fds[2];
  if (pipe (fds) != 0)
    FAIL_EXIT ("pipe: %s", strerror (errno));
  pid_t pid = fork ();
  if (pid < 0)
    FAIL_EXIT ("fork: %s", strerror (errno));
  if (pid == 0)
    {
      if (how == 'p')
        dup2 (fds[1], 2);
      else if (how == 'f')
        {
          int fd = open (errpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
          dup2 (fd, 2);
          close (fd);
        }
      else
        close (2);
      close (fds[0]);
      close (fds[1]);
      putenv ((char *) env);
      putenv ((char *) "PTRS_PROFILE_RATE=1");
      execl (exe, exe, "--child", data, close2 ? "1" : "0", (char *) NULL);
      _exit (127);
    }
  close (fds[1]);
  size_t len = 0;
  ssize_t r;
  while (len < outlen - 1
         && ((r = read (fds[0], out + len, outlen - 1 - len)) > 0
             || (r < 0 && errno == EINTR)))
    if (r > 0)
      len += r;
  out[len] = 0;
  close (fds[0]);
  int st;
  waitpid (pid, &st, 0);
  if (!WIFEXITED (st) || WEXITSTATUS (st) != 0)
    {
      printf ("%s: child status %#x\n", env, st);
      CHECK (0);
    }
}

static size_t
read_file (const char *path, char *buf, size_t size)
{
  int fd = open (path, O_RDONLY);
  if (fd < 0)
    return 0;
  ssize_t n = read (fd, buf, size - 1);
  close (fd);
  buf[n > 0 ? n : 0] = 0;
  return n > 0 ? n : 0;
}

int
main (int argc, char **argv)
{
  if (argc == 4 && strcmp (argv[1], "--child") == 0)
    return child (argv[2], atoi (argv[3]));
  require_ptrs ();
  char dir[] = "/tmp/tst-profile-exit-stderr-XXXXXX";
  if (mkdtemp (dir) == NULL)
    FAIL_EXIT ("mkdtemp");
  char data[600], errpath[600];
  snprintf (data, sizeof data, "%s/data", dir);
  snprintf (errpath, sizeof errpath, "%s/stderr", dir);
  const char *envs[] = { "PTRS_LEAK_REPORT=1", "PTRS_SHOW_STATS=1" };
  const char *marks[] = { "leak report", "statistics" };
  static char out[1 << 16], buf[1 << 16];
  for (int i = 0; i < 2; i++)
    {
      run (envs[i], 'p', 1, data, errpath, out, sizeof out);
      size_t n = read_file (data, buf, sizeof buf);
      printf ("%s, stderr a pipe, fd 2 closed by the program: data file %zu bytes\n", envs[i], n);
      CHECK (n == 4 && memcmp (buf, "DATA", 4) == 0);

      run (envs[i], 'c', 0, data, errpath, out, sizeof out);
      n = read_file (data, buf, sizeof buf);
      printf ("%s, started with fd 2 closed: data file %zu bytes\n", envs[i], n);
      CHECK (n == 4 && memcmp (buf, "DATA", 4) == 0);

      run (envs[i], 'f', 1, data, errpath, out, sizeof out);
      n = read_file (data, buf, sizeof buf);
      printf ("%s, stderr a file, fd 2 closed by the program: data file %zu bytes\n", envs[i], n);
      CHECK (n == 4 && memcmp (buf, "DATA", 4) == 0);
      read_file (errpath, buf, sizeof buf);
      if (strstr (buf, marks[i]) == NULL)
        {
          printf ("  no \"%s\" in the stderr file: %.200s\n", marks[i], buf);
          CHECK (0);
        }

      run (envs[i], 'p', 0, data, errpath, out, sizeof out);
      printf ("%s, stderr a pipe, left open: %zu bytes through it\n", envs[i], strlen (out));
      if (strstr (out, marks[i]) == NULL)
        {
          printf ("  no \"%s\" in the pipe: %.200s\n", marks[i], out);
          CHECK (0);
        }
    }
  unlink (data);
  unlink (errpath);
  rmdir (dir);
  return test_result ();
}
