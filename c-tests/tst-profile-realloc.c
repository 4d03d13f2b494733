/* A sampled block that realloc keeps in place (a huge block grown by
   mremap, a large block grown into the next slices, a small block within
   its size class) is reported with its new size: at rate 1 the leak
   report lists each of them with the size of its last realloc, not the
   size it was allocated with.  */
#include "test_helper.h"
#include <unistd.h>

static void *volatile keep[3];

int
main (void)
{
  require_ptrs ();
  int (*start) (size_t) = (int (*) (size_t)) ptrs_symbol ("ptrs_profile_start");
  int (*stop) (void) = (int (*) (void)) ptrs_symbol ("ptrs_profile_stop");
  int (*leak_report) (int) = (int (*) (int)) ptrs_symbol ("ptrs_leak_report");
  if (!start || !stop || !leak_report)
    FAIL_EXIT ("no profiler API");
  if (under_memcheck ())
    return EXIT_UNSUPPORTED; /* memcheck serves every block itself */
  CHECK (start (1) == 0);
  keep[0] = malloc (5 << 20);
  keep[0] = realloc (keep[0], 60 << 20);
  keep[1] = malloc (100000);
  keep[1] = realloc (keep[1], 200000);
  keep[2] = malloc (40);
  keep[2] = realloc (keep[2], 60);
  CHECK (keep[0] != NULL && keep[1] != NULL && keep[2] != NULL);
  CHECK (stop () == 0);
  FILE *r = tmpfile ();
  CHECK (r != NULL);
  if (r != NULL)
    {
      CHECK (leak_report (fileno (r)) > 0);
      rewind (r);
      static char text[1 << 16];
      size_t n = fread (text, 1, sizeof text - 1, r);
      text[n] = '\0';
      CHECK (strstr (text, " 62914560 bytes in 1 block\n") != NULL);
      CHECK (strstr (text, " 200000 bytes in 1 block\n") != NULL);
      CHECK (strstr (text, " 60 bytes in 1 block\n") != NULL);
      CHECK (strstr (text, " 5242880 bytes") == NULL);
      CHECK (strstr (text, " 100000 bytes") == NULL);
      if (test_failures)
        printf ("%s", text);
      fclose (r);
    }
  for (int i = 0; i < 3; i++)
    free (keep[i]);
  return test_result ();
}
