/* ptrs: stand-in for glibc's internal <libc-symbols.h>, force-included
   (-include) into every file of the glibc malloc test build, as glibc's
   own build does with the real one.  The tests are built as ordinary
   programs against the installed glibc, so the symbol-visibility and
   aliasing machinery of a libc build reduces to nothing here.  Written for
   ptrs; it contains no glibc code.  */
#ifndef PTRS_GLIBC_SHIM_LIBC_SYMBOLS_H
#define PTRS_GLIBC_SHIM_LIBC_SYMBOLS_H 1

#ifndef _GNU_SOURCE
# define _GNU_SOURCE 1
#endif

#include <config.h>
#include <limits.h>

/* Module tests: these programs are "testsuite" programs, never libc.  */
#define IS_IN(lib) 0
#define IS_IN_LIB 0

#define attribute_hidden
#define attribute_relro
#define attribute_tls_model_ie
#define internal_function

/* Visibility/alias macros become no-ops: the symbols live in the installed
   libc.so (for GLIBC_PRIVATE ones) or in the test program itself.  */
#define libc_hidden_proto(name, ...)
#define libc_hidden_def(name)
#define libc_hidden_weak(name)
#define libc_hidden_ver(local, name)
#define libc_hidden_data_def(name)
#define hidden_proto(name, ...)
#define hidden_def(name)
#define hidden_weak(name)
#define rtld_hidden_proto(name, ...)
#define rtld_hidden_def(name)

#define strong_alias(name, aliasname) \
  extern __typeof (name) aliasname __attribute__ ((alias (#name)));
#define weak_alias(name, aliasname) \
  extern __typeof (name) aliasname __attribute__ ((weak, alias (#name)));

#endif
