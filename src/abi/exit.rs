//! `_exit` and `_Exit`, so that `PTRS_SHOW_STATS` prints its table in
//! programs that end with `_exit` (dash, the shell Debian runs as `sh`,
//! always does; so do forked children that do not exec). `_exit` runs no
//! exit handlers, so the atexit hook that prints the table at `exit` never
//! runs there.
//!
//! With `PTRS_SHOW_STATS` off these do exactly what glibc's do: the
//! `exit_group` system call (all threads end; no handlers, no stdio
//! flush). glibc's own `exit` ends through its internal `_exit`, not
//! through this symbol, so the table is never printed twice; a flag makes
//! sure of it anyway.

use crate::init;

/// Ends the process with `status` (its low 8 bits are the exit status
/// the parent sees), as POSIX `_exit`: no atexit handlers, no stdio flush.
/// Prints ptrs's statistics table first when `PTRS_SHOW_STATS` is on.
/// Never returns. Any thread may call it.
///
/// # Safety
/// C ABI: any status.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn _exit(status: i32) -> ! {
    init::print_exit_stats_from_exit();
    loop {
        // SAFETY: exit_group takes an int and does not return; the loop
        // (glibc's too) only guards against a kernel that returned anyway.
        unsafe { libc::syscall(libc::SYS_exit_group, status) };
    }
}

/// C99's name for `_exit` (glibc makes it an alias).
///
/// # Safety
/// C ABI: any status.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn _Exit(status: i32) -> ! {
    // SAFETY: the same function.
    unsafe { _exit(status) }
}
