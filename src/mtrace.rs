//! glibc's `mtrace()` and `muntrace()`: with `MALLOC_TRACE=file`, every
//! allocation and free between the two calls is written to `file` in
//! glibc's trace format, which glibc's `mtrace` script reads:
//!
//! ```text
//! = Start
//! @ ./prog:(main+1d)[0x1156] + 0x4052a0 0x10
//! - 0x4052a0
//! = End
//! ```
//!
//! Built on the profiler (`profile`): while tracing, every allocation is
//! recorded with its stack (as with `PTRS_PROFILE_RATE=1`), so its free is
//! seen without any test on free's fast path. Differences from glibc's:
//! frees of blocks allocated before `mtrace()` are not logged, a `realloc`
//! appears as `+` and `-` lines (or not at all when done in place), and
//! free lines carry no caller. Like glibc's, `mtrace()` also arranges for
//! `__libc_freeres` to run at exit, so that the C library's own buffers do
//! not show as leaks.

use core::ffi::CStr;
use core::fmt::Write;
use core::sync::atomic::{AtomicBool, AtomicI32, Ordering};

use crate::profile::stack;
use crate::sync::RawLock;

/// The trace file, -1 when not tracing.
static FD: AtomicI32 = AtomicI32::new(-1);
/// Serialises lines and closing (held with signals blocked).
static LOCK: RawLock = RawLock::new();
static FREERES_REGISTERED: AtomicBool = AtomicBool::new(false);

unsafe extern "C" {
    fn __libc_freeres();
}

extern "C" fn freeres_at_exit(_: *mut libc::c_void) {
    // SAFETY: glibc's own mtrace does the same at exit.
    unsafe { __libc_freeres() };
}

unsafe extern "C" {
    fn __cxa_atexit(f: extern "C" fn(*mut libc::c_void), arg: *mut libc::c_void, dso: *mut libc::c_void) -> i32;
}

/// Writes one line to the trace file, whole, under the lock.
fn write_line(line: &[u8]) {
    let mut all = core::mem::MaybeUninit::<libc::sigset_t>::uninit();
    let mut saved = core::mem::MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: sigfillset initialises `all`; the mask call fills `saved`.
    unsafe {
        libc::sigfillset(all.as_mut_ptr());
        libc::pthread_sigmask(libc::SIG_BLOCK, all.as_ptr(), saved.as_mut_ptr());
    }
    LOCK.lock();
    let fd = FD.load(Ordering::Relaxed);
    if fd >= 0 {
        crate::os::write_fd(fd, line);
    }
    LOCK.unlock();
    // SAFETY: `saved` was filled above.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, saved.as_ptr(), core::ptr::null_mut()) };
}

/// Fork prepare (every signal blocked, after the profiler's lock, the
/// order `profile::Locked::drain_deferred` takes them in): the trace lock
/// is held across fork, so that a child never finds it held by a thread
/// writing a line in the parent (a review's child spun forever on its
/// first traced allocation).
pub fn fork_prepare() {
    LOCK.lock();
}

/// Fork parent and child handlers: releases what [`fork_prepare`] took.
pub fn fork_done() {
    LOCK.unlock();
}

/// Starts tracing if `MALLOC_TRACE` names a file that can be written.
pub fn mtrace() {
    if FD.load(Ordering::Relaxed) >= 0 {
        return;
    }
    // SAFETY: getenv does not allocate; the name is NUL-terminated.
    let name = unsafe { libc::getenv(c"MALLOC_TRACE".as_ptr()) };
    if name.is_null() {
        return;
    }
    // SAFETY: raw openat of a NUL-terminated path.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat,
            libc::AT_FDCWD,
            name,
            libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | libc::O_APPEND | libc::O_CLOEXEC,
            0o666,
        )
    } as i32;
    if fd < 0 {
        return;
    }
    if FD.compare_exchange(-1, fd, Ordering::SeqCst, Ordering::SeqCst).is_err() {
        // SAFETY: `fd` was opened above and is not shared.
        unsafe { libc::syscall(libc::SYS_close, fd) };
        return;
    }
    write_line(b"= Start\n");
    if crate::profile::set_tracing(true) != 0 {
        muntrace();
        return;
    }
    if !FREERES_REGISTERED.swap(true, Ordering::SeqCst) {
        // SAFETY: a valid handler for the process's lifetime.
        unsafe { __cxa_atexit(freeres_at_exit, core::ptr::null_mut(), core::ptr::null_mut()) };
    }
}

/// Stops tracing and closes the file.
pub fn muntrace() {
    if FD.load(Ordering::Relaxed) < 0 {
        return;
    }
    crate::profile::set_tracing(false);
    write_line(b"= End\n");
    LOCK.lock();
    let fd = FD.swap(-1, Ordering::SeqCst);
    LOCK.unlock();
    if fd >= 0 {
        // SAFETY: the trace file, no longer reachable through FD.
        unsafe { libc::syscall(libc::SYS_close, fd) };
    }
}

/// Logs an allocation (called by the profiler, outside its lock).
pub fn log_alloc(p: *mut u8, size: usize, frames: &[usize]) {
    if FD.load(Ordering::Relaxed) < 0 {
        return;
    }
    let skip = stack::internal_frames(frames);
    let mut line = crate::diag::LineBuf::new();
    if let Some(&caller) = frames.get(skip) {
        match stack::resolve(caller) {
            Some(s) => {
                let _ = line.write_str("@ ");
                if !s.file.is_null() {
                    // SAFETY: dladdr's names are NUL-terminated.
                    let f = unsafe { CStr::from_ptr(s.file) };
                    let _ = write!(line, "{}:", f.to_str().unwrap_or("?"));
                }
                // glibc 2.36's form: the offset in hex without "0x", and
                // the caller relative to its object's base.
                if !s.name.is_null() {
                    // SAFETY: as above.
                    let n = unsafe { CStr::from_ptr(s.name) };
                    let _ = write!(line, "({}+{:x})", n.to_str().unwrap_or("?"), s.offset);
                }
                let _ = write!(line, "[{:#x}] ", caller - s.base);
            }
            None => {
                let _ = write!(line, "@ [{:#x}] ", caller);
            }
        }
    }
    let _ = writeln!(line, "+ {:#x} {:#x}", p as usize, size);
    write_line(line.as_bytes());
}

/// Logs a free of a recorded block.
/// Logs a traced block that realloc moved to `p` (`size` bytes as
/// recorded), after the `-` line of its old address: a `+` line without a
/// caller, which glibc's `mtrace` script accepts.
pub fn log_moved(p: *mut u8, size: usize) {
    if FD.load(Ordering::Relaxed) < 0 {
        return;
    }
    let mut line = crate::diag::LineBuf::new();
    let _ = writeln!(line, "+ {:#x} {:#x}", p as usize, size);
    write_line(line.as_bytes());
}

pub fn log_free(p: *mut u8) {
    if FD.load(Ordering::Relaxed) < 0 {
        return;
    }
    let mut line = crate::diag::LineBuf::new();
    let _ = writeln!(line, "- {:#x}", p as usize);
    write_line(line.as_bytes());
}
