/* mtrace lines longer than 512 bytes are written whole: the caller of an
   allocation made from a function with a 700-character name (C++ and Rust
   symbols are often longer) is written in full, followed by the block's
   address and size on the same line, as glibc writes it; the trace's
   `+` line must name the function and end with the size, else glibc's
   mtrace script misreads it (it reported "No memory leaks" for a leak).
   Lines were cut at 512 bytes.  (The test is built with -rdynamic, so
   dladdr names the function.)  */
#include "test_helper.h"
#include <mcheck.h>
#include <unistd.h>

#define X10 "xxxxxxxxxx"
#define X100 X10 X10 X10 X10 X10 X10 X10 X10 X10 X10
/* A 706-character name: alloc_ then 700 x.  */
#define NAME_SUFFIX X100 X100 X100 X100 X100 X100 X100

__attribute__ ((noinline, used)) void *
alloc_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx (size_t n)
{
  void *p = malloc (n);
  __asm__ volatile ("" : : "r" (p) : "memory");
  return p;
}

int
main (void)
{
  require_ptrs ();
  char path[] = "/tmp/tst-mtrace-longname-XXXXXX";
  int fd = mkstemp (path);
  if (fd < 0)
    FAIL_EXIT ("mkstemp");
  close (fd);
  setenv ("MALLOC_TRACE", path, 1);
  mtrace ();
  void *a = alloc_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx (0x1234);
  muntrace ();
  unsetenv ("MALLOC_TRACE");

  FILE *f = fopen (path, "r");
  if (f == NULL)
    FAIL_EXIT ("cannot read the trace");
  static char line[1 << 14];
  char want[64];
  snprintf (want, sizeof want, " + %p 0x1234\n", a);
  int found = 0;
  while (fgets (line, sizeof line, f) != NULL)
    {
      size_t len = strlen (line);
      if (strstr (line, "(alloc_" NAME_SUFFIX "+") != NULL)
        {
          fprintf (stderr, "line of %zu bytes\n", len);
          found = 1;
          CHECK (len > 700);
          CHECK (strncmp (line, "@ ", 2) == 0);
          CHECK (len > strlen (want) && strcmp (line + len - strlen (want), want) == 0);
        }
    }
  fclose (f);
  unlink (path);
  CHECK (found);
  free (a);
  return test_result ();
}
