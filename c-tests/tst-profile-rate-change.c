/* Starting the profiler again at another rate discards the records taken
   at the old one: a profile has one rate, by which pprof and the leak
   report scale every record.  10 000 blocks of 100 bytes kept at rate 1,
   then a start at 4096 and 10 000 more: the leak report's estimate must be
   near the 1 MB kept since the change (it said 41 MB: the rate-1 records
   scaled as samples at 4096), and the heap profile's header must count no
   more than the samples taken at 4096.  Freeing the blocks whose records
   were discarded is harmless.  */
#include "test_helper.h"
#include <unistd.h>

#define N 10000

static void *first[N], *second[N];

__attribute__ ((noinline)) static void *
keep100 (void)
{
  void *p = malloc (100);
  __asm__ volatile ("" : : "r" (p) : "memory");
  return p;
}

/* The leak report's total in bytes, or -1.  */
static long
reported_bytes (int (*leak_report) (int))
{
  char path[] = "/tmp/tst-profile-rate-change-XXXXXX";
  int fd = mkstemp (path);
  if (fd < 0)
    FAIL_EXIT ("mkstemp");
  leak_report (fd);
  close (fd);
  FILE *f = fopen (path, "r");
  static char text[1 << 16];
  size_t n = f ? fread (text, 1, sizeof text - 1, f) : 0;
  text[n] = 0;
  if (f)
    fclose (f);
  unlink (path);
  fprintf (stderr, "%.300s", text);
  long bytes = 0;
  if (strstr (text, "no leaks") != NULL)
    return 0;
  const char *s = strstr (text, "leak report: ");
  if (s == NULL || sscanf (s, "leak report: %ld", &bytes) != 1)
    return -1;
  return bytes;
}

int
main (void)
{
  require_ptrs ();
  int (*start) (size_t) = (int (*) (size_t)) ptrs_symbol ("ptrs_profile_start");
  int (*dump) (const char *) = (int (*) (const char *)) ptrs_symbol ("ptrs_profile_dump");
  int (*leak_report) (int) = (int (*) (int)) ptrs_symbol ("ptrs_leak_report");
  if (start == NULL || dump == NULL || leak_report == NULL)
    FAIL_EXIT ("profiler API not found");

  CHECK (start (1) == 0);
  for (int i = 0; i < N; i++)
    first[i] = keep100 ();
  long at1 = reported_bytes (leak_report);
  CHECK (at1 == 100L * N);

  CHECK (start (4096) == 0);
  long after = reported_bytes (leak_report);
  CHECK (after == 0);
  for (int i = 0; i < N; i++)
    second[i] = keep100 ();
  long est = reported_bytes (leak_report);
  /* About 244 samples: a standard deviation near 7 %.  */
  CHECK (est > 100L * N * 6 / 10 && est < 100L * N * 14 / 10);

  /* The profile's header: its counts are the samples taken at 4096.  */
  char path[] = "/tmp/tst-profile-rate-change-XXXXXX";
  int fd = mkstemp (path);
  if (fd < 0)
    FAIL_EXIT ("mkstemp");
  close (fd);
  CHECK (dump (path) == 0);
  FILE *f = fopen (path, "r");
  long lc = -1, lb = -1, ac = -1, ab = -1, rate = -1;
  CHECK (f != NULL && fscanf (f, "heap profile: %ld: %ld [%ld: %ld] @ heap_v2/%ld", &lc, &lb, &ac, &ab, &rate) == 5);
  if (f)
    fclose (f);
  unlink (path);
  fprintf (stderr, "header: %ld: %ld [%ld: %ld] @ heap_v2/%ld\n", lc, lb, ac, ab, rate);
  CHECK (rate == 4096);
  CHECK (ac < 1000);

  /* Blocks whose records were discarded are freed as any other.  */
  for (int i = 0; i < N; i++)
    free (first[i]);
  long est2 = reported_bytes (leak_report);
  CHECK (est2 == est);
  for (int i = 0; i < N; i++)
    free (second[i]);
  CHECK (reported_bytes (leak_report) == 0);
  return test_result ();
}
