//! The memory-pool C API (`ptrs_pool_*`), declared in `include/ptrs.h`
//! (cbindgen reads this file too). The engine is `src/pool.rs`.
//!
//! A pool is a heap for one connection or request: everything allocated
//! from it is released by one `ptrs_pool_destroy` (or `ptrs_pool_reset`),
//! in time proportional to the pool's pages, never to its blocks. Its
//! blocks are ordinary ptrs blocks: `free`, `realloc` (the block stays in
//! its pool), `malloc_usable_size`, `free_sized` and `ptrs_owns` work on
//! them from any thread. The idea comes from APR's pools, nginx's
//! `ngx_pool_t` and mimalloc's heaps (`mi_heap_new` / `mi_heap_destroy`).
//!
//! Thread rules: without `PTRS_POOL_SHARED` one thread at a time allocates
//! from a pool (`ptrs_pool_malloc` and friends, `ptrs_pool_cleanup_add`,
//! `realloc` of its blocks), but the pool may be handed to another thread
//! (with the usual synchronisation, e.g. a mutex or a queue); with it, any
//! number of threads may allocate at the same time. `free` of a pool block
//! is allowed from any thread at any time before the pool is destroyed.
//! `ptrs_pool_destroy` and `ptrs_pool_reset` must not run while another
//! thread uses the pool or frees its blocks.
//!
//! Errors: every function sets errno as its C counterpart does; a NULL
//! pool is EINVAL. A pointer that is not a live pool (a destroyed one, a
//! random address) is undefined behaviour, as for `free`; a destroyed pool
//! still cached by ptrs is reported as an invalid pool (abort by default).

use core::ffi::{c_char, c_int, c_uint, c_void};

use crate::{alloc, diag, free, os, pool, valgrind};

/// A memory pool (opaque).
#[allow(non_camel_case_types)]
pub struct ptrs_pool {
    _opaque: [u8; 0],
}

/// Flag of `ptrs_pool_options.flags`: several threads may allocate from the
/// pool at the same time (every allocation then takes the pool's lock).
pub const PTRS_POOL_SHARED: c_uint = 1;
/// Flag of `ptrs_pool_options.flags`: bump allocation. Requests up to 16
/// KiB are carved one after the other from the pool's chunks (each block
/// after a 16-byte header); free() of such a block only marks it and
/// updates the statistics, its memory returns on reset or destroy.
/// Larger blocks are ordinary blocks, returned when freed.
pub const PTRS_POOL_BUMP: c_uint = 2;

/// Options of `ptrs_pool_create`.
#[repr(C)]
pub struct ptrs_pool_options {
    /// Shown in statistics (`PTRS_SHOW_STATS`, `malloc_stats`); may be
    /// NULL; copied (up to 39 bytes).
    pub name: *const c_char,
    /// Most bytes of blocks (usable sizes) the pool may hold; 0: no limit.
    /// In bump mode (`PTRS_POOL_BUMP`) a freed bump block is held until a
    /// reset or destroy, so it counts too.
    /// An allocation beyond it returns NULL with errno ENOMEM.
    pub limit: usize,
    /// `PTRS_POOL_*` flags; any other bit is EINVAL.
    pub flags: c_uint,
    /// The pool is destroyed (and reset) with its parent, before the
    /// parent's cleanups; NULL: none.
    pub parent: *mut ptrs_pool,
}

/// A pool's figures, in bytes (and blocks).
#[repr(C)]
pub struct ptrs_pool_stats {
    /// Bytes of live blocks (usable sizes).
    pub allocated: usize,
    /// The highest `allocated` since the pool was created or reset:
    /// exact while one thread at a time frees the pool's blocks; while
    /// several free at once, it may be lower by what they freed
    /// meanwhile, never higher.
    pub peak_allocated: usize,
    /// Live blocks.
    pub blocks: usize,
    /// Bytes of pages (and huge blocks) the pool holds.
    pub active: usize,
}

fn engine(pool: *mut ptrs_pool) -> *mut pool::Pool {
    pool.cast()
}

/// Checks a pool argument: NULL sets errno EINVAL; a destroyed pool is
/// reported (abort by default) then EINVAL.
fn check(pool: *mut ptrs_pool, func: &str) -> bool {
    if pool.is_null() {
        os::set_errno(libc::EINVAL);
        return false;
    }
    // SAFETY: a non-null pool argument points at memory ptrs handed out as
    // a pool (the caller's contract).
    if !unsafe { pool::is_live(engine(pool)) } {
        diag::heap_error(func, "invalid pool", pool as usize);
        os::set_errno(libc::EINVAL);
        return false;
    }
    true
}

/// Creates a pool. `opts` may be NULL (no name, no limit, no flags, no
/// parent). Returns NULL with errno EINVAL for unknown flags or a parent
/// that is not a live pool, ENOMEM when out of memory. Any thread; time is
/// constant (destroyed pools are kept for reuse).
///
/// # Safety
/// `opts` must be NULL or point to a valid `ptrs_pool_options` whose `name`
/// is NULL or NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ptrs_pool_create(opts: *const ptrs_pool_options) -> *mut ptrs_pool {
    let _q = valgrind::Quiet::new(); // memcheck mode: engine code
    let (name, limit, flags, parent): (&[u8], usize, c_uint, *mut ptrs_pool) = if opts.is_null() {
        (b"", 0, 0, core::ptr::null_mut())
    } else {
        // SAFETY: the caller guarantees `opts` and its name.
        unsafe {
            let o = &*opts;
            let name = if o.name.is_null() { &b""[..] } else { core::ffi::CStr::from_ptr(o.name).to_bytes() };
            (name, o.limit, o.flags, o.parent)
        }
    };
    let o = pool::Options { name, limit, flags, parent: engine(parent) };
    match pool::create(&o) {
        Ok(p) => p.cast(),
        Err(pool::CreateError::Invalid) => {
            os::set_errno(libc::EINVAL);
            core::ptr::null_mut()
        }
        Err(pool::CreateError::NoMemory) => {
            os::set_errno(libc::ENOMEM);
            core::ptr::null_mut()
        }
    }
}

/// Destroys a pool: its child pools (newest first), then its cleanups
/// (last added first), then every block it holds, in time proportional to
/// its pages. Afterwards `free` of one of its blocks is reported, as an
/// invalid pointer or (a large block, whose span is free again) a double
/// free, until its memory is reused by another allocation.
/// NULL sets errno EINVAL; otherwise errno is preserved.
///
/// # Safety
/// `pool` must be NULL or a live pool that no other thread uses now.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ptrs_pool_destroy(pool: *mut ptrs_pool) {
    if !check(pool, "ptrs_pool_destroy") {
        return;
    }
    let saved = os::errno();
    let _q = valgrind::Quiet::new();
    // SAFETY: checked live; the caller guarantees exclusive use.
    unsafe { pool::destroy(engine(pool)) };
    os::set_errno(saved);
}

/// Empties a pool as `ptrs_pool_destroy` does (children, cleanups, every
/// block) but keeps it usable, and keeps one of its segments for the next
/// allocations. Statistics start again from zero. NULL sets errno EINVAL.
///
/// # Safety
/// As `ptrs_pool_destroy`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ptrs_pool_reset(pool: *mut ptrs_pool) {
    if !check(pool, "ptrs_pool_reset") {
        return;
    }
    let saved = os::errno();
    let _q = valgrind::Quiet::new();
    // SAFETY: checked live; the caller guarantees exclusive use.
    unsafe { pool::reset(engine(pool)) };
    os::set_errno(saved);
}

/// Allocates `size` bytes (16-byte aligned) from the pool; `size` 0 gives
/// a unique block, as malloc(0). NULL with errno ENOMEM when out of memory
/// or beyond the pool's limit, EINVAL for a NULL pool. Costs about what
/// malloc costs: malloc's fast path on the pool's heap when the calling
/// thread allocated from the pool last (default mode), a bump carve in
/// PTRS_POOL_BUMP mode; a thread the pool was handed to takes it over at
/// its first allocation (a few atomic operations, once).
///
/// # Safety
/// `pool` must be NULL or a live pool, from which no other thread
/// allocates at the same time unless it was made with PTRS_POOL_SHARED.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ptrs_pool_malloc(pool: *mut ptrs_pool, size: usize) -> *mut c_void {
    if pool.is_null() {
        return einval();
    }
    // The fast paths (never taken in memcheck mode: such pools are made
    // with `MODE_SLOW`); everything else checks the pool and knows memcheck.
    // SAFETY: as the caller guarantees.
    let p = unsafe { pool::alloc_fast(engine(pool), size) };
    if !p.is_null() {
        return p.cast();
    }
    // SAFETY: as the caller guarantees.
    unsafe { pool_alloc_any(pool, size, 0, false) }
}

/// Sets errno EINVAL and returns NULL (out of line, and opaque to the
/// optimiser, so that the fast paths reach it by a tail jump and keep no
/// stack frame: a result the compiler knows to be null would not be
/// returned from the call).
#[cold]
#[inline(never)]
fn einval() -> *mut c_void {
    os::set_errno(libc::EINVAL);
    core::hint::black_box(core::ptr::null_mut())
}

/// A pool allocation of `size` bytes failed: NULL with errno ENOMEM, and,
/// when it was for want of memory rather than the pool's own limit, the
/// process's out-of-memory handler is told, as for malloc.
///
/// # Safety
/// `p` must be a live pool.
#[cold]
unsafe fn failed(p: *const pool::Pool, size: usize) -> *mut c_void {
    // SAFETY: as the caller guarantees.
    if !unsafe { pool::refused_by_limit(p) } {
        crate::abi::api::out_of_memory(size);
    }
    enomem()
}

#[cold]
fn enomem() -> *mut c_void {
    os::set_errno(libc::ENOMEM);
    core::ptr::null_mut()
}

/// Every pool allocation but the plain fast path: checks the pool, and in
/// memcheck mode tells memcheck about the block.
///
/// # Safety
/// `pool` must be a live pool (or a destroyed one, reported).
#[inline(never)]
unsafe fn pool_alloc_any(pool: *mut ptrs_pool, size: usize, align: usize, zero: bool) -> *mut c_void {
    if !check(pool, "ptrs_pool_malloc") {
        return core::ptr::null_mut();
    }
    let p = engine(pool);
    let b = if valgrind::active() {
        // SAFETY: `p` is live (checked).
        valgrind::alloc_from(size, zero, |total| unsafe { pool::alloc_slow(p, total, align.max(16)) })
    } else {
        // SAFETY: as above.
        let b = unsafe { pool::alloc_slow(p, size, align.max(16)) };
        if zero && !b.is_null() {
            // SAFETY: `b` holds at least `size` bytes.
            unsafe { core::ptr::write_bytes(b, 0, size) };
        }
        b
    };
    if b.is_null() {
        // SAFETY: `p` is live (checked above).
        return unsafe { failed(p, size) };
    }
    b.cast()
}

/// Allocates `count * size` zeroed bytes from the pool. NULL with errno
/// ENOMEM on overflow, out of memory or beyond the limit; EINVAL for a
/// NULL pool.
///
/// # Safety
/// As `ptrs_pool_malloc`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ptrs_pool_calloc(pool: *mut ptrs_pool, count: usize, size: usize) -> *mut c_void {
    if pool.is_null() {
        os::set_errno(libc::EINVAL);
        return core::ptr::null_mut();
    }
    let Some(total) = count.checked_mul(size) else { return enomem() };
    // SAFETY: as the caller guarantees.
    unsafe { pool_alloc_any(pool, total, 0, true) }
}

/// Resizes `p`, a block of this pool, to `size` bytes; the result is a
/// block of the same pool (contents kept up to the smaller size). `p` NULL
/// is `ptrs_pool_malloc`; `size` 0 frees `p` and returns NULL (as glibc's
/// realloc). NULL with errno ENOMEM when out of memory or beyond the limit
/// (`p` is then untouched); EINVAL for a NULL pool or a `p` that is not a
/// live block of this pool (`p` untouched).
///
/// # Safety
/// `pool` as in `ptrs_pool_malloc`; `p` NULL or a live block.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ptrs_pool_realloc(pool: *mut ptrs_pool, p: *mut c_void, size: usize) -> *mut c_void {
    if p.is_null() {
        // SAFETY: same contract.
        return unsafe { ptrs_pool_malloc(pool, size) };
    }
    if !check(pool, "ptrs_pool_realloc") {
        return core::ptr::null_mut();
    }
    if ptrs_pool_of(p) != pool {
        os::set_errno(libc::EINVAL);
        return core::ptr::null_mut();
    }
    if size == 0 {
        if valgrind::active() {
            valgrind::free(p.cast(), "ptrs_pool_realloc");
        } else {
            free::free_as(p.cast(), "ptrs_pool_realloc");
        }
        return core::ptr::null_mut();
    }
    let q = if valgrind::active() {
        valgrind::realloc(p.cast(), size)
    } else {
        alloc::realloc_as(p.cast(), size, "ptrs_pool_realloc")
    };
    if q.is_null() {
        // SAFETY: `pool` is live (checked above).
        return unsafe { failed(engine(pool), size) };
    }
    q.cast()
}

/// Allocates `size` bytes aligned to `alignment` (a power of two) from the
/// pool. NULL with errno EINVAL for an alignment that is not a power of
/// two or a NULL pool, ENOMEM when out of memory or beyond the limit.
///
/// # Safety
/// As `ptrs_pool_malloc`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ptrs_pool_aligned_alloc(pool: *mut ptrs_pool, alignment: usize, size: usize) -> *mut c_void {
    if pool.is_null() || !alignment.is_power_of_two() {
        os::set_errno(libc::EINVAL);
        return core::ptr::null_mut();
    }
    // SAFETY: as the caller guarantees.
    unsafe { pool_alloc_any(pool, size, alignment, false) }
}

/// Copies the NUL-terminated string `s` into a block of the pool. NULL
/// with errno EINVAL for a NULL pool or string, ENOMEM when out of memory
/// or beyond the limit.
///
/// # Safety
/// As `ptrs_pool_malloc`; `s` NULL or NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ptrs_pool_strdup(pool: *mut ptrs_pool, s: *const c_char) -> *mut c_char {
    if s.is_null() {
        os::set_errno(libc::EINVAL);
        return core::ptr::null_mut();
    }
    // SAFETY: the caller guarantees a NUL-terminated string.
    let len = unsafe { core::ffi::CStr::from_ptr(s) }.to_bytes().len();
    // SAFETY: as the caller guarantees.
    let d = unsafe { ptrs_pool_malloc(pool, len + 1) };
    if !d.is_null() {
        // SAFETY: `d` holds len + 1 bytes; `s` as many readable.
        unsafe { core::ptr::copy_nonoverlapping(s as *const u8, d as *mut u8, len + 1) };
    }
    d.cast()
}

/// Registers `fn(arg)` to run when the pool is destroyed or reset, after
/// its child pools are destroyed and before its blocks are released;
/// cleanups run last added first. Returns 0, EINVAL (also in errno) for a
/// NULL pool or function, or ENOMEM.
///
/// # Safety
/// As `ptrs_pool_malloc`; `fn` must be safe to call with `arg`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ptrs_pool_cleanup_add(
    pool: *mut ptrs_pool,
    r#fn: Option<extern "C" fn(arg: *mut c_void)>,
    arg: *mut c_void,
) -> c_int {
    let Some(func) = r#fn else {
        os::set_errno(libc::EINVAL);
        return libc::EINVAL;
    };
    if !check(pool, "ptrs_pool_cleanup_add") {
        return libc::EINVAL;
    }
    let _q = valgrind::Quiet::new();
    // SAFETY: checked live; thread rules are the caller's.
    if unsafe { pool::cleanup_add(engine(pool), func, arg) } {
        0
    } else {
        os::set_errno(libc::ENOMEM);
        libc::ENOMEM
    }
}

/// The pool that allocated `p`; NULL for NULL, blocks of the process heap,
/// blocks of destroyed pools and pointers ptrs does not know. Any thread;
/// errno is preserved.
#[unsafe(no_mangle)]
pub extern "C" fn ptrs_pool_of(p: *const c_void) -> *mut ptrs_pool {
    let _q = valgrind::Quiet::new();
    // SAFETY: block_info validates the pointer before reading any header.
    let Some(info) = (unsafe { free::block_info(p as *mut u8) }) else { return core::ptr::null_mut() };
    // SAFETY: `info` describes a block ptrs knows.
    unsafe { pool::owner_of(&info, p as *const u8) }.cast()
}

/// Fills `*out` with the pool's figures (exact when no other thread
/// allocates from or frees into the pool meanwhile). Returns 0, or EINVAL
/// (also in errno) for a NULL pool or `out`. Time: proportional to the
/// pool's segments.
///
/// # Safety
/// `pool` NULL or live; `out` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ptrs_pool_stats_get(pool: *const ptrs_pool, out: *mut ptrs_pool_stats) -> c_int {
    if out.is_null() || !check(pool as *mut ptrs_pool, "ptrs_pool_stats_get") {
        os::set_errno(libc::EINVAL);
        return libc::EINVAL;
    }
    // SAFETY: checked live.
    let s = unsafe { pool::stats(engine(pool as *mut ptrs_pool)) };
    // SAFETY: the caller guarantees `out`.
    unsafe {
        out.write(ptrs_pool_stats {
            allocated: s.allocated,
            peak_allocated: s.peak_allocated,
            blocks: s.blocks,
            active: s.active,
        })
    };
    0
}

/// Calls `visit(block, usable, arg)` for every live block of the pool
/// (`usable` in bytes, as malloc_usable_size), in no particular order,
/// and stops at the first non-zero return value, which it returns; 0 when
/// every block was visited. -1 with errno EINVAL for a NULL pool or
/// `visit`. The visitor may free the block it is given (not realloc it);
/// it must not allocate from the pool, reset or destroy it. Other threads
/// may free the pool's blocks meanwhile: every block live for the whole
/// walk is visited once, a block freed before the walk reaches it is not.
/// Time: proportional to the pool's blocks.
///
/// # Safety
/// `pool` NULL or live, and no other thread allocates from it meanwhile.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ptrs_pool_visit(
    pool: *mut ptrs_pool,
    visit: Option<extern "C" fn(block: *mut c_void, usable: usize, arg: *mut c_void) -> c_int>,
    arg: *mut c_void,
) -> c_int {
    let Some(visit) = visit else {
        os::set_errno(libc::EINVAL);
        return -1;
    };
    if !check(pool, "ptrs_pool_visit") {
        return -1;
    }
    let memcheck = valgrind::active();
    // The walk reads free-list links inside freed blocks: memcheck stays
    // quiet for it, not for the program's visitor.
    let _q = valgrind::Quiet::new();
    // SAFETY: checked live; thread rules are the caller's.
    unsafe {
        pool::visit(engine(pool), &mut |b, usable| {
            let _l = valgrind::Loud::new();
            let usable = if memcheck { valgrind::usable_size(b) } else { usable };
            visit(b.cast(), usable, arg)
        })
    }
}
