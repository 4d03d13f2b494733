//! The ptrs-specific C API, declared in `include/ptrs.h` (generated from
//! this file by cbindgen). Exported whatever the features.

use core::ffi::{c_char, c_void};
use core::sync::atomic::{AtomicPtr, Ordering};

use crate::{free, heap, os, stats};

/// The library version as a NUL-terminated string, e.g. "0.1.0".
#[unsafe(no_mangle)]
pub extern "C" fn ptrs_version() -> *const c_char {
    const V: &str = concat!(env!("CARGO_PKG_VERSION"), "\0");
    V.as_ptr().cast()
}

/// 1 if `p` points into memory managed by ptrs (a block it handed out, or
/// its own metadata), 0 otherwise. Safe to call with any value, including
/// NULL, stack addresses and other allocators' pointers.
#[unsafe(no_mangle)]
pub extern "C" fn ptrs_owns(p: *const c_void) -> i32 {
    free::owns(p.cast()) as i32
}

/// The usable size of a block (as malloc_usable_size), 0 for NULL.
///
/// # Safety
/// `p` must be NULL or a live block from ptrs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ptrs_usable_size(p: *const c_void) -> usize {
    if crate::valgrind::active() {
        return crate::valgrind::usable_size(p as *mut u8);
    }
    free::usable_size(p as *mut u8)
}

/// Allocator-wide figures, in bytes.
#[repr(C)]
pub struct ptrs_stats {
    /// Bytes in blocks handed out to the program (block sizes).
    pub allocated: usize,
    /// Bytes in pages that hold at least one block in use.
    pub active: usize,
    /// The process's resident set size.
    pub resident: usize,
    /// Bytes mapped from the OS for the heap.
    pub mapped: usize,
    /// Bytes of empty segments kept mapped for reuse: still resident for a
    /// purge delay or two after they emptied (see `PTRS_PURGE_DELAY`), then
    /// purged and kept as address space only.
    pub retained: usize,
    /// The highest `mapped` seen.
    pub peak_mapped: usize,
}

/// Fills `*out` with current figures. Returns 0, or -1 if `out` is NULL.
///
/// # Safety
/// `out` must be NULL or valid for writing a `struct ptrs_stats`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ptrs_stats_get(out: *mut ptrs_stats) -> i32 {
    if out.is_null() {
        return -1;
    }
    let t = stats::gather();
    // SAFETY: the caller guarantees `out` is writable.
    unsafe {
        out.write(ptrs_stats {
            allocated: t.allocated,
            active: t.active,
            resident: t.resident,
            mapped: t.mapped,
            retained: t.retained,
            peak_mapped: t.peak_mapped,
        })
    };
    0
}

/// Returns unused memory to the OS now (as malloc_trim(0)): every heap's
/// free pages, those of other live threads included, and the memory kept
/// for reuse. Returns 1 if any memory was released, 0 otherwise. Any
/// thread; errno is preserved.
#[unsafe(no_mangle)]
pub extern "C" fn ptrs_purge() -> i32 {
    let _q = crate::valgrind::Quiet::new(); // memcheck mode: engine code
    super::preserving_errno(trim) as i32
}

/// Tells ptrs that the calling thread is about to block for a while (wait
/// for work, sleep): its heap takes back the blocks other threads freed
/// into it, returns its empty pages and gives back its free memory now, as
/// at thread exit, but keeps the heap. The idea is jemalloc's
/// `thread.idle` and tcmalloc's `MarkThreadIdle`. Costs a few system calls
/// when there is memory to give back; nothing else changes (the next
/// allocations refill the heap). Any thread; errno is preserved.
#[unsafe(no_mangle)]
pub extern "C" fn ptrs_thread_idle() {
    let _q = crate::valgrind::Quiet::new(); // memcheck mode: engine code
    super::preserving_errno(|| {
        heap::thread_idle();
        0
    });
}

/// Writes the statistics table, one line per call of `write` (each line is
/// NUL-terminated and ends with a newline).
///
/// # Safety
/// `write` must be a valid function; it must not call back into ptrs's
/// statistics functions.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ptrs_stats_print(
    write: Option<unsafe extern "C" fn(ctx: *mut c_void, line: *const c_char)>,
    ctx: *mut c_void,
) {
    let Some(write) = write else {
        stats::print(&mut |s: &[u8]| os::write_fd(2, s));
        return;
    };
    stats::print(&mut |s: &[u8]| {
        let mut buf = [0u8; 520];
        let n = s.len().min(buf.len() - 1);
        buf[..n].copy_from_slice(&s[..n]);
        // SAFETY: `buf` is NUL-terminated; the caller guarantees `write`.
        unsafe { write(ctx, buf.as_ptr().cast()) };
    });
}

/// Sets an option by name, as its `PTRS_*` variable would at start-up:
/// `name` is the variable's name with or without the `PTRS_` prefix, in any
/// case (`"purge_delay"`, `"PTRS_LARGE_THRESHOLD"`); booleans are 0 or 1,
/// sizes in bytes, delays in milliseconds. Returns 0, or -1 for an unknown
/// name or a negative value. The options that act at exit take effect
/// there when set at any time: `show_stats` prints the table at `exit`
/// (and `_exit`) of this process; `leak_report` starts the heap profiler
/// if it is not running (at `profile_rate`), so the report covers the
/// allocations from then on (the exact report needs `PTRS_LEAK_REPORT`
/// and `PTRS_PROFILE_RATE=1` at start-up); `leak_exitcode` is read at
/// exit. Any thread.
///
/// # Safety
/// `name` must be NULL or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ptrs_option_set(name: *const c_char, value: i64) -> i32 {
    if name.is_null() || value < 0 {
        return -1;
    }
    // Initialised first, so that the environment (read there) does not
    // override a value set before the first allocation (a constructor of
    // a program linked with libptrs.a: a reviewer).
    crate::init::ensure();
    // SAFETY: the caller guarantees a NUL-terminated string.
    let name = unsafe { core::ffi::CStr::from_ptr(name) }.to_bytes();
    if !crate::options::set_by_name(name, value as u64) {
        return -1;
    }
    crate::init::option_set_at_run_time();
    0
}

/// Reads an option by name (see `ptrs_option_set`). Returns -1 for an
/// unknown name. `large_threshold` reads the threshold in effect, at most
/// 1984 KiB (the largest block a segment holds) whatever was set. The one
/// text option, `profile` (`PTRS_PROFILE`, a file
/// prefix, which `ptrs_option_set` cannot set), reads as 1 when it is set,
/// else 0. `profile_rate` reads in bytes the rate the heap profiler
/// samples at while it runs, else the one it would start with (512 KiB
/// by default).
///
/// # Safety
/// `name` must be NULL or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ptrs_option_get(name: *const c_char) -> i64 {
    if name.is_null() {
        return -1;
    }
    // SAFETY: the caller guarantees a NUL-terminated string.
    let name = unsafe { core::ffi::CStr::from_ptr(name) }.to_bytes();
    crate::options::get_by_name(name).map_or(-1, |v| v.min(i64::MAX as u64) as i64)
}

/// A function ptrs calls (with the request size, bytes) when an allocation
/// fails for want of memory, before returning NULL with errno ENOMEM: the
/// C allocation functions and the `ptrs_pool_*` ones (not when a pool's
/// own limit refuses a request, nor when `count * size` overflows in
/// `calloc`, `reallocarray` or `ptrs_pool_calloc`). It may free memory,
/// log, or abort. NULL removes it. Returns the previous handler. Any
/// thread; the handler runs on the thread whose allocation failed. An
/// allocation that fails while that thread runs the handler (a handler
/// that logs with `asprintf` when memory is exhausted) does not call it
/// again: it returns NULL with ENOMEM (it recursed until the stack
/// overflowed: tester). A handler that leaves by `longjmp` instead of
/// returning is not called again on that thread until this function is
/// called again (on that thread).
#[unsafe(no_mangle)]
pub extern "C" fn ptrs_set_oom_handler(
    handler: Option<extern "C" fn(size: usize)>,
) -> Option<extern "C" fn(size: usize)> {
    let new = handler.map_or(core::ptr::null_mut(), |f| f as *mut ());
    // A handler this thread left by longjmp counts as finished now.
    IN_OOM_HANDLER.with(|c| c.set(false));
    let old = OOM_HANDLER.swap(new, Ordering::AcqRel);
    if old.is_null() {
        None
    } else {
        // SAFETY: only valid handler function pointers are stored.
        Some(unsafe { core::mem::transmute::<*mut (), extern "C" fn(usize)>(old) })
    }
}

static OOM_HANDLER: AtomicPtr<()> = AtomicPtr::new(core::ptr::null_mut());

/// Sets errno to ENOMEM and calls the out-of-memory handler, if any.
#[cfg_attr(not(feature = "override"), allow(dead_code))]
#[cold]
#[inline(never)]
pub(crate) fn out_of_memory(size: usize) {
    let h = OOM_HANDLER.load(Ordering::Acquire);
    if !h.is_null() && !IN_OOM_HANDLER.with(|c| c.replace(true)) {
        // SAFETY: only valid handler function pointers are stored.
        let f = unsafe { core::mem::transmute::<*mut (), extern "C" fn(usize)>(h) };
        f(size);
        IN_OOM_HANDLER.with(|c| c.set(false));
    }
    os::set_errno(libc::ENOMEM);
}

std::thread_local! {
    /// Set while the calling thread runs the out-of-memory handler, whose
    /// own failed allocations then do not call it again (const-initialised
    /// and without `Drop`: no allocation, no destructor registered).
    static IN_OOM_HANDLER: core::cell::Cell<bool> = const { core::cell::Cell::new(false) };
}

/// malloc_trim(0): collect this thread's heap and parked heaps, purge, and
/// unmap cached segments. True if any memory was released.
pub(crate) fn trim() -> bool {
    // In a fork handler that runs while ptrs's prepare handler holds its
    // locks across the fork (`sync::FORK_HOLDER`), a trim would wait for
    // some of them (the pools' registry lock): nothing is given back
    // there, and an allocation that fails returns NULL without its retry
    // (a reviewer: a handler's malloc past PTRS_HEAP_LIMIT hung fork).
    if crate::sync::holds_global_across_fork() {
        return false;
    }
    let (purged_before, mapped_before) = stats::release_marker();
    heap::release_own_heap();
    heap::collect_parked(true);
    heap::purge_other_heaps(true);
    let pools = crate::pool::trim_cache();
    let flushed = crate::retain::flush() | pools;
    let (purged_after, mapped_after) = stats::release_marker();
    flushed || purged_after > purged_before || mapped_after < mapped_before
}

/// Starts the heap profiler: on average one allocation per `sample_bytes`
/// bytes allocated is sampled with its call stack (0: the default, 512 KiB;
/// 1: every allocation, exact figures). Sampling by bytes as tcmalloc and
/// jemalloc do; see the README, "Heap profiling". Returns 0, or ENOMEM
/// when the profiler's tables cannot be mapped. Any thread, any time.
/// Starting again at the rate in use (after `ptrs_profile_stop`, say)
/// keeps the earlier records; starting at another rate discards them
/// (a profile has one rate, by which every record is scaled), and later
/// frees of the blocks they described are not seen. The leak report calls
/// its figures exact only when every allocation of the process was
/// recorded: `PTRS_PROFILE_RATE=1` from the start, never stopped nor
/// started at another rate.
#[unsafe(no_mangle)]
pub extern "C" fn ptrs_profile_start(sample_bytes: usize) -> i32 {
    crate::profile::start(sample_bytes)
}

/// Stops sampling new allocations. Blocks already sampled stay recorded
/// until freed, so a later dump or leak report still sees them. Returns 0.
/// Any thread.
#[unsafe(no_mangle)]
pub extern "C" fn ptrs_profile_stop() -> i32 {
    crate::profile::stop();
    0
}

/// Writes a heap profile of what was sampled (blocks in use and allocated
/// in total, per call stack) to the file `path`, created or truncated, in
/// gperftools' heap-profile text format (`heap_v2/<rate>`), read by
/// `google-pprof` and Go's `pprof`. Returns 0, EINVAL for a NULL path, the
/// errno of a failed open, or the errno of the first write(2) that failed
/// (ENOSPC for a full disk, as `ptrs_leak_report` sets; EIO when a write
/// wrote nothing without an error); ENOMEM when the records cannot be
/// copied, and EBUSY from a signal handler that interrupted its thread
/// inside the profiler (whose lock it then cannot take), both with the
/// file left as it was. errno itself is left alone. Any thread; not
/// meant for signal handlers (see EBUSY).
///
/// # Safety
/// `path` must be NULL or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ptrs_profile_dump(path: *const c_char) -> i32 {
    // The open and write system calls set errno when they fail; the error
    // is the return value, as documented (a fresh tester saw errno 28
    // after a dump to /dev/full).
    let saved = os::errno();
    // SAFETY: the same contract.
    let r = unsafe { crate::profile::write::dump(path) };
    os::set_errno(saved);
    r
}

/// Writes the leak report (allocation sites whose sampled blocks are still
/// in use, largest first, with their stacks resolved by `dladdr`) to the
/// file descriptor `fd`, now. Returns the number of sites reported (0: no
/// leak seen, or the heap profiler never ran, which the report then says
/// instead of "no leaks"), or -1 with errno set when the report could not be written:
/// EBADF for a negative or closed `fd`, else the error of the first write(2)
/// that failed (ENOSPC for a full disk; EIO when a write wrote nothing
/// without an error), as `ptrs_profile_dump` returns it; ENOMEM and
/// EBUSY as there, with nothing written. Sites
/// are whole stacks (a stack's records of several block sizes are one
/// site). Any thread; not meant for signal handlers (see EBUSY).
#[unsafe(no_mangle)]
pub extern "C" fn ptrs_leak_report(fd: i32) -> i32 {
    if fd < 0 {
        os::set_errno(libc::EBADF);
        return -1;
    }
    let r = crate::profile::write::leak_report(fd);
    if r.error != 0 {
        os::set_errno(r.error);
        return -1;
    }
    r.sites.min(i32::MAX as usize) as i32
}
