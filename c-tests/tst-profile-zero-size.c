/* A profile of a program that calls malloc(0) with every allocation
   recorded (rate 1) must be readable by google-pprof. ptrs wrote the
   zero-byte blocks as "1: 0 [1: 0]", and google-pprof, which scales every
   line by 1 / (1 - exp(-bytes / blocks / rate)), died with "Illegal
   division by zero" (a fresh tester). Zero-byte blocks are left out of
   the profile, as Go's pprof leaves them out; the other lines stay, so
   the 100 000 bytes keeps_some keeps are in it. */
#include "test_helper.h"

static void *volatile sink[8];

__attribute__ ((noinline)) static void
zero_sized (void)
{
  for (int i = 0; i < 4; i++)
    sink[i] = malloc (0);
  sink[4] = realloc (NULL, 0);
}

__attribute__ ((noinline)) static void
keeps_some (void)
{
  sink[5] = malloc (100000);
}

int
main (void)
{
  require_ptrs ();
  int (*start) (size_t) = (int (*) (size_t)) ptrs_symbol ("ptrs_profile_start");
  int (*dump) (const char *) = (int (*) (const char *)) ptrs_symbol ("ptrs_profile_dump");
  if (start == NULL || dump == NULL)
    FAIL_EXIT ("ptrs_profile_start or ptrs_profile_dump not found");
  if (system ("command -v google-pprof >/dev/null 2>&1") != 0)
    {
      printf ("google-pprof not installed (Debian package google-perftools)\n");
      return EXIT_UNSUPPORTED;
    }
  if (start (1) != 0)
    FAIL_EXIT ("ptrs_profile_start(1) failed");
  zero_sized ();
  keeps_some ();
  char path[64];
  snprintf (path, sizeof path, "/tmp/tst-profile-zero-%d.heap", (int) getpid ());
  if (dump (path) != 0)
    FAIL_EXIT ("ptrs_profile_dump failed");

  char exe[256], cmd[600];
  test_self_exe (exe, sizeof exe);
  snprintf (cmd, sizeof cmd, "google-pprof --text --inuse_space %s %s 2>&1", exe, path);
  FILE *f = popen (cmd, "r");
  if (f == NULL)
    FAIL_EXIT ("popen: %s", strerror (errno));
  static char out[1 << 16];
  size_t len = fread (out, 1, sizeof out - 1, f);
  out[len] = 0;
  int status = pclose (f);
  printf ("%s", out);
  CHECK (WIFEXITED (status) && WEXITSTATUS (status) == 0);
  CHECK (strstr (out, "division by zero") == NULL);
  CHECK (strstr (out, "keeps_some") != NULL);
  unlink (path);
  for (int i = 0; i < 8; i++)
    free (sink[i]);
  return test_result ();
}
