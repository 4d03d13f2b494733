//! malloc, calloc, realloc, free and their variants.

use core::ffi::c_void;

use super::{or_enomem, or_retry};
use crate::{alloc, free, os, valgrind};

/// # Safety
/// C ABI: any size.
#[unsafe(no_mangle)]
#[unsafe(link_section = ".text.hot.ptrs")]
pub unsafe extern "C" fn malloc(size: usize) -> *mut c_void {
    // The heap profiler's countdown is part of the fast path: see
    // `alloc::try_pop_counted`.
    let p = alloc::try_pop_counted(size);
    if !p.is_null() {
        return p.cast();
    }
    malloc_slow(size)
}

/// The rest of malloc, out of line so the fast path needs no stack frame.
/// Memcheck mode (see `valgrind`) is decided here: under memcheck no
/// thread ever gets a heap of its own (`heap::thread_heap_slow`), so
/// every malloc misses the fast path and arrives here, and every free is
/// a remote free (`free::free_remote` routes it); natively the fast paths
/// pay nothing for memcheck mode. The heap profiler is called from here
/// when the heap's sampling countdown ran out, and for every malloc that
/// misses the fast path while the profiler (or mtrace) is on.
#[inline(never)]
fn malloc_slow(size: usize) -> *mut c_void {
    if valgrind::active() {
        return or_enomem(valgrind::alloc(size, 0, false), size);
    }
    or_retry(size, alloc::malloc_miss(size), || alloc::malloc_miss(size))
}

/// This file's functions through which a program allocates: the exported
/// ones and the out-of-line parts they jump to (see
/// [`super::entry_functions`]).
pub(super) fn entry_functions() -> [usize; 9] {
    [
        malloc as *const () as usize,
        malloc_slow as *const () as usize,
        calloc as *const () as usize,
        realloc as *const () as usize,
        realloc_failed as *const () as usize,
        reallocarray as *const () as usize,
        __libc_malloc as *const () as usize,
        __libc_calloc as *const () as usize,
        __libc_realloc as *const () as usize,
    ]
}

/// # Safety
/// `p` must be null or a live block from this allocator.
#[unsafe(no_mangle)]
#[unsafe(link_section = ".text.hot.ptrs")]
pub unsafe extern "C" fn free(p: *mut c_void) {
    // Memcheck mode: see `malloc_slow`.
    free::free(p.cast())
}

/// # Safety
/// C ABI: any counts.
#[unsafe(no_mangle)]
#[unsafe(link_section = ".text.hot.ptrs")]
pub unsafe extern "C" fn calloc(count: usize, size: usize) -> *mut c_void {
    // An overflowing count x size is a bad request, not a want of memory:
    // ENOMEM without the out-of-memory handler, as reallocarray and
    // ptrs_pool_calloc.
    let Some(total) = count.checked_mul(size) else {
        os::set_errno(libc::ENOMEM);
        return core::ptr::null_mut();
    };
    if valgrind::active() {
        return or_enomem(valgrind::alloc(total, 0, true), total);
    }
    or_retry(total, alloc::calloc(count, size), || alloc::calloc(count, size))
}

/// # Safety
/// `p` must be null or a live block from this allocator.
#[unsafe(no_mangle)]
#[unsafe(link_section = ".text.hot.ptrs")]
pub unsafe extern "C" fn realloc(p: *mut c_void, size: usize) -> *mut c_void {
    if p.is_null() {
        // SAFETY: same contract.
        return unsafe { malloc(size) };
    }
    if size == 0 {
        // glibc frees the block and returns NULL.
        // SAFETY: same contract.
        unsafe { free(p) };
        return core::ptr::null_mut();
    }
    let vg = valgrind::active();
    let q = if vg { valgrind::realloc(p.cast(), size) } else { alloc::realloc(p.cast(), size) };
    if q.is_null() {
        return realloc_failed(p.cast(), size, !vg);
    }
    q.cast()
}

/// realloc of `p` to `size` bytes returned null: a block of a pool whose
/// own limit refused the growth gets NULL and ENOMEM at once, as from
/// `ptrs_pool_realloc` (ptrs.h: the out-of-memory handler is not told of
/// a pool's limit, and a trim of every heap cannot raise it; a fresh
/// tester saw the handler called, after a full trim, for each such
/// realloc); anything else is retried after a trim when `retry`
/// (`or_retry`; not in memcheck mode), and told to the handler.
#[cold]
#[inline(never)]
fn realloc_failed(p: *mut u8, size: usize, retry: bool) -> *mut c_void {
    // SAFETY: `p` is checked by block_info before anything is read.
    let Some(info) = (unsafe { crate::free::block_info(p) }) else {
        // An invalid pointer: realloc reported it (PTRS_ABORT_ON_ERROR=0
        // lets the program go on); a retry would report it again.
        os::set_errno(libc::ENOMEM);
        return core::ptr::null_mut();
    };
    // SAFETY: `info` was just returned by block_info for `p`. (Only
    // natively: memcheck mode tests this itself, quietly, before it
    // resizes, and makes no retry; here memcheck would report the read of
    // the program's bytes in a live block's first words.)
    if retry && unsafe { crate::free::is_freed(&info, p) } {
        // A freed block, reported likewise (a fresh tester saw two
        // warnings for one realloc, the second after the retry's trim).
        os::set_errno(libc::ENOMEM);
        return core::ptr::null_mut();
    }
    // SAFETY: `info` describes the live `p`; a pool block's pool is live
    // while the block is.
    let pool = unsafe { crate::pool::owner_of(&info, p) };
    // SAFETY: `pool` is the live pool holding `p`.
    if !pool.is_null() && unsafe { crate::pool::refused_by_limit(pool) } {
        os::set_errno(libc::ENOMEM);
        return core::ptr::null_mut();
    }
    if !retry {
        return or_enomem(core::ptr::null_mut(), size);
    }
    or_retry(size, core::ptr::null_mut(), || alloc::realloc(p, size))
}

/// # Safety
/// `p` must be null or a live block from this allocator.
#[unsafe(no_mangle)]
#[unsafe(link_section = ".text.hot.ptrs")]
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
    // SAFETY: same contract.
    unsafe { free(p) }
}

/// C23 `free_sized`: `size` must be the size the block was requested with.
///
/// # Safety
/// `p` must be null or a live block from malloc, calloc or realloc.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn free_sized(p: *mut c_void, size: usize) {
    if valgrind::active() {
        if !p.is_null() && !sized_free_ok(p, size, 0, "free_sized") {
            return;
        }
        // SAFETY: same contract.
        return unsafe { free(p) };
    }
    free::free_checked(p.cast(), size, 0, "free_sized")
}

/// C23 `free_aligned_sized`: `align` and `size` must be those the block
/// was requested with from aligned_alloc.
///
/// # Safety
/// `p` must be null or a live block from aligned_alloc.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn free_aligned_sized(p: *mut c_void, align: usize, size: usize) {
    if valgrind::active() {
        if !p.is_null() && !sized_free_ok(p, size, align, "free_aligned_sized") {
            return;
        }
        // SAFETY: same contract.
        return unsafe { free(p) };
    }
    free::free_checked(p.cast(), size, align, "free_aligned_sized")
}

/// The size check of free_sized and free_aligned_sized (see
/// `free::size_matches`); in memcheck mode against the requested size.
pub(crate) fn sized_free_ok(p: *mut c_void, size: usize, align: usize, func: &str) -> bool {
    if valgrind::active() {
        let known = {
            let _q = valgrind::Quiet::new();
            // SAFETY: block_info validates `p` before reading any header.
            unsafe { free::block_info(p.cast()) }.is_some()
        };
        if !known {
            free::report_invalid(func, p.cast());
            return false;
        }
        // The engine block also holds the redzone, so the rule applies
        // to the size the program asked for (known exactly here: no slack
        // for rounding).
        let requested = valgrind::usable_size(p.cast());
        if !free::sized_rule(p.cast(), requested, size, align, crate::size_class::SIZED_FREE_SLACK)
            && crate::options::sized_free_check()
        {
            crate::diag::heap_error(func, "size or alignment does not match the block", p as usize);
            return false;
        }
        return true;
    }
    free::size_matches(p.cast(), size, align, func)
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
