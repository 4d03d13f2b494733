//! The operating-system layer: the only module that maps, unmaps, advises or
//! protects memory, reads the clock or gathers entropy.
//!
//! Contract for every function here: addresses and sizes are multiples of
//! [`OS_PAGE_SIZE`], sizes are non-zero, and failure is reported as a null
//! pointer or `false`, never by unwinding. Nothing here allocates.
//!
//! No function here is a cancellation point. Every call ptrs makes that
//! could be one in libc (`open`, `read`, `write`, `close`, `getrandom`,
//! `fcntl`) goes through [`syscall`] instead (glibc's `syscall()` is a plain
//! trap, not a cancellation point), so that `malloc_stats` or `mallinfo2`
//! in a thread with a pending cancellation does its work and the thread is
//! cancelled at the program's next cancellation point, as with glibc; a
//! forced unwind through ptrs's frames (built with `panic = "abort"`) would
//! abort the process. The libc calls left (`mmap`, `munmap`, `madvise`,
//! `mprotect`, `mremap`, `clock_gettime`, `sched_yield`,
//! `pthread_sigmask`) are neither cancellation points nor allocate.

use core::ptr;

/// The kernel page size ptrs assumes (x86-64 and aarch64 with 4 KiB pages).
pub const OS_PAGE_SIZE: usize = 4096;

/// Maps `size` bytes of fresh, zeroed, read-write memory. Null on failure,
/// errno unchanged.
/// With `MAP_NORESERVE`, so the kernel's default overcommit heuristic
/// does not check the size: huge blocks check it themselves
/// ([`overcommit_cap`]). (Mapped without it, as glibc maps, mixedlarge
/// took 0.455 s of user time against 0.40 s, in 9 runs each, the
/// system calls and page faults being the same; the cause was not found.)
pub fn map(size: usize) -> *mut u8 {
    map_near(0, size)
}

/// [`map`] with an address hint (`hint`, 0 for none): the kernel places
/// the mapping there if that range is free, elsewhere otherwise.
fn map_near(hint: usize, size: usize) -> *mut u8 {
    // A failure here is not yet the allocation's: ptrs may trim and try
    // again, or map elsewhere, and succeed; malloc sets ENOMEM itself when
    // it gives up. (A fresh tester: malloc(30 MiB) that succeeded after
    // its trim and retry left errno at ENOMEM; glibc leaves it alone.)
    let saved = errno();
    // SAFETY: an anonymous private mapping without MAP_FIXED touches no
    // existing memory whatever the hint; the kernel chooses the address.
    let p = unsafe {
        libc::mmap(
            hint as *mut libc::c_void,
            size,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        set_errno(saved);
        return ptr::null_mut();
    }
    p.cast()
}

/// The largest mapping the kernel's overcommit policy would grant a
/// mapping without `MAP_NORESERVE` (the one glibc's malloc makes): under
/// the default heuristic (`vm.overcommit_memory` 0) and strict accounting
/// (2), RAM plus swap; unlimited where the policy is to always overcommit
/// (1) or cannot be read. Read once, without allocating, at start-up
/// (`init::init_slow`: see there for why not later). Huge blocks
/// above it are refused (malloc returns NULL with ENOMEM, C++'s `new`
/// throws): mapped with `MAP_NORESERVE`, malloc(64 GiB) to malloc(64 TiB)
/// succeeded on a 23 GiB machine without swap (a fresh tester), and the
/// program was killed when it touched the memory. (The heuristic refuses
/// a single mapping larger than RAM plus swap; strict accounting ignores
/// `MAP_NORESERVE` and refuses more.)
pub fn overcommit_cap() -> usize {
    static CAP: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(0);
    let cap = CAP.load(core::sync::atomic::Ordering::Relaxed);
    if cap != 0 {
        return cap;
    }
    let cap = read_overcommit_cap();
    CAP.store(cap, core::sync::atomic::Ordering::Relaxed);
    cap
}

fn read_overcommit_cap() -> usize {
    let mut mode = [0u8; 4];
    match read_small_file(c"/proc/sys/vm/overcommit_memory", &mut mode) {
        Some(n) if n >= 1 && mode[0] != b'1' => {}
        _ => return usize::MAX,
    }
    let mut si = core::mem::MaybeUninit::<libc::sysinfo>::zeroed();
    // SAFETY: sysinfo fills the struct when it returns 0.
    if unsafe { libc::syscall(libc::SYS_sysinfo, si.as_mut_ptr()) } != 0 {
        return usize::MAX;
    }
    // SAFETY: filled just above.
    let si = unsafe { si.assume_init() };
    let units = (si.totalram as u64).saturating_add(si.totalswap as u64);
    let bytes = units.saturating_mul(si.mem_unit.max(1) as u64);
    usize::try_from(bytes).unwrap_or(usize::MAX).max(1)
}

/// Reserves `size` bytes of address space with no access. Null on failure.
pub fn reserve(size: usize) -> *mut u8 {
    let saved = errno(); // as in `map_near`
    // SAFETY: as in `map`, with no access rights.
    let p = unsafe {
        libc::mmap(
            ptr::null_mut(),
            size,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        set_errno(saved);
        return ptr::null_mut();
    }
    p.cast()
}

/// Unmaps `[addr, addr + size)`.
///
/// # Safety
/// The range must be a mapping (or part of one) that ptrs owns and that
/// nothing references any more.
pub unsafe fn unmap(addr: *mut u8, size: usize) {
    if size == 0 {
        return;
    }
    // SAFETY: the caller guarantees the range is ours and unused.
    unsafe { libc::munmap(addr.cast(), size) };
}

/// Where the last aligned mapping began (an address, 0 before the first):
/// the next is first asked for just below it.
static ALIGNED_HINT: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(0);

/// Maps `size` bytes aligned to `align` (a power of two and a multiple of the
/// page size). Null on failure.
///
/// First the aligned range just below the previous aligned mapping is
/// asked for, as a hint (never `MAP_FIXED`: the kernel places the mapping
/// elsewhere when that range is taken, and the mapping is then given
/// back). The kernel hands out addresses downwards, so that range is
/// usually free: one `mmap`. Otherwise, and for the first, the size plus
/// the alignment is mapped and its ends trimmed: an `mmap` and two
/// `munmap`s. (The largeset workload maps a segment or a huge block 20
/// times in its run: 60 of these calls before, 20 now. mimalloc hints
/// its aligned mappings in the same spirit, upwards from a base.)
pub fn map_aligned(size: usize, align: usize) -> *mut u8 {
    use core::sync::atomic::Ordering;
    let hint = ALIGNED_HINT.load(Ordering::Relaxed);
    let span = size.checked_add(align - 1).map(|s| s & !(align - 1));
    if let Some(span) = span {
        if hint >= span + align {
            let want = (hint - span) & !(align - 1);
            let p = map_near(want, size);
            if !p.is_null() {
                if p as usize == want {
                    ALIGNED_HINT.store(want, Ordering::Relaxed);
                    return p;
                }
                // SAFETY: the mapping just made, not handed out.
                unsafe { unmap(p, size) };
            }
        }
    }
    let Some(over) = size.checked_add(align) else { return ptr::null_mut() };
    let base = map(over);
    if base.is_null() {
        return base;
    }
    let start = (base as usize + align - 1) & !(align - 1);
    let lead = start - base as usize;
    let tail = over - lead - size;
    // SAFETY: both trimmed ranges lie inside the mapping just made and are
    // outside the aligned range handed back.
    unsafe {
        unmap(base, lead);
        unmap((start + size) as *mut u8, tail);
    }
    ALIGNED_HINT.store(start, Ordering::Relaxed);
    start as *mut u8
}

/// Tells the kernel the pages of `[addr, addr + size)` are not needed: their
/// physical memory is released now and they read as zero when next touched.
///
/// # Safety
/// The range must be mapped by ptrs and hold no live data.
pub unsafe fn purge(addr: *mut u8, size: usize) {
    // SAFETY: the caller guarantees the range is ours and holds nothing live.
    unsafe { libc::madvise(addr.cast(), size, libc::MADV_DONTNEED) };
}

/// Whether any OS page of `[addr, addr + size)` (page-aligned, at most 64
/// pages) is resident, from mincore(2); true when it cannot tell.
///
/// # Safety
/// The range must be mapped.
pub unsafe fn any_resident(addr: *mut u8, size: usize) -> bool {
    let mut vec = [0u8; 64];
    let pages = size.div_ceil(OS_PAGE_SIZE);
    if pages > vec.len() {
        return true;
    }
    // SAFETY: the caller guarantees the range is mapped; `vec` holds one
    // byte per page of it.
    if unsafe { libc::mincore(addr.cast(), size, vec.as_mut_ptr()) } != 0 {
        return true;
    }
    vec[..pages].iter().any(|v| v & 1 != 0)
}

/// Makes `[addr, addr + size)` inaccessible (a guard).
///
/// # Safety
/// The range must be mapped by ptrs and never be accessed afterwards.
pub unsafe fn protect_none(addr: *mut u8, size: usize) -> bool {
    // SAFETY: the caller guarantees the range is ours.
    unsafe { libc::mprotect(addr.cast(), size, libc::PROT_NONE) == 0 }
}

/// Grows or shrinks the mapping at `addr` in place. False if it cannot;
/// errno is kept either way (a refusal, usually ENOMEM because the next
/// pages are taken, is an answer, not an error of the allocation that
/// asked: a pool's huge allocation that reused a cached mapping returned
/// its block with errno ENOMEM).
/// Always false under valgrind, whose emulation of in-place `mremap` can
/// grow a mapping across a neighbouring one.
///
/// # Safety
/// `[addr, addr + old_size)` must be one whole mapping owned by ptrs.
pub unsafe fn remap_in_place(addr: *mut u8, old_size: usize, new_size: usize) -> bool {
    if running_on_valgrind() {
        return false;
    }
    let saved = errno();
    // SAFETY: without MREMAP_MAYMOVE the mapping either changes size at the
    // same address or the call fails with no effect.
    let p = unsafe { libc::mremap(addr.cast(), old_size, new_size, 0) };
    set_errno(saved);
    p != libc::MAP_FAILED
}

/// Moves the mapping at `addr` to `target` (whose old contents, a
/// reservation, are replaced), resizing it to `new_size`. False on failure.
///
/// # Safety
/// `[addr, addr + old_size)` must be one whole mapping owned by ptrs and
/// `[target, target + new_size)` a reservation owned by ptrs.
pub unsafe fn remap_to(addr: *mut u8, old_size: usize, target: *mut u8, new_size: usize) -> bool {
    // Valgrind loses track of the moved pages' access rights; callers fall
    // back to copying.
    if running_on_valgrind() {
        return false;
    }
    let saved = errno(); // the caller copies instead: not an error
    // SAFETY: MREMAP_FIXED replaces the caller's reservation at `target`;
    // the page tables move, so the contents come along without copying.
    let p = unsafe {
        libc::mremap(
            addr.cast(),
            old_size,
            new_size,
            libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED,
            target,
        )
    };
    set_errno(saved);
    p != libc::MAP_FAILED
}

/// Makes every thread of the process that is running now execute a full
/// memory barrier before this returns (membarrier(2),
/// `MEMBARRIER_CMD_PRIVATE_EXPEDITED`, Linux 4.14): the slow side of an
/// asymmetric handshake whose fast side orders its accesses with a
/// compiler fence only (the idea of liburcu's and folly's asymmetric
/// fences). A thread not running now passes a full barrier before it runs
/// again. Registers the process at its first call (and again in a forked
/// child, a new address space, which the kernel answers with `EPERM`).
/// False when the kernel or a seccomp filter refuses it, and always false
/// under valgrind, which does not know the call: the caller then skips
/// what the barrier would have made safe. errno is kept. One system call
/// (an inter-processor interrupt to each CPU running a thread of the
/// process); for slow paths only.
pub fn membarrier_all_threads() -> bool {
    use core::sync::atomic::{AtomicU8, Ordering};
    /// 0: not tried; 1: refused for good.
    static REFUSED: AtomicU8 = AtomicU8::new(0);
    const CMD_PRIVATE_EXPEDITED: libc::c_long = 1 << 3;
    const CMD_REGISTER_PRIVATE_EXPEDITED: libc::c_long = 1 << 4;
    if REFUSED.load(Ordering::Relaxed) != 0 || running_on_valgrind() {
        return false;
    }
    let saved = errno();
    // SAFETY: membarrier takes plain integers and touches no memory of ours.
    let call = |cmd: libc::c_long| unsafe { libc::syscall(libc::SYS_membarrier, cmd, 0 as libc::c_long, 0 as libc::c_long) };
    let mut ok = call(CMD_PRIVATE_EXPEDITED) == 0;
    if !ok && errno() == libc::EPERM && call(CMD_REGISTER_PRIVATE_EXPEDITED) == 0 {
        ok = call(CMD_PRIVATE_EXPEDITED) == 0;
    }
    if !ok {
        REFUSED.store(1, Ordering::Relaxed);
    }
    set_errno(saved);
    ok
}

/// True when the process runs under valgrind, asked once with valgrind's
/// client-request instruction sequence (a no-op on real hardware, where the
/// answer stays 0).
pub fn running_on_valgrind() -> bool {
    use core::sync::atomic::{AtomicU8, Ordering};
    static ANSWER: AtomicU8 = AtomicU8::new(0); // 0 unknown, 1 no, 2 yes
    match ANSWER.load(Ordering::Relaxed) {
        1 => false,
        2 => true,
        _ => {
            let yes = valgrind_request() != 0;
            ANSWER.store(if yes { 2 } else { 1 }, Ordering::Relaxed);
            yes
        }
    }
}

#[cfg(target_arch = "x86_64")]
fn valgrind_request() -> usize {
    // VG_USERREQ__RUNNING_ON_VALGRIND (0x1001) with a default result of 0.
    let args: [usize; 6] = [0x1001, 0, 0, 0, 0, 0];
    let result: usize;
    // SAFETY: the four rotations of %rdi add up to 128 bits (a no-op) and
    // `xchg %rbx, %rbx` changes nothing; natively %rdx keeps its input, 0.
    // Under valgrind the sequence is recognised and %rdx gets the answer.
    unsafe {
        core::arch::asm!(
            "rol rdi, 3",
            "rol rdi, 13",
            "rol rdi, 61",
            "rol rdi, 51",
            "xchg rbx, rbx",
            inout("rdx") 0usize => result,
            in("rax") args.as_ptr(),
            inout("rdi") 0usize => _,
            options(nostack),
        );
    }
    result
}

#[cfg(not(target_arch = "x86_64"))]
fn valgrind_request() -> usize {
    0
}

/// The identity of the file open as `fd` (device and inode), and whether
/// it is a regular file; None when `fd` is not open. A raw fstat(2): no
/// allocation, no lock.
pub fn file_id(fd: i32) -> Option<((u64, u64), bool)> {
    let st = fstat(fd)?;
    Some(((st.st_dev, st.st_ino), st.st_mode & libc::S_IFMT == libc::S_IFREG))
}

/// fstat(2) of `fd` as a raw system call (no allocation, no lock); None
/// when `fd` is not open.
fn fstat(fd: i32) -> Option<libc::stat> {
    // SAFETY: `st` is plain data that fstat fills.
    let mut st: libc::stat = unsafe { core::mem::zeroed() };
    // SAFETY: `st` is a valid out-parameter; a raw call.
    if unsafe { libc::syscall(libc::SYS_fstat, fd, &raw mut st) } != 0 {
        return None;
    }
    Some(st)
}

/// The resolution of [`now_ms`]'s clock in ms, rounded up (the kernel's
/// tick: 4 ms at 250 Hz); read once.
pub fn coarse_resolution_ms() -> u64 {
    static RES: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);
    let r = RES.load(core::sync::atomic::Ordering::Relaxed);
    if r != 0 {
        return r;
    }
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid out-parameter.
    let ok = unsafe { libc::clock_getres(libc::CLOCK_MONOTONIC_COARSE, &mut ts) } == 0;
    let ns = if ok { ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64 } else { 10_000_000 };
    let r = ns.div_ceil(1_000_000).clamp(1, 1000);
    RES.store(r, core::sync::atomic::Ordering::Relaxed);
    r
}

/// Milliseconds of a coarse monotonic clock (no system call), which lags
/// real time by up to [`coarse_resolution_ms`].
pub fn now_ms() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid out-parameter.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
    ts.tv_sec as u64 * 1000 + ts.tv_nsec as u64 / 1_000_000
}

/// CPUs the calling thread may run on (its affinity mask; 1 if it cannot
/// be read). One system call, no allocation.
pub fn cpu_count() -> usize {
    // SAFETY: an all-zero cpu_set_t is valid; sched_getaffinity fills it.
    let mut set: libc::cpu_set_t = unsafe { core::mem::zeroed() };
    // SAFETY: `set` is a valid out-parameter of the size given.
    let ok = unsafe { libc::sched_getaffinity(0, core::mem::size_of::<libc::cpu_set_t>(), &mut set) } == 0;
    if !ok {
        return 1;
    }
    // SAFETY: `set` was filled by the kernel.
    (unsafe { libc::CPU_COUNT(&set) } as usize).max(1)
}

/// 64 random bits from the kernel, mixed with the clock and an address if
/// the kernel has none to give (early boot, seccomp).
pub fn random_u64() -> u64 {
    let mut v: u64 = 0;
    // The raw system call: libc's getrandom() is a cancellation point.
    // SAFETY: `v` is a valid 8-byte buffer.
    let n = unsafe { libc::syscall(libc::SYS_getrandom, (&raw mut v).cast::<u8>(), 8usize, libc::GRND_NONBLOCK) };
    if n != 8 {
        let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: `ts` is a valid out-parameter.
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
        v = (ts.tv_nsec as u64) ^ ((ts.tv_sec as u64) << 32) ^ (&raw const v as u64);
    }
    // So that weak sources still spread over all bits.
    splitmix64(v)
}

/// splitmix64 (Steele, Lea and Flood): `x` plus the golden-ratio step,
/// through its finaliser, which spreads any change of `x` over all bits.
pub fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Writes all of `bytes` to file descriptor `fd`, ignoring errors.
pub fn write_fd(fd: i32, bytes: &[u8]) {
    let _ = write_all(fd, bytes);
}

/// Writes all of `bytes` to `fd` with raw write(2) calls, retrying after
/// EINTR and short writes. Err: the errno of the first call that failed,
/// or EIO for one that wrote nothing without an error; what was written
/// before stays written.
pub fn write_all(fd: i32, bytes: &[u8]) -> Result<(), i32> {
    let mut rest = bytes;
    while !rest.is_empty() {
        // The raw system call: libc's write() is a cancellation point, and
        // a diagnostic or malloc_stats() must not be cut short by one.
        // SAFETY: `rest` is a valid readable buffer of `rest.len()` bytes.
        let n = unsafe { libc::syscall(libc::SYS_write, fd, rest.as_ptr(), rest.len()) } as isize;
        if n <= 0 {
            if n < 0 && errno() == libc::EINTR {
                continue;
            }
            return Err(if n < 0 { errno() } else { libc::EIO });
        }
        rest = &rest[n as usize..];
    }
    Ok(())
}

/// The calling thread's errno.
pub fn errno() -> i32 {
    // SAFETY: __errno_location always returns the calling thread's errno slot.
    unsafe { *libc::__errno_location() }
}

/// Sets the calling thread's errno.
pub fn set_errno(value: i32) {
    // SAFETY: as in `errno`.
    unsafe { *libc::__errno_location() = value };
}

/// Where ptrs prints what it prints at exit (the leak report, the
/// statistics table): stderr as it was when the report was asked for.
///
/// - A copy of it (a descriptor at or above 10, close-on-exec), because
///   programs such as GNU coreutils close fd 2 in their own exit
///   handlers, which run before ptrs's; but no copy when stderr is a pipe
///   or a socket: the copy kept the pipe open, so a shell reading the
///   output of a program that daemonized (`x=$(prog)`, daemon(3) pointing
///   0 to 2 at /dev/null) waited until the daemon exited (a new-user
///   tester).
/// - The identity of that file (device and inode, one fstat), checked at
///   exit: the report goes to the copy or to fd 2 only while it is still
///   that file, and nowhere otherwise. A program that closed fd 2 (or
///   started with it closed) and opened a data file, which took number 2,
///   got the report inside that file (a fresh tester); so did a daemon
///   whose own files took the copy's number.
pub struct ExitStderr {
    /// The copy, or 2 (no copy), or -1: stderr was not open.
    fd: core::sync::atomic::AtomicI32,
    dev: core::sync::atomic::AtomicU64,
    ino: core::sync::atomic::AtomicU64,
    /// Set once `remember` ran.
    remembered: core::sync::atomic::AtomicBool,
}

impl ExitStderr {
    pub const fn new() -> ExitStderr {
        ExitStderr {
            fd: core::sync::atomic::AtomicI32::new(2),
            dev: core::sync::atomic::AtomicU64::new(0),
            ino: core::sync::atomic::AtomicU64::new(0),
            remembered: core::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Notes stderr as it is now, and copies it unless it is a pipe or a
    /// socket. Once; later calls keep the first.
    pub fn remember(&self) {
        use core::sync::atomic::Ordering;
        if self.remembered.swap(true, Ordering::AcqRel) {
            return;
        }
        let Some(st) = fstat(2) else {
            self.fd.store(-1, Ordering::Relaxed);
            return;
        };
        self.dev.store(st.st_dev, Ordering::Relaxed);
        self.ino.store(st.st_ino, Ordering::Relaxed);
        let kind = st.st_mode & libc::S_IFMT;
        if kind != libc::S_IFIFO && kind != libc::S_IFSOCK {
            let fd = dup_cloexec(2, 10);
            if fd >= 0 {
                self.fd.store(fd, Ordering::Relaxed);
            }
        }
    }

    /// The descriptor to print on at exit: the copy, else fd 2, whichever
    /// still is the file remembered; -1 when neither is (writes to it fail
    /// with EBADF and print nothing). fd 2 when nothing was remembered.
    pub fn fd(&self) -> i32 {
        use core::sync::atomic::Ordering;
        if !self.remembered.load(Ordering::Acquire) {
            return 2;
        }
        let fd = self.fd.load(Ordering::Relaxed);
        if fd < 0 {
            return -1;
        }
        let id = (self.dev.load(Ordering::Relaxed), self.ino.load(Ordering::Relaxed));
        if file_id(fd).map(|(i, _)| i) == Some(id) {
            return fd;
        }
        if fd != 2 && file_id(2).map(|(i, _)| i) == Some(id) {
            return 2;
        }
        -1
    }
}

/// Duplicates `fd` onto the lowest free descriptor at or above `min`, with
/// close-on-exec set (`fcntl(F_DUPFD_CLOEXEC)` as a raw system call). The
/// new descriptor, or -1 with errno set.
pub fn dup_cloexec(fd: i32, min: i32) -> i32 {
    // SAFETY: F_DUPFD_CLOEXEC has no memory-safety preconditions.
    unsafe { libc::syscall(libc::SYS_fcntl, fd, libc::F_DUPFD_CLOEXEC, min) as i32 }
}

/// Reads up to `buf.len()` bytes from the start of the file at `path`
/// (a small /proc file) with raw system calls, not libc's `open`/`read`/
/// `close`, which are cancellation points; allocates nothing. The bytes
/// read, or None if the file cannot be opened or read. Preserves errno.
pub fn read_small_file(path: &core::ffi::CStr, buf: &mut [u8]) -> Option<usize> {
    let saved = errno();
    // SAFETY: `path` is NUL-terminated; openat with AT_FDCWD and an
    // absolute path touches no other memory.
    let fd = unsafe { libc::syscall(libc::SYS_openat, libc::AT_FDCWD, path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        set_errno(saved);
        return None;
    }
    // SAFETY: `buf` is a valid writable buffer of `buf.len()` bytes; `fd`
    // is open.
    let n = unsafe { libc::syscall(libc::SYS_read, fd, buf.as_mut_ptr(), buf.len()) };
    // SAFETY: `fd` was opened above and is not used afterwards.
    unsafe { libc::syscall(libc::SYS_close, fd) };
    set_errno(saved);
    usize::try_from(n).ok()
}

/// The process's resident set size in bytes, from /proc/self/statm; 0 if
/// it cannot be read. Raw system calls, not libc's `open`/`read`/`close`,
/// which are cancellation points. Preserves errno.
pub fn resident_bytes() -> usize {
    let mut buf = [0u8; 128];
    let n = match read_small_file(c"/proc/self/statm", &mut buf) {
        Some(n) if n > 0 => n,
        _ => return 0,
    };
    // Second field: resident pages.
    let text = &buf[..n];
    let mut fields = text.split(|&c| c == b' ');
    fields.next();
    let Some(resident) = fields.next() else { return 0 };
    let mut pages = 0usize;
    for &c in resident {
        if !c.is_ascii_digit() {
            break;
        }
        pages = pages * 10 + (c - b'0') as usize;
    }
    pages * OS_PAGE_SIZE
}
