/* A malloc that succeeds leaves errno alone, also when ptrs's first try
 * failed and it succeeded after giving memory back (src/abi/mod.rs,
 * retry_after_trim) or after mapping elsewhere (os::map_aligned's hint).
 * Under an address-space limit 150 MiB above current use, 1 MiB blocks
 * fill it, are all freed (ptrs keeps some of that mapped for reuse), and
 * malloc(30 MiB) and calloc(30 MiB) must then succeed with errno still 0:
 * a fresh tester's malloc left ENOMEM there from the failed first try
 * (glibc leaves errno alone, and a program that tests errno after a loop
 * of library calls, as around readdir, reports an error that never
 * happened). */
#include "test_helper.h"

#define HEADROOM ((size_t)150 << 20)

int main(void) {
  require_ptrs();
  fprintf(stderr, "start\n"); /* stdio's buffers before the limit */
  struct rlimit rl;
  rl.rlim_cur = rl.rlim_max = vm_size_bytes() + HEADROOM;
  if (setrlimit(RLIMIT_AS, &rl) != 0)
    FAIL_EXIT("setrlimit: %s", strerror(errno));
  for (int round = 0; round < 3; round++) {
    static void *v[400];
    int n = 0;
    while (n < 400 && (v[n] = malloc(1 << 20)) != NULL)
      n++;
    CHECK(n > 0 && n < 400);
    while (n--)
      free(v[n]);
    errno = 0;
    char *p = malloc(30 << 20);
    int e = errno;
    CHECK(p != NULL);
    CHECK(e == 0);
    if (p != NULL)
      memset(p, 1, 30 << 20);
    free(p);
    errno = 0;
    p = calloc(30 << 20, 1);
    e = errno;
    CHECK(p != NULL);
    CHECK(e == 0);
    free(p);
    fprintf(stderr, "round %d: malloc and calloc of 30 MiB after the fill: errno %d\n", round, e);
  }
  return test_result();
}
