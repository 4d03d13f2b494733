/* Every allocation sampled (rate 1) while a profiling timer's signal
   handler frees blocks that were sampled earlier.  The handler mostly
   interrupts the thread inside the profiler, where it holds the profiler's
   lock with no signal blocked: such a free must not wait for that lock
   (it would wait forever: the test times out) and must not be lost (the
   blocks must leave the profile's in-use figures).  */
/* TIMEOUT: 60 */
#include "test_helper.h"
#include <signal.h>
#include <sys/time.h>
#include <time.h>

#define POOL 1000
#define SIZE 1000

static void *pool[POOL];
static volatile int npool;
static volatile long handled;

static void
handler (int sig)
{
  (void) sig;
  if (npool > 0)
    {
      int i = --npool;
      free (pool[i]);
      pool[i] = NULL;
    }
  handled++;
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
  int (*dump) (const char *) = (int (*) (const char *)) ptrs_symbol ("ptrs_profile_dump");
  if (!start || !dump)
    FAIL_EXIT ("no profiler API");
  CHECK (start (1) == 0);
  for (int i = 0; i < POOL; i++)
    pool[i] = malloc (SIZE);
  npool = POOL;
  signal (SIGPROF, handler);
  struct itimerval it = { { 0, 200 }, { 0, 200 } };
  CHECK (setitimer (ITIMER_PROF, &it, NULL) == 0);
  double t0 = now ();
  long rounds = 0;
  while (npool > 0 && now () - t0 < 30)
    {
      void *p[8];
      for (int i = 0; i < 8; i++)
        {
          p[i] = malloc (16 + i * 8);
          *(volatile char *) p[i] = (char) i;
        }
      for (int i = 0; i < 8; i++)
        free (p[i]);
      rounds++;
    }
  struct itimerval off = { { 0, 0 }, { 0, 0 } };
  setitimer (ITIMER_PROF, &off, NULL);
  printf ("%ld signals, %ld rounds, %d blocks left\n", handled, rounds, npool);
  CHECK (npool == 0);
  /* One more sampled allocation takes the profiler's lock (and its queue
     of frees made by handlers), then the profile's in-use bytes must be
     those of the blocks still allocated, far below the pool's.  */
  void *last = malloc (10);
  *(volatile char *) last = 1;
  free (last);
  char path[64];
  snprintf (path, sizeof path, "/tmp/tst-profile-signal-free.%d.heap", (int) getpid ());
  CHECK (dump (path) == 0);
  FILE *f = fopen (path, "r");
  CHECK (f != NULL);
  long in_count = -1, in_bytes = -1;
  if (f)
    {
      CHECK (fscanf (f, "heap profile: %ld: %ld", &in_count, &in_bytes) == 2);
      fclose (f);
    }
  unlink (path);
  printf ("in use: %ld blocks, %ld bytes\n", in_count, in_bytes);
  CHECK (in_bytes >= 0 && in_bytes < POOL * SIZE / 10);
  return test_result ();
}
