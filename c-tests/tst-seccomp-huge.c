/* A program that installs a seccomp filter after start-up, killing the
 * process on system calls that glibc's malloc never makes, must still be
 * able to allocate huge blocks. ptrs read /proc/sys/vm/overcommit_memory
 * (openat, read, close) and called sysinfo at the first huge block: a
 * tester's sandboxed program was killed there (SIGSYS); glibc ran it.
 * They are now read at start-up (src/init.rs). The filter here kills on
 * open, openat and sysinfo only, and allows everything else. */
#include "test_helper.h"

#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

#define KILL_IF(nr) \
  BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (nr), 0, 1), BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS)

int main(void) {
  require_ptrs();
#if defined(__x86_64__)
  free(malloc(100));
  fprintf(stderr, "start\n"); /* stdio's buffer before the filter */
  struct sock_filter filter[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
      KILL_IF(SYS_open),
      KILL_IF(SYS_openat),
      KILL_IF(SYS_sysinfo),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  struct sock_fprog prog = {sizeof filter / sizeof filter[0], filter};
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0) {
    printf("seccomp filters unavailable: %s\n", strerror(errno));
    return EXIT_UNSUPPORTED;
  }
  for (int round = 0; round < 3; round++) {
    size_t size = (size_t)64 << 20 >> round;
    char *p = malloc(size);
    CHECK(p != NULL);
    if (p != NULL) {
      memset(p, round + 1, size);
      CHECK(p[size - 1] == round + 1);
    }
    free(p);
    /* calloc and realloc of huge blocks take the same check. */
    p = calloc(1, size);
    CHECK(p != NULL && p[size / 2] == 0);
    p = realloc(p, size * 2);
    CHECK(p != NULL);
    free(p);
  }
  fprintf(stderr, "huge blocks under the filter: done\n");
  return test_result();
#else
  printf("the filter is written for x86-64\n");
  return EXIT_UNSUPPORTED;
#endif
}
