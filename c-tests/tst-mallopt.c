/* mallopt returns exactly what glibc 2.36 returns (its __libc_mallopt in
 * malloc/malloc.c): 0 only for M_MXFAST above MAX_FAST_SIZE (160 bytes on
 * 64-bit; a negative value is a huge size_t), 1 for everything else,
 * unknown parameters included. The parameters ptrs honours change its
 * options (read back with ptrs_option_get); allocation keeps working after
 * each call. M_CHECK_ACTION is accepted but, as in glibc 2.36, does not
 * turn off aborting on a detected heap error: a child that sets it to 1
 * (glibc's tst-mallopt does) and frees a block twice dies of SIGABRT. */
#include "test_helper.h"
#include <malloc.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

static void exercise(void) {
  static const size_t sizes[] = {1, 100, 5000, 100000, 300000, 5 << 20};
  for (int i = 0; i < 6; i++) {
    void *p = malloc(sizes[i]);
    CHECK(p != NULL);
    if (p) {
      memset(p, 3, sizes[i]);
      void *q = realloc(p, sizes[i] * 2);
      CHECK(q != NULL);
      free(q ? q : p);
    }
  }
}

static long long option(const char *name) {
  long long (*get)(const char *) =
      (long long (*)(const char *))ptrs_symbol("ptrs_option_get");
  if (get == NULL)
    FAIL_EXIT("no ptrs_option_get");
  return get(name);
}

#define EXPECT(param, value, want)                                           \
  do {                                                                       \
    int r_ = mallopt((param), (value));                                      \
    if (r_ != (want)) {                                                      \
      fprintf(stderr, "%s:%d: mallopt(%s, %s) = %d, glibc 2.36 gives %d\n", \
              __FILE__, __LINE__, #param, #value, r_, (want));               \
      test_failures++;                                                       \
    }                                                                        \
    exercise();                                                              \
  } while (0)

/* Runs a child that sets M_CHECK_ACTION to `action` and frees a block
 * twice. Returns its wait status. */
static int double_free_child(int action) {
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0)
    FAIL_EXIT("fork: %s", strerror(errno));
  if (pid == 0) {
    /* The report goes to stderr; keep it out of this test's log. */
    int null = open("/dev/null", O_WRONLY);
    if (null >= 0)
      dup2(null, 2);
    if (mallopt(M_CHECK_ACTION, action) != 1)
      _exit(3);
    char *volatile p = malloc(64);
    free(p);
    free(p);
    _exit(0); /* reached only if the double free did not abort */
  }
  int st = 0;
  if (waitpid(pid, &st, 0) != pid)
    FAIL_EXIT("waitpid: %s", strerror(errno));
  return st;
}

int main(void) {
  require_ptrs();
  if (option("abort_on_error") != 1) {
    fprintf(stderr, "PTRS_ABORT_ON_ERROR is off in this environment\n");
    return EXIT_UNSUPPORTED;
  }

  /* The parameters ptrs honours, with their effect on its options. */
  EXPECT(M_MMAP_THRESHOLD, 256 * 1024, 1);
  CHECK(option("large_threshold") == 256 * 1024);
  EXPECT(M_MMAP_THRESHOLD, 64 * 1024, 1);
  CHECK(option("large_threshold") == 64 * 1024);
  /* glibc 2.36 takes any value (as size_t); ptrs caps what it applies. */
  EXPECT(M_MMAP_THRESHOLD, 64 << 20, 1);
  /* ... and reads back the threshold in effect (it read back 64 MiB). */
  CHECK(option("large_threshold") == 1984 * 1024);
  EXPECT(M_MMAP_THRESHOLD, 128 * 1024, 1);
  CHECK(option("large_threshold") == 128 * 1024);
  EXPECT(M_TRIM_THRESHOLD, 1 << 20, 1);
  CHECK(option("retain") == 1 << 20);
  EXPECT(M_TRIM_THRESHOLD, -1, 1); /* keep everything */
  CHECK(option("retain") == INT64_MAX); /* SIZE_MAX, saturated */
  EXPECT(M_TRIM_THRESHOLD, 128 * 1024, 1);
  CHECK(option("retain") == 128 * 1024);
  EXPECT(M_TOP_PAD, 64 * 1024, 1);
  EXPECT(M_TOP_PAD, 0, 1);

  /* Accepted, whatever the value (glibc stores a value > 0, ignores the
   * rest, and returns 1 either way). */
  EXPECT(M_ARENA_MAX, 2, 1);
  EXPECT(M_ARENA_MAX, 0, 1);
  EXPECT(M_ARENA_MAX, -1, 1);
  EXPECT(M_ARENA_TEST, 8, 1);
  EXPECT(M_ARENA_TEST, 0, 1);
  EXPECT(M_ARENA_TEST, -5, 1);
  EXPECT(M_MMAP_MAX, 64 * 1024, 1);
  EXPECT(M_MMAP_MAX, 0, 1);
  EXPECT(M_PERTURB, 0xa5, 1);
  EXPECT(M_PERTURB, 0, 1);

  /* M_MXFAST: 0 to 160 accepted, above (or negative) refused with 0. */
  EXPECT(M_MXFAST, 0, 1);
  EXPECT(M_MXFAST, 64, 1);
  EXPECT(M_MXFAST, 160, 1);
  EXPECT(M_MXFAST, 161, 0);
  EXPECT(M_MXFAST, 4096, 0);
  EXPECT(M_MXFAST, -1, 0);

  /* Parameters glibc no longer has, and unknown ones: 1, as in glibc. */
  EXPECT(M_NLBLKS, 1, 1);
  EXPECT(M_GRAIN, 1, 1);
  EXPECT(M_KEEP, 1, 1);
  EXPECT(12345, 1, 1);
  EXPECT(-12345, 1, 1);
  EXPECT(999999, -1, 1);

  /* M_CHECK_ACTION: 1, and aborting stays on whatever the value. */
  static const int actions[] = {0, 1, 2, 3, 5, 7};
  for (int i = 0; i < 6; i++) {
    int st = double_free_child(actions[i]);
    if (!(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT)) {
      fprintf(stderr,
              "mallopt(M_CHECK_ACTION, %d): a double free then %s %d\n",
              actions[i], WIFEXITED(st) ? "exited with" : "died of signal",
              WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
      test_failures++;
    }
  }
  EXPECT(M_CHECK_ACTION, 1, 1);
  CHECK(option("abort_on_error") == 1);
  EXPECT(M_CHECK_ACTION, 0, 1);
  CHECK(option("abort_on_error") == 1);
  return test_result();
}
