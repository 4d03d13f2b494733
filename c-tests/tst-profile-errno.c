/* The heap profiler's system calls leave errno alone.  The unwinder reads
   unwind tables from object files (open, pread) when a sampled allocation
   brings a new return address; where the file cannot be opened (here: no
   descriptor left, EMFILE; in real life a library deleted by an upgrade,
   ENOENT) the failed open must not show through errno after a malloc,
   calloc or realloc that succeeded, as it would to a program doing
   "if (open (...) < 0) { msg = strdup (name); ... strerror (errno) }".  */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/resource.h>
#include "test_helper.h"

static int (*profile_start) (size_t);
static int (*profile_stop) (void);

/* Distinct call sites (return addresses) at each depth.  */
static void *__attribute__ ((noinline))
site (int depth, int kind, size_t n)
{
  void *p;
  if (depth > 0)
    {
      p = site (depth - 1, kind, n + 16);
      __asm__ volatile ("" ::: "memory");   /* not a tail call */
      return p;
    }
  if (kind == 0)
    p = malloc (n);
  else if (kind == 1)
    p = calloc (1, n);
  else
    {
      p = malloc (8);
      if (p != NULL)
        {
          errno = 0;
          p = realloc (p, n);
        }
    }
  return p;
}

int
main (void)
{
  require_ptrs ();
  profile_start = (int (*) (size_t)) ptrs_symbol ("ptrs_profile_start");
  profile_stop = (int (*) (void)) ptrs_symbol ("ptrs_profile_stop");
  if (!(profile_start && profile_stop))
    FAIL_EXIT ("ptrs_profile_* not found");

  /* No descriptor left: the lowest free one becomes the limit.  */
  int lowest = 0;
  while (fcntl (lowest, F_GETFD) != -1)
    lowest++;
  struct rlimit old, lim;
  CHECK (getrlimit (RLIMIT_NOFILE, &old) == 0);
  lim = old;
  lim.rlim_cur = lowest;
  CHECK (setrlimit (RLIMIT_NOFILE, &lim) == 0);
  CHECK (open ("/dev/null", O_RDONLY) == -1 && errno == EMFILE);

  CHECK (profile_start (1) == 0);   /* every allocation sampled */
  int bad = 0;
  for (int kind = 0; kind < 3; kind++)
    for (int depth = 0; depth < 12; depth++)
      {
        errno = 0;
        void *p = site (depth, kind, 24 + 1000 * depth);
        int e = errno;
        if (p == NULL)
          FAIL_EXIT ("allocation %d/%d failed", kind, depth);
        if (e != 0)
          {
            printf ("kind %d depth %d: errno %d (%s) after a successful allocation\n",
                    kind, depth, e, strerror (e));
            bad++;
          }
        free (p);
      }
  CHECK (setrlimit (RLIMIT_NOFILE, &old) == 0);

  /* ptrs_profile_dump returns its error and leaves errno alone (a fresh
     tester saw errno 28 after a dump to /dev/full, 2 after one to a path
     that does not exist).  */
  int (*profile_dump) (const char *)
    = (int (*) (const char *)) ptrs_symbol ("ptrs_profile_dump");
  CHECK (profile_dump != NULL);
  if (profile_dump != NULL)
    {
      errno = 777;
      CHECK (profile_dump ("/dev/full") == ENOSPC && errno == 777);
      errno = 777;
      CHECK (profile_dump ("/nonexistent-dir/x.heap") == ENOENT && errno == 777);
      errno = 777;
      CHECK (profile_dump (NULL) == EINVAL && errno == 777);
      errno = 777;
      CHECK (profile_dump ("/dev/null") == 0 && errno == 777);
    }
  CHECK (profile_stop () == 0);
  CHECK (bad == 0);
  return test_result ();
}
