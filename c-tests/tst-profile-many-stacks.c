/* More distinct stacks than the profiler's table holds (262 144 records):
   every allocation below comes from its own path through a 20-deep
   recursion of `left` and `right` chosen by the bits of its number, and
   stays live. Before, every stack past the table's end was charged to the
   last stack recorded: a fresh tester's 300 000 stacks gave one of them
   37 857 blocks that were not its own, with nothing said. Now they are
   counted under one site, stack_table_full, which the leak report names,
   and no real site gets a block that is not its own. */
/* TIMEOUT: 120 */
#include "test_helper.h"

#define STACKS (262144 + 2000)

static void *volatile *keep;

__attribute__ ((noinline)) static void left (unsigned x, int d, unsigned i);
__attribute__ ((noinline)) static void
right (unsigned x, int d, unsigned i)
{
  if (d == 0)
    {
      keep[i] = malloc (16);
      return;
    }
  if (x & 1)
    left (x >> 1, d - 1, i);
  else
    right (x >> 1, d - 1, i);
  __asm__ volatile ("");
}

__attribute__ ((noinline)) static void
left (unsigned x, int d, unsigned i)
{
  if (d == 0)
    {
      keep[i] = malloc (16);
      return;
    }
  if (x & 1)
    left (x >> 1, d - 1, i);
  else
    right (x >> 1, d - 1, i);
  __asm__ volatile ("");
}

int
main (void)
{
  require_ptrs ();
  int (*start) (size_t) = (int (*) (size_t)) ptrs_symbol ("ptrs_profile_start");
  int (*report) (int) = (int (*) (int)) ptrs_symbol ("ptrs_leak_report");
  if (start == NULL || report == NULL)
    FAIL_EXIT ("ptrs_profile_start or ptrs_leak_report not found");
  keep = calloc (STACKS, sizeof *keep);
  if (keep == NULL)
    FAIL_EXIT ("calloc");
  if (start (1) != 0)
    FAIL_EXIT ("ptrs_profile_start(1) failed");
  for (unsigned i = 0; i < STACKS; i++)
    left (i, 20, i);

  FILE *f = tmpfile ();
  if (f == NULL)
    FAIL_EXIT ("tmpfile: %s", strerror (errno));
  CHECK (report (fileno (f)) > 0);
  rewind (f);
  /* Each site is "ptrs: #N B bytes in K blocks" then its frames. */
  char line[512];
  long blocks = 0, overflow_blocks = -1, most_elsewhere = 0, sites = 0;
  int noted = 0;
  while (fgets (line, sizeof line, f) != NULL)
    {
      long n, b, k;
      if (strstr (line, "distinct stacks") != NULL)
        noted = 1;
      if (sscanf (line, "ptrs: #%ld %ld byte%*s in %ld block", &n, &b, &k) == 3)
        {
          if (sites > 0 && blocks > most_elsewhere)
            most_elsewhere = blocks;
          blocks = k;
          sites++;
        }
      else if (strstr (line, "#0 ") != NULL && strstr (line, "stack_table_full") != NULL)
        {
          overflow_blocks = blocks;
          blocks = 0; /* not a real site */
        }
    }
  if (blocks > most_elsewhere)
    most_elsewhere = blocks;
  fclose (f);
  printf ("%ld sites; the overflow site has %ld blocks; the largest other site %ld\n",
          sites, overflow_blocks, most_elsewhere);
  CHECK (noted);
  CHECK (overflow_blocks >= 2000);
  CHECK (most_elsewhere <= 8);
  for (unsigned i = 0; i < STACKS; i++)
    free ((void *) keep[i]);
  free ((void *) keep);
  return test_result ();
}
