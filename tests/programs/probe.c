/* Preload probe for scripts/test-programs.sh. Loaded with LD_PRELOAD after
 * libptrs.so, its constructor records in the file named by
 * TEST_PROGRAMS_PROBE_LOG (not PTRS_*: ptrs warns about PTRS_* variables it
 * does not know) which executable this process runs and whether ptrs serves
 * its malloc (ptrs_owns says yes for a fresh malloc'd block). This proves
 * that every
 * process of a preloaded run (gcc's cc1, as and ld, a pipeline's sort and
 * awk, ...) really had ptrs as its allocator. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

__attribute__((constructor)) static void ptrs_probe(void) {
  const char *log = getenv("TEST_PROGRAMS_PROBE_LOG");
  if (log == NULL || *log == '\0')
    return;
  int (*owns)(const void *) =
      (int (*)(const void *))dlsym(RTLD_DEFAULT, "ptrs_owns");
  void *p = malloc(78);
  int served = owns != NULL && p != NULL && owns(p);
  free(p);
  char exe[512];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n < 0)
    n = 0;
  exe[n] = '\0';
  char line[700];
  int len = snprintf(line, sizeof line, "pid=%d ptrs=%d exe=%s\n", (int)getpid(),
                     served, exe);
  int fd = open(log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd >= 0) {
    if (len > 0 && write(fd, line, (size_t)len) < 0) {
      /* nothing to do: a missing line makes the check fail */
    }
    close(fd);
  }
}
