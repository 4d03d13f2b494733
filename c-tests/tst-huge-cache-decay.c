/* Huge mappings kept for reuse after free are unmapped within one to two
   purge delays (10 ms by default) while the program keeps allocating:
   two 8 MiB blocks freed 6 ms apart must both be gone from malloc's
   keepcost 300 ms later.  (The tick that unmapped the first one used to
   leave the second cached, resident, until an unrelated slow path.)  */
#include "test_helper.h"
#include <malloc.h>
#include <time.h>
#include <unistd.h>

static void
churn_ms (int ms)
{
  static void *q[4000];
  struct timespec t0, t;
  clock_gettime (CLOCK_MONOTONIC, &t0);
  do
    {
      /* Pages fill and empty: the slow paths that run decay ticks.  */
      for (int i = 0; i < 4000; i++)
        q[i] = malloc (48);
      for (int i = 0; i < 4000; i++)
        free (q[i]);
      usleep (1000);
      clock_gettime (CLOCK_MONOTONIC, &t);
    }
  while ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 < ms);
}

int
main (void)
{
  require_ptrs ();
  char *a = malloc (8 << 20), *b = malloc (8 << 20);
  CHECK (a != NULL && b != NULL);
  memset (a, 1, 8 << 20);
  memset (b, 1, 8 << 20);
  free (a);
  usleep (6000);
  free (b);
  churn_ms (300);
  struct mallinfo2 m = mallinfo2 ();
  if (m.keepcost != 0)
    printf ("keepcost %zu bytes 300 ms after the frees\n", m.keepcost);
  CHECK (m.keepcost == 0);
  return test_result ();
}
