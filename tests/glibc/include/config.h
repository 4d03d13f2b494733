/* ptrs: stand-in for the config.h that glibc's configure generates.  Only
   the facts the malloc tests and the test-support library look at, for
   x86_64 Linux with the Debian 12 toolchain.  Written for ptrs.  */
#ifndef PTRS_GLIBC_SHIM_CONFIG_H
#define PTRS_GLIBC_SHIM_CONFIG_H 1

#define HAVE_TUNABLES 1
#define USE_MULTIARCH 1
#define HAVE_X86_64 1
#define SUPPORT_STATIC_PIE 1
#define HAVE_STATIC_PIE 1
#define ENABLE_STACK_PROTECTOR 0

#endif

/* Scale factor for test timeouts (the TIMEOUTFACTOR variable overrides it
   at run time).  */
#define TIMEOUTFACTOR 1
