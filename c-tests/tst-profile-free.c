/* Every free of a sampled block reaches the heap profiler, whichever
   thread frees it and wherever the block lives: small blocks (the
   profiler's own heap), blocks above 2 KiB (large spans of the thread's
   heap, marked as sampled), large and huge blocks.  At rate 1 every
   allocation is sampled, so after the blocks of each size are allocated
   the profile counts exactly them as in use, and after they are freed
   (half by the allocating thread, half by another thread, some after a
   realloc) it counts none.  The allocating thread frees with free_sized
   and the request's size, which must be accepted for a sampled block as
   for any other, although a small sampled block sits in a block rounded
   up to a power of two.  Sampled aligned blocks keep their alignment.  */
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "test_helper.h"

static int (*profile_start) (size_t);
static int (*profile_stop) (void);
static int (*profile_dump) (const char *);

#define N 64
static const size_t sizes[] = { 48, 1000, 3000, 20000, 100000, 1 << 20, 3 << 20 };
#define NSIZES (sizeof sizes / sizeof sizes[0])
static void *blocks[NSIZES][N];
static size_t block_size[NSIZES][N];

/* The profile's in-use count and bytes (header line, raw: rate 1).  */
static void
inuse (long *count, double *bytes)
{
  char path[64];
  snprintf (path, sizeof path, "/tmp/tst-profile-free-%d.heap", (int) getpid ());
  if (profile_dump (path) != 0)
    FAIL_EXIT ("ptrs_profile_dump failed");
  FILE *f = fopen (path, "r");
  char line[512];
  long ac;
  double ab;
  unsigned rate;
  if (f == NULL || fgets (line, sizeof line, f) == NULL
      || sscanf (line, "heap profile: %ld: %lf [%ld: %lf] @ heap_v2/%u", count, bytes, &ac, &ab, &rate) != 5)
    FAIL_EXIT ("cannot read %s", path);
  fclose (f);
  unlink (path);
}

static void *
free_odd (void *arg)
{
  (void) arg;
  for (size_t s = 0; s < NSIZES; s++)
    for (int i = 1; i < N; i += 2)
      free (blocks[s][i]);
  return NULL;
}

int
main (void)
{
  require_ptrs ();
  profile_start = (int (*) (size_t)) ptrs_symbol ("ptrs_profile_start");
  profile_stop = (int (*) (void)) ptrs_symbol ("ptrs_profile_stop");
  profile_dump = (int (*) (const char *)) ptrs_symbol ("ptrs_profile_dump");
  if (!(profile_start && profile_stop && profile_dump))
    FAIL_EXIT ("ptrs_profile_* not found");
  if (under_memcheck ())
    return EXIT_UNSUPPORTED;   /* memcheck serves every block itself */

  long c0, c1, c2;
  double b0, b1, b2;
  inuse (&c0, &b0);
  CHECK (profile_start (1) == 0);
  double want = 0;
  for (size_t s = 0; s < NSIZES; s++)
    for (int i = 0; i < N; i++)
      {
        blocks[s][i] = malloc (sizes[s]);
        if (blocks[s][i] == NULL)
          FAIL_EXIT ("malloc (%zu)", sizes[s]);
        memset (blocks[s][i], 0x5a, sizes[s]);
        block_size[s][i] = sizes[s];
        want += sizes[s];
      }
  /* Some blocks move or change size in place.  */
  for (size_t s = 0; s < NSIZES; s++)
    for (int i = 0; i < N; i += 8)
      {
        void *q = realloc (blocks[s][i], sizes[s] * 2);
        if (q == NULL)
          FAIL_EXIT ("realloc");
        blocks[s][i] = q;
        block_size[s][i] = sizes[s] * 2;
      }
  /* A sampled block keeps the alignment asked for (large and huge).  */
  static const size_t aligns[] = { 4096, 32768, 65536, 1 << 20 };
  static const size_t asizes[] = { 100000, 3 << 20 };
  for (size_t a = 0; a < sizeof aligns / sizeof aligns[0]; a++)
    for (size_t z = 0; z < sizeof asizes / sizeof asizes[0]; z++)
      {
        void *q = memalign (aligns[a], asizes[z]);
        if (q == NULL)
          FAIL_EXIT ("memalign");
        if ((uintptr_t) q % aligns[a] != 0)
          {
            fprintf (stderr, "memalign (%zu, %zu) = %p\n", aligns[a], asizes[z], q);
            CHECK ((uintptr_t) q % aligns[a] == 0);
          }
        memset (q, 1, asizes[z]);
        free (q);
      }
  CHECK (profile_stop () == 0);   /* the dumps below allocate */
  inuse (&c1, &b1);
  printf ("in use with the blocks: %ld blocks, %.0f bytes (before: %ld, %.0f)\n", c1, b1, c0, b0);
  CHECK (c1 - c0 >= (long) (NSIZES * N));
  CHECK (b1 - b0 >= want);

  pthread_t t;
  if (pthread_create (&t, NULL, free_odd, NULL) != 0)
    FAIL_EXIT ("pthread_create");
  void (*free_sized) (void *, size_t) = (void (*) (void *, size_t)) ptrs_symbol ("free_sized");
  if (free_sized == NULL)
    FAIL_EXIT ("free_sized not found");
  for (size_t s = 0; s < NSIZES; s++)
    for (int i = 0; i < N; i += 2)
      free_sized (blocks[s][i], block_size[s][i]);
  pthread_join (t, NULL);
  inuse (&c2, &b2);
  printf ("in use after the frees: %ld blocks, %.0f bytes\n", c2, b2);
  /* What may remain is what this program allocated otherwise while the
     profiler was on (none of it here) and the stdio buffers of the dumps,
     which ran after the stop: nothing of the blocks.  */
  CHECK (b2 < b0 + 4096 && c2 <= c0 + 2);
  return test_result ();
}
