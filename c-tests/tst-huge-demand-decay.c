/* Freed huge mappings stay cached past the purge delay while the program
   keeps asking for huge blocks, up to the recent peak of them live at once
   (reuse before refault, src/retain.rs's Demand), and no longer than that
   demand says:

   1. twelve 4 MiB blocks are written and freed, then the program uses one
      4 MiB block at a time: 45 ms later (three purge delays) most of the
      twelve mappings are still cached, where the plain decay would have
      unmapped them;
   2. the recent peak is one block now: 400 ms after the frees (two demand
      windows of 100 ms and a delay, with room for a busy machine) at most
      two mappings are left;
   3. the program stops asking for huge blocks: 300 ms later none is left.

   The cached bytes are malloc's keepcost (mallinfo2).  */
#include "test_helper.h"
#include <malloc.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define N 12
#define SIZE ((size_t) 4 << 20)
#define MIB ((size_t) 1 << 20)

static double
now_ms (void)
{
  struct timespec t;
  clock_gettime (CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

/* One huge block at a time, every 2 ms, until `until` (ms).  */
static void
one_at_a_time (double until)
{
  while (now_ms () < until)
    {
      char *p = malloc (SIZE);
      CHECK (p != NULL);
      if (p == NULL)
        return;
      p[0] = 1;
      p[SIZE - 1] = 1;
      free (p);
      usleep (2000);
    }
}

/* Small blocks only (slow paths run the decay ticks), until `until`.  */
static void
small_only (double until)
{
  static void *q[4000];
  while (now_ms () < until)
    {
      for (int i = 0; i < 4000; i++)
        q[i] = malloc (48);
      for (int i = 0; i < 4000; i++)
        free (q[i]);
      usleep (1000);
    }
}

int
main (void)
{
  require_ptrs ();
  void *b[N];
  for (int i = 0; i < N; i++)
    {
      b[i] = malloc (SIZE);
      CHECK (b[i] != NULL);
      memset (b[i], 1, SIZE);
    }
  double peak_at = now_ms ();
  for (int i = 0; i < N; i++)
    free (b[i]);
  double t0 = now_ms ();

  one_at_a_time (t0 + 45);
  size_t kept = mallinfo2 ().keepcost;
  double late = now_ms () - peak_at;
  printf ("45 ms after the frees: %zu MiB cached (%.0f ms after the peak)\n",
          kept / MIB, late);
  /* The peak is remembered for one to two windows of 100 ms; on a machine
     so busy that the check came after the first window, only report.  */
  if (late < 90)
    CHECK (kept >= 8 * SIZE);

  one_at_a_time (t0 + 400);
  kept = mallinfo2 ().keepcost;
  printf ("400 ms after the frees: %zu MiB cached\n", kept / MIB);
  CHECK (kept <= 2 * SIZE + 2 * MIB);

  small_only (now_ms () + 300);
  kept = mallinfo2 ().keepcost;
  printf ("300 ms after the last huge block: %zu bytes cached\n", kept);
  CHECK (kept == 0);
  return test_result ();
}
