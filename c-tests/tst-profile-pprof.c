/* Known-answer test of the heap profiler: three functions keep 64, 32 and
   16 MiB live in blocks of 64 B to 64 KiB; with PTRS_PROFILE_RATE=16384 the
   profile written by ptrs_profile_dump, read by google-pprof --text, must
   attribute to each within 10 % of the truth.  Skips (77) without
   google-pprof.
   With PROFILE_TEST_RATE=N in the environment (0: the default rate) it
   samples at that rate and only prints the estimates, without checking
   them: scripts/profile-accuracy.sh runs it so, repeatedly, to check that
   the estimates are unbiased (their mean over many runs).  */
/* TIMEOUT: 300 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "test_helper.h"

/* The ptrs API through dlsym, so that the test also runs preloaded.  */
static int (*profile_start) (size_t);
static int (*profile_stop) (void);
static int (*profile_dump) (const char *);

#define TEST_VERIFY(e) CHECK (e)
#define TEST_VERIFY_EXIT(e) do { if (!(e)) FAIL_EXIT ("%s:%d: %s", __FILE__, __LINE__, #e); } while (0)

static void *keep[1 << 20];
static size_t nkeep;

static unsigned long long rng = 88172645463325252ULL;
static size_t
rand_size (void)
{
  rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
  /* Log-uniform sizes from 64 B to 64 KiB.  */
  int shift = 6 + (int) (rng % 11);
  size_t lo = (size_t) 1 << shift;
  return lo + (size_t) ((rng >> 20) % lo);
}

static void
fill (size_t total)
{
  size_t got = 0;
  while (got < total)
    {
      size_t s = rand_size ();
      if (s > 65536) s = 65536;
      if (got + s > total) s = total - got < 64 ? 64 : total - got;
      char *p = malloc (s);
      TEST_VERIFY_EXIT (p != NULL);
      p[0] = 1;
      keep[nkeep++] = p;
      got += s;
      /* Some churn that is freed again: must not count as in use.  */
      free (malloc (s));
    }
}

__attribute__ ((noinline)) void keeps_64 (void) { fill (64u << 20); }
__attribute__ ((noinline)) void keeps_32 (void) { fill (32u << 20); }
__attribute__ ((noinline)) void keeps_16 (void) { fill (16u << 20); }

static double
parse (const char *out, const char *fn)
{
  /* google-pprof --text lines: "  flat  flat%  sum%  cum  cum%  name",
     in MB; the cumulative column is the one for the function.  */
  const char *line = out;
  while (line && *line)
    {
      const char *end = strchr (line, '\n');
      size_t len = end ? (size_t) (end - line) : strlen (line);
      char buf[512];
      if (len >= sizeof buf) len = sizeof buf - 1;
      memcpy (buf, line, len);
      buf[len] = 0;
      if (strstr (buf, fn))
        {
          double flat, cum;
          if (sscanf (buf, " %lf %*f%% %*f%% %lf", &flat, &cum) == 2)
            return cum;
        }
      line = end ? end + 1 : NULL;
    }
  return -1;
}

int
main (void)
{
  require_ptrs ();
  profile_start = (int (*) (size_t)) ptrs_symbol ("ptrs_profile_start");
  profile_stop = (int (*) (void)) ptrs_symbol ("ptrs_profile_stop");
  profile_dump = (int (*) (const char *)) ptrs_symbol ("ptrs_profile_dump");
  TEST_VERIFY_EXIT (profile_start && profile_stop && profile_dump);
  if (system ("command -v google-pprof >/dev/null 2>&1") != 0)
    {
      printf ("google-pprof not installed (Debian package google-perftools)\n");
      return 77;
    }
  const char *rate_env = getenv ("PROFILE_TEST_RATE");
  size_t rate = rate_env ? strtoul (rate_env, NULL, 10) : 16384;
  TEST_VERIFY_EXIT (profile_start (rate) == 0);
  keeps_64 ();
  keeps_32 ();
  keeps_16 ();
  char path[64];
  snprintf (path, sizeof path, "/tmp/tst-profile-%d.heap", (int) getpid ());
  TEST_VERIFY_EXIT (profile_dump (path) == 0);
  TEST_VERIFY (profile_dump (NULL) == EINVAL);
  TEST_VERIFY (profile_dump ("/nonexistent-dir/x.heap") == ENOENT);
  TEST_VERIFY_EXIT (profile_stop () == 0);

  char cmd[512];
  char exe[256];
  test_self_exe (exe, sizeof exe);
  snprintf (cmd, sizeof cmd, "google-pprof --text --inuse_space %s %s 2>/dev/null", exe, path);
  FILE *f = popen (cmd, "r");
  TEST_VERIFY_EXIT (f != NULL);
  static char out[1 << 16];
  size_t len = fread (out, 1, sizeof out - 1, f);
  out[len] = 0;
  pclose (f);
  printf ("%s", out);
  double m64 = parse (out, "keeps_64"), m32 = parse (out, "keeps_32"), m16 = parse (out, "keeps_16");
  printf ("keeps_64 %.1f MB, keeps_32 %.1f MB, keeps_16 %.1f MB\n", m64, m32, m16);
  if (rate_env == NULL)
    {
      TEST_VERIFY (m64 > 64 * 0.9 && m64 < 64 * 1.1);
      TEST_VERIFY (m32 > 32 * 0.9 && m32 < 32 * 1.1);
      TEST_VERIFY (m16 > 16 * 0.9 && m16 < 16 * 1.1);
    }
  unlink (path);
  for (size_t i = 0; i < nkeep; i++)
    free (keep[i]);
  return test_result ();
}
