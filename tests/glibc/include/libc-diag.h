/* ptrs: stand-in for glibc's internal <libc-diag.h>: macros that push, pop
   and silence compiler diagnostics around deliberate misuse in tests.
   Written for ptrs.  */
#ifndef PTRS_GLIBC_SHIM_LIBC_DIAG_H
#define PTRS_GLIBC_SHIM_LIBC_DIAG_H 1

#define PTRS_DIAG_PRAGMA(x) _Pragma (#x)
#define DIAG_PUSH_NEEDS_COMMENT PTRS_DIAG_PRAGMA (GCC diagnostic push)
#define DIAG_POP_NEEDS_COMMENT PTRS_DIAG_PRAGMA (GCC diagnostic pop)
#define DIAG_PUSH_NEEDS_COMMENT_CLANG
#define DIAG_POP_NEEDS_COMMENT_CLANG
/* The GCC version argument only says since when the warning exists.  */
#define DIAG_IGNORE_NEEDS_COMMENT(version, option) \
  PTRS_DIAG_PRAGMA (GCC diagnostic ignored option)
#define DIAG_IGNORE_Os_NEEDS_COMMENT(version, option) \
  DIAG_IGNORE_NEEDS_COMMENT (version, option)
#define DIAG_IGNORE_NEEDS_COMMENT_CLANG(version, option)

/* Evaluate X and drop its value without a warn_unused_result warning.  */
#define ignore_value(x) \
  ({ __typeof__ (x) ptrs_ignored_value_ = (x); (void) ptrs_ignored_value_; })

#endif
