/* The other hardening checks of the README, each in a forked child that
 * must die of SIGABRT with its one-line report on stderr:
 * - free_sized / free_aligned_sized with a size (or alignment) that does
 *   not match the block: "ptrs: free_sized(): size or alignment does not
 *   match the block: 0x<addr>";
 * - malloc_usable_size of a pointer ptrs does not know (the stack, the
 *   inside of a block): "ptrs: malloc_usable_size(): invalid pointer";
 * - a freed block whose free-list link was overwritten (a use after free),
 *   then allocated again: "ptrs: malloc(): corrupted free list detected:
 *   0x<the overwritten block>". */
#include "test_helper.h"
#include <malloc.h>

typedef void (*free_sized_fn)(void *, size_t);
typedef void (*free_aligned_sized_fn)(void *, size_t, size_t);
static free_sized_fn fs;
static free_aligned_sized_fn fas;

struct sized {
  void *p;
  size_t size, align;
};

static void do_free_sized(void *arg) {
  struct sized *s = arg;
  fs(s->p, s->size);
}

static void do_free_aligned_sized(void *arg) {
  struct sized *s = arg;
  fas(s->p, s->align, s->size);
}

static void do_usable_size(void *p) {
  volatile size_t n = malloc_usable_size(test_ptr(p));
  (void)n;
}

struct corrupt {
  char *a, *b;
  size_t size;
};

/* Frees two blocks (b last, so b heads the free list and holds the link to
 * a), overwrites b's link as a use after free would, and allocates. */
static void corrupt_then_malloc(void *arg) {
  struct corrupt *c = arg;
  free(c->a);
  free(c->b);
  memset(test_ptr(c->b), 0x41, 8);
  void *x = malloc(c->size); /* pops b: its link is garbage */
  void *y = malloc(c->size);
  fprintf(stderr, "malloc returned %p and %p after the corruption\n", x, y);
}

int main(void) {
  require_ptrs();
  fs = (free_sized_fn)ptrs_symbol("free_sized");
  fas = (free_aligned_sized_fn)ptrs_symbol("free_aligned_sized");
  CHECK(fs != NULL && fas != NULL);
  if (fs == NULL || fas == NULL)
    return test_result();

  /* free_sized: too big a size, too small a one, for each kind of block. */
  static const size_t sizes[] = {100, 4000, 300000, (size_t)5 << 20};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    size_t n = sizes[i];
    void *p = malloc(n);
    CHECK(p != NULL);
    char what[96];
    struct sized big = {p, malloc_usable_size(p) + 1, 0};
    snprintf(what, sizeof what, "free_sized(malloc(%zu), usable + 1)", n);
    expect_abort(what, do_free_sized, &big, "free_sized",
                 "size or alignment does not match the block", p);
    struct sized small = {p, n / 4, 0};
    snprintf(what, sizeof what, "free_sized(malloc(%zu), %zu)", n, n / 4);
    expect_abort(what, do_free_sized, &small, "free_sized",
                 "size or alignment does not match the block", p);
    /* The right size frees it without a word. */
    fs(p, n);
  }
  void *al = aligned_alloc(256, 1000);
  CHECK(al != NULL);
  /* An alignment the address does not have (twice its lowest set bit). */
  size_t missing = ((uintptr_t)al & -(uintptr_t)al) * 2;
  struct sized wrong_align = {al, 1000, missing};
  expect_abort("free_aligned_sized with an alignment the block lacks",
               do_free_aligned_sized, &wrong_align, "free_aligned_sized",
               "size or alignment does not match the block", al);
  struct sized wrong_size = {al, 4000, 256};
  expect_abort("free_aligned_sized with a larger size", do_free_aligned_sized,
               &wrong_size, "free_aligned_sized",
               "size or alignment does not match the block", al);
  fas(al, 256, 1000);

  /* malloc_usable_size of foreign and interior pointers. */
  char stack_buf[64];
  memset(stack_buf, 0, sizeof stack_buf);
  expect_abort("malloc_usable_size of a stack address", do_usable_size,
               stack_buf + 16, "malloc_usable_size", "invalid pointer",
               stack_buf + 16);
  char *q = malloc(1000);
  CHECK(q != NULL);
  expect_abort("malloc_usable_size of malloc(1000) + 16", do_usable_size,
               q + 16, "malloc_usable_size", "invalid pointer", q + 16);
  free(q);

  /* A corrupted free-list link, for a few size classes. */
  static const size_t classes[] = {16, 64, 1000, 30000};
  for (size_t i = 0; i < sizeof classes / sizeof classes[0]; i++) {
    struct corrupt c = {malloc(classes[i]), malloc(classes[i]), classes[i]};
    CHECK(c.a != NULL && c.b != NULL);
    char what[96];
    snprintf(what, sizeof what, "overwritten link of a free %zu-byte block",
             classes[i]);
    expect_abort(what, corrupt_then_malloc, &c, "malloc",
                 "corrupted free list detected", c.b);
    free(c.a);
    free(c.b);
  }
  return test_result();
}
