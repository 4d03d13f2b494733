//! Writing what the profiler recorded: heap profiles in gperftools' text
//! format ("heap_v2", read by `google-pprof` and Go's `pprof`) and the leak
//! report. Runs outside malloc (exit handler, C API), but still allocates
//! nothing: output goes through a stack buffer to raw `write(2)` calls and
//! the records are a private snapshot (see `profile::snapshot`), so the
//! profiler's lock is not held while `dladdr` takes the loader's.

use core::ffi::{c_char, CStr};
use core::fmt::{self, Write};
use core::sync::atomic::Ordering;

use super::stack;
use super::table::StackRec;
use crate::os;

/// Bytes of [`Out`]'s buffer, on the stack of whoever writes: 4 KiB, so
/// that writing the profile at exit touches at most one more page of the
/// main thread's stack (8 KiB here and a second 4 KiB buffer to copy
/// /proc/self/maps were 12 KiB more resident stack at the end of small
/// programs, measured with /proc/self/smaps).
const OUT_BUF: usize = 4096;

/// A buffered writer to a file descriptor.
pub struct Out {
    fd: i32,
    buf: [u8; OUT_BUF],
    len: usize,
    pub failed: bool,
    /// The errno of the first write that failed (0: none).
    pub error: i32,
}

impl Out {
    pub fn new(fd: i32) -> Self {
        Self { fd, buf: [0; OUT_BUF], len: 0, failed: false, error: 0 }
    }

    pub fn bytes(&mut self, b: &[u8]) {
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

    /// Appends what `fd` holds from its offset to its end, read straight
    /// into the buffer.
    pub fn copy_from(&mut self, fd: i32) {
        loop {
            if self.len == self.buf.len() {
                self.flush();
            }
            let spare = &mut self.buf[self.len..];
            // SAFETY: `spare` is writable for its length.
            let n = unsafe { libc::syscall(libc::SYS_read, fd, spare.as_mut_ptr(), spare.len()) } as isize;
            if n < 0 && os::errno() == libc::EINTR {
                continue;
            }
            if n <= 0 {
                return;
            }
            self.len += n as usize;
        }
    }

    pub fn flush(&mut self) {
        if let Err(e) = os::write_all(self.fd, &self.buf[..self.len]) {
            if !self.failed {
                self.error = e;
            }
            self.failed = true;
        }
        self.len = 0;
    }
}

/// The decimal digits of `v`, written at the end of `buf`.
fn dec_digits(mut v: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            return &buf[i..];
        }
    }
}

// The heap profile is written with these rather than `core::fmt`: at exit
// of a small program, the formatting machinery's code (integer padding)
// was the profiler's only use of a 64 KiB stretch of libptrs's text, which
// the kernel's fault-around then mapped whole (+64 KiB of peak RSS,
// measured with /proc/self/smaps).
impl Out {
    /// `v` in decimal, right-aligned in `width` columns (as `%*lu`).
    pub fn dec(&mut self, v: u64, width: usize) {
        let mut buf = [0u8; 20];
        let d = dec_digits(v, &mut buf);
        for _ in d.len()..width {
            self.bytes(b" ");
        }
        self.bytes(d);
    }

    /// `v` in hexadecimal with a `0x` prefix (as `%#lx`).
    pub fn hex(&mut self, v: u64) {
        let mut buf = [0u8; 18];
        let mut i = buf.len();
        let mut x = v;
        loop {
            i -= 1;
            buf[i] = b"0123456789abcdef"[(x & 15) as usize];
            x >>= 4;
            if x == 0 {
                break;
            }
        }
        i -= 2;
        buf[i] = b'0';
        buf[i + 1] = b'x';
        self.bytes(&buf[i..]);
    }

    /// The four counts of a heap-profile line: `live: bytes [alloc: bytes] @`.
    fn counts(&mut self, lc: u64, lb: u64, ac: u64, ab: u64) {
        self.dec(lc, 6);
        self.bytes(b": ");
        self.dec(lb, 8);
        self.bytes(b" [");
        self.dec(ac, 6);
        self.bytes(b": ");
        self.dec(ab, 8);
        self.bytes(b"] @");
    }
}

impl Write for Out {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.bytes(s.as_bytes());
        Ok(())
    }
}

/// The scale pprof applies to a sampled stack: `1 / (1 - exp(-avg/rate))`.
pub fn scale(count: u64, bytes: u64, rate: usize) -> f64 {
    if count == 0 || rate <= 1 {
        return 1.0;
    }
    let avg = bytes as f64 / count as f64;
    let p = 1.0 - super::math::exp(-avg / rate as f64);
    if p <= 0.0 { 1.0 } else { 1.0 / p }
}

/// A record's (blocks, bytes) pair as the heap profile states it: blocks
/// of zero bytes (`malloc(0)`, recorded only when every allocation is)
/// are left out, as Go's `pprof` leaves them out when it reads a profile:
/// google-pprof computes a scale `1 / (1 - exp(-bytes / blocks / rate))`
/// for every pair with blocks and died dividing by zero on such a pair
/// ("Illegal division by zero", a tester's program that called
/// `malloc(0)` at `PTRS_PROFILE_RATE=1`). The leak report still lists
/// them.
fn stated(count: u64, bytes: u64) -> (u64, u64) {
    if bytes == 0 { (0, 0) } else { (count, bytes) }
}

/// Writes a heap profile of the records `snap` ([`super::snapshot`]; None:
/// nothing recorded) to `fd`. Returns 0 or an errno value: that of the
/// first write(2) that failed (ENOSPC on a full disk; EIO when a write
/// wrote nothing without an error), as the leak report's.
fn heap_profile(fd: i32, mut snap: Option<super::Snapshot>) -> i32 {
    let mut o = Out::new(fd);
    let rate = snap.as_ref().map_or_else(super::rate, |s| s.rate);
    let recs: &mut [StackRec] = match snap.as_mut() {
        Some(s) => s.records(),
        None => &mut [],
    };
    let (mut lc, mut lb, mut ac, mut ab) = (0u64, 0u64, 0u64, 0u64);
    for r in recs.iter() {
        let (c, b) = stated(r.live_count, r.live_bytes);
        lc += c;
        lb += b;
        let (c, b) = stated(r.alloc_count, r.alloc_bytes);
        ac += c;
        ab += b;
    }
    o.bytes(b"heap profile: ");
    o.counts(lc, lb, ac, ab);
    o.bytes(b" heap_v2/");
    o.dec(rate.max(1) as u64, 0);
    o.bytes(b"\n");
    for r in recs.iter() {
        let (live, live_bytes) = stated(r.live_count, r.live_bytes);
        let (allocs, alloc_bytes) = stated(r.alloc_count, r.alloc_bytes);
        if allocs == 0 {
            continue;
        }
        o.counts(live, live_bytes, allocs, alloc_bytes);
        let frames = &r.frames[..r.depth as usize];
        let skip = stack::internal_frames(frames);
        for &f in &frames[skip.min(frames.len().saturating_sub(1))..] {
            o.bytes(b" ");
            o.hex(f as u64);
        }
        o.bytes(b"\n");
    }
    o.bytes(b"\nMAPPED_LIBRARIES:\n");
    copy_file(&mut o, c"/proc/self/maps");
    o.flush();
    if o.failed { o.error } else { 0 }
}

fn copy_file(o: &mut Out, path: &CStr) {
    // SAFETY: a NUL-terminated path; raw open/read/close allocate nothing.
    let fd = unsafe { libc::syscall(libc::SYS_openat, libc::AT_FDCWD, path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) } as i32;
    if fd < 0 {
        return;
    }
    o.copy_from(fd);
    // SAFETY: `fd` was opened above.
    unsafe { libc::syscall(libc::SYS_close, fd) };
}

/// Opens `path` for writing (created, truncated). The fd or -errno.
///
/// # Safety
/// `path` must be a NUL-terminated string.
pub unsafe fn open_for_writing(path: *const c_char) -> i32 {
    // SAFETY: `path` is a NUL-terminated string (caller).
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat,
            libc::AT_FDCWD,
            path,
            libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | libc::O_CLOEXEC,
            0o644,
        )
    } as i32;
    if fd < 0 { -os::errno() } else { fd }
}

/// Writes a heap profile to `path`. 0 or an errno value.
///
/// # Safety
/// `path` must be null or a NUL-terminated string.
pub unsafe fn dump(path: *const c_char) -> i32 {
    if path.is_null() {
        return libc::EINVAL;
    }
    // Taken first: a dump that cannot have the records leaves the file
    // as it was.
    let snap = match super::snapshot() {
        Ok(snap) => snap,
        Err(e) => return e,
    };
    // SAFETY: `path` is non-null, so a NUL-terminated string (caller).
    let fd = unsafe { open_for_writing(path) };
    if fd < 0 {
        return -fd;
    }
    let r = heap_profile(fd, snap);
    // SAFETY: `fd` was opened above.
    unsafe { libc::syscall(libc::SYS_close, fd) };
    r
}

/// The longest path the profile at exit may have, its NUL included
/// (PATH_MAX).
const EXIT_PATH_MAX: usize = libc::PATH_MAX as usize;

/// The buffer the path of the profile at exit is built in: static, not on
/// the stack (4 KiB more touched at exit, on a stack that may be nearly
/// full), used once ([`EXIT_PATH_TAKEN`]).
static EXIT_PATH: crate::sync::GlobalCell<[u8; EXIT_PATH_MAX]> = crate::sync::GlobalCell::new([0; EXIT_PATH_MAX]);
/// Set by the one caller of [`dump_at_exit`] that uses [`EXIT_PATH`].
static EXIT_PATH_TAKEN: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// Writes `<prefix>.<pid>.heap` (PTRS_PROFILE at exit). A path longer than
/// PATH_MAX (4096 bytes with its NUL) is not written: the usual "could not
/// write" line names ENAMETOOLONG (a prefix over about 490 bytes, the
/// size of the stack buffer the path was built in, silently wrote
/// nothing). Once per process (the exit handler).
///
/// # Safety
/// `prefix` must be a NUL-terminated string.
pub unsafe fn dump_at_exit(prefix: *const c_char) {
    if EXIT_PATH_TAKEN.swap(true, Ordering::AcqRel) {
        return;
    }
    // SAFETY: taken once, by the swap just above.
    let buf = unsafe { EXIT_PATH.get() };
    // SAFETY: the prefix is a NUL-terminated string (caller).
    let p = unsafe { CStr::from_ptr(prefix) }.to_bytes();
    // SAFETY: getpid has no preconditions.
    let pid = unsafe { libc::getpid() };
    let mut digits = [0u8; 20];
    let parts: [&[u8]; 4] = [p, b".", dec_digits(pid as u64, &mut digits), b".heap\0"];
    let total: usize = parts.iter().map(|x| x.len()).sum();
    let r = if total > buf.len() {
        libc::ENAMETOOLONG
    } else {
        let mut len = 0;
        for part in parts {
            buf[len..len + part.len()].copy_from_slice(part);
            len += part.len();
        }
        // SAFETY: `buf` holds the path and its NUL, written just above.
        unsafe { dump(buf.as_ptr().cast()) }
    };
    if r != 0 {
        // Through `Out`: the name may be longer than diag's line buffer.
        let mut o = Out::new(2);
        o.bytes(b"ptrs: could not write the heap profile ");
        for part in &parts[..3] {
            o.bytes(part);
        }
        o.bytes(b".heap (errno ");
        o.dec(r as u64, 0);
        if r == libc::ENAMETOOLONG {
            // Ours when the whole path did not fit, else the kernel's: one
            // name in it is longer than NAME_MAX (a tester's 300-byte name
            // under /tmp was reported as a path longer than PATH_MAX).
            o.bytes(if total > buf.len() {
                b", ENAMETOOLONG: the path is longer than PATH_MAX".as_slice()
            } else {
                b", ENAMETOOLONG: a name in the path is longer than NAME_MAX".as_slice()
            });
        } else if let Some(what) = errno_text(r) {
            o.bytes(b", ");
            o.bytes(what);
        }
        o.bytes(b")\n");
        o.flush();
    }
}

/// The name and meaning of the errno values that opening and writing a
/// profile file can give (`strerror` may allocate, and its text depends
/// on the locale): the exit message said only "(errno 2)" (a tester).
fn errno_text(e: i32) -> Option<&'static [u8]> {
    Some(match e {
        libc::ENOENT => b"ENOENT: no such file or directory",
        libc::ENOTDIR => b"ENOTDIR: a component of the path is not a directory",
        libc::EACCES => b"EACCES: permission denied",
        libc::EPERM => b"EPERM: operation not permitted",
        libc::EROFS => b"EROFS: read-only file system",
        libc::EISDIR => b"EISDIR: the path is a directory",
        libc::ELOOP => b"ELOOP: too many symbolic links",
        libc::ENOSPC => b"ENOSPC: no space left on the device",
        libc::EDQUOT => b"EDQUOT: disk quota exceeded",
        libc::EMFILE => b"EMFILE: too many open files",
        libc::ENFILE => b"ENFILE: too many open files in the system",
        libc::EIO => b"EIO: input/output error",
        libc::ENOMEM => b"ENOMEM: out of memory",
        libc::EBUSY => b"EBUSY: the profiler was busy",
        _ => return None,
    })
}

/// Where the leak report at exit goes (see `os::ExitStderr`).
static EXIT_STDERR: os::ExitStderr = os::ExitStderr::new();

/// Notes stderr for the leak report at exit, and copies it unless it is a
/// pipe or a socket (`os::ExitStderr::remember`).
pub fn remember_stderr() {
    EXIT_STDERR.remember();
}

/// Where the leak report at exit goes: the copy of stderr made at start or
/// fd 2, whichever still is the file stderr was then; -1 (nothing printed)
/// when neither is: a program that closed fd 2 and opened a data file, or
/// a daemon whose files took the copy's number, got the report inside
/// that file.
pub fn stderr_fd() -> i32 {
    EXIT_STDERR.fd()
}

/// The exported name of the function holding `frame`, if `dladdr` finds one.
fn frame_name(frame: usize) -> Option<&'static [u8]> {
    let s = stack::resolve(frame)?;
    if s.name.is_null() {
        return None;
    }
    // SAFETY: dladdr's names are NUL-terminated and live as long as their
    // object (the C library and the loader are never unloaded).
    Some(unsafe { CStr::from_ptr(s.name) }.to_bytes())
}

/// Whether a stack (the allocator's frames cut) is an allocation of the C
/// library's runtime that the program cannot free and that is never freed
/// by design, which valgrind (as "still reachable", not shown by default)
/// and LeakSanitizer (reachable from the runtime's globals) do not report
/// either:
/// - stdio buffers: the innermost frame is `_IO_file_doallocate`;
/// - the dynamic loader's own allocations: the innermost frame is in the
///   loader (`getauxval(AT_BASE)`, the object it was mapped at): each
///   thread's dynamic thread vector (glibc keeps the stacks of exited
///   threads, with it, in a cache: every program that created a thread
///   showed a 288-byte leak from `pthread_create`), the thread-local
///   blocks of `dlopen`ed libraries (`__tls_get_addr`: a tester's 800 KB,
///   kept for exited threads too), and its link maps and scopes;
/// - locale and message-catalog state, from `setlocale`, `newlocale`,
///   `bindtextdomain`, `textdomain` or `bind_textdomain_codeset` (among the
///   eight innermost frames): the C library keeps it for the process (a
///   tester's `timeout`, as every GNU program starts, failed
///   `PTRS_LEAK_EXITCODE` on 12 KB of it).
fn suppressed(frames: &[usize]) -> bool {
    let Some(&first) = frames.first() else { return false };
    if frame_name(first) == Some(b"_IO_file_doallocate") {
        return true;
    }
    // SAFETY: getauxval has no preconditions; AT_BASE is 0 without a
    // dynamic loader (a static program).
    let loader = unsafe { libc::getauxval(libc::AT_BASE) } as usize;
    if loader != 0 && stack::resolve(first).is_some_and(|s| s.base == loader) {
        return true;
    }
    frames.iter().take(8).any(|&f| {
        matches!(
            frame_name(f),
            Some(b"setlocale" | b"newlocale" | b"bindtextdomain" | b"textdomain" | b"bind_textdomain_codeset")
        )
    })
}

/// "s" unless `n` is 1 (the leak report's "1 block", "2 blocks").
fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// What [`leak_report`] found and whether it could write it.
pub struct LeakReport {
    /// Allocation sites with blocks still in use.
    pub sites: usize,
    /// 0, or the errno of the write(2) that failed.
    pub error: i32,
}

/// Writes the leak report (allocation sites with blocks still in use,
/// largest first) to `fd`.
pub fn leak_report(fd: i32) -> LeakReport {
    let mut o = Out::new(fd);
    let snap = match super::snapshot() {
        Ok(snap) => snap,
        Err(error) => return LeakReport { sites: 0, error },
    };
    let rate = snap.as_ref().map_or_else(super::rate, |s| s.rate);
    // Rate 1: the figures of the blocks recorded are exact (not scaled);
    // complete: and every allocation of the process was recorded.
    let exact = rate <= 1;
    let complete = exact && snap.as_ref().is_some_and(|s| s.complete);
    let overflowed = snap.as_ref().is_some_and(|s| s.overflowed);
    let never_ran = snap.is_none();
    let mut snap = snap;
    let recs: &mut [StackRec] = match snap.as_mut() {
        Some(s) => s.records(),
        None => &mut [],
    };
    // Cut the allocator's frames and drop suppressed sites first.
    let mut kept = 0usize;
    for i in 0..recs.len() {
        if recs[i].live_count == 0 {
            continue;
        }
        let depth = recs[i].depth as usize;
        let skip = stack::internal_frames(&recs[i].frames[..depth]).min(depth.saturating_sub(1));
        let mut r = recs[i];
        r.frames.copy_within(skip..depth, 0);
        r.depth = (depth - skip) as u32;
        if suppressed(&r.frames[..r.depth as usize]) {
            continue;
        }
        recs[kept] = r;
        kept += 1;
    }
    let recs = &mut recs[..kept];
    // Estimates first (each record is unsampled with its own average block
    // size, as pprof does), then one entry per stack: a stack has one
    // record per size bucket (table.rs), which the report would otherwise
    // list as separate sites with the same frames.
    for r in recs.iter_mut() {
        let s = scale(r.live_count, r.live_bytes, rate);
        r.live_bytes = (r.live_bytes as f64 * s) as u64;
        r.live_count = (r.live_count as f64 * s).round() as u64;
    }
    let frames_of = |r: &StackRec| (r.depth, r.frames);
    recs.sort_unstable_by_key(frames_of);
    let mut sites = 0usize;
    for i in 0..recs.len() {
        if sites > 0 && frames_of(&recs[sites - 1]) == frames_of(&recs[i]) {
            recs[sites - 1].live_bytes += recs[i].live_bytes;
            recs[sites - 1].live_count += recs[i].live_count;
        } else {
            recs[sites] = recs[i];
            sites += 1;
        }
    }
    let recs = &mut recs[..sites];
    recs.sort_unstable_by_key(|r| core::cmp::Reverse(r.live_bytes));
    let bytes: u64 = recs.iter().map(|r| r.live_bytes).sum();
    let blocks: u64 = recs.iter().map(|r| r.live_count).sum();
    if never_ran {
        // Nothing was recorded: "no leaks" would claim a check that was
        // never made (a fresh tester called `ptrs_leak_report` without
        // starting the profiler and read it as a clean bill).
        let _ = writeln!(
            o,
            "ptrs: leak report: the heap profiler has not run, nothing was recorded \
             (PTRS_LEAK_REPORT=1, PTRS_PROFILE or ptrs_profile_start start it)"
        );
        o.flush();
        return LeakReport { sites: 0, error: o.error };
    }
    if recs.is_empty() {
        let among = if complete {
            ""
        } else if exact {
            " among recorded blocks"
        } else {
            " among sampled blocks"
        };
        let _ = writeln!(o, "ptrs: leak report: no leaks{}", among);
        o.flush();
        return LeakReport { sites: 0, error: o.error };
    }
    let _ = writeln!(
        o,
        "ptrs: leak report: {} byte{} in {} block{} still allocated, from {} site{} ({})",
        bytes,
        plural(bytes),
        blocks,
        plural(blocks),
        recs.len(),
        plural(recs.len() as u64),
        if complete {
            "exact: every allocation recorded"
        } else if exact {
            "from the blocks recorded: allocations made while the profiler was off or at another rate are not included"
        } else {
            "estimated from samples"
        }
    );
    if !exact {
        let _ = writeln!(o, "ptrs:   (one sample per {} bytes; PTRS_PROFILE_RATE=1 for exact figures)", rate);
    }
    if overflowed {
        let _ = writeln!(
            o,
            "ptrs:   (more than {} distinct stacks: the blocks of the others are counted under one site, stack_table_full)",
            super::table::MAX_STACKS - 1
        );
    }
    for (n, r) in recs.iter().enumerate() {
        let _ = writeln!(
            o,
            "ptrs: #{} {} byte{} in {} block{}{}",
            n + 1,
            r.live_bytes,
            plural(r.live_bytes),
            r.live_count,
            plural(r.live_count),
            if exact { "" } else { " (estimated)" }
        );
        for (i, &f) in r.frames[..r.depth as usize].iter().enumerate() {
            let _ = write!(o, "ptrs:     #{:<2} {:#x}", i, f);
            if f == super::table::Tables::overflow_frame() {
                // Not a call site: the record of the stacks beyond the
                // table (`dladdr` would name the exported symbol before it).
                o.bytes(b" ptrs::profile::table::stack_table_full (the stacks beyond the profiler's table)\n");
                continue;
            }
            if let Some(sym) = stack::resolve(f) {
                if !sym.name.is_null() {
                    // SAFETY: dladdr's names are NUL-terminated.
                    let name = unsafe { CStr::from_ptr(sym.name) };
                    let _ = write!(o, " {}+{:#x}", name.to_str().unwrap_or("?"), sym.offset);
                } else {
                    let _ = write!(o, " ?+{:#x}", sym.offset);
                }
                if !sym.file.is_null() {
                    // SAFETY: as above.
                    let file = unsafe { CStr::from_ptr(sym.file) };
                    let _ = write!(o, " ({})", file.to_str().unwrap_or("?"));
                }
            }
            o.bytes(b"\n");
        }
    }
    o.flush();
    LeakReport { sites: recs.len(), error: o.error }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hand-written numbers of the heap profile are what `core::fmt`
    /// wrote before (`{:6}`, `{:8}`, `{}`, `{:#x}`), so google-pprof reads
    /// the same lines.
    #[test]
    fn numbers_are_written_as_core_fmt_writes_them() {
        let values = [0u64, 1, 9, 10, 99_999, 999_999, 1_000_000, 12_345_678, 99_999_999, 100_000_000, u32::MAX as u64, u64::MAX];
        for &a in &values {
            for &b in &values {
                let mut o = Out::new(-1);
                o.counts(a, b, b, a);
                o.bytes(b" ");
                o.dec(a, 0);
                o.bytes(b" ");
                o.hex(b);
                let mut want = crate::diag::LineBuf::new();
                let _ = write!(want, "{:6}: {:8} [{:6}: {:8}] @ {} {:#x}", a, b, b, a, a, b);
                assert_eq!(&o.buf[..o.len], want.as_bytes(), "{a} {b}");
            }
        }
    }
}
