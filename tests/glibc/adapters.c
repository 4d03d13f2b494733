/* ptrs: the adapter linked (with -Wl,--wrap=SYMBOL) into the one glibc
   test that leans on a glibc-only detail for something other than what it
   tests; every other call goes to the real function unchanged.  Written
   for ptrs.

   posix_memalign: tst-malloc-thread-fail reads the error of a failed
   posix_memalign from errno, which glibc's happens to set as a side effect
   (POSIX only specifies the returned error number; ptrs returns it and
   leaves errno alone).  Here a non-zero result is also stored in errno.  */
#include <errno.h>
#include <stdlib.h>

int __real_posix_memalign (void **memptr, size_t alignment, size_t size);

int
__wrap_posix_memalign (void **memptr, size_t alignment, size_t size)
{
  int ret = __real_posix_memalign (memptr, alignment, size);
  if (ret != 0)
    errno = ret;
  return ret;
}
