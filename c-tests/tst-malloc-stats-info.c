/* malloc_stats prints statistics to stderr; malloc_info(0, fp) writes an
 * XML document <malloc ...> ... </malloc> to fp and returns 0, and
 * malloc_info with nonzero options fails with EINVAL (returned, as glibc
 * does, or as -1 and errno, as its manual page says) and writes nothing. */
#include "test_helper.h"
#include <fcntl.h>
#include <malloc.h>

int main(void) {
  require_ptrs();
  void *keep[100];
  for (int i = 0; i < 100; i++)
    keep[i] = malloc((size_t)i * 300 + 1);
  void *big = malloc(10 << 20);

  /* Capture stderr in a temporary file. */
  FILE *tmp = tmpfile();
  if (tmp == NULL)
    FAIL_EXIT("tmpfile: %s", strerror(errno));
  fflush(stderr);
  int saved = dup(STDERR_FILENO);
  CHECK(saved >= 0);
  CHECK(dup2(fileno(tmp), STDERR_FILENO) == STDERR_FILENO);
  malloc_stats();
  fflush(stderr);
  dup2(saved, STDERR_FILENO);
  close(saved);
  long len = lseek(fileno(tmp), 0, SEEK_END);
  char buf[4096] = {0};
  lseek(fileno(tmp), 0, SEEK_SET);
  ssize_t got = read(fileno(tmp), buf, sizeof buf - 1);
  fclose(tmp);
  fprintf(stderr, "malloc_stats wrote %ld bytes:\n%s\n", len, buf);
  CHECK(len > 0);
  CHECK(got > 0);

  /* malloc_info into a memory stream. */
  char *xml = NULL;
  size_t xml_len = 0;
  FILE *ms = open_memstream(&xml, &xml_len);
  CHECK(ms != NULL);
  if (ms != NULL) {
    CHECK(malloc_info(0, ms) == 0);
    CHECK(fclose(ms) == 0);
    CHECK(xml != NULL && xml_len > 0);
    if (xml != NULL) {
      fprintf(stderr, "malloc_info: %.300s\n", xml);
      CHECK(strncmp(xml, "<malloc", 7) == 0);
      CHECK(strstr(xml, "</malloc>") != NULL);
      CHECK(test_owns(xml)); /* open_memstream's buffer comes from malloc */
    }
    free(xml);
  }

  /* And into a real file. */
  FILE *f = tmpfile();
  CHECK(f != NULL);
  if (f != NULL) {
    CHECK(malloc_info(0, f) == 0);
    fflush(f);
    rewind(f);
    char head[16] = {0};
    CHECK(fread(head, 1, 7, f) == 7);
    CHECK(strncmp(head, "<malloc", 7) == 0);
    fclose(f);
  }

  /* Nonzero options are rejected. */
  FILE *g = tmpfile();
  CHECK(g != NULL);
  if (g != NULL) {
    /* glibc returns EINVAL; its manual page says -1 with errno EINVAL. */
    errno = 0;
    int r = malloc_info(1, g);
    CHECK(r == EINVAL || (r == -1 && errno == EINVAL));
    CHECK(ftell(g) == 0); /* nothing written */
    fclose(g);
  }

  for (int i = 0; i < 100; i++)
    free(keep[i]);
  free(big);
  /* Still works after the statistics calls. */
  void *q = malloc(100);
  CHECK(q != NULL);
  free(q);
  return test_result();
}
