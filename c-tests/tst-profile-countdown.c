/* The heap profiler's sampling countdown in malloc's fast path.
   A thread that has allocated (so its heap's countdown holds the "off"
   value) keeps allocating small blocks, which malloc serves from its fast
   path, while main starts the profiler at 512 bytes: the profile's
   estimate of the bytes that thread keeps live must be within 10 % of the
   truth (2 MiB, so about 2 500 samples; the estimate's standard deviation
   is about 2 %).  A thread that did not see the start, or a fast path that
   never reaches the sampler, is off by far more.  After
   ptrs_profile_stop, allocations are not sampled any more: the profile's
   count of sampled allocations stays the same.  The estimate is computed
   here from the heap_v2 records as pprof does: bytes / (1 - exp(-avg /
   rate)) for each record.  */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "test_helper.h"

static int (*profile_start) (size_t);
static int (*profile_stop) (void);
static int (*profile_dump) (const char *);

#define RATE 512
#define KEEP (2u << 20)
#define MAXBLOCKS (KEEP / 16 + 1)

static pthread_barrier_t barrier;
static void *kept[MAXBLOCKS];
static size_t nkept;
static void *later[MAXBLOCKS];
static size_t nlater;

static unsigned long long rng = 0x9e3779b97f4a7c15ULL;
static size_t
small_size (void)
{
  rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
  return 16 + (size_t) (rng % 1009);   /* 16 to 1024 bytes */
}

static size_t
fill (void **slots, size_t *n, size_t total)
{
  size_t got = 0;
  while (got < total)
    {
      size_t s = small_size ();
      char *p = malloc (s);
      if (p == NULL)
        FAIL_EXIT ("malloc (%zu) failed", s);
      p[0] = 1;
      slots[(*n)++] = p;
      got += s;
    }
  return got;
}

static size_t kept_bytes;

static void *
worker (void *arg)
{
  (void) arg;
  /* Warm up before the profiler starts: pages, and a countdown.  */
  for (int round = 0; round < 20; round++)
    {
      void *tmp[4096];
      for (int i = 0; i < 4096; i++)
        tmp[i] = malloc (small_size ());
      for (int i = 0; i < 4096; i++)
        free (tmp[i]);
    }
  pthread_barrier_wait (&barrier);   /* main starts the profiler */
  pthread_barrier_wait (&barrier);
  kept_bytes = fill (kept, &nkept, KEEP);
  pthread_barrier_wait (&barrier);   /* main dumps, then stops */
  pthread_barrier_wait (&barrier);
  fill (later, &nlater, KEEP);
  pthread_barrier_wait (&barrier);   /* main dumps again */
  return NULL;
}

/* Reads a heap_v2 profile: the estimate of the bytes in use and the raw
   number of sampled allocations (the header's allocation count).  */
static void
read_profile (const char *path, double *inuse, long *samples)
{
  FILE *f = fopen (path, "r");
  if (f == NULL)
    FAIL_EXIT ("cannot open %s", path);
  char line[8192];
  long c, ac;
  double b, ab;
  unsigned rate;
  if (fgets (line, sizeof line, f) == NULL
      || sscanf (line, "heap profile: %ld: %lf [%ld: %lf] @ heap_v2/%u", &c, &b, &ac, &ab, &rate) != 5)
    FAIL_EXIT ("bad header in %s: %s", path, line);
  CHECK (rate == RATE);
  *samples = ac;
  *inuse = 0;
  while (fgets (line, sizeof line, f) != NULL)
    {
      if (sscanf (line, " %ld: %lf [%ld: %lf] @", &c, &b, &ac, &ab) != 4)
        break;   /* MAPPED_LIBRARIES: */
      if (c > 0)
        *inuse += b / (1 - exp (-(b / c) / RATE));
    }
  fclose (f);
}

int
main (void)
{
  require_ptrs ();
  profile_start = (int (*) (size_t)) ptrs_symbol ("ptrs_profile_start");
  profile_stop = (int (*) (void)) ptrs_symbol ("ptrs_profile_stop");
  profile_dump = (int (*) (const char *)) ptrs_symbol ("ptrs_profile_dump");
  if (!(profile_start && profile_stop && profile_dump))
    FAIL_EXIT ("ptrs_profile_* not found");
  if (under_memcheck ())
    return EXIT_UNSUPPORTED;   /* memcheck serves every block itself */

  pthread_t t;
  pthread_barrier_init (&barrier, NULL, 2);
  if (pthread_create (&t, NULL, worker, NULL) != 0)
    FAIL_EXIT ("pthread_create");
  pthread_barrier_wait (&barrier);
  CHECK (profile_start (RATE) == 0);
  pthread_barrier_wait (&barrier);
  pthread_barrier_wait (&barrier);   /* the worker filled KEEP bytes */

  char path[64];
  snprintf (path, sizeof path, "/tmp/tst-profile-countdown-%d.heap", (int) getpid ());
  double inuse;
  long samples;
  CHECK (profile_dump (path) == 0);
  /* Stop before anything here allocates (fopen, printf): those would be
     sampled too.  */
  CHECK (profile_stop () == 0);
  read_profile (path, &inuse, &samples);
  printf ("kept %zu bytes in %zu blocks; estimate %.0f (%+.1f %%), %ld samples\n",
          kept_bytes, nkept, inuse, 100.0 * (inuse - kept_bytes) / kept_bytes, samples);
  CHECK (inuse > 0.9 * kept_bytes && inuse < 1.1 * kept_bytes);

  pthread_barrier_wait (&barrier);
  pthread_barrier_wait (&barrier);   /* the worker allocated KEEP more */
  double inuse2;
  long samples2;
  CHECK (profile_dump (path) == 0);
  read_profile (path, &inuse2, &samples2);
  printf ("after stop: %ld samples (before %ld)\n", samples2, samples);
  CHECK (samples2 == samples);
  unlink (path);

  pthread_join (t, NULL);
  for (size_t i = 0; i < nkept; i++)
    free (kept[i]);
  for (size_t i = 0; i < nlater; i++)
    free (later[i]);
  return test_result ();
}
