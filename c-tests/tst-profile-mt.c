/* Stacks taken at every allocation (rate 1) while another thread loops on
   dlopen/dlclose, while the main thread forks (the child allocates too), and
   from a signal handler that allocates: no deadlock, no crash, and the
   profile still dumps.  */
/* TIMEOUT: 120 */
#include "test_helper.h"
#include "mt_helper.h"
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static volatile int stop;
static volatile long handled;

static void *
dl_loop (void *arg)
{
  (void) arg;
  while (!stop)
    {
      void *h = dlopen ("libm.so.6", RTLD_NOW | RTLD_LOCAL);
      if (h)
        dlclose (h);
      void *h2 = dlopen ("libz.so.1", RTLD_NOW | RTLD_LOCAL);
      if (h2)
        dlclose (h2);
    }
  return NULL;
}

static void *
alloc_loop (void *arg)
{
  (void) arg;
  while (!stop)
    {
      void *p[16];
      for (int i = 0; i < 16; i++)
        p[i] = malloc (16 + i * 100);
      for (int i = 0; i < 16; i++)
        free (p[i]);
    }
  return NULL;
}

static void
handler (int sig)
{
  (void) sig;
  free (malloc (48));
  handled++;
}

int
main (void)
{
  require_ptrs ();
  int (*start) (size_t) = (int (*) (size_t)) ptrs_symbol ("ptrs_profile_start");
  int (*dump) (const char *) = (int (*) (const char *)) ptrs_symbol ("ptrs_profile_dump");
  if (!start || !dump)
    FAIL_EXIT ("no profiler API");
  CHECK (start (1) == 0);
  signal (SIGALRM, handler);
  pthread_t dl, al[2];
  pthread_create (&dl, NULL, dl_loop, NULL);
  for (int i = 0; i < 2; i++)
    pthread_create (&al[i], NULL, alloc_loop, NULL);
  /* A timer interrupting the allocating threads and this one.  */
  timer_t t;
  struct sigevent sev = { .sigev_notify = SIGEV_SIGNAL, .sigev_signo = SIGALRM };
  timer_create (CLOCK_MONOTONIC, &sev, &t);
  struct itimerspec its = { { 0, 200000 }, { 0, 200000 } };
  timer_settime (t, 0, &its, NULL);
  int forks = 0;
  time_t end = time (NULL) + 3;
  while (time (NULL) < end)
    {
      pid_t pid = fork ();
      if (pid == 0)
        {
          void *p = malloc (100);
          free (p);
          free (malloc (5000));
          _exit (0);
        }
      CHECK (pid > 0);
      int st;
      waitpid (pid, &st, 0);
      CHECK (WIFEXITED (st) && WEXITSTATUS (st) == 0);
      forks++;
      free (malloc (64));
    }
  its.it_interval.tv_nsec = its.it_value.tv_nsec = 0;
  timer_settime (t, 0, &its, NULL);
  stop = 1;
  pthread_join (dl, NULL);
  for (int i = 0; i < 2; i++)
    pthread_join (al[i], NULL);
  char path[64];
  snprintf (path, sizeof path, "/tmp/tst-profile-mt-%d.heap", (int) getpid ());
  CHECK (dump (path) == 0);
  unlink (path);
  printf ("%d forks, %ld signals handled\n", forks, handled);
  CHECK (forks > 10);
  return test_result ();
}
