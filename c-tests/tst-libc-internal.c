/* glibc functions that allocate internally (strdup, getline, asprintf,
 * stdio buffers, printf with huge widths, qsort, setenv, getaddrinfo,
 * scandir, regcomp, realpath, glob...) get their memory from ptrs, and the
 * program can free what they return (like glibc's tst-interpose). */
#include "test_helper.h"
#include <dirent.h>
#include <glob.h>
#include <limits.h>
#include <malloc.h>
#include <netdb.h>
#include <regex.h>
#include <sys/socket.h>
#include <wchar.h>

static int cmp_int(const void *a, const void *b) {
  int x = *(const int *)a, y = *(const int *)b;
  return (x > y) - (x < y);
}

int main(void) {
  require_ptrs();

  char *s = strdup("hello, world");
  CHECK(s != NULL && strcmp(s, "hello, world") == 0 && test_owns(s));
  free(s);
  s = strndup("abcdefgh", 3);
  CHECK(s != NULL && strcmp(s, "abc") == 0 && test_owns(s));
  free(s);

  char *a = NULL;
  CHECK(asprintf(&a, "%d-%s-%0200d", 42, "x", 7) == 205);
  CHECK(a != NULL && test_owns(a) && strncmp(a, "42-x-000", 8) == 0);
  free(a);

  /* Write a file through a stdio stream, read it back with getline. */
  FILE *f = tmpfile();
  CHECK(f != NULL);
  if (f != NULL) {
    for (int i = 0; i < 1000; i++)
      fprintf(f, "line %d %*s\n", i, i * 10, "");
    fprintf(f, "%s", "last without newline");
    rewind(f);
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int lines = 0, ok = 1;
    while ((len = getline(&line, &cap, f)) > 0) {
      if (lines < 1000) {
        char want[32];
        snprintf(want, sizeof want, "line %d ", lines);
        if (strncmp(line, want, strlen(want)) != 0 ||
            (size_t)len != strlen(want) + (size_t)lines * 10 + 1)
          ok = 0;
      }
      lines++;
    }
    CHECK(ok);
    CHECK(lines == 1001);
    CHECK(line != NULL && test_owns(line));
    CHECK(strcmp(line, "last without newline") == 0);
    free(line);
    fclose(f);
  }

  /* printf with big widths and precisions allocates work buffers. */
  FILE *null = fopen("/dev/null", "w");
  CHECK(null != NULL);
  if (null != NULL) {
    CHECK(fprintf(null, "%100000d|%.70000f|%-90000s|", 5, 1.5, "x") ==
          100000 + 70002 + 90000 + 3);
    wchar_t w[] = L"wide characters";
    CHECK(fprintf(null, "%100000ls", w) == 100000);
    setvbuf(null, NULL, _IOFBF, 1 << 20);
    for (int i = 0; i < 1000; i++)
      fprintf(null, "%d %s %f\n", i, "data", i * 0.5);
    fclose(null);
  }
  char *big = NULL;
  CHECK(asprintf(&big, "%500000s", "end") == 500000);
  CHECK(big != NULL && test_owns(big) && big[499999] == 'd');
  free(big);

  /* open_memstream. */
  char *ms_buf = NULL;
  size_t ms_len = 0;
  FILE *ms = open_memstream(&ms_buf, &ms_len);
  CHECK(ms != NULL);
  if (ms != NULL) {
    for (int i = 0; i < 10000; i++)
      fprintf(ms, "%d,", i);
    fclose(ms);
    CHECK(ms_buf != NULL && test_owns(ms_buf) && ms_len > 40000);
    free(ms_buf);
  }

  /* qsort of a big array uses a malloc'd temporary. */
  enum { Q = 200000 };
  int *arr = malloc(Q * sizeof(int));
  CHECK(arr != NULL);
  if (arr != NULL) {
    uint64_t rng = 3;
    for (int i = 0; i < Q; i++)
      arr[i] = (int)(splitmix64(&rng) % 1000000);
    qsort(arr, Q, sizeof(int), cmp_int);
    int sorted = 1;
    for (int i = 1; i < Q; i++)
      if (arr[i - 1] > arr[i])
        sorted = 0;
    CHECK(sorted);
    free(arr);
  }

  /* setenv / unsetenv grow and shrink the environment. */
  for (int i = 0; i < 500; i++) {
    char name[32], value[64];
    snprintf(name, sizeof name, "PTRS_TEST_VAR_%d", i);
    snprintf(value, sizeof value, "value-%d-%0*d", i, i % 40, 0);
    CHECK(setenv(name, value, 1) == 0);
  }
  for (int i = 0; i < 500; i++) {
    char name[32], value[64];
    snprintf(name, sizeof name, "PTRS_TEST_VAR_%d", i);
    snprintf(value, sizeof value, "value-%d-%0*d", i, i % 40, 0);
    const char *got = getenv(name);
    CHECK(got != NULL && strcmp(got, value) == 0);
    if (i % 2)
      CHECK(unsetenv(name) == 0);
  }
  CHECK(getenv("PTRS_TEST_VAR_1") == NULL);
  CHECK(getenv("PTRS_TEST_VAR_2") != NULL);
  CHECK(putenv("PTRS_TEST_PUT=1") == 0);
  CHECK(clearenv() == 0);
  CHECK(setenv("PATH", "/usr/bin:/bin", 1) == 0);

  /* getaddrinfo without the network. */
  struct addrinfo hints = {0}, *res = NULL;
  hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  int gai = getaddrinfo("127.0.0.1", "8080", &hints, &res);
  CHECK(gai == 0 && res != NULL);
  if (gai == 0) {
    CHECK(test_owns(res));
    freeaddrinfo(res);
  }
  res = NULL;
  gai = getaddrinfo("::1", "80", &hints, &res);
  if (gai == 0)
    freeaddrinfo(res);
  CHECK(gai_strerror(EAI_NONAME) != NULL);

  /* scandir returns malloc'd entries the caller frees. */
  struct dirent **names = NULL;
  int nd = scandir("/proc/self", &names, NULL, alphasort);
  CHECK(nd > 5);
  for (int i = 0; i < nd; i++) {
    CHECK(test_owns(names[i]));
    free(names[i]);
  }
  CHECK(nd <= 0 || test_owns(names));
  free(names);

  DIR *d = opendir("/proc/self/fd");
  CHECK(d != NULL);
  if (d != NULL) {
    int n = 0;
    while (readdir(d) != NULL)
      n++;
    CHECK(n >= 3);
    closedir(d);
  }

  /* regcomp/regexec/regfree. */
  regex_t re;
  CHECK(regcomp(&re, "^(a|b)+[0-9]{2,5}(x*)$", REG_EXTENDED) == 0);
  CHECK(regexec(&re, "abba1234xxx", 0, NULL, 0) == 0);
  CHECK(regexec(&re, "abc1", 0, NULL, 0) == REG_NOMATCH);
  regfree(&re);

  /* realpath and glob allocate results. */
  char *rp = realpath("/proc/self/../self/.", NULL);
  CHECK(rp != NULL && test_owns(rp));
  free(rp);
  glob_t g;
  CHECK(glob("/proc/self/*", 0, NULL, &g) == 0);
  CHECK(g.gl_pathc > 5);
  if (g.gl_pathc > 0)
    CHECK(test_owns(g.gl_pathv[0]));
  globfree(&g);

  /* getcwd(NULL, 0) and strerror text. */
  char *cwd = getcwd(NULL, 0);
  CHECK(cwd != NULL && test_owns(cwd));
  free(cwd);
  char *fmt = NULL;
  CHECK(asprintf(&fmt, "%m") > 0);
  free(fmt);
  return test_result();
}
