/* A set-user-ID program ignores the environment's options
 * (src/options.rs, read_environment and secure_mode): run as root, the
 * test copies itself, makes the copy set-user-ID to nobody and runs it
 * with PTRS_HEAP_LIMIT=1M, PTRS_PROFILE=<world-writable dir>/prof,
 * PTRS_LEAK_REPORT=1, PTRS_LEAK_EXITCODE=9 and MALLOC_ARENA_MAX=1. The
 * copy (kernel's AT_SECURE set) must see none of them: it allocates
 * 8 MiB, reads the options back as their defaults, leaks a block, exits
 * 0, and writes no profile. A fresh tester had a set-user-ID program
 * truncate its owner's file through a symlink placed at the profile's
 * path. UNSUPPORTED when not run as root, where set-user-ID bits have no
 * effect (a nosuid file system), or when the dynamic loader does not load
 * ptrs into the privileged copy (under LD_PRELOAD, which it ignores there
 * for a library outside the system directories). */
#include "test_helper.h"
#include <dirent.h>
#include <sys/auxv.h>
#include <sys/stat.h>
#include <sys/wait.h>

typedef long long (*option_get_fn)(const char *);

static int child(void) {
  option_get_fn get = (option_get_fn)ptrs_symbol("ptrs_option_get");
  if (get == NULL)
    return 77; /* ptrs not loaded into the privileged copy */
  if (getauxval(AT_SECURE) == 0)
    return 78; /* the set-user-ID bit had no effect */
  int bad = 0;
  void *volatile big = malloc(8 << 20);
  if (big == NULL) {
    fprintf(stderr, "child: malloc(8 MiB) failed: PTRS_HEAP_LIMIT was applied\n");
    bad = 1;
  }
  free(big);
  long long limit = get("heap_limit"), profile = get("profile"), arena = get("arena_max");
  if (limit != 0 || profile != 0 || arena != 0) {
    fprintf(stderr, "child: heap_limit %lld, profile %lld, arena_max %lld: read from the environment\n",
            limit, profile, arena);
    bad = 1;
  }
  void *volatile leak = malloc(1000);
  (void)leak;
  return bad;
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "child") == 0)
    return child();
  require_ptrs();
  if (geteuid() != 0) {
    printf("not root: set-user-ID copies cannot be made\n");
    return 77;
  }
  char self[4096], dir[4096], copy[4200], profdir[4200], prefix[4300];
  test_self_exe(self, sizeof self);
  snprintf(dir, sizeof dir, "%s", self);
  char *slash = strrchr(dir, '/');
  if (slash == NULL)
    FAIL_EXIT("no directory in %s", self);
  *slash = 0;
  snprintf(copy, sizeof copy, "%s/tst-secure-env.suid.%d", dir, (int)getpid());
  snprintf(profdir, sizeof profdir, "%s/tst-secure-env.prof.%d", dir, (int)getpid());
  snprintf(prefix, sizeof prefix, "%s/prof", profdir);
  char cmd[9000];
  snprintf(cmd, sizeof cmd, "cp '%s' '%s' && chown 65534 '%s' && chmod 04755 '%s' && mkdir -p '%s' && chmod 0777 '%s'",
           self, copy, copy, copy, profdir, profdir);
  if (system(cmd) != 0)
    FAIL_EXIT("could not make the set-user-ID copy: %s", cmd);
  pid_t pid = fork();
  if (pid < 0)
    FAIL_EXIT("fork: %s", strerror(errno));
  if (pid == 0) {
    setenv("PTRS_HEAP_LIMIT", "1M", 1);
    setenv("PTRS_PROFILE", prefix, 1);
    setenv("PTRS_LEAK_REPORT", "1", 1);
    setenv("PTRS_LEAK_EXITCODE", "9", 1);
    setenv("MALLOC_ARENA_MAX", "1", 1);
    execl(copy, copy, "child", (char *)NULL);
    _exit(127);
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
    ;
  int files = 0;
  DIR *d = opendir(profdir);
  if (d != NULL) {
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
      if (e->d_name[0] != '.') {
        printf("written: %s/%s\n", profdir, e->d_name);
        files++;
      }
    closedir(d);
  }
  snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s'", copy, profdir);
  if (system(cmd) != 0)
    printf("could not remove %s and %s\n", copy, profdir);
  int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  printf("privileged copy: exit %d, %d profile files\n", code, files);
  if (code == 77 || code == 78) {
    printf("%s\n", code == 77 ? "ptrs not loaded into the set-user-ID copy (LD_PRELOAD is ignored there)"
                              : "AT_SECURE not set: set-user-ID bits have no effect here");
    return 77;
  }
  CHECK(code == 0);
  CHECK(files == 0);
  return test_result();
}
