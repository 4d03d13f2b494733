/* After fork (in a single-threaded process), the child can use blocks
 * allocated before the fork, free them, and allocate; the parent's blocks
 * are unaffected by what the child does. */
#include "test_helper.h"
#include <malloc.h>

enum { N = 500 };
static void *blocks[N];
static size_t sizes[N];

static int child(void) {
  int bad = 0;
  for (int i = 0; i < N; i++)
    if (!verify_block(blocks[i], sizes[i], 17))
      bad++;
  for (int i = 0; i < N; i += 2) {
    free(blocks[i]);
    blocks[i] = malloc(sizes[i] + 100);
    if (blocks[i] == NULL || !test_owns(blocks[i]))
      bad++;
    else
      memset(blocks[i], 0xcc, sizes[i] + 100);
  }
  void *big = malloc(16 << 20);
  if (big == NULL)
    bad++;
  else
    memset(big, 0xdd, 16 << 20);
  free(big);
  for (int i = 1; i < N; i += 2)
    if (!verify_block(blocks[i], sizes[i], 17))
      bad++;
  for (int i = 0; i < N; i++)
    free(blocks[i]);
  return bad == 0 ? 0 : 1;
}

int main(void) {
  require_ptrs();
  uint64_t rng = 9;
  for (int i = 0; i < N; i++) {
    sizes[i] = splitmix64(&rng) % (i % 10 == 0 ? 300000 : 2000) + 1;
    blocks[i] = malloc(sizes[i]);
    CHECK(blocks[i] != NULL);
    if (blocks[i] == NULL)
      return test_result();
    stamp_block(blocks[i], sizes[i], 17);
  }
  for (int round = 0; round < 3; round++) {
    fflush(NULL);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0)
      _exit(child());
    /* The parent keeps allocating while the child runs. */
    void *tmp[100];
    for (int i = 0; i < 100; i++)
      tmp[i] = malloc((size_t)i * 50 + 1);
    int status;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    for (int i = 0; i < 100; i++)
      free(tmp[i]);
  }
  int bad = 0;
  for (int i = 0; i < N; i++) {
    if (!verify_block(blocks[i], sizes[i], 17))
      bad++;
    free(blocks[i]);
  }
  CHECK(bad == 0);
  return test_result();
}
