//! malloc, calloc, realloc, free and their variants.

use core::ffi::c_void;

use super::or_enomem;
use crate::{alloc, free, os};

/// # Safety
/// C ABI: any size.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn malloc(size: usize) -> *mut c_void {
    // One test for two things: the size fits the fast path, and the heap
    // profiler is off (the limit is 0 while it is on).
    if size < crate::profile::fast_limit() {
        let p = alloc::try_pop(size);
        if !p.is_null() {
            return p.cast();
        }
    }
    malloc_slow(size)
}

/// The rest of malloc, out of line so the fast path needs no stack frame;
/// every malloc comes here while the heap profiler (or mtrace) is on.
#[inline(never)]
fn malloc_slow(size: usize) -> *mut c_void {
    if crate::profile::armed() {
        return or_enomem(crate::profile::malloc_hook(size, 0), size);
    }
    or_enomem(alloc::malloc_generic(size), size)
}

/// # Safety
/// `p` must be null or a live block from this allocator.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn free(p: *mut c_void) {
    free::free(p.cast())
}

/// # Safety
/// C ABI: any counts.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn calloc(count: usize, size: usize) -> *mut c_void {
    or_enomem(alloc::calloc(count, size), count.saturating_mul(size))
}

/// # Safety
/// `p` must be null or a live block from this allocator.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn realloc(p: *mut c_void, size: usize) -> *mut c_void {
    if p.is_null() {
        return or_enomem(alloc::malloc(size), size);
    }
    if size == 0 {
        // glibc frees the block and returns NULL.
        free::free(p.cast());
        return core::ptr::null_mut();
    }
    or_enomem(alloc::realloc(p.cast(), size), size)
}

/// # Safety
/// `p` must be null or a live block from this allocator.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn reallocarray(p: *mut c_void, count: usize, size: usize) -> *mut c_void {
    match count.checked_mul(size) {
        // SAFETY: forwarded with the caller's guarantee on `p`.
        Some(total) => unsafe { realloc(p, total) },
        None => {
            os::set_errno(libc::ENOMEM);
            core::ptr::null_mut()
        }
    }
}

/// # Safety
/// `p` must be null or a live block from this allocator.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cfree(p: *mut c_void) {
    free::free(p.cast())
}

/// C23 `free_sized`: `size` must be the size the block was requested with.
///
/// # Safety
/// `p` must be null or a live block from malloc, calloc or realloc.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn free_sized(p: *mut c_void, size: usize) {
    if !p.is_null() && !free::size_matches(p.cast(), size, 0, "free_sized") {
        return;
    }
    free::free(p.cast())
}

/// C23 `free_aligned_sized`: `align` and `size` must be those the block
/// was requested with from aligned_alloc.
///
/// # Safety
/// `p` must be null or a live block from aligned_alloc.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn free_aligned_sized(p: *mut c_void, align: usize, size: usize) {
    if !p.is_null() && !free::size_matches(p.cast(), size, align, "free_aligned_sized") {
        return;
    }
    free::free(p.cast())
}

/// # Safety
/// As `malloc`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn __libc_malloc(size: usize) -> *mut c_void {
    // SAFETY: same contract.
    unsafe { malloc(size) }
}

/// # Safety
/// As `free`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn __libc_free(p: *mut c_void) {
    // SAFETY: same contract.
    unsafe { free(p) }
}

/// # Safety
/// As `calloc`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn __libc_calloc(count: usize, size: usize) -> *mut c_void {
    // SAFETY: same contract.
    unsafe { calloc(count, size) }
}

/// # Safety
/// As `realloc`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn __libc_realloc(p: *mut c_void, size: usize) -> *mut c_void {
    // SAFETY: same contract.
    unsafe { realloc(p, size) }
}
