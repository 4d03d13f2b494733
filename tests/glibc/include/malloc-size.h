/* ptrs: stand-in for glibc's internal <malloc-size.h>: the alignment every
   malloc result must have.  On x86_64 that is 16 bytes, which is also what
   ptrs guarantees.  Written for ptrs.  */
#ifndef PTRS_GLIBC_SHIM_MALLOC_SIZE_H
#define PTRS_GLIBC_SHIM_MALLOC_SIZE_H 1

#include <stddef.h>

#define INTERNAL_SIZE_T size_t
#define SIZE_SZ (sizeof (INTERNAL_SIZE_T))
#define MALLOC_ALIGNMENT 16
#define MALLOC_ALIGN_MASK (MALLOC_ALIGNMENT - 1)

#endif
