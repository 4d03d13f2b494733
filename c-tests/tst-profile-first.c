/* The first allocation of a heap is sampled only with its probability.
   With the profiler started from the environment at one sample per GiB,
   a program that allocates a few hundred small blocks, in main and in a
   new thread (a new heap each), and after a second start (which makes
   every thread draw a new countdown), must record no sample at all: the
   chance of one is below 1e-5.  A countdown that asks for a new draw was
   taken as run out, so the first allocation of each heap was always
   sampled (a 100-byte block reported as 1 GiB by pprof).  */
/* ENV: PTRS_PROFILE_RATE=1G PTRS_LEAK_REPORT=1 */
#include "test_helper.h"
#include <pthread.h>
#include <unistd.h>

static void *volatile sink;

static void *
worker (void *arg)
{
  (void) arg;
  for (int i = 0; i < 100; i++)
    sink = malloc (100);
  return NULL;
}

/* The number of sampled allocations in the heap profile's header.  */
static long
sampled_allocations (int (*dump) (const char *))
{
  char path[] = "/tmp/tst-profile-first-XXXXXX";
  int fd = mkstemp (path);
  if (fd < 0)
    FAIL_EXIT ("mkstemp");
  close (fd);
  if (dump (path) != 0)
    FAIL_EXIT ("ptrs_profile_dump failed");
  FILE *f = fopen (path, "r");
  long lc = -1, lb = -1, ac = -1, ab = -1;
  if (f == NULL || fscanf (f, "heap profile: %ld: %ld [%ld: %ld]", &lc, &lb, &ac, &ab) != 4)
    FAIL_EXIT ("cannot read the profile's header");
  fclose (f);
  unlink (path);
  fprintf (stderr, "header: %ld: %ld [%ld: %ld]\n", lc, lb, ac, ab);
  return ac;
}

int
main (void)
{
  require_ptrs ();
  int (*start) (size_t) = (int (*) (size_t)) ptrs_symbol ("ptrs_profile_start");
  int (*dump) (const char *) = (int (*) (const char *)) ptrs_symbol ("ptrs_profile_dump");
  if (start == NULL || dump == NULL)
    FAIL_EXIT ("profiler API not found");
  for (int i = 0; i < 100; i++)
    sink = malloc (100);
  pthread_t t;
  if (pthread_create (&t, NULL, worker, NULL) != 0)
    FAIL_EXIT ("pthread_create");
  pthread_join (t, NULL);
  CHECK (sampled_allocations (dump) == 0);
  /* A second start: every heap draws a new countdown.  */
  CHECK (start (1u << 30) == 0);
  for (int i = 0; i < 100; i++)
    sink = malloc (100);
  CHECK (sampled_allocations (dump) == 0);
  return test_result ();
}
