/* mtrace with threads and fork: two threads allocate and free while the
   main thread forks (each child stops tracing, which takes the trace's
   lock, and allocates), all traced.  No child may hang (the trace's lock
   is held across fork), and the trace must
   replay: every "+ addr" names an address not live at that point and
   every "- addr" one that is, in file order (a free is logged before its
   block can be handed out again).  Blocks left allocated while only
   tracing are not reported as sampled leaks.  */
/* TIMEOUT: 120 */
#include "test_helper.h"
#include <mcheck.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile int stop;

static void *
churn (void *arg)
{
  size_t base = (size_t) (uintptr_t) arg;
  while (!stop)
    {
      void *p[8];
      for (int i = 0; i < 8; i++)
        p[i] = malloc (base + (size_t) i * 8);
      for (int i = 0; i < 8; i++)
        free (p[i]);
    }
  return NULL;
}

/* A small open-addressing set of live addresses.  */
#define SET_BITS 20
static uintptr_t set[1 << SET_BITS];

static uintptr_t *
slot (uintptr_t a)
{
  size_t i = (size_t) ((a * 0x9e3779b97f4a7c15ull) >> (64 - SET_BITS));
  while (set[i] != 0 && set[i] != a)
    i = (i + 1) & ((1u << SET_BITS) - 1);
  return &set[i];
}

static void
unset (uintptr_t a)
{
  uintptr_t *s = slot (a);
  *s = 0;
  /* Re-insert the cluster after the hole.  */
  size_t i = (size_t) (s - set);
  for (;;)
    {
      i = (i + 1) & ((1u << SET_BITS) - 1);
      uintptr_t v = set[i];
      if (v == 0)
        break;
      set[i] = 0;
      *slot (v) = v;
    }
}

int
main (void)
{
  require_ptrs ();
  char path[64];
  snprintf (path, sizeof path, "/tmp/tst-mtrace-mt-%d.trace", (int) getpid ());
  setenv ("MALLOC_TRACE", path, 1);
  mtrace ();
  pthread_t t[2];
  for (int i = 0; i < 2; i++)
    pthread_create (&t[i], NULL, churn, (void *) (uintptr_t) (16 + i * 24));
  int hung = 0, bad = 0;
  for (int k = 0; k < 100 && !hung; k++)
    {
      pid_t pid = fork ();
      if (pid == 0)
        {
          /* Stop tracing first (it takes the trace's lock), so that the
             child's own lines do not mix with the parent's in the file
             they share.  */
          muntrace ();
          free (malloc (32));
          _exit (0);
        }
      int status = 0, waited = 0;
      while (waitpid (pid, &status, WNOHANG) == 0)
        {
          if (++waited > 5000) /* 5 s */
            {
              kill (pid, SIGKILL);
              waitpid (pid, &status, 0);
              hung = 1;
              break;
            }
          usleep (1000);
        }
      if (!hung && !(WIFEXITED (status) && WEXITSTATUS (status) == 0))
        bad++;
    }
  stop = 1;
  for (int i = 0; i < 2; i++)
    pthread_join (t[i], NULL);
  /* Blocks left allocated while tracing, with the sampler off: mtrace
     records every block, but none is a sample, so the leak report must
     not scale them up as samples (it claimed 8 million blocks for
     these).  */
  static void *kept[1000];
  for (int i = 0; i < 1000; i++)
    kept[i] = malloc (64);
  muntrace ();
  int (*leak_report) (int) = (int (*) (int)) ptrs_symbol ("ptrs_leak_report");
  CHECK (leak_report != NULL);
  if (leak_report != NULL)
    {
      FILE *r = tmpfile ();
      CHECK (r != NULL);
      if (r != NULL)
        {
          CHECK (leak_report (fileno (r)) == 0);
          rewind (r);
          char text[4096];
          size_t n = fread (text, 1, sizeof text - 1, r);
          text[n] = '\0';
          if (strstr (text, "no leaks") == NULL)
            printf ("leak report while only tracing:\n%s\n", text);
          CHECK (strstr (text, "no leaks") != NULL);
          fclose (r);
        }
    }
  for (int i = 0; i < 1000; i++)
    free (kept[i]);
  CHECK (hung == 0);
  CHECK (bad == 0);

  /* Replay the trace (the children only wrote "= End").  */
  FILE *f = fopen (path, "r");
  CHECK (f != NULL);
  long lines = 0, dup_alloc = 0, unknown_free = 0;
  if (f != NULL)
    {
      char line[512];
      while (fgets (line, sizeof line, f) != NULL)
        {
          /* "[@ caller ]+ 0xADDR 0xSIZE" or "[@ caller ]- 0xADDR".  */
          char *op = NULL;
          int plus = 0;
          for (char *c = line; *c != '\0'; c++)
            if ((c == line || c[-1] == ' ') && (c[0] == '+' || c[0] == '-')
                && c[1] == ' ' && c[2] == '0' && c[3] == 'x')
              {
                op = c + 2;
                plus = c[0] == '+';
                break;
              }
          if (op == NULL)
            continue;
          uintptr_t a = (uintptr_t) strtoull (op, NULL, 16);
          uintptr_t *s = slot (a);
          if (plus)
            {
              if (*s == a)
                dup_alloc++;
              *s = a;
            }
          else if (*s != a)
            unknown_free++;
          else
            unset (a);
          lines++;
        }
      fclose (f);
    }
  unlink (path);
  printf ("%ld lines, %ld allocations of a live address, %ld frees of an unknown one\n",
          lines, dup_alloc, unknown_free);
  CHECK (lines > 1000);
  CHECK (dup_alloc == 0);
  CHECK (unknown_free == 0);
  return test_result ();
}
