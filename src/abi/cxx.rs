//! The engine entry points of the C++ operators.
//!
//! The 20 `operator new` / `operator delete` variants themselves are C++, in
//! `src/cxx/new_delete.cc` (built by `build.rs` with the `cc` crate), so
//! that `std::bad_alloc` is thrown, and a throwing `new_handler` caught, in
//! C++ frames only: a C++ exception must never unwind through a Rust frame
//! (with `panic = "abort"` that aborts). They call the functions below,
//! which never unwind and never allocate through Rust's `alloc`.
//!
//! The C++ file declares these names with hidden visibility, so the linker
//! makes them local to `libptrs.so`: the operators call them directly (no
//! PLT), and they are not part of the library's interface. Feature `cxx`
//! (default; it implies `override`, the C names' gate).

use core::ffi::c_void;

use super::{or_enomem, or_retry};
use crate::{alloc, diag, free};

unsafe extern "C" {
    // The C++ operators of `new_delete.cc`, for their addresses only.
    #[link_name = "_Znwm"]
    fn op_new();
    #[link_name = "_Znam"]
    fn op_new_array();
    #[link_name = "_ZnwmRKSt9nothrow_t"]
    fn op_new_nothrow();
    #[link_name = "_ZnamRKSt9nothrow_t"]
    fn op_new_array_nothrow();
    #[link_name = "_ZnwmSt11align_val_t"]
    fn op_new_aligned();
    #[link_name = "_ZnamSt11align_val_t"]
    fn op_new_array_aligned();
    #[link_name = "_ZnwmSt11align_val_tRKSt9nothrow_t"]
    fn op_new_aligned_nothrow();
    #[link_name = "_ZnamSt11align_val_tRKSt9nothrow_t"]
    fn op_new_array_aligned_nothrow();
}

/// The functions through which a C++ program allocates: the eight
/// `operator new` variants and the functions below they call (see
/// [`super::entry_functions`]).
pub(super) fn entry_functions() -> [usize; 11] {
    [
        op_new as *const () as usize,
        op_new_array as *const () as usize,
        op_new_nothrow as *const () as usize,
        op_new_array_nothrow as *const () as usize,
        op_new_aligned as *const () as usize,
        op_new_array_aligned as *const () as usize,
        op_new_aligned_nothrow as *const () as usize,
        op_new_array_aligned_nothrow as *const () as usize,
        ptrs_cxx_alloc as *const () as usize,
        cxx_alloc_slow as *const () as usize,
        ptrs_cxx_alloc_aligned as *const () as usize,
    ]
}

/// `operator new(size)`'s allocation: `size` bytes, 16-byte aligned (the
/// C++ default new alignment on x86-64 and aarch64). Null when out of
/// memory, after ptrs's out-of-memory handler (`ptrs_set_oom_handler`) and
/// errno ENOMEM, as malloc; the C++ side then runs the `new_handler` loop.
/// Any thread.
#[unsafe(no_mangle)]
#[unsafe(link_section = ".text.hot.ptrs")]
pub extern "C" fn ptrs_cxx_alloc(size: usize) -> *mut c_void {
    // Memcheck mode is decided and handled in the slow path (see
    // `abi::malloc::malloc_slow`).
    let p = alloc::try_pop_counted(size);
    if !p.is_null() {
        return p.cast();
    }
    cxx_alloc_slow(size)
}

#[inline(never)]
#[unsafe(link_section = ".text.hot.ptrs")]
fn cxx_alloc_slow(size: usize) -> *mut c_void {
    if crate::valgrind::active() {
        return or_enomem(crate::valgrind::alloc(size, 0, false), size);
    }
    or_retry(size, alloc::malloc_miss(size), || alloc::malloc_miss(size))
}

/// `operator new(size, align_val_t)`'s allocation: `size` bytes aligned to
/// `align` bytes, which must be a power of two (the C++ standard makes any
/// other value undefined; here it is rounded up to one). Null when out of
/// memory, as [`ptrs_cxx_alloc`]. Any thread.
#[unsafe(no_mangle)]
pub extern "C" fn ptrs_cxx_alloc_aligned(size: usize, align: usize) -> *mut c_void {
    let align = align.max(1).checked_next_power_of_two().unwrap_or(usize::MAX / 2 + 1);
    if crate::valgrind::active() {
        return or_enomem(crate::valgrind::alloc(size, align, false), size);
    }
    or_retry(size, alloc::malloc_aligned(align, size), || alloc::malloc_aligned(align, size))
}

/// `operator delete(p)` (and its `nothrow` form): frees `p` as `free`
/// does (null is ignored; an unknown pointer or a double free prints
/// `ptrs: operator delete(): ...` and aborts).
///
/// # Safety
/// `p` must be null or a live block from this allocator.
#[unsafe(no_mangle)]
#[unsafe(link_section = ".text.hot.ptrs")]
pub unsafe extern "C" fn ptrs_cxx_free(p: *mut c_void) {
    // Memcheck mode: free's remote path routes it (see `free::free_remote`).
    free::free_as(p.cast(), "operator delete")
}

/// `operator delete[](p)` (and its `nothrow` form): [`ptrs_cxx_free`]
/// under the name `operator delete[]`.
///
/// # Safety
/// `p` must be null or a live block from this allocator.
#[unsafe(no_mangle)]
#[unsafe(link_section = ".text.hot.ptrs")]
pub unsafe extern "C" fn ptrs_cxx_free_array(p: *mut c_void) {
    free::free_as(p.cast(), "operator delete[]")
}

/// The sized and aligned deletes while the process may run under memcheck
/// (the first calls, until that is decided, and every call in memcheck
/// mode): in memcheck mode the size is checked against what the program
/// asked for, then the block goes as `free`'s. Out of line, so that the
/// deletes' fast paths make no call and save no registers (a call to the
/// decision inside them cost every sized delete 6 instructions of
/// register saves, callgrind).
#[cold]
#[inline(never)]
fn cxx_free_undecided(p: *mut c_void, size: usize, align: usize, func: &str) {
    if !crate::valgrind::active() {
        return free::free_checked(p.cast(), size, align, func);
    }
    if !p.is_null() && !super::malloc::sized_free_ok(p, size, align, func) {
        return;
    }
    crate::valgrind::free(p.cast(), func)
}

/// Sized `operator delete(p, size)`: frees `p` after checking `size`
/// (bytes) against the block as `free_sized` does. A mismatch prints
/// `ptrs: operator delete(): size or alignment does not match the block:
/// 0x...` and aborts. (One entry point per operator name, so that the name
/// is a constant and the fast path has no branch on it.)
///
/// # Safety
/// `p` must be null or a live block from this allocator.
#[unsafe(no_mangle)]
#[unsafe(link_section = ".text.hot.ptrs")]
pub unsafe extern "C" fn ptrs_cxx_free_sized(p: *mut c_void, size: usize) {
    if crate::valgrind::maybe_active() {
        return cxx_free_undecided(p, size, 0, "operator delete");
    }
    free::free_checked(p.cast(), size, 0, "operator delete")
}

/// Sized `operator delete[](p, size)`: as [`ptrs_cxx_free_sized`], named
/// `operator delete[]` in the diagnostic.
///
/// # Safety
/// `p` must be null or a live block from this allocator.
#[unsafe(no_mangle)]
#[unsafe(link_section = ".text.hot.ptrs")]
pub unsafe extern "C" fn ptrs_cxx_free_sized_array(p: *mut c_void, size: usize) {
    if crate::valgrind::maybe_active() {
        return cxx_free_undecided(p, size, 0, "operator delete[]");
    }
    free::free_checked(p.cast(), size, 0, "operator delete[]")
}

/// Aligned `operator delete`, with or without a size: frees `p` after
/// checking `align` (bytes, a power of two) and `size` (bytes; 0 for the
/// forms without one, which then checks the alignment only: size 0 fits any
/// block once an alignment is given) against the block as
/// `free_aligned_sized` does. Mismatch: as [`ptrs_cxx_free_sized`].
///
/// # Safety
/// `p` must be null or a live block from this allocator.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ptrs_cxx_free_aligned(p: *mut c_void, size: usize, align: usize) {
    if crate::valgrind::maybe_active() {
        return cxx_free_undecided(p, size, align, "operator delete");
    }
    free::free_checked(p.cast(), size, align, "operator delete")
}

/// Aligned `operator delete[]`: as [`ptrs_cxx_free_aligned`], named
/// `operator delete[]` in the diagnostic.
///
/// # Safety
/// `p` must be null or a live block from this allocator.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ptrs_cxx_free_aligned_array(p: *mut c_void, size: usize, align: usize) {
    if crate::valgrind::maybe_active() {
        return cxx_free_undecided(p, size, align, "operator delete[]");
    }
    free::free_checked(p.cast(), size, align, "operator delete[]")
}

/// Out of memory in a process where neither `std::get_new_handler` nor
/// `std::__throw_bad_alloc` can be found (a C++ runtime other than
/// libstdc++, or one loaded privately): nothing can be thrown, so this
/// reports and aborts, as `std::terminate` would.
#[unsafe(no_mangle)]
pub extern "C" fn ptrs_cxx_no_runtime(size: usize) -> ! {
    diag::fatal(format_args!(
        "operator new({}): out of memory, and no C++ runtime found to throw std::bad_alloc",
        size
    ))
}
