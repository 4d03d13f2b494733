// The 20 replaceable global allocation functions of C++17 ([new.delete]),
// exported by libptrs.so and libptrs.a (feature `override`), over ptrs's
// engine (src/abi/cxx.rs).
//
//   operator new / new[]        (size), (size, nothrow_t),
//                               (size, align_val_t), (size, align_val_t, nothrow_t)
//   operator delete / delete[]  (p), (p, size), (p, nothrow_t),
//                               (p, align_val_t), (p, size, align_val_t),
//                               (p, align_val_t, nothrow_t)
//
// Semantics (the standard's): `new` retries after calling the installed
// std::new_handler and throws std::bad_alloc when there is none; the
// nothrow forms return null instead (also when the handler throws); the
// aligned forms honour any power-of-two alignment; the sized and aligned
// deletes check the size and alignment against the block as free_sized
// does (a mismatch: one line "ptrs: operator delete(): size or alignment
// does not match the block: 0x..." and abort).
//
// Why C++ and not Rust: the exception must be thrown, and a throwing
// new_handler caught, in C++ frames; a C++ exception unwinding through a
// Rust frame aborts the process (panic = "abort").
//
// Why every C++ runtime symbol here is weak: a C program linked with -lptrs
// or running with libptrs.so preloaded must not load libstdc++ (nor
// libgcc_s). It never calls these operators, and a C++ program always has
// its C++ runtime loaded, so the references are resolved by the dynamic
// loader when the runtime is there and stay null otherwise. libptrs.so
// therefore has no NEEDED entry for libstdc++ (checked by
// c-tests/tst-cxx-no-runtime.c). When the runtime arrives later and
// privately (a C program dlopen()s a C++ library with RTLD_LOCAL), the weak
// references are null but the operators are ptrs's: the out-of-memory path
// then looks the two functions it needs up in the loaded libstdc++.so.6.
//
// Idea from mimalloc's mimalloc-new-delete.h and jemalloc's
// jemalloc_cpp.cpp (both export these operators from the allocator); no
// code is taken from them.

#include <cstddef>
#include <dlfcn.h>
#include <new>

#define PTRS_HIDDEN __attribute__((visibility("hidden")))
#define PTRS_LIKELY(x) __builtin_expect(!!(x), 1)

extern "C" {
// ptrs's engine (src/abi/cxx.rs). Hidden: resolved inside the library,
// called directly, not exported.
PTRS_HIDDEN void *ptrs_cxx_alloc(std::size_t size) noexcept;
PTRS_HIDDEN void *ptrs_cxx_alloc_aligned(std::size_t size, std::size_t align) noexcept;
PTRS_HIDDEN void ptrs_cxx_free(void *p) noexcept;
PTRS_HIDDEN void ptrs_cxx_free_array(void *p) noexcept;
PTRS_HIDDEN void ptrs_cxx_free_sized(void *p, std::size_t size) noexcept;
PTRS_HIDDEN void ptrs_cxx_free_sized_array(void *p, std::size_t size) noexcept;
PTRS_HIDDEN void ptrs_cxx_free_aligned(void *p, std::size_t size, std::size_t align) noexcept;
PTRS_HIDDEN void ptrs_cxx_free_aligned_array(void *p, std::size_t size,
                                             std::size_t align) noexcept;
[[noreturn]] PTRS_HIDDEN void ptrs_cxx_no_runtime(std::size_t size) noexcept;

// The C++ runtime, weak (see above). std::get_new_handler and
// std::__throw_bad_alloc under their mangled names, so that these
// declarations do not clash with <new>'s.
std::new_handler ptrs_rt_get_new_handler() noexcept
    __asm__("_ZSt15get_new_handlerv") __attribute__((weak));
[[noreturn]] void ptrs_rt_throw_bad_alloc() __asm__("_ZSt17__throw_bad_allocv")
    __attribute__((weak));
// What the compiler emits for the try/catch of the nothrow forms.
void *__cxa_begin_catch(void *) noexcept __attribute__((weak));
void __cxa_end_catch() __attribute__((weak));
}
// The personality routine is referenced from the unwind tables only; a
// declaration cannot make that reference weak, the assembler directive does.
__asm__(".weak __gxx_personality_v0");

namespace {

using get_handler_fn = std::new_handler (*)() noexcept;
using throw_fn = void (*)();

// The runtime's functions when the weak references are null: looked up in
// an already loaded libstdc++ (RTLD_NOLOAD: never loads one), once found.
get_handler_fn late_get_handler;
throw_fn late_throw;
bool late_done;

void resolve_late() {
  if (__atomic_load_n(&late_done, __ATOMIC_ACQUIRE))
    return;
  void *h = dlopen("libstdc++.so.6", RTLD_LAZY | RTLD_NOLOAD);
  if (h != nullptr) {
    __atomic_store_n(&late_get_handler,
                     reinterpret_cast<get_handler_fn>(dlsym(h, "_ZSt15get_new_handlerv")),
                     __ATOMIC_RELAXED);
    __atomic_store_n(&late_throw,
                     reinterpret_cast<throw_fn>(dlsym(h, "_ZSt17__throw_bad_allocv")),
                     __ATOMIC_RELAXED);
    // The handle stays open: libstdc++ is loaded anyway (NOLOAD), and the
    // pointers must stay valid.
    __atomic_store_n(&late_done, true, __ATOMIC_RELEASE);
  }
  // Not loaded yet: asked again at the next failure (it may be by then).
}

std::new_handler current_handler() noexcept {
  if (PTRS_LIKELY(ptrs_rt_get_new_handler != nullptr))
    return ptrs_rt_get_new_handler();
  resolve_late();
  get_handler_fn f = __atomic_load_n(&late_get_handler, __ATOMIC_RELAXED);
  return f != nullptr ? f() : nullptr;
}

[[noreturn]] void throw_bad_alloc(std::size_t size) {
  if (PTRS_LIKELY(ptrs_rt_throw_bad_alloc != nullptr))
    ptrs_rt_throw_bad_alloc();
  resolve_late();
  throw_fn f = __atomic_load_n(&late_throw, __ATOMIC_RELAXED);
  if (f != nullptr)
    f();
  ptrs_cxx_no_runtime(size);
}

inline void *try_alloc(std::size_t size, std::size_t align) noexcept {
  return align == 0 ? ptrs_cxx_alloc(size) : ptrs_cxx_alloc_aligned(size, align);
}

// The first attempt failed: the new_handler loop ([new.delete.single]/3).
// align 0 means the default alignment.
[[gnu::cold, gnu::noinline]] void *new_failed(std::size_t size, std::size_t align) {
  for (;;) {
    std::new_handler h = current_handler();
    if (h == nullptr)
      throw_bad_alloc(size);
    h();
    void *p = try_alloc(size, align);
    if (p != nullptr)
      return p;
  }
}

// The nothrow forms: as if the throwing form were called in a try block
// ([new.delete.single]/8). Only the handler can throw here. (A forced
// unwind from thread cancellation inside a new_handler is swallowed too,
// as libstdc++'s own nothrow operator new does.)
[[gnu::cold, gnu::noinline]] void *new_failed_nothrow(std::size_t size,
                                                       std::size_t align) noexcept {
  for (;;) {
    std::new_handler h = current_handler();
    if (h == nullptr)
      return nullptr;
    try {
      h();
    } catch (...) {
      return nullptr;
    }
    void *p = try_alloc(size, align);
    if (p != nullptr)
      return p;
  }
}

inline void *do_new(std::size_t size) {
  void *p = ptrs_cxx_alloc(size);
  if (PTRS_LIKELY(p != nullptr))
    return p;
  return new_failed(size, 0);
}

inline void *do_new_nothrow(std::size_t size) noexcept {
  void *p = ptrs_cxx_alloc(size);
  if (PTRS_LIKELY(p != nullptr))
    return p;
  return new_failed_nothrow(size, 0);
}

inline void *do_new_aligned(std::size_t size, std::align_val_t al) {
  std::size_t align = static_cast<std::size_t>(al);
  void *p = ptrs_cxx_alloc_aligned(size, align);
  if (PTRS_LIKELY(p != nullptr))
    return p;
  return new_failed(size, align);
}

inline void *do_new_aligned_nothrow(std::size_t size, std::align_val_t al) noexcept {
  std::size_t align = static_cast<std::size_t>(al);
  void *p = ptrs_cxx_alloc_aligned(size, align);
  if (PTRS_LIKELY(p != nullptr))
    return p;
  return new_failed_nothrow(size, align);
}

} // namespace

#define PTRS_EXPORT __attribute__((visibility("default")))

// ---- new ---------------------------------------------------------------

PTRS_EXPORT void *operator new(std::size_t size) { return do_new(size); }
PTRS_EXPORT void *operator new[](std::size_t size) { return do_new(size); }

PTRS_EXPORT void *operator new(std::size_t size, const std::nothrow_t &) noexcept {
  return do_new_nothrow(size);
}
PTRS_EXPORT void *operator new[](std::size_t size, const std::nothrow_t &) noexcept {
  return do_new_nothrow(size);
}

PTRS_EXPORT void *operator new(std::size_t size, std::align_val_t al) {
  return do_new_aligned(size, al);
}
PTRS_EXPORT void *operator new[](std::size_t size, std::align_val_t al) {
  return do_new_aligned(size, al);
}

PTRS_EXPORT void *operator new(std::size_t size, std::align_val_t al,
                               const std::nothrow_t &) noexcept {
  return do_new_aligned_nothrow(size, al);
}
PTRS_EXPORT void *operator new[](std::size_t size, std::align_val_t al,
                                 const std::nothrow_t &) noexcept {
  return do_new_aligned_nothrow(size, al);
}

// ---- delete ------------------------------------------------------------
// The nothrow deletes are called only when a constructor throws in a
// nothrow new-expression: plain frees.

PTRS_EXPORT void operator delete(void *p) noexcept { ptrs_cxx_free(p); }
PTRS_EXPORT void operator delete[](void *p) noexcept { ptrs_cxx_free_array(p); }

PTRS_EXPORT void operator delete(void *p, const std::nothrow_t &) noexcept {
  ptrs_cxx_free(p);
}
PTRS_EXPORT void operator delete[](void *p, const std::nothrow_t &) noexcept {
  ptrs_cxx_free_array(p);
}

PTRS_EXPORT void operator delete(void *p, std::size_t size) noexcept {
  ptrs_cxx_free_sized(p, size);
}
PTRS_EXPORT void operator delete[](void *p, std::size_t size) noexcept {
  ptrs_cxx_free_sized_array(p, size);
}

PTRS_EXPORT void operator delete(void *p, std::align_val_t al) noexcept {
  ptrs_cxx_free_aligned(p, 0, static_cast<std::size_t>(al));
}
PTRS_EXPORT void operator delete[](void *p, std::align_val_t al) noexcept {
  ptrs_cxx_free_aligned_array(p, 0, static_cast<std::size_t>(al));
}

PTRS_EXPORT void operator delete(void *p, std::size_t size, std::align_val_t al) noexcept {
  ptrs_cxx_free_aligned(p, size, static_cast<std::size_t>(al));
}
PTRS_EXPORT void operator delete[](void *p, std::size_t size,
                                   std::align_val_t al) noexcept {
  ptrs_cxx_free_aligned_array(p, size, static_cast<std::size_t>(al));
}

PTRS_EXPORT void operator delete(void *p, std::align_val_t al,
                                 const std::nothrow_t &) noexcept {
  ptrs_cxx_free_aligned(p, 0, static_cast<std::size_t>(al));
}
PTRS_EXPORT void operator delete[](void *p, std::align_val_t al,
                                   const std::nothrow_t &) noexcept {
  ptrs_cxx_free_aligned_array(p, 0, static_cast<std::size_t>(al));
}
