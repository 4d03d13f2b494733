/* benchrun: run one benchmark command and report its wall time and peak RSS.
 *
 *   benchrun [-p PRELOAD_LIB] [-q] [-t SECONDS] -- command [args...]
 *
 * The preload library is set (LD_PRELOAD) in the child only, so the runner
 * itself is never measured.  -q sends the child's stdout to /dev/null.
 * -t kills the child (SIGKILL) after SECONDS of wall time.
 * After the child exits the runner prints, on stdout:
 *   wall_s=<seconds>   maxrss_kb=<KiB, from wait4's rusage>   exit=<status>
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <signal.h>
#include <unistd.h>

static volatile pid_t child;
static void on_alarm(int sig)
{
    (void)sig;
    if (child > 0)
        kill(child, SIGKILL);
}

int main(int argc, char **argv)
{
    const char *preload = NULL;
    int quiet = 0, timeout = 0, i = 1;
    for (; i < argc; i++) {
        if (!strcmp(argv[i], "-p") && i + 1 < argc)
            preload = argv[++i];
        else if (!strcmp(argv[i], "-t") && i + 1 < argc)
            timeout = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-q"))
            quiet = 1;
        else if (!strcmp(argv[i], "--")) {
            i++;
            break;
        } else
            break;
    }
    if (i >= argc) {
        fprintf(stderr, "usage: benchrun [-p lib] [-q] -- cmd [args]\n");
        return 2;
    }
    fflush(stdout);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        return 2;
    }
    if (pid == 0) {
        if (preload && *preload)
            setenv("LD_PRELOAD", preload, 1);
        else
            unsetenv("LD_PRELOAD");
        if (quiet) {
            int fd = open("/dev/null", O_WRONLY);
            if (fd >= 0) {
                dup2(fd, 1);
                close(fd);
            }
        }
        execvp(argv[i], argv + i);
        perror(argv[i]);
        _exit(127);
    }
    child = pid;
    if (timeout > 0) {
        signal(SIGALRM, on_alarm);
        alarm((unsigned)timeout);
    }
    int status = 0;
    struct rusage ru;
    while (wait4(pid, &status, 0, &ru) < 0) {
        if (errno != EINTR) {
            perror("wait4");
            return 2;
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double wall = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    printf("wall_s=%.4f\nmaxrss_kb=%ld\nexit=%d\n", wall, ru.ru_maxrss, code);
    return code;
}
