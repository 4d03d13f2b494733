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

/// Bytes of [`Line`]'s buffer: a line longer than this (a C++ or Rust
/// symbol can take thousands of bytes) is written in several write(2)
/// calls, all under the lock.
const LINE_BUF: usize = 512;

/// One line of the trace being written: holds the lock (with every signal
/// blocked) from [`Line::new`] to its drop, so that a line longer than its
/// buffer, written in pieces, is never interleaved with other threads'
/// lines. (Lines were formatted into a 512-byte buffer first and what did
/// not fit was dropped: the `+` of a function with a 606-character name
/// lost its address and size, and glibc's `mtrace` script missed the leak.)
/// Nothing that takes another lock may run while a `Line` lives: callers
/// resolve symbols (`dladdr`) before making one.
struct Line {
    saved: libc::sigset_t,
    buf: [u8; LINE_BUF],
    len: usize,
}

impl Line {
    fn new() -> Self {
        let mut all = core::mem::MaybeUninit::<libc::sigset_t>::uninit();
        let mut saved = core::mem::MaybeUninit::<libc::sigset_t>::uninit();
        // SAFETY: sigfillset initialises `all`; the mask call fills `saved`.
        let saved = unsafe {
            libc::sigfillset(all.as_mut_ptr());
            libc::pthread_sigmask(libc::SIG_BLOCK, all.as_ptr(), saved.as_mut_ptr());
            saved.assume_init()
        };
        LOCK.lock();
        Self { saved, buf: [0; LINE_BUF], len: 0 }
    }

    fn bytes(&mut self, b: &[u8]) {
        let mut rest = b;
        while !rest.is_empty() {
            if self.len == self.buf.len() {
                self.flush();
            }
            let n = rest.len().min(self.buf.len() - self.len);
            self.buf[self.len..self.len + n].copy_from_slice(&rest[..n]);
            self.len += n;
            rest = &rest[n..];
        }
    }

    fn flush(&mut self) {
        let fd = FD.load(Ordering::Relaxed);
        if fd >= 0 {
            crate::os::write_fd(fd, &self.buf[..self.len]);
        }
        self.len = 0;
    }
}

impl Write for Line {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        self.bytes(s.as_bytes());
        Ok(())
    }
}

impl Drop for Line {
    fn drop(&mut self) {
        self.flush();
        LOCK.unlock();
        // SAFETY: `saved` is the mask `new` replaced.
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &self.saved, core::ptr::null_mut()) };
    }
}

/// Writes one line to the trace file, whole, under the lock.
fn write_line(line: &[u8]) {
    Line::new().bytes(line);
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
    // Not in a privileged program (see `options::read_environment`); the
    // dynamic loader drops MALLOC_TRACE there already, for a static one.
    if crate::options::secure_mode() {
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
    let mut line = Line::new();
    write_caller(&mut line, frames);
    let _ = writeln!(line, "+ {:#x} {:#x}", p as usize, size);
}

/// Logs a traced block that realloc kept or moved to `p` (`size` bytes as
/// recorded), after the `-` line of its old address: a `+` line naming
/// realloc's caller, the first frame of `frames` outside ptrs, so that
/// glibc's `mtrace` script says where a leaked block was last resized
/// (without it, the script printed such a leak's location as empty).
pub fn log_moved(p: *mut u8, size: usize, frames: &[usize]) {
    log_alloc(p, size, frames);
}

/// Writes `@ caller ` for the first frame of `frames` outside ptrs, in
/// glibc's form; nothing when there is none.
fn write_caller(line: &mut Line, frames: &[usize]) {
    let skip = stack::internal_frames(frames);
    let Some(&caller) = frames.get(skip) else {
        return;
    };
    match stack::resolve(caller) {
        Some(s) => {
            let _ = line.write_str("@ ");
            if !s.file.is_null() {
                // SAFETY: dladdr's names are NUL-terminated.
                let f = unsafe { CStr::from_ptr(s.file) };
                let _ = write!(line, "{}:", f.to_str().unwrap_or("?"));
            }
            // glibc 2.36's form: the offset in hex without "0x", and the
            // caller relative to its object's base.
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

/// Logs a free of a recorded block: `- addr` (glibc's free lines name their
/// caller; these do not, which glibc's `mtrace` script accepts).
pub fn log_free(p: *mut u8) {
    if FD.load(Ordering::Relaxed) < 0 {
        return;
    }
    let _ = writeln!(Line::new(), "- {:#x}", p as usize);
}
