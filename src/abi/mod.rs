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

/// Most functions [`entry_functions`] lists.
pub const MAX_ENTRY_FUNCTIONS: usize = 48;

/// The start addresses of the functions through which a program allocates
/// from ptrs and that may be the outermost of ptrs's frames on its stack:
/// the exported C and C++ allocation functions, the out-of-line parts they
/// jump to (a tail call leaves no frame of its own), and the engine
/// functions a Rust program's `#[global_allocator]` shim calls. The heap
/// profiler cuts a sampled stack after the last of them
/// (`profile::stack::internal_frames`); unlike the exported names, the
/// addresses are known in a program linked with `libptrs.a` too, where
/// `dladdr` names none of ptrs's functions. Fills `out` and returns the
/// count. Any thread; no allocation.
pub fn entry_functions(out: &mut [usize; MAX_ENTRY_FUNCTIONS]) -> usize {
    let mut n = 0;
    let mut add = |fs: &[usize]| {
        for &f in fs {
            if n < MAX_ENTRY_FUNCTIONS {
                out[n] = f;
                n += 1;
            }
        }
    };
    add(&[
        crate::alloc::malloc_miss as *const () as usize,
        crate::alloc::calloc as *const () as usize,
        crate::alloc::realloc as *const () as usize,
        crate::alloc::malloc_aligned as *const () as usize,
    ]);
    #[cfg(feature = "override")]
    add(&malloc::entry_functions());
    #[cfg(feature = "override")]
    add(&aligned::entry_functions());
    #[cfg(feature = "cxx")]
    add(&cxx::entry_functions());
    n
}

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

/// Returns `p`, the block `alloc` gave; when it is null (and `size`, in
/// bytes, is a request that could be met), first gives back the memory ptrs
/// keeps after frees (what `malloc_trim(0)` gives back: cached segments and
/// huge mappings, free pages of parked heaps) and runs `alloc` once more,
/// then as [`or_enomem`]. Without it a request under `PTRS_HEAP_LIMIT` or
/// RLIMIT_AS failed while nothing was live, because the memory freed just
/// before still counted until its purge delay ran out (a tester: 40 MiB
/// freed, then malloc(50 MiB) under a 64 MiB limit: NULL).
#[cfg_attr(not(feature = "override"), allow(dead_code))]
#[inline(always)]
pub(crate) fn or_retry(size: usize, p: *mut u8, alloc: impl FnOnce() -> *mut u8) -> *mut libc::c_void {
    if !p.is_null() {
        return p.cast();
    }
    or_enomem(retry_after_trim(size, alloc), size)
}

/// The second try of [`or_retry`]: null without trying when `size` could
/// never be met or nothing was given back.
#[cfg_attr(not(feature = "override"), allow(dead_code))]
#[cold]
#[inline(never)]
pub(crate) fn retry_after_trim(size: usize, alloc: impl FnOnce() -> *mut u8) -> *mut u8 {
    if !could_fit(size) {
        return core::ptr::null_mut();
    }
    if !preserving_errno(api::trim) {
        return core::ptr::null_mut();
    }
    alloc()
}

/// Whether a request of `size` bytes could be met at all: within malloc's
/// limit, `PTRS_HEAP_LIMIT`, RLIMIT_AS and the 128 TiB of a process's
/// address space (x86-64, 4-level paging). Only then is a trim worth its
/// cost: glibc's tst-malloc-too-large asks for tens of thousands of sizes
/// from 2^50 up, and a trim at each failure took it past its time limit.
#[cfg_attr(not(feature = "override"), allow(dead_code))]
fn could_fit(size: usize) -> bool {
    const ADDRESS_SPACE: usize = 1 << 47;
    if size > crate::alloc::MAX_REQUEST || size >= ADDRESS_SPACE || size > os::overcommit_cap() {
        return false;
    }
    let limit = crate::options::heap_limit();
    if limit != 0 && size > limit {
        return false;
    }
    let mut rl = core::mem::MaybeUninit::<libc::rlimit>::uninit();
    // SAFETY: getrlimit fills `rl` when it returns 0.
    if unsafe { libc::getrlimit(libc::RLIMIT_AS, rl.as_mut_ptr()) } == 0 {
        // SAFETY: filled just above.
        let cur = unsafe { rl.assume_init() }.rlim_cur;
        if cur != libc::RLIM_INFINITY && size as u64 > cur {
            return false;
        }
    }
    true
}

/// Returns `p`; when it is null, calls the program's out-of-memory
/// handler, if it set one, with the request size. errno is left as the
/// failing allocation set it (ENOMEM).
#[cfg_attr(not(feature = "override"), allow(dead_code))]
#[inline(always)]
pub(crate) fn or_enomem(p: *mut u8, size: usize) -> *mut libc::c_void {
    if p.is_null() {
        api::out_of_memory(size);
    }
    p.cast()
}
