/* ptrs: adapters linked (with -Wl,--wrap=SYMBOL) into a few glibc tests
   that lean on a glibc-only detail for something other than what they
   test; every other call goes to the real function unchanged.  Written
   for ptrs.

   mallopt: tst-malloc-thread-exit, tst-malloc-thread-fail and
   tst-malloc-fork-deadlock call mallopt (M_ARENA_MAX, n) only to configure
   glibc's arenas before their real work (threads exiting, allocation
   failure in threads, fork while other threads allocate) and give up if it
   returns 0.  ptrs has one heap per thread and no arenas: its mallopt
   returns 0 for M_ARENA_MAX and M_ARENA_TEST (README, "Where ptrs differs
   from glibc").  Here such a 0 counts as accepted.

   posix_memalign: tst-malloc-thread-fail reads the error of a failed
   posix_memalign from errno, which glibc's happens to set as a side effect
   (POSIX only specifies the returned error number; ptrs returns it and
   leaves errno alone).  Here a non-zero result is also stored in errno.  */
#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>

int __real_mallopt (int param, int value);
int __real_posix_memalign (void **memptr, size_t alignment, size_t size);

int
__wrap_mallopt (int param, int value)
{
  int ret = __real_mallopt (param, value);
  if (ret == 0 && (param == M_ARENA_MAX || param == M_ARENA_TEST))
    {
      printf ("info: mallopt (%s, %d) returned 0 (no arenas); "
              "treated as accepted\n",
              param == M_ARENA_MAX ? "M_ARENA_MAX" : "M_ARENA_TEST", value);
      fflush (stdout);
      return 1;
    }
  return ret;
}

int
__wrap_posix_memalign (void **memptr, size_t alignment, size_t size)
{
  int ret = __real_posix_memalign (memptr, alignment, size);
  if (ret != 0)
    errno = ret;
  return ret;
}
