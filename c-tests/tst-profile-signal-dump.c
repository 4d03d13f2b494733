/* A heap profile dumped from a signal handler that interrupted its thread
   inside the profiler (whose lock the thread holds) cannot have the
   records: ptrs_profile_dump returns EBUSY and leaves the file as it was.
   It wrote an empty profile and returned 0, which a caller could not tell
   from a real one (a fresh tester: 6 empty profiles of 23 dumps).

   Every allocation is sampled (rate 1) while a profiling timer's handler
   dumps the profile to a new file each time; 64 blocks of 4000 bytes stay
   allocated throughout.  Every dump that returned 0 must show them in use;
   every other one must have returned EBUSY without creating its file.  */
/* TIMEOUT: 60 */
#include "test_helper.h"
#include <signal.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define LIVE 64
#define LIVE_SIZE 4000
#define DUMPS 40

static int (*dump) (const char *);
static int results[DUMPS];
static volatile int ndumps;
static char prefix[64];

static void
handler (int sig)
{
  (void) sig;
  int i = ndumps;
  if (i >= DUMPS)
    return;
  char path[96];
  snprintf (path, sizeof path, "%s.%d.heap", prefix, i);
  results[i] = dump (path);
  ndumps = i + 1;
}

static double
now (void)
{
  struct timespec t;
  clock_gettime (CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

int
main (void)
{
  require_ptrs ();
  int (*start) (size_t) = (int (*) (size_t)) ptrs_symbol ("ptrs_profile_start");
  dump = (int (*) (const char *)) ptrs_symbol ("ptrs_profile_dump");
  if (!start || !dump)
    FAIL_EXIT ("no profiler API");
  snprintf (prefix, sizeof prefix, "/tmp/tst-profile-signal-dump.%d", (int) getpid ());
  CHECK (start (1) == 0);
  void *live[LIVE];
  for (int i = 0; i < LIVE; i++)
    live[i] = malloc (LIVE_SIZE);
  signal (SIGPROF, handler);
  struct itimerval it = { { 0, 2000 }, { 0, 2000 } };
  CHECK (setitimer (ITIMER_PROF, &it, NULL) == 0);
  double t0 = now ();
  while (ndumps < DUMPS && now () - t0 < 30)
    {
      void *p[8];
      for (int i = 0; i < 8; i++)
        {
          p[i] = malloc (16 + i * 8);
          *(volatile char *) p[i] = (char) i;
        }
      for (int i = 0; i < 8; i++)
        free (p[i]);
    }
  struct itimerval off = { { 0, 0 }, { 0, 0 } };
  setitimer (ITIMER_PROF, &off, NULL);
  int ok = 0, busy = 0, bad = 0;
  for (int i = 0; i < ndumps; i++)
    {
      char path[96];
      snprintf (path, sizeof path, "%s.%d.heap", prefix, i);
      FILE *f = fopen (path, "r");
      if (results[i] == 0)
        {
          long count = -1, bytes = -1;
          if (f == NULL || fscanf (f, "heap profile: %ld: %ld", &count, &bytes) != 2
              || count < LIVE || bytes < (long) LIVE * LIVE_SIZE)
            {
              printf ("dump %d returned 0 with %ld blocks, %ld bytes in use\n", i, count, bytes);
              bad++;
            }
          else
            ok++;
        }
      else if (results[i] == EBUSY && f == NULL)
        busy++;
      else
        {
          printf ("dump %d returned %d (file %s)\n", i, results[i], f ? "written" : "absent");
          bad++;
        }
      if (f)
        fclose (f);
      unlink (path);
    }
  printf ("%d dumps: %d complete, %d EBUSY, %d wrong\n", ndumps, ok, busy, bad);
  CHECK (ndumps == DUMPS);
  CHECK (bad == 0);
  for (int i = 0; i < LIVE; i++)
    free (live[i]);
  return test_result ();
}
