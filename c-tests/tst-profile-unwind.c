/* The profiler's caching unwinder against libgcc's: every allocation is
   sampled (rate 1) with PTRS_PROFILE_UNWIND_CHECK=1, which makes ptrs take
   each stack with both unwinders and abort on any difference.  Stacks of
   many depths (beyond the 48 frames kept, too), code of libraries loaded,
   unloaded and loaded again (libz, libbz2, at whatever addresses the loader
   picks, so rules cached for one may meet the other), allocations in a
   signal handler (a signal frame: the capture falls back to libgcc), and
   threads.  */
/* ENV: PTRS_PROFILE_UNWIND_CHECK=1 */
/* TIMEOUT: 120 */
#include "test_helper.h"
#include <pthread.h>
#include <signal.h>

static volatile long sink;
static volatile long early_value = 7;

__attribute__ ((noinline)) static void
allocate_at (int depth)
{
  if (depth > 0)
    {
      allocate_at (depth - 1);
      sink++;
      return;
    }
  void *p = malloc (24);
  void *q = calloc (3, 40);
  p = realloc (p, 300);
  free (q);
  free (p);
}

/* An early return in the middle of the function: its epilogue is
   surrounded by DW_CFA_remember_state / DW_CFA_restore_state, and the
   allocation after it needs the restored rule.  */
__attribute__ ((noinline)) static long
early_exit (long a, long b, long c)
{
  long x = a * b, y = b * c, z = a * c;
  if (a == early_value)
    return x + y;
  sink += x;
  allocate_at ((int) (a & 3));
  sink += y;
  allocate_at (1);
  return x + y + z;
}

/* A frame addressed through rbp (a variable-length array): CFA = rbp + 16,
   rbp saved at CFA - 16.  */
__attribute__ ((noinline)) static int
with_vla (int n)
{
  char buf[n];
  memset (buf, n, n);
  /* early_exit keeps a value in rbp: stepping through it must restore
     rbp from its save slot before this frame's CFA is computed.  */
  sink += early_exit (n, 2, 3);
  return buf[n / 2];
}

/* Calls into a library that allocates with malloc (through the default
   zalloc of zlib and bzalloc of libbz2).  */
static void
use_library (const char *name, const char *init, const char *end)
{
  void *h = dlopen (name, RTLD_NOW | RTLD_LOCAL);
  if (h == NULL)
    return;
  char stream[512] __attribute__ ((aligned (16)));
  memset (stream, 0, sizeof stream);
  if (strcmp (name, "libz.so.1") == 0)
    {
      int (*fn) (void *, int, const char *, int) = dlsym (h, init);
      int (*fe) (void *) = dlsym (h, end);
      const char *(*ver) (void) = dlsym (h, "zlibVersion");
      if (fn && fe && ver && fn (stream, 6, ver (), 112) == 0)
        fe (stream);
    }
  else
    {
      int (*fn) (void *, int, int, int) = dlsym (h, init);
      int (*fe) (void *) = dlsym (h, end);
      if (fn && fe && fn (stream, 9, 0, 0) == 0)
        fe (stream);
    }
  dlclose (h);
}

static void
handler (int sig)
{
  (void) sig;
  allocate_at (3);
}

static void *
thread_main (void *arg)
{
  for (int i = 0; i < 2000; i++)
    allocate_at ((int) (long) arg + i % 7);
  return NULL;
}

int
main (void)
{
  require_ptrs ();
  int (*start) (size_t) = (int (*) (size_t)) ptrs_symbol ("ptrs_profile_start");
  if (!start)
    FAIL_EXIT ("no profiler API");
  CHECK (start (1) == 0);
  for (int d = 0; d < 64; d++)
    for (int i = 0; i < 20; i++)
      allocate_at (d);
  for (int i = 0; i < 100; i++)
    {
      sink += with_vla (16 + i);
      sink += early_exit (i, i + 1, i + 2);
    }
  for (int i = 0; i < 50; i++)
    {
      use_library ("libz.so.1", "deflateInit_", "deflateEnd");
      use_library ("libbz2.so.1.0", "BZ2_bzCompressInit", "BZ2_bzCompressEnd");
    }
  signal (SIGUSR1, handler);
  for (int i = 0; i < 100; i++)
    raise (SIGUSR1);
  pthread_t t[2];
  for (int i = 0; i < 2; i++)
    pthread_create (&t[i], NULL, thread_main, (void *) (long) (i * 10));
  for (int i = 0; i < 2; i++)
    pthread_join (t[i], NULL);
  return test_result ();
}
