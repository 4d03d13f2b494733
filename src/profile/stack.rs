//! Call stacks taken inside malloc.
//!
//! The unwinder is our caching DWARF unwinder (`unwind.rs`), with libgcc's
//! `_Unwind_Backtrace` (DWARF call-frame information, the `.eh_frame`
//! every Debian binary carries) for the stacks it cannot take. Both were
//! chosen over a
//! frame-pointer walk, which is fast but wrong (and may fault) in code built
//! without frame pointers, as Debian builds it, and over libunwind, which
//! is 10x faster but looks addresses up with `dl_iterate_phdr` (the
//! loader's lock) and deadlocked in signal handlers and fork children
//! (libgcc 12 uses glibc's lock-free `_dl_find_object`); the measurements
//! and the failures seen are in the README ("Heap profiling").
//!
//! Safety inside malloc:
//! - no allocation: the frames go into the caller's stack buffer; libgcc
//!   finds the FDEs through `dl_iterate_phdr` and `PT_GNU_EH_FRAME` without
//!   allocating, and if anything in it ever did, the thread's `busy` flag
//!   makes that allocation a plain, unsampled one;
//! - no profiler lock is held while unwinding, so the loader's lock (taken
//!   by `dl_iterate_phdr`, held by another thread in `dlopen` that may
//!   itself allocate) cannot be part of a cycle;
//! - `fork`: the prepare handler waits until no other thread is unwinding
//!   (and new unwinds are skipped meanwhile), so the child never inherits
//!   the loader's write lock held by one of our unwinds.

use core::ffi::c_void;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// The deepest stack recorded (frames beyond are dropped).
pub const MAX_DEPTH: usize = 48;

/// Threads now inside `_Unwind_Backtrace` on our behalf.
static UNWINDERS: AtomicUsize = AtomicUsize::new(0);
/// Set by the fork prepare handler: do not start unwinding.
static FORKING: AtomicBool = AtomicBool::new(false);

type UnwindCallback = extern "C" fn(*mut c_void, *mut c_void) -> i32;

unsafe extern "C" {
    fn _Unwind_Backtrace(trace: UnwindCallback, arg: *mut c_void) -> i32;
    fn _Unwind_GetIP(ctx: *mut c_void) -> usize;
}

struct Collect<'a> {
    frames: &'a mut [usize; MAX_DEPTH],
    depth: usize,
    /// ptrs's allocation entry functions (`abi::entry_functions`).
    entries: &'a [usize],
    /// One past the last frame, among the first 24, inside one of them.
    cut: usize,
}

const URC_NO_REASON: i32 = 0;
const URC_END_OF_STACK: i32 = 5;

extern "C" fn collect_frame(ctx: *mut c_void, arg: *mut c_void) -> i32 {
    // SAFETY: `arg` is the `Collect` passed to _Unwind_Backtrace by
    // `capture`, alive for the whole call; `ctx` is libgcc's context.
    let c = unsafe { &mut *(arg as *mut Collect<'_>) };
    // SAFETY: as above.
    let ip = unsafe { _Unwind_GetIP(ctx) };
    if ip == 0 {
        return URC_END_OF_STACK;
    }
    c.frames[c.depth] = ip;
    c.depth += 1;
    // The cut of ptrs's own frames is made here, from the start of each
    // frame's function, which libgcc knows now even in a static program
    // whose unwind data it no longer has when the profile is written (its
    // destructors deregister it before the exit handlers that write
    // profiles). Looked up by address, with the FDE's range checked: the
    // context's region start (`_Unwind_GetRegionStart`) is left over from
    // the frame before for a frame without unwind data (code built with
    // `-fno-asynchronous-unwind-tables`, JIT code), which then looked like
    // malloc's and had every frame cut (a tester).
    // A return address: the call lies just before it.
    if c.depth <= 24 && super::unwind::function_start(ip.wrapping_sub(1)).is_some_and(|start| c.entries.contains(&start)) {
        c.cut = c.depth;
    }
    if c.depth == MAX_DEPTH { URC_END_OF_STACK } else { URC_NO_REASON }
}

/// Fills `frames` with the return addresses of the calling thread's stack,
/// innermost first (the first one inside this function), and returns how
/// many, and the index of the first frame to keep: 1 (the frame of the
/// caller of this function is ptrs's own), or, where libgcc took the
/// stack, one past the last frame in an allocation entry function of
/// ptrs's (the rest of ptrs's frames are cut by [`internal_frames`] when
/// the profile is written). 0 while a fork is being prepared and libgcc is needed, and in a
/// static program before its C library has finished starting.
///
/// The caching unwinder (`unwind::trace`) takes the stack when it can,
/// else libgcc's `_Unwind_Backtrace`. With `PTRS_PROFILE_UNWIND_CHECK=1`
/// (a debugging aid) both take every stack and a difference aborts the
/// program with both stacks on stderr.
#[inline(never)]
pub fn capture(frames: &mut [usize; MAX_DEPTH]) -> (usize, usize) {
    // A static program's allocations while its C library starts get no
    // stack: both unwinders need the table of loaded objects it is still
    // building (see `init::loader_ready`).
    if !crate::init::loader_ready() {
        return (0, 0);
    }
    if crate::options::profile_unwind_check() {
        let depth = capture_checked(frames);
        return (depth, depth.min(1));
    }
    if let Some(depth) = super::unwind::trace(frames) {
        return (depth, depth.min(1));
    }
    FALLBACKS.fetch_add(1, Ordering::Relaxed);
    let (depth, cut) = libgcc_trace(frames);
    (depth, if cut > 0 { cut } else { depth.min(1) })
}

/// Captures that needed libgcc (for measurements and the check test).
pub static FALLBACKS: AtomicUsize = AtomicUsize::new(0);

/// libgcc's stack of the caller (this function is inlined into it, so the
/// first frame is the caller's).
#[inline(always)]
fn libgcc_trace(frames: &mut [usize; MAX_DEPTH]) -> (usize, usize) {
    UNWINDERS.fetch_add(1, Ordering::SeqCst);
    if FORKING.load(Ordering::SeqCst) {
        UNWINDERS.fetch_sub(1, Ordering::SeqCst);
        return (0, 0);
    }
    let mut entries = [0usize; crate::abi::MAX_ENTRY_FUNCTIONS];
    let n = crate::abi::entry_functions(&mut entries);
    let mut c = Collect { frames, depth: 0, entries: &entries[..n], cut: 0 };
    // SAFETY: the callback only writes into `c`, which outlives the call.
    unsafe { _Unwind_Backtrace(collect_frame, (&raw mut c).cast()) };
    UNWINDERS.fetch_sub(1, Ordering::SeqCst);
    (c.depth, c.cut)
}

/// libgcc's stack alone (for the unwinder's measurements).
#[cfg(test)]
#[inline(never)]
pub fn capture_libgcc_for_tests(frames: &mut [usize; MAX_DEPTH]) -> usize {
    libgcc_trace(frames).0
}

/// `capture` in check mode: both unwinders; the first frames (two call
/// sites in this function) are not compared. Where ours stops early
/// (a frame needs libgcc) the frames it took are compared, and an
/// impossible frame reached by one of its rules while libgcc went on is a
/// difference.
#[inline(never)]
fn capture_checked(frames: &mut [usize; MAX_DEPTH]) -> usize {
    use super::unwind::Outcome;
    let (depth, _) = libgcc_trace(frames);
    let mut mine = [0usize; MAX_DEPTH];
    let (d, outcome) = super::unwind::trace_partial(&mut mine);
    if depth == 0 {
        return 0; // fork in progress: libgcc skipped
    }
    let m = d.min(depth);
    let prefix_differs = frames[1.min(m)..m] != mine[1.min(m)..m];
    let differs = match outcome {
        Outcome::Done => d != depth || prefix_differs,
        Outcome::Unsupported => {
            FALLBACKS.fetch_add(1, Ordering::Relaxed);
            d > depth || prefix_differs
        }
        Outcome::Insane => {
            FALLBACKS.fetch_add(1, Ordering::Relaxed);
            depth > d || prefix_differs
        }
    };
    if differs {
        crate::diag::print(format_args!(
            "ptrs: PTRS_PROFILE_UNWIND_CHECK: stacks differ (libgcc {depth} frames, ptrs {d} frames, {outcome:?})\n"
        ));
        for i in 0..depth.max(d) {
            let a = if i < depth { frames[i] } else { 0 };
            let b = if i < d { mine[i] } else { 0 };
            let mark = if i > 0 && a != b { " <--" } else { "" };
            crate::diag::print(format_args!("  #{i:2} libgcc {a:#016x} ptrs {b:#016x}{mark}\n"));
        }
        // SAFETY: abort has no preconditions.
        unsafe { libc::abort() };
    }
    depth
}

/// Fork prepare: no unwinding may be in progress across `fork`. `own_busy`:
/// the forking thread is itself inside the profiler (a signal handler that
/// forks), whose unwind, if any, cannot finish first.
pub fn fork_prepare(own_busy: bool) {
    FORKING.store(true, Ordering::SeqCst);
    let mine = if own_busy { 1 } else { 0 };
    let mut spins = 0u32;
    while UNWINDERS.load(Ordering::SeqCst) > mine {
        spins += 1;
        if spins > 1_000_000 {
            break; // never hang fork; the unwinder is stuck elsewhere
        }
        // SAFETY: sched_yield has no preconditions.
        unsafe { libc::sched_yield() };
    }
}

/// Fork parent and child: unwinding may start again.
pub fn fork_done(child: bool) {
    if child {
        UNWINDERS.store(0, Ordering::SeqCst);
        super::unwind::after_fork_child();
        super::objfile::after_fork_child();
    }
    FORKING.store(false, Ordering::SeqCst);
}

/// Symbol information of one address, from `dladdr` (which takes the
/// loader's lock: never call it with the profiler's lock held).
pub struct Symbol {
    pub name: *const libc::c_char,
    pub offset: usize,
    pub file: *const libc::c_char,
    pub base: usize,
}

/// Resolves `addr` through `dladdr`. `None` when no object contains it.
pub fn resolve(addr: usize) -> Option<Symbol> {
    let mut info = core::mem::MaybeUninit::<libc::Dl_info>::zeroed();
    // SAFETY: dladdr only reads the loader's tables and fills `info`.
    if unsafe { libc::dladdr(addr as *const c_void, info.as_mut_ptr()) } == 0 {
        return None;
    }
    // SAFETY: dladdr succeeded and filled `info`.
    let info = unsafe { info.assume_init() };
    Some(Symbol {
        name: info.dli_sname,
        offset: if info.dli_sname.is_null() { addr - info.dli_fbase as usize } else { addr - info.dli_saddr as usize },
        file: info.dli_fname,
        base: info.dli_fbase as usize,
    })
}

/// Names of ptrs's allocation entry points: frames up to the last of them
/// are the allocator's own and are cut from reported stacks.
const ENTRY_NAMES: &[&[u8]] = &[
    b"malloc", b"calloc", b"realloc", b"reallocarray", b"free", b"memalign", b"aligned_alloc",
    b"posix_memalign", b"valloc", b"pvalloc", b"__libc_malloc", b"__libc_calloc", b"__libc_realloc",
    b"__libc_memalign", b"__libc_valloc", b"__libc_pvalloc", b"__posix_memalign", b"_Znwm", b"_Znam",
    b"_ZnwmRKSt9nothrow_t", b"_ZnamRKSt9nothrow_t", b"_ZnwmSt11align_val_t", b"_ZnamSt11align_val_t",
    b"_ZnwmSt11align_val_tRKSt9nothrow_t", b"_ZnamSt11align_val_tRKSt9nothrow_t", b"__rust_alloc",
    b"__rust_alloc_zeroed", b"__rust_realloc",
];

/// The base address of the object holding ptrs's code.
fn own_base() -> usize {
    resolve(own_base as *const () as usize).map_or(0, |s| s.base)
}

/// How many leading frames of `frames` are ptrs's own: up to and including
/// the last of the first 24 frames that lies in one of ptrs's allocation
/// entry functions, told by the function's start address (from libgcc's
/// unwind data, `unwind::function_start`, against `abi::entry_functions`) or by
/// its exported name; failing both, where ptrs is a shared library, the
/// leading frames of its object that have no exported name.
///
/// Addresses first: in a program linked with `libptrs.a`, `dladdr` names
/// none of ptrs's functions (no dynamic symbols), and ptrs's object is the
/// program itself, so the unnamed-frames rule also cut the program's own
/// frames; a profile then gave every byte to `start_thread` or
/// `__libc_start_call_main` (a tester). With `-rdynamic`, ptrs's internal
/// functions have names, and every stack began with them.
///
/// Frames of other objects are told apart with `_dl_find_object` before
/// any `dladdr` (which scans an object's whole symbol table: in gcc's cc1,
/// at 24 calls per stack, writing a profile of every allocation took a
/// minute).
pub fn internal_frames(frames: &[usize]) -> usize {
    let base = own_base();
    let own = super::unwind::object_start(internal_frames as *const () as usize);
    let ours = |f: usize| own.is_none() || super::unwind::object_start(f) == own;
    let mut entries = [0usize; crate::abi::MAX_ENTRY_FUNCTIONS];
    let n = crate::abi::entry_functions(&mut entries);
    let entries = &entries[..n];
    let mut cut = None;
    for (i, &f) in frames.iter().enumerate().take(24) {
        if !ours(f) {
            continue;
        }
        // A return address: the call lies just before it.
        if super::unwind::function_start(f.wrapping_sub(1)).is_some_and(|start| entries.contains(&start)) {
            cut = Some(i + 1);
            continue;
        }
        let Some(s) = resolve(f) else { continue };
        if s.base != base || s.name.is_null() {
            continue;
        }
        // SAFETY: dladdr returns NUL-terminated symbol names.
        let name = unsafe { core::ffi::CStr::from_ptr(s.name) }.to_bytes();
        if ENTRY_NAMES.contains(&name) || name.starts_with(b"ptrs_") {
            cut = Some(i + 1);
        }
    }
    if let Some(c) = cut {
        return c;
    }
    if in_main_program(base) {
        return 0; // the program's own frames are unnamed too
    }
    frames
        .iter()
        .take_while(|&&f| ours(f) && resolve(f).is_some_and(|s| s.base == base && s.name.is_null()))
        .count()
}

/// Whether the object based at `base` (ptrs's, from `own_base`) is the
/// program itself (linked with `libptrs.a`): the object of the program's
/// entry point.
fn in_main_program(base: usize) -> bool {
    // SAFETY: getauxval has no preconditions.
    let entry = unsafe { libc::getauxval(libc::AT_ENTRY) } as usize;
    entry != 0 && resolve(entry).is_some_and(|s| s.base == base)
}
