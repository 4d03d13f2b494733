/* A sized free of a small block names a size at least about half of the
 * block's (twice the size plus 16 bytes reaches the block): free_sized of
 * a 64-byte block as 16 bytes, or of a 48-byte block as 8, aborts with
 * the mismatch line. A fresh tester found both accepted (the slack was
 * 32 bytes), so a 64-byte C++ object deleted through a 16-byte base
 * without a virtual destructor went undetected. The sizes that a correct
 * program passes for these blocks (every request that maps to their
 * class, and realloc shrinks that keep them) are accepted. */
#include "test_helper.h"

static void (*fs)(void *, size_t);

struct bad {
  void *p;
  size_t size;
};

static void bad_free(void *arg) {
  struct bad *b = arg;
  fs(test_ptr(b->p), test_size(b->size));
}

static void expect_mismatch(const char *what, void *p, size_t size) {
  struct bad b = {p, size};
  expect_abort(what, bad_free, &b, "free_sized", "size or alignment does not match the block", p);
}

int main(void) {
  require_ptrs();
  fs = (void (*)(void *, size_t))ptrs_symbol("free_sized");
  if (fs == NULL)
    FAIL_EXIT("free_sized missing");
  void *b64 = malloc(64), *b48 = malloc(48), *b32 = malloc(32), *b256 = malloc(256);
  expect_mismatch("malloc(64), free_sized 16", b64, 16);
  expect_mismatch("malloc(64), free_sized 23", b64, 23);
  expect_mismatch("malloc(48), free_sized 8", b48, 8);
  expect_mismatch("malloc(32), free_sized 7", b32, 7);
  expect_mismatch("malloc(256), free_sized 112", b256, 112);
  fs(b64, 64);
  fs(b48, 48);
  fs(b32, 32);
  fs(b256, 256);
  /* Every request size up to 4 KiB with its own size, and after a
   * realloc shrink with the new size. */
  for (size_t n = 0; n <= 4096; n++) {
    void *p = malloc(n);
    CHECK(p != NULL);
    fs(p, n);
    p = malloc(n + 1);
    void *q = realloc(p, n / 2 + 1);
    CHECK(q != NULL);
    fs(q, n / 2 + 1);
  }
  return test_result();
}
