//! Diagnostics that never allocate: messages are formatted with `core::fmt`
//! into a stack buffer and written to stderr with one `write(2)`.
//!
//! Heap errors follow glibc: one line, `ptrs: <function>(): <problem>: 0x<addr>`,
//! then `abort()`. With `PTRS_ABORT_ON_ERROR=0` the line is printed as a
//! warning and the caller leaves the block alone.

use core::fmt::{self, Write};

use crate::options;
use crate::os;

/// A fixed-size line buffer; text past its end is dropped.
pub struct LineBuf {
    buf: [u8; 512],
    len: usize,
}

impl LineBuf {
    pub const fn new() -> Self {
        Self { buf: [0; 512], len: 0 }
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// Appends raw bytes (what does not fit is dropped).
    pub fn push(&mut self, b: &[u8]) {
        let n = b.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&b[..n]);
        self.len += n;
    }

    pub fn clear(&mut self) {
        self.len = 0;
    }
}

impl Write for LineBuf {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.push(s.as_bytes());
        Ok(())
    }
}

/// Writes a formatted line to stderr without allocating.
pub fn print(args: fmt::Arguments<'_>) {
    let mut line = LineBuf::new();
    let _ = line.write_fmt(args);
    os::write_fd(2, line.as_bytes());
}

/// `ptrs: <msg>` on stderr, when verbose output is on.
pub fn verbose(args: fmt::Arguments<'_>) {
    if options::verbose() {
        print(format_args!("ptrs: {}\n", args));
    }
}

/// Reports a detected heap error: `ptrs: <func>(): <problem>: <addr>`.
/// Aborts unless the abort-on-error option is off; returns otherwise, and the
/// caller must then leave the block alone.
#[cold]
#[inline(never)]
pub fn heap_error(func: &str, problem: &str, addr: usize) {
    print(format_args!("ptrs: {}(): {}: {:#x}\n", func, problem, addr));
    if options::abort_on_error() {
        // SAFETY: abort has no preconditions and does not return.
        unsafe { libc::abort() };
    }
}

/// Reports a detected heap error as [`heap_error`] does and aborts whatever
/// the abort option says: for errors found after the fact (a free list
/// that can no longer be trusted), where leaving the block alone is no way
/// out.
#[cold]
#[inline(never)]
pub fn heap_error_fatal(func: &str, problem: &str, addr: usize) -> ! {
    print(format_args!("ptrs: {}(): {}: {:#x}\n", func, problem, addr));
    // SAFETY: abort has no preconditions and does not return.
    unsafe { libc::abort() }
}

/// Reports an internal invariant failure and aborts, whatever the options.
#[cold]
#[inline(never)]
pub fn fatal(args: fmt::Arguments<'_>) -> ! {
    print(format_args!("ptrs: fatal: {}\n", args));
    // SAFETY: abort has no preconditions and does not return.
    unsafe { libc::abort() }
}
