// The 20 C++ allocation functions are ptrs's own (exported by libptrs.so),
// with the standard's semantics:
//   - dladdr() names libptrs for each of them, both as the program resolves
//     them (linked with -lptrs before libstdc++, or preloaded) and by their
//     mangled names through dlsym;
//   - every variant allocates and frees; the aligned forms honour 32 B to
//     1 MiB; sized/aligned deletes with the right size and alignment give
//     the memory back;
//   - operator new calls the installed new_handler and retries (a handler
//     that lifts an RLIMIT_AS makes the retry succeed), and throws
//     std::bad_alloc when there is none; the nothrow forms return null
//     (also when the handler throws);
//   - a sized or aligned delete whose size or alignment does not match the
//     block aborts, in a forked child, with the one-line diagnostic
//     "ptrs: operator delete(): size or alignment does not match the
//     block: 0x<addr>" (operator delete[] for the array forms).
#include "test_helper.h"
#include <malloc.h>
#include <new>
#include <sys/resource.h>

// ---- where the operators come from ------------------------------------

static int from_ptrs(void *fn, const char *what) {
  Dl_info info;
  if (fn == NULL) {
    fprintf(stderr, "%s: no address\n", what);
    return 0;
  }
  if (!dladdr(fn, &info) || info.dli_fname == NULL) {
    fprintf(stderr, "%s: dladdr(%p) found no object\n", what, fn);
    return 0;
  }
  if (strstr(info.dli_fname, "libptrs") == NULL) {
    fprintf(stderr, "%s: %p is in %s, not libptrs\n", what, fn, info.dli_fname);
    return 0;
  }
  return 1;
}

struct Variant {
  const char *mangled;
  void *resolved; // the address this program's references resolve to
};

#define V(T, mangled, fn) {mangled, reinterpret_cast<void *>(static_cast<T>(fn))}

typedef void *(*new_t)(std::size_t);
typedef void *(*new_nt_t)(std::size_t, const std::nothrow_t &) noexcept;
typedef void *(*new_al_t)(std::size_t, std::align_val_t);
typedef void *(*new_al_nt_t)(std::size_t, std::align_val_t, const std::nothrow_t &) noexcept;
typedef void (*del_t)(void *) noexcept;
typedef void (*del_sz_t)(void *, std::size_t) noexcept;
typedef void (*del_nt_t)(void *, const std::nothrow_t &) noexcept;
typedef void (*del_al_t)(void *, std::align_val_t) noexcept;
typedef void (*del_sz_al_t)(void *, std::size_t, std::align_val_t) noexcept;
typedef void (*del_al_nt_t)(void *, std::align_val_t, const std::nothrow_t &) noexcept;

static void check_origin(void) {
  const Variant variants[] = {
      V(new_t, "_Znwm", &::operator new),
      V(new_t, "_Znam", &::operator new[]),
      V(new_nt_t, "_ZnwmRKSt9nothrow_t", &::operator new),
      V(new_nt_t, "_ZnamRKSt9nothrow_t", &::operator new[]),
      V(new_al_t, "_ZnwmSt11align_val_t", &::operator new),
      V(new_al_t, "_ZnamSt11align_val_t", &::operator new[]),
      V(new_al_nt_t, "_ZnwmSt11align_val_tRKSt9nothrow_t", &::operator new),
      V(new_al_nt_t, "_ZnamSt11align_val_tRKSt9nothrow_t", &::operator new[]),
      V(del_t, "_ZdlPv", &::operator delete),
      V(del_t, "_ZdaPv", &::operator delete[]),
      V(del_sz_t, "_ZdlPvm", &::operator delete),
      V(del_sz_t, "_ZdaPvm", &::operator delete[]),
      V(del_nt_t, "_ZdlPvRKSt9nothrow_t", &::operator delete),
      V(del_nt_t, "_ZdaPvRKSt9nothrow_t", &::operator delete[]),
      V(del_al_t, "_ZdlPvSt11align_val_t", &::operator delete),
      V(del_al_t, "_ZdaPvSt11align_val_t", &::operator delete[]),
      V(del_sz_al_t, "_ZdlPvmSt11align_val_t", &::operator delete),
      V(del_sz_al_t, "_ZdaPvmSt11align_val_t", &::operator delete[]),
      V(del_al_nt_t, "_ZdlPvSt11align_val_tRKSt9nothrow_t", &::operator delete),
      V(del_al_nt_t, "_ZdaPvSt11align_val_tRKSt9nothrow_t", &::operator delete[]),
  };
  CHECK(sizeof variants / sizeof variants[0] == 20);
  for (const Variant &v : variants) {
    char what[128];
    snprintf(what, sizeof what, "%s as the program resolves it", v.mangled);
    CHECK(from_ptrs(v.resolved, what));
    void *by_name = dlsym(RTLD_DEFAULT, v.mangled);
    snprintf(what, sizeof what, "dlsym(%s)", v.mangled);
    CHECK(from_ptrs(by_name, what));
    if (by_name != v.resolved)
      fprintf(stderr, "%s: program uses %p, dlsym finds %p\n", v.mangled,
              v.resolved, by_name);
    CHECK(by_name == v.resolved);
  }
}

// ---- every variant, every alignment -----------------------------------

static size_t in_use(void) {
  struct mallinfo2 mi = mallinfo2();
  return mi.uordblks + mi.hblkhd;
}

static void use_block(void *p, size_t n, size_t align) {
  CHECK(p != NULL);
  if (p == NULL)
    return;
  CHECK(test_owns(p));
  CHECK(is_aligned(p, align));
  CHECK(malloc_usable_size(p) >= n);
  if (n > 0) {
    memset(p, 0xa5, n);
    CHECK(((unsigned char *)p)[n - 1] == 0xa5);
  }
}

static void check_variants(void) {
  static const size_t sizes[] = {0, 1, 16, 24, 100, 1024, 4096, 40000, 300000,
                                 5 << 20};
  const size_t nsizes = sizeof sizes / sizeof sizes[0];
  size_t base = in_use();
  for (int round = 0; round < 20; round++) {
    for (size_t i = 0; i < nsizes; i++) {
      size_t n = test_size(sizes[i]);
      void *p;
      p = ::operator new(n);
      use_block(p, n, 16);
      ::operator delete(p);
      p = ::operator new[](n);
      use_block(p, n, 16);
      ::operator delete[](p);
      p = ::operator new(n, std::nothrow);
      use_block(p, n, 16);
      ::operator delete(p, std::nothrow);
      p = ::operator new[](n, std::nothrow);
      use_block(p, n, 16);
      ::operator delete[](p, std::nothrow);
      p = ::operator new(n);
      use_block(p, n, 16);
      ::operator delete(p, n);
      p = ::operator new[](n);
      use_block(p, n, 16);
      ::operator delete[](p, n);
    }
    // Alignments 32 B to 1 MiB, with sizes below, at and above them.
    for (size_t a = 32; a <= (1u << 20); a *= 2) {
      std::align_val_t al = static_cast<std::align_val_t>(test_size(a));
      const size_t ns[] = {1, a / 2, a, a * 3 + 8};
      for (size_t n : ns) {
        void *p;
        p = ::operator new(n, al);
        use_block(p, n, a);
        ::operator delete(p, al);
        p = ::operator new[](n, al);
        use_block(p, n, a);
        ::operator delete[](p, al);
        p = ::operator new(n, al, std::nothrow);
        use_block(p, n, a);
        ::operator delete(p, al, std::nothrow);
        p = ::operator new[](n, al, std::nothrow);
        use_block(p, n, a);
        ::operator delete[](p, al, std::nothrow);
        p = ::operator new(n, al);
        use_block(p, n, a);
        ::operator delete(p, n, al);
        p = ::operator new[](n, al);
        use_block(p, n, a);
        ::operator delete[](p, n, al);
      }
    }
  }
  size_t after = in_use();
  if (after > base + (1 << 20))
    fprintf(stderr, "in use: %zu before, %zu after\n", base, after);
  CHECK(after <= base + (1 << 20));

  // Nulls are ignored by every delete.
  ::operator delete(nullptr);
  ::operator delete[](nullptr);
  ::operator delete(nullptr, std::nothrow);
  ::operator delete[](nullptr, std::nothrow);
  ::operator delete(nullptr, test_size(8));
  ::operator delete[](nullptr, test_size(8));
  ::operator delete(nullptr, std::align_val_t(64));
  ::operator delete[](nullptr, std::align_val_t(64));
  ::operator delete(nullptr, test_size(8), std::align_val_t(64));
  ::operator delete[](nullptr, test_size(8), std::align_val_t(64));
  ::operator delete(nullptr, std::align_val_t(64), std::nothrow);
  ::operator delete[](nullptr, std::align_val_t(64), std::nothrow);

  // new of 0 bytes: distinct non-null pointers.
  void *z1 = ::operator new(test_size(0));
  void *z2 = ::operator new(test_size(0));
  CHECK(z1 != NULL && z2 != NULL && z1 != z2);
  ::operator delete(z1, test_size(0));
  ::operator delete(z2);

  // A new-expression of an over-aligned type uses the aligned forms.
  struct alignas(4096) Page {
    char b[100];
  };
  Page *pg = new Page[3];
  CHECK(is_aligned(pg, 4096) && test_owns(pg));
  delete[] pg;
}

// ---- new_handler ------------------------------------------------------

static int handler_calls;
static int handler_limit;

// Counts its calls and uninstalls itself at the handler_limit-th one.
static void counting_handler() {
  handler_calls++;
  if (handler_calls >= handler_limit)
    std::set_new_handler(nullptr);
}

static void throwing_handler() {
  handler_calls++;
  throw std::bad_alloc();
}

static struct rlimit saved_as;

static void lifting_handler() {
  handler_calls++;
  setrlimit(RLIMIT_AS, &saved_as);
}

enum Form { PLAIN, ARRAY, ALIGNED, ALIGNED_ARRAY };
static const char *const form_names[] = {"new", "new[]", "new(align)",
                                         "new[](align)"};

static void *call_new(Form f, size_t n) {
  switch (f) {
  case PLAIN: return ::operator new(n);
  case ARRAY: return ::operator new[](n);
  case ALIGNED: return ::operator new(n, std::align_val_t(256));
  default: return ::operator new[](n, std::align_val_t(256));
  }
}

static void *call_new_nothrow(Form f, size_t n) {
  switch (f) {
  case PLAIN: return ::operator new(n, std::nothrow);
  case ARRAY: return ::operator new[](n, std::nothrow);
  case ALIGNED: return ::operator new(n, std::align_val_t(256), std::nothrow);
  default: return ::operator new[](n, std::align_val_t(256), std::nothrow);
  }
}

static void free_any(Form f, void *p) {
  if (f == PLAIN || f == ARRAY)
    ::operator delete(p);
  else
    ::operator delete(p, std::align_val_t(256));
}

static void check_new_handler(void) {
  const size_t impossible = test_size(SIZE_MAX / 2);
  for (int fi = 0; fi < 4; fi++) {
    Form f = static_cast<Form>(fi);
    const char *name = form_names[fi];

    // No handler: std::bad_alloc at once.
    std::set_new_handler(nullptr);
    bool thrown = false;
    try {
      free_any(f, call_new(f, impossible));
    } catch (const std::bad_alloc &) {
      thrown = true;
    }
    if (!thrown)
      fprintf(stderr, "%s: no bad_alloc without a handler\n", name);
    CHECK(thrown);

    // A handler: called after each failure, the allocation retried, and
    // bad_alloc once it has uninstalled itself (3 calls).
    handler_calls = 0;
    handler_limit = 3;
    std::set_new_handler(counting_handler);
    thrown = false;
    try {
      free_any(f, call_new(f, impossible));
    } catch (const std::bad_alloc &) {
      thrown = true;
    }
    if (!thrown || handler_calls != 3)
      fprintf(stderr, "%s: thrown=%d after %d handler calls (want 1, 3)\n",
              name, thrown, handler_calls);
    CHECK(thrown);
    CHECK(handler_calls == 3);

    // The nothrow form: null, no handler.
    std::set_new_handler(nullptr);
    CHECK(call_new_nothrow(f, impossible) == NULL);
    // ... with the handler: called until it uninstalls itself, then null.
    handler_calls = 0;
    handler_limit = 2;
    std::set_new_handler(counting_handler);
    CHECK(call_new_nothrow(f, impossible) == NULL);
    CHECK(handler_calls == 2);
    // ... with a throwing handler: null, not an exception.
    handler_calls = 0;
    std::set_new_handler(throwing_handler);
    void *p = NULL;
    thrown = false;
    try {
      p = call_new_nothrow(f, impossible);
    } catch (...) {
      thrown = true;
    }
    CHECK(!thrown);
    CHECK(p == NULL);
    CHECK(handler_calls == 1);
    std::set_new_handler(nullptr);
  }

  // The retry succeeds when the handler made memory available: an address
  // space limit makes a 1 GiB request fail; the handler lifts it.
  if (getrlimit(RLIMIT_AS, &saved_as) != 0) {
    fprintf(stderr, "getrlimit: %s; retry test skipped\n", strerror(errno));
    return;
  }
  for (int fi = 0; fi < 4; fi++) {
    Form f = static_cast<Form>(fi);
    struct rlimit tight = saved_as;
    FILE *st = fopen("/proc/self/statm", "r");
    unsigned long pages = 0;
    if (st == NULL || fscanf(st, "%lu", &pages) != 1)
      FAIL_EXIT("cannot read /proc/self/statm");
    fclose(st);
    tight.rlim_cur = pages * (rlim_t)sysconf(_SC_PAGESIZE) + (64u << 20);
    if (setrlimit(RLIMIT_AS, &tight) != 0) {
      fprintf(stderr, "setrlimit: %s; retry test skipped\n", strerror(errno));
      return;
    }
    handler_calls = 0;
    std::set_new_handler(lifting_handler);
    void *p = NULL;
    try {
      p = call_new(f, test_size(1u << 30));
    } catch (const std::bad_alloc &) {
      fprintf(stderr, "%s: bad_alloc although the handler lifted the limit\n",
              form_names[fi]);
    }
    std::set_new_handler(nullptr);
    setrlimit(RLIMIT_AS, &saved_as);
    CHECK(p != NULL);
    CHECK(handler_calls == 1);
    if (p != NULL) {
      CHECK(test_owns(p));
      free_any(f, p);
    }
  }
}

// ---- mismatched sized/aligned deletes ---------------------------------

struct Bad {
  void *p;
  size_t size;
  size_t align; // 0: no alignment argument
  int array;
};

static void bad_delete(void *arg) {
  Bad *b = static_cast<Bad *>(arg);
  void *p = test_ptr(b->p);
  if (b->align == 0 && b->array)
    ::operator delete[](p, b->size);
  else if (b->align == 0)
    ::operator delete(p, b->size);
  else if (b->size == 0 && b->array)
    ::operator delete[](p, std::align_val_t(b->align));
  else if (b->size == 0)
    ::operator delete(p, std::align_val_t(b->align));
  else if (b->array)
    ::operator delete[](p, b->size, std::align_val_t(b->align));
  else
    ::operator delete(p, b->size, std::align_val_t(b->align));
}

static void expect_mismatch(const char *what, Bad b) {
  expect_abort(what, bad_delete, &b,
               b.array ? "operator delete[]" : "operator delete",
               "size or alignment does not match the block", b.p);
}

// The smallest power of two the address is not a multiple of.
static size_t misaligning(const void *p) {
  uintptr_t a = (uintptr_t)p;
  return (a & (~a + 1)) * 2;
}

static void delete_twice(void *p) {
  void *again = test_ptr(p);
  ::operator delete(p, test_size(100));
  ::operator delete(again, test_size(100));
}

static void plain_delete(void *p) { ::operator delete(test_ptr(p)); }

static void plain_delete_array(void *p) { ::operator delete[](test_ptr(p)); }

static void plain_delete_array_twice(void *p) {
  void *again = test_ptr(p);
  ::operator delete[](p);
  ::operator delete[](again);
}

static void check_mismatch(void) {
  void *p = ::operator new(test_size(100));
  expect_mismatch("new(100), sized delete of 1000", Bad{p, 1000, 0, 0});
  expect_mismatch("new(100), sized delete of 8", Bad{p, 8, 0, 0});
  void *q = ::operator new[](test_size(4000));
  expect_mismatch("new[](4000), sized delete[] of 16", Bad{q, 16, 0, 1});
  expect_mismatch("new[](4000), sized delete[] of 5000", Bad{q, 5000, 0, 1});
  void *l = ::operator new(test_size(300000));
  expect_mismatch("new(300000), sized delete of 1000", Bad{l, 1000, 0, 0});
  void *h = ::operator new(test_size(8 << 20));
  expect_mismatch("new(8 MiB), sized delete of 100", Bad{h, 100, 0, 0});
  expect_mismatch("new(8 MiB), sized delete of 16 MiB", Bad{h, 16 << 20, 0, 0});
  void *a = ::operator new(test_size(64), std::align_val_t(64));
  size_t wrong = misaligning(a);
  expect_mismatch("new(64, align 64), aligned delete with a wrong alignment",
                  Bad{a, 0, wrong, 0});
  expect_mismatch("new(64, align 64), sized+aligned delete, wrong alignment",
                  Bad{a, 64, wrong, 0});
  expect_mismatch("new(64, align 64), sized+aligned delete, size too large",
                  Bad{a, 100000, 64, 0});
  void *aa = ::operator new[](test_size(5000), std::align_val_t(4096));
  expect_mismatch("new[](5000, align 4096), aligned delete[], wrong alignment",
                  Bad{aa, 0, misaligning(aa), 1});
  expect_mismatch("new[](5000, align 4096), sized+aligned delete[], wrong size",
                  Bad{aa, 100000, 4096, 1});
  // A size far below the block's is caught with an alignment too (the
  // block is at most about twice the larger of size and alignment).
  void *ha = ::operator new(test_size(8 << 20), std::align_val_t(1 << 20));
  expect_mismatch("new(8 MiB, align 1 MiB), sized+aligned delete of 100",
                  Bad{ha, 100, 1 << 20, 0});
  void *la = ::operator new[](test_size(300000), std::align_val_t(4096));
  expect_mismatch("new[](300000, align 4096), sized+aligned delete[] of 16",
                  Bad{la, 16, 4096, 1});
  ::operator delete[](la, test_size(300000), std::align_val_t(4096));
  ::operator delete(ha, test_size(8 << 20), std::align_val_t(1 << 20));

  // A pointer ptrs does not know, and a double sized delete.
  static char not_heap[64] __attribute__((aligned(64)));
  Bad foreign = {not_heap + 16, 16, 0, 0};
  expect_abort("sized delete of a static array", bad_delete, &foreign,
               "operator delete", "invalid pointer", not_heap + 16);
  void *d = ::operator new(test_size(100));
  expect_abort("sized delete twice", delete_twice, d, "operator delete",
               "double free detected", d);
  // The plain deletes name themselves too (they printed "free()").
  expect_abort("plain delete of a static array", plain_delete, not_heap + 16,
               "operator delete", "invalid pointer", not_heap + 16);
  expect_abort("plain delete[] of a static array", plain_delete_array, not_heap + 32,
               "operator delete[]", "invalid pointer", not_heap + 32);
  void *e = ::operator new[](test_size(100));
  expect_abort("plain delete[] twice", plain_delete_array_twice, e,
               "operator delete[]", "double free detected", e);

  // The parent's blocks are intact and free normally with the right sizes.
  ::operator delete(p, test_size(100));
  ::operator delete[](q, test_size(4000));
  ::operator delete(l, test_size(300000));
  ::operator delete(h, test_size(8 << 20));
  ::operator delete(a, test_size(64), std::align_val_t(64));
  ::operator delete[](aa, test_size(5000), std::align_val_t(4096));
  ::operator delete(d, test_size(100));
  ::operator delete[](e);
}

int main() {
  require_ptrs();
  check_origin();
  check_variants();
  check_new_handler();
  check_mismatch();
  return test_result();
}
