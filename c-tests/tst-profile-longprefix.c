/* A PTRS_PROFILE prefix of any length up to PATH_MAX is written at exit
   (one over about 490 bytes silently wrote nothing), and one too long for
   PATH_MAX gives the usual "could not write" line naming ENAMETOOLONG.
   An empty PTRS_PROFILE is as if unset: no profile is written.
   The test re-runs itself as the program.  */
#include "test_helper.h"
#include <dirent.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static void *volatile sink;

static int
run (const char *prefix, char *out, size_t outlen)
{
  static char cmd[12000];
  char exe[512];
  test_self_exe (exe, sizeof exe);
  snprintf (cmd, sizeof cmd, "env PTRS_PROFILE='%s' %s --child 2>&1", prefix, exe);
  FILE *f = popen (cmd, "r");
  if (!f)
    FAIL_EXIT ("popen");
  size_t len = fread (out, 1, outlen - 1, f);
  out[len] = 0;
  int st = pclose (f);
  return WIFEXITED (st) ? WEXITSTATUS (st) : 128;
}

int
main (int argc, char **argv __attribute__ ((unused)))
{
  if (argc > 1)
    {
      for (int i = 0; i < 100; i++)
        sink = malloc (1000);
      return 3;
    }
  require_ptrs ();
  /* A directory 4 levels of 200-character names deep: ~830 bytes.  */
  static char dir[4096];
  snprintf (dir, sizeof dir, "/tmp/tst-profile-longprefix-XXXXXX");
  if (mkdtemp (dir) == NULL)
    FAIL_EXIT ("mkdtemp");
  char top[64];
  snprintf (top, sizeof top, "%s", dir);
  char comp[201];
  memset (comp, 'd', 200);
  comp[200] = 0;
  for (int i = 0; i < 4; i++)
    {
      strcat (dir, "/");
      strcat (dir, comp);
      if (mkdir (dir, 0700) != 0)
        FAIL_EXIT ("mkdir");
    }
  static char prefix[8192], out[1 << 14];
  snprintf (prefix, sizeof prefix, "%s/prof", dir);
  fprintf (stderr, "prefix of %zu bytes\n", strlen (prefix));
  int st = run (prefix, out, sizeof out);
  fprintf (stderr, "--- status %d:\n%s", st, out);
  CHECK (st == 3);
  CHECK (strstr (out, "could not write") == NULL);
  int found = 0;
  DIR *d = opendir (dir);
  struct dirent *e;
  while (d != NULL && (e = readdir (d)) != NULL)
    if (strncmp (e->d_name, "prof.", 5) == 0 && strstr (e->d_name, ".heap") != NULL)
      {
        found++;
        char path[8192];
        snprintf (path, sizeof path, "%s/%s", dir, e->d_name);
        FILE *f = fopen (path, "r");
        char head[32] = "";
        CHECK (f != NULL && fgets (head, sizeof head, f) != NULL);
        CHECK (strncmp (head, "heap profile:", 13) == 0);
        if (f)
          fclose (f);
        unlink (path);
      }
  if (d)
    closedir (d);
  CHECK (found == 1);

  /* Longer than PATH_MAX: not written, and said so.  */
  size_t len = strlen (dir);
  memcpy (prefix, dir, len);
  for (; len < 4200; len += 2)
    memcpy (prefix + len, "/.", 2);
  prefix[len] = 0;
  st = run (prefix, out, sizeof out);
  fprintf (stderr, "--- status %d:\n%.300s...\n", st, out);
  CHECK (st == 3);
  CHECK (strstr (out, "ptrs: could not write the heap profile ") != NULL);
  CHECK (strstr (out, "ENAMETOOLONG") != NULL);

  /* Empty: no profile at all (run in the deepest directory, now empty).  */
  char cwd[4096];
  CHECK (getcwd (cwd, sizeof cwd) != NULL);
  CHECK (chdir (dir) == 0);
  st = run ("", out, sizeof out);
  CHECK (st == 3);
  CHECK (out[0] == 0);
  int heaps = 0;
  d = opendir (".");
  while (d != NULL && (e = readdir (d)) != NULL)
    if (strstr (e->d_name, ".heap") != NULL)
      {
        heaps++;
        unlink (e->d_name);
      }
  if (d)
    closedir (d);
  CHECK (heaps == 0);
  CHECK (chdir (cwd) == 0);

  for (int i = 0; i < 4; i++)
    {
      rmdir (dir);
      *strrchr (dir, '/') = 0;
    }
  rmdir (top);
  return test_result ();
}
