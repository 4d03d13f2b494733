/* The heap profiler's estimates stay unbiased when realloc keeps a large
   block in place with a new size (src/profile/mod.rs,
   note_resized_large): the resized block is counted as a new allocation
   of its new size and sampled afresh, as jemalloc's prof_realloc does.

   Found by a fresh tester: the record only took the new size, so a block
   grown in place stayed unsampled with the probability of its first size
   (100 blocks grown from 64 KiB to 440 KiB: 6 to 11 MB estimated against
   43 MB), and a sampled block shrunk in place was scaled up as a block of
   its new size (+16 % every run).

   At the default rate (512 KiB), the estimate of the leak report
   (ptrs_leak_report), averaged over rounds. Growth: 100 blocks of 65600
   bytes, each grown in 64 KiB steps to 450000 bytes, eight rounds; a
   block of 65600 bytes is sampled with probability 0.12, one of 450000
   with 0.58, so the old estimate of a block grown in place was a fifth
   of the truth (0.8 here, where a quarter of the blocks move on the way
   and are sampled afresh), and a fair one's mean of eight rounds has a
   relative standard deviation near 3 %. Shrink: 160 blocks of 256 KiB shrunk to 132 KiB, six rounds: the
   old estimate was 1.75 times the truth, a fair one's mean a relative
   standard deviation near 6 %.  */
#include <fcntl.h>
#include <unistd.h>
#include "test_helper.h"

static int (*profile_start) (size_t);
static int (*profile_stop) (void);
static int (*leak_report) (int);

/* The leak report's estimate of the bytes in use (its first line:
   "ptrs: leak report: N bytes in M blocks still allocated, ...").  */
static double
in_use_bytes (void)
{
  char path[] = "/tmp/tst-profile-realloc-resample-XXXXXX";
  int fd = mkstemp (path);
  if (fd < 0)
    FAIL_EXIT ("mkstemp");
  if (leak_report (fd) < 0)
    FAIL_EXIT ("ptrs_leak_report failed");
  close (fd);
  FILE *f = fopen (path, "r");
  double bytes = 0;
  char line[512];
  while (f != NULL && fgets (line, sizeof line, f) != NULL)
    if (sscanf (line, "ptrs: leak report: %lf bytes", &bytes) == 1)
      break;
  if (f == NULL || bytes == 0)
    FAIL_EXIT ("cannot read the leak report");
  fclose (f);
  unlink (path);
  return bytes;
}

#define GROW_N 100
#define GROW_FROM 65600
#define GROW_TO 450000
#define GROW_ROUNDS 8
#define SHRINK_N 160
#define SHRINK_FROM (256 << 10)
#define SHRINK_TO (132 << 10)
#define SHRINK_ROUNDS 6

static int moves;
static void *blocks[SHRINK_N > GROW_N ? SHRINK_N : GROW_N];

static void __attribute__ ((noinline))
grow (void)
{
  for (int i = 0; i < GROW_N; i++)
    {
      size_t s = GROW_FROM;
      char *p = malloc (s);
      if (p == NULL)
        FAIL_EXIT ("malloc failed");
      p[0] = 1;
      while (s < GROW_TO)
        {
          s = s + 65536 > GROW_TO ? GROW_TO : s + 65536;
          char *q = realloc (p, s);
          if (q == NULL)
            FAIL_EXIT ("realloc failed");
          moves += q != p;
          p = q;
        }
      blocks[i] = p;
    }
}

static void __attribute__ ((noinline))
shrink (void)
{
  for (int i = 0; i < SHRINK_N; i++)
    {
      char *p = malloc (SHRINK_FROM);
      if (p == NULL)
        FAIL_EXIT ("malloc failed");
      p[0] = 1;
      char *q = realloc (p, SHRINK_TO);
      if (q != p)
        FAIL_EXIT ("realloc moved a block it shrank by less than half");
      blocks[i] = q;
    }
}

int
main (void)
{
  require_ptrs ();
  profile_start = (int (*) (size_t)) ptrs_symbol ("ptrs_profile_start");
  profile_stop = (int (*) (void)) ptrs_symbol ("ptrs_profile_stop");
  leak_report = (int (*) (int)) ptrs_symbol ("ptrs_leak_report");
  if (!(profile_start && profile_stop && leak_report))
    FAIL_EXIT ("ptrs_profile_* not found");

  /* stdout's buffer, allocated before sampling starts.  */
  printf ("rates: 512 KiB\n");
  fflush (stdout);
  CHECK (profile_start (512 << 10) == 0);
  double sum = 0;
  for (int round = 0; round < GROW_ROUNDS; round++)
    {
      grow ();
      double est = in_use_bytes () / ((double) GROW_N * GROW_TO);
      printf ("grown in place, round %d: estimate %.3f of the truth (%d moves)\n", round, est, moves);
      moves = 0;
      sum += est;
      for (int i = 0; i < GROW_N; i++)
        free (blocks[i]);
    }
  double grown = sum / GROW_ROUNDS;
  printf ("grown in place: mean estimate %.3f of the truth\n", grown);
  CHECK (grown > 0.87 && grown < 1.15);

  sum = 0;
  for (int round = 0; round < SHRINK_ROUNDS; round++)
    {
      shrink ();
      double est = in_use_bytes () / ((double) SHRINK_N * SHRINK_TO);
      printf ("shrunk in place, round %d: estimate %.3f of the truth\n", round, est);
      sum += est;
      for (int i = 0; i < SHRINK_N; i++)
        free (blocks[i]);
    }
  double shrunk = sum / SHRINK_ROUNDS;
  printf ("shrunk in place: mean estimate %.3f of the truth\n", shrunk);
  CHECK (shrunk > 0.75 && shrunk < 1.3);
  CHECK (profile_stop () == 0);
  return test_result ();
}
