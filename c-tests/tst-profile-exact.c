/* The leak report calls its figures exact ("every allocation recorded")
   only when every allocation of the process was recorded: rate 1 from the
   start (PTRS_PROFILE_RATE=1 with PTRS_LEAK_REPORT or PTRS_PROFILE),
   never stopped nor changed.  A block allocated before ptrs_profile_start
   (1) or after ptrs_profile_stop is not in the report, which must then say
   that its figures are those of the blocks recorded.  Also the report's
   grammar ("1 block", "1 site"), and the error of a write to a full
   disk: ENOSPC from both ptrs_profile_dump and ptrs_leak_report (the dump
   returned EIO).  */
#include <fcntl.h>
#include "test_helper.h"
#include <unistd.h>

static void *volatile sink;

static const char *
report (int (*leak_report) (int))
{
  char path[] = "/tmp/tst-profile-exact-XXXXXX";
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
  fprintf (stderr, "%s", text);
  return text;
}

int
main (void)
{
  require_ptrs ();
  int (*start) (size_t) = (int (*) (size_t)) ptrs_symbol ("ptrs_profile_start");
  int (*stop) (void) = (int (*) (void)) ptrs_symbol ("ptrs_profile_stop");
  int (*leak_report) (int) = (int (*) (int)) ptrs_symbol ("ptrs_leak_report");
  if (start == NULL || stop == NULL || leak_report == NULL)
    FAIL_EXIT ("profiler API not found");

  char *early = malloc (100000);
  memset (early, 1, 100000);
  sink = early;
  CHECK (start (1) == 0);
  char *mid = malloc (777);
  sink = mid;
  const char *r = report (leak_report);
  CHECK (strstr (r, "777 bytes in 1 block still allocated, from 1 site (") != NULL);
  CHECK (strstr (r, "every allocation recorded") == NULL);
  CHECK (strstr (r, "from the blocks recorded") != NULL);

  CHECK (stop () == 0);
  sink = malloc (5555);
  r = report (leak_report);
  CHECK (strstr (r, "every allocation recorded") == NULL);
  CHECK (strstr (r, "from the blocks recorded") != NULL);

  free (mid);
  r = report (leak_report);
  CHECK (strstr (r, "no leaks among recorded blocks") != NULL);

  int (*dump) (const char *) = (int (*) (const char *)) ptrs_symbol ("ptrs_profile_dump");
  int full = open ("/dev/full", O_WRONLY);
  if (dump != NULL && full >= 0)
    {
      int e = dump ("/dev/full");
      CHECK (e == ENOSPC);
      errno = 0;
      CHECK (leak_report (full) == -1);
      CHECK (errno == ENOSPC);
      close (full);
    }
  return test_result ();
}
