//! Memcheck mode: ptrs tells valgrind's memcheck about its blocks, so that
//! memcheck checks a program running on ptrs as it checks one running on
//! glibc (use after free, overflow, reads of uninitialised memory, invalid
//! and double frees).
//!
//! Idea: valgrind's client requests (`valgrind/valgrind.h`,
//! `valgrind/memcheck.h`: `VALGRIND_MALLOCLIKE_BLOCK`, `FREELIKE_BLOCK`,
//! `RESIZEINPLACE_BLOCK`, `MAKE_MEM_NOACCESS`, ...), as custom allocators
//! such as mimalloc (`track.h`) use them. The requests are a magic
//! instruction sequence that is a no-op on real hardware; this module
//! issues it with `asm!` (no C shim, no dependency).
//!
//! Design:
//! - [`active`] is decided once per process: true only under memcheck (a
//!   memcheck request answers -1; other tools such as callgrind answer the
//!   default, 0, so `make bench-callgrind` still measures the fast paths).
//! - Natively the cost is one load of a static byte and a predictable
//!   branch in each C entry point (`abi/`); nothing in the engine changes.
//! - Under memcheck every C entry point goes through this module instead of
//!   the fast paths. A block of `size` bytes is an engine block of at least
//!   `size + REDZONE` bytes: `[p, p + size)` is announced with
//!   `MALLOCLIKE_BLOCK` (defined for calloc, undefined otherwise), the rest
//!   is no-access (a redzone that catches overflows into the next block),
//!   and its last word stores `size` (read back for realloc and
//!   malloc_usable_size, which answers `size`, as glibc under valgrind
//!   does). `free` announces `FREELIKE_BLOCK`, which makes the block
//!   no-access; in-place realloc announces `RESIZEINPLACE_BLOCK`.
//! - ptrs itself reads and writes free-list links and free marks inside
//!   blocks the program freed (now no-access). So engine calls made under
//!   memcheck run with memcheck's error reporting turned off for the
//!   calling thread ([`Quiet`]): memcheck checks every access of the
//!   program and of this module, not those of the engine. (ptrs's own
//!   engine is checked by its Rust tests and the fuzzer; the price of
//!   checking it under memcheck too would be a request around every link
//!   access in the fast paths.)

use core::ptr;

use crate::size_class::MIN_ALIGN;
use crate::{alloc, free};

/// Bytes of no-access memory at least, after each block in memcheck mode;
/// its last word holds the block's requested size.
pub const REDZONE: usize = 16;

// Client request codes, from valgrind.h and memcheck.h (valgrind 3.x).
const RUNNING_ON_VALGRIND: usize = 0x1001;
const MALLOCLIKE_BLOCK: usize = 0x1301;
const FREELIKE_BLOCK: usize = 0x1302;
const RESIZEINPLACE_BLOCK: usize = 0x130b;
const CHANGE_ERR_DISABLEMENT: usize = 0x1801;
/// `VG_USERREQ_TOOL_BASE('M', 'C')`: memcheck's first request.
const MC_BASE: usize = (b'M' as usize) << 24 | (b'C' as usize) << 16;
const MAKE_MEM_NOACCESS: usize = MC_BASE;
const MAKE_MEM_UNDEFINED: usize = MC_BASE + 1;
const MAKE_MEM_DEFINED: usize = MC_BASE + 2;

/// Issues one client request; returns valgrind's answer, or `default`
/// natively and under tools that do not handle the request.
#[cfg(target_arch = "x86_64")]
#[inline(never)]
#[unsafe(link_section = ".text.hot.ptrs")]
fn request(req: usize, a1: usize, a2: usize, a3: usize, a4: usize, default: usize) -> usize {
    let args: [usize; 6] = [req, a1, a2, a3, a4, 0];
    let result: usize;
    // SAFETY: valgrind's amd64 "special instruction preamble": the four
    // rotations of %rdi add up to 128 bits (a no-op) and `xchg %rbx, %rbx`
    // changes nothing, so natively %rdx keeps `default`. Under valgrind the
    // sequence is recognised: it reads the request block %rax points to
    // (valid for the whole asm) and writes its answer to %rdx.
    unsafe {
        core::arch::asm!(
            "rol rdi, 3",
            "rol rdi, 13",
            "rol rdi, 61",
            "rol rdi, 51",
            "xchg rbx, rbx",
            inout("rdx") default => result,
            in("rax") args.as_ptr(),
            inout("rdi") 0usize => _,
            options(nostack),
        );
    }
    result
}

#[cfg(not(target_arch = "x86_64"))]
fn request(_req: usize, _a1: usize, _a2: usize, _a3: usize, _a4: usize, default: usize) -> usize {
    default
}

/// 0: not decided yet, 1: native (or a tool other than memcheck), 2: memcheck.
static STATE: core::sync::atomic::AtomicU8 = core::sync::atomic::AtomicU8::new(0);

/// False once the process is known to run natively (or under a tool other
/// than memcheck): the C entry points' fast paths test this, one compare
/// of a static byte with a constant, and call their out-of-line memcheck
/// variant (which decides, the first time) otherwise.
#[inline(always)]
pub fn maybe_active() -> bool {
    STATE.load(core::sync::atomic::Ordering::Relaxed) != 1
}

/// True when the process runs under valgrind's memcheck (decided on the
/// first call).
#[inline(always)]
pub fn active() -> bool {
    match STATE.load(core::sync::atomic::Ordering::Relaxed) {
        1 => false,
        2 => true,
        _ => decide(),
    }
}

#[cold]
#[inline(never)]
#[unsafe(link_section = ".text.hot.ptrs")]
fn decide() -> bool {
    let yes = request(RUNNING_ON_VALGRIND, 0, 0, 0, 0, 0) != 0 && {
        // Memcheck answers -1 to MAKE_MEM_DEFINED; other tools ignore it.
        let probe = 0usize;
        request(MAKE_MEM_DEFINED, &raw const probe as usize, 8, 0, 0, 0) != 0
    };
    STATE.store(if yes { 2 } else { 1 }, core::sync::atomic::Ordering::Relaxed);
    yes
}

/// Turns memcheck's error reporting off for the calling thread while it
/// lives (nestable), when memcheck is active; nothing otherwise. Used
/// around engine calls, which touch the links inside freed blocks.
pub struct Quiet(bool);

impl Quiet {
    #[inline(always)]
    pub fn new() -> Quiet {
        let on = active();
        if on {
            request(CHANGE_ERR_DISABLEMENT, 1, 0, 0, 0, 0);
        }
        Quiet(on)
    }
}

/// Turns memcheck's error reporting back on for the calling thread while
/// it lives, inside a [`Quiet`] (a program callback run from an engine
/// walk: `ptrs_pool_visit`).
pub struct Loud(bool);

impl Loud {
    #[inline(always)]
    pub fn new() -> Loud {
        let on = active();
        if on {
            request(CHANGE_ERR_DISABLEMENT, usize::MAX, 0, 0, 0, 0);
        }
        Loud(on)
    }
}

impl Drop for Loud {
    #[inline(always)]
    fn drop(&mut self) {
        if self.0 {
            request(CHANGE_ERR_DISABLEMENT, 1, 0, 0, 0, 0);
        }
    }
}

impl Default for Quiet {
    fn default() -> Quiet {
        Quiet::new()
    }
}

impl Drop for Quiet {
    #[inline(always)]
    fn drop(&mut self) {
        if self.0 {
            request(CHANGE_ERR_DISABLEMENT, usize::MAX, 0, 0, 0, 0);
        }
    }
}

fn noaccess(p: usize, len: usize) {
    if len != 0 {
        request(MAKE_MEM_NOACCESS, p, len, 0, 0, 0);
    }
}

fn undefined(p: usize, len: usize) {
    request(MAKE_MEM_UNDEFINED, p, len, 0, 0, 0);
}

/// The engine's usable size of a block this module handed out, and the
/// block's facts; `None` if ptrs does not know `p`.
fn engine_info(p: *mut u8) -> Option<free::BlockInfo> {
    let _q = Quiet::new();
    // SAFETY: block_info validates `p` before reading any header.
    unsafe { free::block_info(p) }
}

/// Writes the requested size into the last word of the block.
fn store_size(p: *mut u8, usable: usize, size: usize) {
    let at = p as usize + usable - 8;
    undefined(at, 8);
    // SAFETY: `at` is 8-aligned (usable sizes are multiples of 16) and lies
    // inside the block, which holds `usable` bytes.
    unsafe { ptr::write(at as *mut usize, size) };
}

/// Reads the size [`store_size`] wrote; the word stays no-access.
fn load_size(p: *mut u8, usable: usize) -> usize {
    let _q = Quiet::new();
    // SAFETY: as in store_size; reading a no-access word is reported by
    // memcheck only, and reporting is off here.
    unsafe { ptr::read_volatile((p as usize + usable - 8) as *const usize) }
}

/// malloc, aligned allocation (`align` above 16) and calloc (`zero`) in
/// memcheck mode. Null when out of memory (errno is the caller's).
pub fn alloc(size: usize, align: usize, zero: bool) -> *mut u8 {
    alloc_from(size, zero, |total| {
        if align <= MIN_ALIGN { alloc::malloc(total) } else { alloc::malloc_aligned(align, total) }
    })
}

/// The size the program asked for, from the size the engine is asked for
/// in memcheck mode (the program's bytes and the redzone after them, see
/// [`alloc_from`]); `size` itself otherwise. For what the heap profiler
/// and mtrace record: a block of 0x1234 bytes was traced as 0x1244 under
/// memcheck.
pub fn program_size(size: usize) -> usize {
    if active() { size.saturating_sub(REDZONE) } else { size }
}

/// As `alloc`, with the block (of `total` bytes, the request and the
/// redzone) from `get`: a pool's allocation (`abi/pool.rs`).
pub fn alloc_from(size: usize, zero: bool, get: impl FnOnce(usize) -> *mut u8) -> *mut u8 {
    let Some(total) = size.checked_add(REDZONE) else { return ptr::null_mut() };
    let p = {
        let _q = Quiet::new();
        get(total)
    };
    if p.is_null() {
        return p;
    }
    let usable = engine_info(p).map_or(total, |i| i.usable);
    store_size(p, usable, size);
    request(MALLOCLIKE_BLOCK, p as usize, size, 0, zero as usize, 0);
    noaccess(p as usize + size, usable - size);
    if zero {
        // SAFETY: `[p, p + size)` is ours and addressable now.
        unsafe { ptr::write_bytes(p, 0, size) };
    }
    p
}

/// free in memcheck mode (`func` names the caller in ptrs's reports).
pub fn free(p: *mut u8, func: &str) {
    if p.is_null() {
        return;
    }
    if engine_info(p).is_some() {
        // Memcheck reports a free of a block it does not know as live (a
        // double free) here; ptrs reports it below, and aborts.
        request(FREELIKE_BLOCK, p as usize, 0, 0, 0, 0);
    }
    let _q = Quiet::new();
    free::free_slow_engine(p, func);
}

/// realloc in memcheck mode, for non-null `p` and non-zero `size`.
// `p` is validated as a ptrs block before it is read (and memcheck checks
// the read), as in `free::usable_size`: the function is safe to call.
#[allow(clippy::not_unsafe_ptr_arg_deref)]
pub fn realloc(p: *mut u8, size: usize) -> *mut u8 {
    let Some(info) = engine_info(p) else {
        let _q = Quiet::new();
        return alloc::realloc(p, size); // reports the invalid pointer
    };
    // A block freed and still in its page (another thread's free waits on
    // the page's remote list): ptrs reports it as it does natively, not
    // only memcheck (whose report of the read comes first).
    let freed = {
        let _q = Quiet::new();
        // SAFETY: `info` was just returned by block_info for `p`.
        unsafe { free::is_freed(&info, p) }
    };
    if freed {
        let _q = Quiet::new();
        return alloc::realloc(p, size); // reports the double free
    }
    let old = load_size(p, info.usable);
    if let Some(total) = size.checked_add(REDZONE) {
        // In place when it fits, growing or shrinking by less than half.
        if total <= info.usable && old < info.usable && (size >= old || total >= info.usable / 2) {
            request(RESIZEINPLACE_BLOCK, p as usize, old, size, 0, 0);
            store_size(p, info.usable, size);
            noaccess(p as usize + size, info.usable - size);
            return p;
        }
    }
    // A pool's block stays in its pool.
    // SAFETY: `info` describes the live block `p`.
    let pool = unsafe { crate::pool::owner_of(&info, p) };
    let q = if pool.is_null() {
        alloc(size, 0, false)
    } else {
        // SAFETY: `pool` is the live pool holding `p`; realloc of a pool
        // block follows the pool's thread rules.
        alloc_from(size, false, |total| unsafe { crate::pool::alloc_slow(pool, total, MIN_ALIGN) })
    };
    if q.is_null() {
        return q;
    }
    // SAFETY: `p` holds `old` addressable bytes (memcheck's view, which
    // reports it if the program freed `p`) and `q` at least `size`.
    unsafe { ptr::copy_nonoverlapping(p, q, old.min(size)) };
    free(p, "realloc");
    q
}

/// malloc_usable_size in memcheck mode: the requested size (the bytes the
/// program may use without memcheck reporting it), 0 for null.
pub fn usable_size(p: *mut u8) -> usize {
    if p.is_null() {
        return 0;
    }
    match engine_info(p) {
        Some(info) => load_size(p, info.usable),
        None => {
            let _q = Quiet::new();
            free::usable_size(p) // reports the invalid pointer
        }
    }
}

/// Before a pool is destroyed or reset in memcheck mode: tells memcheck
/// that every live block of it is freed, so a later access is reported as
/// a use after free. Proportional to the pool's blocks, under valgrind
/// only. Nothing natively.
///
/// # Safety
/// `pool` must be live and used by the calling thread alone.
pub unsafe fn pool_release(pool: *mut crate::pool::Pool) {
    if !active() {
        return;
    }
    let _q = Quiet::new();
    // SAFETY: as the caller guarantees.
    unsafe {
        crate::pool::visit(pool, &mut |b, _| {
            request(FREELIKE_BLOCK, b as usize, 0, 0, 0, 0);
            0
        })
    };
}
