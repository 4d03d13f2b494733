/* The background purger's thread must never take a signal meant for the
 * program (a tester: with PTRS_BACKGROUND_PURGE=1, GNU timeout hung, its
 * SIGCHLD delivered to the purger while main waited in sigsuspend with it
 * blocked everywhere else).
 *
 * main turns the purger on (ptrs_option_set), makes it start (an
 * allocation slow path) and waits until the process has two threads; then
 * it blocks SIGUSR1, sends it to the process and waits for it in
 * sigsuspend. The handler must run in main: a process-directed signal goes
 * to a thread that does not block it, so a purger with signals open takes
 * it and main's sigsuspend never returns (SIGALRM after 5 s ends it). */
#include "test_helper.h"
#include "ptrs.h"

#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

static volatile sig_atomic_t usr1_in_main, usr1_elsewhere;
static pthread_t main_thread;

static void on_usr1(int sig) {
  (void)sig;
  if (pthread_equal(pthread_self(), main_thread))
    usr1_in_main = 1;
  else
    usr1_elsewhere = 1;
}

static void on_alarm(int sig) {
  (void)sig;
  static const char msg[] = "SIGUSR1 never reached main: sigsuspend hung\n";
  (void)!write(2, msg, sizeof msg - 1);
  _exit(1);
}

static int threads(void) {
  DIR *d = opendir("/proc/self/task");
  if (d == NULL)
    return -1;
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL)
    if (e->d_name[0] != '.')
      n++;
  closedir(d);
  return n;
}

int main(void) {
  require_ptrs();
  main_thread = pthread_self();
  __typeof__(ptrs_option_set) *option_set =
      (__typeof__(ptrs_option_set) *)ptrs_symbol("ptrs_option_set");
  CHECK(option_set != NULL);
  if (option_set == NULL)
    return test_result();

  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_usr1;
  sigaction(SIGUSR1, &sa, NULL);
  sa.sa_handler = on_alarm;
  sigaction(SIGALRM, &sa, NULL);

  /* The purger starts while main has SIGUSR1 open: a thread inherits its
   * creator's mask, and main blocks the signal only afterwards, as a
   * program that starts waiting for a child later does. */
  CHECK(option_set("background_purge", 1) == 0);
  /* Slow paths start the purger: allocations of many sizes. */
  int n = -1;
  for (int round = 0; round < 200 && (n = threads()) < 2; round++) {
    for (size_t s = 16; s <= (1 << 20); s *= 2)
      free(malloc(s + (size_t)round));
    usleep(5000);
  }
  printf("threads with the purger: %d\n", n);
  CHECK(n == 2);

  sigset_t block, waitmask;
  sigemptyset(&block);
  sigaddset(&block, SIGUSR1);
  sigprocmask(SIG_BLOCK, &block, &waitmask);
  sigdelset(&waitmask, SIGUSR1);

  alarm(5);
  for (int i = 0; i < 20; i++) {
    usr1_in_main = 0;
    kill(getpid(), SIGUSR1);
    while (!usr1_in_main && !usr1_elsewhere)
      sigsuspend(&waitmask);
    CHECK(usr1_elsewhere == 0);
    if (usr1_elsewhere)
      break;
    usleep(2000); /* let the purger run a sweep or two */
  }
  alarm(0);
  CHECK(option_set("background_purge", 0) == 0);
  return test_result();
}
