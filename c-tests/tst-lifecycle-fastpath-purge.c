/* Memory a thread frees goes back to the OS while the thread goes on
 * allocating only from pages it already has (malloc's fast path), without
 * any slow path (src/heap.rs, PURGE_WATCH_BYTES): a fresh tester shrank
 * 100 blocks of 1 MiB to 100 bytes with realloc, then made only small
 * mallocs, and 102 MiB stayed resident for as long as the program ran
 * (glibc: 1 MiB).
 *
 * The same, with the small mallocs at a low rate (20 pairs of 200 bytes
 * every 2 ms): RSS must fall by 80 MiB within 1 s of the shrink. */
#include "mt_helper.h"

#define BLOCKS 100
#define BLOCK_SIZE (1 << 20)

static void *volatile sink;

int main(void) {
  require_ptrs();
  /* The small class's page exists before the shrink: the loop below
   * then takes only the fast path. */
  for (int i = 0; i < 64; i++) {
    sink = malloc(200);
    free(sink);
  }
  static char *blocks[BLOCKS];
  for (int i = 0; i < BLOCKS; i++) {
    blocks[i] = malloc(BLOCK_SIZE);
    if (blocks[i] == NULL)
      FAIL_EXIT("malloc(%d) failed", BLOCK_SIZE);
    memset(blocks[i], i + 1, BLOCK_SIZE);
  }
  for (int i = 0; i < BLOCKS; i++) {
    char *q = realloc(blocks[i], 100);
    if (q == NULL)
      FAIL_EXIT("realloc to 100 bytes failed");
    CHECK(q[0] == (char)(i + 1) && q[99] == (char)(i + 1));
    blocks[i] = q;
  }
  size_t shrunk = rss_bytes();
  uint64_t t0 = mt_now_ms();
  double t = 0;
  size_t rss = shrunk;
  while (t < 1.0) {
    for (int k = 0; k < 20; k++) {
      sink = malloc(200);
      free(sink);
    }
    mt_sleep_us(2000);
    rss = rss_bytes();
    t = (double)(mt_now_ms() - t0) / 1000.0;
    if (rss + (80u << 20) <= shrunk)
      break;
  }
  printf("RSS after the shrink %zu KiB, %.0f ms later %zu KiB\n", shrunk >> 10,
         t * 1000, rss >> 10);
  CHECK(rss + (80u << 20) <= shrunk);
  for (int i = 0; i < BLOCKS; i++)
    free(blocks[i]);
  return test_result();
}
