/* fork() from a signal handler that interrupted the profiler: a SIGALRM
   timer forks (the child exits at once) while the main thread allocates
   and frees with every allocation recorded (rate 1) and then at 4096
   bytes. The handler may interrupt the thread while it holds the
   profiler's lock (inside a sampled allocation or free); ptrs's fork
   prepare handler then waited for that lock forever, with every signal
   blocked (a fresh tester: 6 runs of 6 hung and ignored SIGTERM). It must
   go on, the interrupted work finishing in the parent and in the child,
   every child must exit normally, and the profile must still dump.  */
/* TIMEOUT: 120 */
#include "test_helper.h"
#include <signal.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile int forks, fork_failures;

static void
on_alarm (int sig)
{
  (void) sig;
  int saved = errno;
  pid_t c = fork ();
  if (c == 0)
    _exit (0);
  if (c > 0)
    forks++;
  else
    fork_failures++;
  errno = saved;
}

int
main (void)
{
  require_ptrs ();
  int (*start) (size_t) = (int (*) (size_t)) ptrs_symbol ("ptrs_profile_start");
  int (*stop) (void) = (int (*) (void)) ptrs_symbol ("ptrs_profile_stop");
  int (*dump) (const char *) = (int (*) (const char *)) ptrs_symbol ("ptrs_profile_dump");
  CHECK (start != NULL && stop != NULL && dump != NULL);
  if (start == NULL || stop == NULL || dump == NULL)
    return test_result ();

  struct sigaction sa = { 0 };
  sa.sa_handler = on_alarm;
  sa.sa_flags = SA_RESTART;
  sigaction (SIGALRM, &sa, NULL);
  static void *k[256];
  const size_t rates[2] = { 1, 4096 };
  for (int round = 0; round < 2; round++)
    {
      CHECK (start (rates[round]) == 0);
      struct itimerval it = { { 0, 2000 }, { 0, 2000 } };
      setitimer (ITIMER_REAL, &it, NULL);
      for (long i = 0; i < 400000; i++)
        {
          int j = i & 255;
          free (k[j]);
          k[j] = malloc ((size_t) (i * 31) % 5000 + 1);
          if (k[j] != NULL)
            *(volatile char *) k[j] = 1;
        }
      struct itimerval off = { { 0, 0 }, { 0, 0 } };
      setitimer (ITIMER_REAL, &off, NULL);
      CHECK (stop () == 0);
    }
  int status, bad = 0, reaped = 0;
  pid_t w;
  while ((w = waitpid (-1, &status, 0)) > 0 || (w < 0 && errno == EINTR))
    if (w > 0)
      {
        reaped++;
        if (!WIFEXITED (status) || WEXITSTATUS (status) != 0)
          bad++;
      }
  char path[] = "/tmp/tst-profile-fork-signal.XXXXXX";
  int fd = mkstemp (path);
  CHECK (fd >= 0);
  if (fd >= 0)
    {
      close (fd);
      CHECK (dump (path) == 0);
      unlink (path);
    }
  for (int j = 0; j < 256; j++)
    free (k[j]);
  printf ("%d forks from the handler (%d failed), %d children reaped, %d ended abnormally\n",
          forks, fork_failures, reaped, bad);
  CHECK (forks > 0);
  CHECK (reaped == forks);
  CHECK (bad == 0);
  return test_result ();
}
