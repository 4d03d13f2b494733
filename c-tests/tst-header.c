/* include/ptrs.h compiles as C next to <stdlib.h> and <malloc.h> with
 * -Wall -Wextra -Werror, twice (include guard), and declares ptrs_owns and
 * ptrs_version with the documented types. */
#include "test_helper.h"
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include "ptrs.h"
#include "ptrs.h"

#ifndef PTRS_H
#error "include/ptrs.h has no PTRS_H include guard"
#endif

/* The public header declares the ptrs API only: no internal constants with
 * generic names that would collide with the including program's. */
#if defined(IN_FULL) || defined(NO_BIN) || defined(FLAG_LARGE) ||             \
    defined(FLAG_HUGE) || defined(FLAG_ZERO) || defined(SEGMENT_SIZE) ||      \
    defined(SEGMENT_SHIFT) || defined(SEGMENT_MASK) || defined(SLICE_SIZE) || \
    defined(MIN_ALIGN) || defined(SMALL_MAX) || defined(BIN_COUNT) ||         \
    defined(DIRECT_MAX) || defined(OS_PAGE_SIZE) || defined(TF_FLAGS) ||      \
    defined(MAGIC_SHIFT) || defined(LARGE_MAX)
#error "include/ptrs.h leaks internal constants into the program's namespace"
#endif

_Static_assert(__builtin_types_compatible_p(__typeof__(ptrs_owns),
                                            int(const void *)),
               "ptrs_owns is int (const void *)");
_Static_assert(__builtin_types_compatible_p(__typeof__(ptrs_version),
                                            const char *(void)),
               "ptrs_version is const char * (void)");

int main(void) {
  require_ptrs();
  /* Look the functions up (not linked directly, so the preload build
   * works too) with the header's types. */
  __typeof__(ptrs_owns) *owns = (__typeof__(ptrs_owns) *)ptrs_symbol("ptrs_owns");
  __typeof__(ptrs_version) *version =
      (__typeof__(ptrs_version) *)ptrs_symbol("ptrs_version");
  CHECK(owns != NULL && version != NULL);
  if (owns && version) {
    void *p = malloc(10);
    CHECK(owns(p) == 1);
    free(p);
    CHECK(version() != NULL);
  }
  return test_result();
}
