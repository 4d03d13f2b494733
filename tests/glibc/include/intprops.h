/* ptrs: stand-in for the gnulib <intprops.h> that glibc keeps internally,
   with just the integer-range and overflow-checking macros the test-support
   library uses, built on GCC's overflow builtins.  Written for ptrs.  */
#ifndef PTRS_GLIBC_SHIM_INTPROPS_H
#define PTRS_GLIBC_SHIM_INTPROPS_H 1

#include <limits.h>

#define TYPE_IS_INTEGER(t) ((t) 1.5 == 1)
#define TYPE_SIGNED(t) (! ((t) 0 < (t) -1))
#define TYPE_WIDTH(t) (sizeof (t) * CHAR_BIT)
#define TYPE_MINIMUM(t) \
  ((t) (TYPE_SIGNED (t) ? ~ (t) 0 << (TYPE_WIDTH (t) - 1) : (t) 0))
#define TYPE_MAXIMUM(t) \
  ((t) (TYPE_SIGNED (t) \
        ? ((((t) 1 << (TYPE_WIDTH (t) - 2)) - 1) * 2 + 1) \
        : ~ (t) 0))

/* Decimal digits (plus a sign) enough for any value of type T; the +1 of
   the _BUFSIZE_ variant is the terminating NUL.  146/485 > log10(2).  */
#define INT_STRLEN_BOUND(t) \
  ((TYPE_WIDTH (t) - TYPE_SIGNED (t)) * 146 / 485 + 1 + TYPE_SIGNED (t))
#define INT_BUFSIZE_BOUND(t) (INT_STRLEN_BOUND (t) + 1)

/* Store A op B, wrapped, in *R; yield true on overflow.  */
#define INT_ADD_WRAPV(a, b, r) __builtin_add_overflow (a, b, r)
#define INT_SUBTRACT_WRAPV(a, b, r) __builtin_sub_overflow (a, b, r)
#define INT_MULTIPLY_WRAPV(a, b, r) __builtin_mul_overflow (a, b, r)
#define INT_ADD_OVERFLOW(a, b) \
  __builtin_add_overflow_p (a, b, (__typeof__ ((a) + (b))) 0)
#define INT_SUBTRACT_OVERFLOW(a, b) \
  __builtin_sub_overflow_p (a, b, (__typeof__ ((a) - (b))) 0)
#define INT_MULTIPLY_OVERFLOW(a, b) \
  __builtin_mul_overflow_p (a, b, (__typeof__ ((a) * (b))) 0)

#endif
