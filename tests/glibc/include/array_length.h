/* ptrs: stand-in for glibc's internal <array_length.h>.  Written for ptrs.  */
#ifndef PTRS_GLIBC_SHIM_ARRAY_LENGTH_H
#define PTRS_GLIBC_SHIM_ARRAY_LENGTH_H 1

/* Element count of a true array; rejects pointers at compile time.  */
#define array_length(arr)                                               \
  (sizeof (arr) / sizeof ((arr)[0])                                     \
   + 0 * sizeof (struct {                                               \
       int ptrs_not_an_array_ : 1 - 2 * __builtin_types_compatible_p (  \
         __typeof__ (arr), __typeof__ (&(arr)[0])); }))
#define array_end(arr) (&(arr)[array_length (arr)])

#endif
