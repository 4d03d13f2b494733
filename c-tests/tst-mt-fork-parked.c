/* fork while another thread takes statistics (which collect the heaps of
   exited threads, out of their pool meanwhile): each child must find the
   parked heaps of the 64 threads that exited, and a thread it starts must
   adopt one instead of making a new heap.  (A fork in the middle of the
   collection used to leave the child an empty pool: 45 of 300.)  */
/* TIMEOUT: 120 */
#include "test_helper.h"
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile int stop;

static void *
keeper (void *arg)
{
  (void) arg;
  for (int i = 0; i < 2000; i++)
    (void) !malloc (400); /* left allocated: the heap is parked with pages */
  return NULL;
}

static void *
stats_loop (void *arg)
{
  (void) arg;
  while (!stop)
    {
      struct mallinfo2 m = mallinfo2 ();
      (void) m;
    }
  return NULL;
}

static void *
touch (void *arg)
{
  (void) arg;
  free (malloc (100));
  return NULL;
}

/* The "heaps:" figure of malloc_stats (every heap ever made).  */
static long
heaps (void)
{
  char path[] = "/tmp/tst-mt-fork-parked-XXXXXX";
  int fd = mkstemp (path);
  if (fd < 0)
    return -1;
  int save = dup (2);
  dup2 (fd, 2);
  malloc_stats ();
  dup2 (save, 2);
  close (save);
  lseek (fd, 0, SEEK_SET);
  char buf[8192];
  ssize_t n = read (fd, buf, sizeof buf - 1);
  close (fd);
  unlink (path);
  if (n < 0)
    return -1;
  buf[n] = '\0';
  char *h = strstr (buf, "heaps: ");
  return h != NULL ? atol (h + 7) : -1;
}

int
main (void)
{
  require_ptrs ();
  if (under_memcheck ())
    return EXIT_UNSUPPORTED; /* memcheck mode: one shared heap, no parking */
  pthread_t t[64];
  for (int i = 0; i < 64; i++)
    pthread_create (&t[i], NULL, keeper, NULL);
  for (int i = 0; i < 64; i++)
    pthread_join (t[i], NULL);
  pthread_t s;
  pthread_create (&s, NULL, stats_loop, NULL);
  int lost = 0, bad = 0, n = 200;
  for (int k = 0; k < n; k++)
    {
      pid_t pid = fork ();
      if (pid == 0)
        {
          long before = heaps ();
          pthread_t c;
          pthread_create (&c, NULL, touch, NULL);
          pthread_join (c, NULL);
          long after = heaps ();
          _exit (before < 0 || after < 0 ? 2 : after > before ? 1 : 0);
        }
      int st = 0;
      waitpid (pid, &st, 0);
      if (WIFEXITED (st) && WEXITSTATUS (st) == 1)
        lost++;
      else if (!WIFEXITED (st) || WEXITSTATUS (st) != 0)
        bad++;
    }
  stop = 1;
  pthread_join (s, NULL);
  printf ("%d of %d children made a new heap, %d failed\n", lost, n, bad);
  CHECK (lost == 0);
  CHECK (bad == 0);
  return test_result ();
}
