//! memalign, posix_memalign, aligned_alloc, valloc, pvalloc.

use core::ffi::c_void;

use super::{or_enomem, or_retry, preserving_errno, retry_after_trim};
use crate::os::{self, OS_PAGE_SIZE};
use crate::{alloc, valgrind};

/// This file's functions through which a program allocates (see
/// [`super::entry_functions`]).
pub(super) fn entry_functions() -> [usize; 11] {
    [
        aligned as *const () as usize,
        memalign_impl as *const () as usize,
        memalign as *const () as usize,
        aligned_alloc as *const () as usize,
        posix_memalign as *const () as usize,
        valloc as *const () as usize,
        pvalloc as *const () as usize,
        __libc_memalign as *const () as usize,
        __libc_valloc as *const () as usize,
        __libc_pvalloc as *const () as usize,
        __posix_memalign as *const () as usize,
    ]
}

/// The engine's aligned allocation, or memcheck mode's (see `valgrind`).
fn aligned(align: usize, size: usize) -> *mut u8 {
    if valgrind::active() {
        return valgrind::alloc(size, align, false);
    }
    alloc::malloc_aligned(align, size)
}

/// glibc's memalign: alignments that are not a power of two are rounded up
/// to one; alignments above SIZE_MAX/2 + 1 are EINVAL.
fn memalign_impl(align: usize, size: usize) -> *mut c_void {
    if align > usize::MAX / 2 + 1 {
        os::set_errno(libc::EINVAL);
        return core::ptr::null_mut();
    }
    let align = align.max(1).next_power_of_two();
    or_retry(size, aligned(align, size), || aligned(align, size))
}

/// # Safety
/// C ABI: any values.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memalign(align: usize, size: usize) -> *mut c_void {
    memalign_impl(align, size)
}

/// C11 aligned_alloc. A non-power-of-two alignment is EINVAL (as in glibc
/// 2.38 and later; 2.36 treated it as memalign does).
///
/// # Safety
/// C ABI: any values.
#[unsafe(no_mangle)]
#[unsafe(link_section = ".text.hot.ptrs")]
pub unsafe extern "C" fn aligned_alloc(align: usize, size: usize) -> *mut c_void {
    if !align.is_power_of_two() {
        os::set_errno(libc::EINVAL);
        return core::ptr::null_mut();
    }
    or_retry(size, aligned(align, size), || aligned(align, size))
}

/// POSIX posix_memalign: EINVAL unless `align` is a power of two multiple
/// of `sizeof(void *)`, ENOMEM when out of memory; `*out` is written only
/// on success. As glibc's, a failure for lack of memory also leaves
/// `errno = ENOMEM` (glibc's tst-malloc-thread-fail relies on it); errno is
/// unchanged otherwise.
///
/// # Safety
/// `out` must be valid for a pointer write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn posix_memalign(out: *mut *mut c_void, align: usize, size: usize) -> i32 {
    if !align.is_power_of_two() || align % core::mem::size_of::<*mut c_void>() != 0 {
        return libc::EINVAL;
    }
    let mut p = preserving_errno(|| aligned(align, size));
    if p.is_null() {
        p = preserving_errno(|| retry_after_trim(size, || aligned(align, size)));
    }
    if p.is_null() {
        or_enomem(p, size);
        return libc::ENOMEM;
    }
    // SAFETY: the caller guarantees `out` is writable.
    unsafe { *out = p.cast() };
    0
}

/// # Safety
/// C ABI: any size.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn valloc(size: usize) -> *mut c_void {
    or_retry(size, aligned(OS_PAGE_SIZE, size), || aligned(OS_PAGE_SIZE, size))
}

/// Page-aligned, with the size rounded up to whole pages (one page for 0).
///
/// # Safety
/// C ABI: any size.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pvalloc(size: usize) -> *mut c_void {
    let Some(rounded) = size.max(1).checked_add(OS_PAGE_SIZE - 1) else {
        os::set_errno(libc::ENOMEM);
        return core::ptr::null_mut();
    };
    let pages = rounded & !(OS_PAGE_SIZE - 1);
    or_retry(size, aligned(OS_PAGE_SIZE, pages), || aligned(OS_PAGE_SIZE, pages))
}

/// # Safety
/// As `memalign`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn __libc_memalign(align: usize, size: usize) -> *mut c_void {
    memalign_impl(align, size)
}

/// # Safety
/// As `valloc`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn __libc_valloc(size: usize) -> *mut c_void {
    // SAFETY: same contract.
    unsafe { valloc(size) }
}

/// # Safety
/// As `pvalloc`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn __libc_pvalloc(size: usize) -> *mut c_void {
    // SAFETY: same contract.
    unsafe { pvalloc(size) }
}

/// # Safety
/// As `posix_memalign`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn __posix_memalign(out: *mut *mut c_void, align: usize, size: usize) -> i32 {
    // SAFETY: same contract.
    unsafe { posix_memalign(out, align, size) }
}
