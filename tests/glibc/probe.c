/* ptrs: does ptrs serve this process's malloc?  Exits 0 and prints "ptrs"
   if it does, 1 and prints "glibc" if not.  scripts/check-glibc.sh runs it
   under the same LD_PRELOAD as the glibc tests, so that a preload that
   silently did not happen cannot pass as a run under ptrs.  Written for
   ptrs.  */
#define _GNU_SOURCE 1
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

int
main (void)
{
  int (*owns) (const void *) = (int (*) (const void *)) dlsym (RTLD_DEFAULT,
                                                               "ptrs_owns");
  void *p = malloc (24);
  int served = owns != NULL && p != NULL && owns (p);
  free (p);
  puts (served ? "ptrs" : "glibc");
  return served ? 0 : 1;
}
