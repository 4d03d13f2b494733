/* A request far beyond the machine's memory fails as under glibc: NULL
   with errno ENOMEM (posix_memalign: ENOMEM returned), where the kernel's
   overcommit policy refuses it (the default heuristic, or strict
   accounting).  ptrs maps its memory with MAP_NORESERVE, which the
   heuristic does not check: malloc of 64 GiB to 64 TiB succeeded on a
   23 GiB machine without swap (a fresh tester), and the program was
   killed when it touched the memory; huge blocks now check the cap
   themselves (src/os.rs, overcommit_cap).  Skipped (77) where the policy is to
   always overcommit (vm.overcommit_memory = 1), as glibc then succeeds
   too.  */
#include "test_helper.h"
#include <sys/sysinfo.h>

int
main (void)
{
#ifndef NO_PTRS
  require_ptrs ();
#endif
  FILE *f = fopen ("/proc/sys/vm/overcommit_memory", "r");
  int mode = -1;
  if (f == NULL || fscanf (f, "%d", &mode) != 1)
    {
      printf ("cannot read vm.overcommit_memory: skipped\n");
      return 77;
    }
  fclose (f);
  if (mode == 1)
    {
      printf ("vm.overcommit_memory = 1 (always overcommit): skipped\n");
      return 77;
    }
  struct sysinfo si;
  CHECK (sysinfo (&si) == 0);
  unsigned long long total = ((unsigned long long) si.totalram + si.totalswap) * si.mem_unit;
  /* Four times RAM and swap, at least 64 GiB, within the 128 TiB of the
     address space.  */
  unsigned long long n = total * 4;
  if (n < (1ULL << 36))
    n = 1ULL << 36;
  if (n > (1ULL << 46))
    FAIL_EXIT ("this machine has more memory than the test can exceed");
  printf ("memory and swap: %llu MiB; asking for %llu MiB\n", total >> 20, n >> 20);
  errno = 0;
  CHECK (malloc (n) == NULL && errno == ENOMEM);
  errno = 0;
  CHECK (calloc (1, n) == NULL && errno == ENOMEM);
  void *small = malloc (100);
  CHECK (small != NULL);
  errno = 0;
  CHECK (realloc (small, n) == NULL && errno == ENOMEM);
  free (small);
  /* A huge block grown past it (mremap): refused, the block kept.  */
  char *big = malloc (64 << 20);
  CHECK (big != NULL);
  if (big != NULL)
    {
      big[0] = 1;
      big[(64 << 20) - 1] = 2;
      errno = 0;
      CHECK (realloc (big, n) == NULL && errno == ENOMEM);
      CHECK (big[0] == 1 && big[(64 << 20) - 1] == 2);
      free (big);
    }
  void *p = (void *) 1;
  CHECK (posix_memalign (&p, 4096, n) == ENOMEM);
  errno = 0;
  CHECK (aligned_alloc (1 << 20, n) == NULL && errno == ENOMEM);
  return test_result ();
}
