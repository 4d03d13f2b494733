//! The calling thread's heap pointer.
//!
//! On x86-64 it is a thread-local variable of the initial-exec TLS model,
//! declared in assembly: stable Rust cannot choose a TLS model, and the
//! default for a shared library (general-dynamic) costs a call to
//! `__tls_get_addr` on every malloc and free. Initial-exec is what glibc
//! requires of a replacement malloc; it reserves static TLS space for it
//! even in libraries loaded by `dlopen`. Its initial value is the address of
//! the static empty heap, so the fast path never tests for "no heap yet":
//! the empty heap has no free blocks, and its slow path sets the thread up.
//!
//! Elsewhere a `const`-initialised `thread_local!` without `Drop` is used
//! (it registers no destructor and never allocates).

use crate::heap::{Heap, EMPTY_HEAP};

#[cfg(target_arch = "x86_64")]
core::arch::global_asm!(
    ".pushsection .tdata,\"awT\",@progbits",
    ".p2align 3",
    // Global but hidden: code inlined into a dependent Rust crate refers to
    // it by name, and it must not be exported from libptrs.so.
    ".globl __ptrs_tls_heap",
    ".hidden __ptrs_tls_heap",
    ".type __ptrs_tls_heap, @object",
    ".size __ptrs_tls_heap, 8",
    "__ptrs_tls_heap:",
    ".quad {empty}",
    ".popsection",
    empty = sym EMPTY_HEAP,
);

/// The calling thread's heap (the empty heap until the thread's first
/// allocation slow path).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub fn current() -> *mut Heap {
    let heap: *mut Heap;
    // SAFETY: reads the 8-byte initial-exec TLS slot declared above through
    // its GOT offset relative to the thread pointer (%fs); it always holds a
    // valid heap pointer.
    unsafe {
        core::arch::asm!(
            "mov {h}, qword ptr [rip + __ptrs_tls_heap@GOTTPOFF]",
            "mov {h}, qword ptr fs:[{h}]",
            h = out(reg) heap,
            options(nostack, preserves_flags, readonly, pure),
        );
    }
    heap
}

/// Sets the calling thread's heap.
#[cfg(target_arch = "x86_64")]
pub fn set_current(heap: *mut Heap) {
    // SAFETY: writes the TLS slot declared above (see `current`).
    unsafe {
        core::arch::asm!(
            "mov {t}, qword ptr [rip + __ptrs_tls_heap@GOTTPOFF]",
            "mov qword ptr fs:[{t}], {h}",
            t = out(reg) _,
            h = in(reg) heap,
            options(nostack, preserves_flags),
        );
    }
}

#[cfg(not(target_arch = "x86_64"))]
std::thread_local! {
    static CURRENT: core::cell::Cell<*mut Heap> = const { core::cell::Cell::new(EMPTY_HEAP.get()) };
}

#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
pub fn current() -> *mut Heap {
    CURRENT.with(|c| c.get())
}

#[cfg(not(target_arch = "x86_64"))]
pub fn set_current(heap: *mut Heap) {
    CURRENT.with(|c| c.set(heap))
}
