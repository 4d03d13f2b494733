//! The C ABI: the only place with `#[unsafe(no_mangle)]` items. It turns C
//! conventions (errno, NULL, size 0, EINVAL versus ENOMEM) into calls of the
//! engine and back; no engine module knows about errno or C types.
//!
//! Exported with glibc's semantics (feature `override`, on by default):
//! `malloc free calloc realloc memalign malloc_usable_size posix_memalign
//! aligned_alloc valloc pvalloc reallocarray free_sized free_aligned_sized
//! cfree`, glibc's aliases `__libc_malloc __libc_free __libc_calloc
//! __libc_realloc __libc_memalign __libc_valloc __libc_pvalloc
//! __posix_memalign`, and `mallinfo mallinfo2 malloc_stats malloc_trim
//! mallopt malloc_info`, and `_exit _Exit` (for `PTRS_SHOW_STATS`, see
//! `exit.rs`); with feature `cxx` (on by default, implies `override`) also
//! the 20 C++ `operator new` / `operator delete` variants (`cxx.rs`,
//! `src/cxx/new_delete.cc`). Always exported: the `ptrs_*` API declared in
//! `include/ptrs.h`.
//!
//! No function here unwinds (`panic = "abort"`) or allocates.

#[cfg(feature = "override")]
mod aligned;
pub mod api;
pub mod pool;
#[cfg(feature = "cxx")]
mod cxx;
#[cfg(feature = "override")]
mod exit;
#[cfg(feature = "override")]
mod introspect;
#[cfg(feature = "override")]
mod malloc;

use crate::os;

/// Runs `f` and restores errno afterwards (for `free`, which must preserve
/// it, and posix_memalign, which must not set it).
#[cfg_attr(not(feature = "override"), allow(dead_code))]
#[inline]
pub(crate) fn preserving_errno<T>(f: impl FnOnce() -> T) -> T {
    let saved = os::errno();
    let r = f();
    os::set_errno(saved);
    r
}

/// Returns `p`; when it is null, sets errno to ENOMEM and calls the
/// program's out-of-memory handler, if it set one, with the request size.
#[cfg_attr(not(feature = "override"), allow(dead_code))]
#[inline(always)]
pub(crate) fn or_enomem(p: *mut u8, size: usize) -> *mut libc::c_void {
    if p.is_null() {
        api::out_of_memory(size);
    }
    p.cast()
}
