//! A caching DWARF call-frame-information unwinder for x86-64, used by the
//! profiler to take a call stack inside malloc (see `stack::capture`).
//!
//! Idea (as libunwind's "fast trace" cache and the framehop crate do it;
//! the code is ours): on x86-64 almost every frame is stepped with one of a
//! few simple rules: the caller's stack pointer (the CFA) is rsp or rbp of
//! the frame plus a constant, the return address is stored at a constant
//! offset from the CFA (-8), and rbp is either unchanged or saved at a
//! constant offset from the CFA. Such a rule is computed once per return
//! address from the object's `.eh_frame` (found with glibc's lock-free
//! `_dl_find_object`, then `.eh_frame_hdr`'s sorted table, the CIE and FDE,
//! and the CFA program run up to the address) and cached in a fixed table;
//! later captures step each frame with a table lookup, one
//! `_dl_find_object` call and two loads.
//!
//! Anything the rule cannot express (a CFA or register given by a DWARF
//! expression, a CFA based on another register, a register saved in
//! another register, signal frames, an address without FDE, a frame that
//! does not move up the stack) makes the whole capture fall back to libgcc's
//! `_Unwind_Backtrace`, so the stacks are never worse than libgcc's. The
//! check mode (`PTRS_PROFILE_UNWIND_CHECK=1`, see `stack::capture`) takes
//! every stack with both and aborts on a difference.
//!
//! Safety inside malloc: nothing here allocates or takes a lock. The cache
//! is a static table of entries under per-entry sequence counters (a
//! seqlock): a reader that sees a write in progress or a changed counter
//! treats the entry as a miss, a writer that finds the entry being written
//! (another thread, or the thread it interrupted as a signal handler) does
//! not write, so nothing ever waits. `_dl_find_object` is lock-free and
//! usable in signal handlers and fork children (glibc 2.35).
//!
//! dlclose: a cached rule belongs to one address of one loaded object. An
//! entry is keyed by the address and by a tag made of what
//! `_dl_find_object` says about the object holding the address (its
//! mapping start and end, its link map and its `PT_GNU_EH_FRAME` address),
//! and every frame of every capture is looked up again, so a rule of an
//! unloaded object is used for another object only if the new one is
//! mapped at the same place with the same extent and eh_frame_hdr offset
//! and its link map was allocated at the same address. That happens: a
//! plugin rebuilt with the same layout and reloaded under a path of the
//! same length gets the same addresses and link map (a reviewer's test
//! with two such libraries made by hand crashed here before the stack
//! limit below). A global generation counter bumped by dlclose would be
//! exact, but glibc offers none that can be read without the loader's
//! lock, and ptrs does not wrap `dlclose`. So every step checks the CFA
//! against the top of the thread's stack ([`stack_limit`]): a wrong rule
//! almost always climbs past it, and the capture then falls back to
//! libgcc; one that stays inside the stack gives a wrong stack, never a
//! read outside it.

use core::ffi::c_void;
use core::sync::atomic::{fence, AtomicU16, AtomicU64, AtomicUsize, Ordering};

use super::objfile::ObjFile;
use super::stack::MAX_DEPTH;

/// glibc's `struct dl_find_object` (dlfcn.h, glibc 2.35).
#[repr(C)]
struct DlFindObject {
    flags: u64,
    map_start: usize,
    map_end: usize,
    link_map: usize,
    eh_frame: usize,
    reserved: [u64; 7],
}

// `_dl_find_object` is referenced weakly (through the GOT, null where the
// C library predates glibc 2.35), so that libptrs still loads there; the
// profiler then uses libgcc alone.
core::arch::global_asm!(
    ".weak _dl_find_object",
    // The caller's return address, its stack pointer after the return and
    // rbp, written to the three words at rdi: the state of the caller's
    // frame at a call site, as the unwinder has it for every other frame.
    ".pushsection .text.__ptrs_unwind_regs,\"ax\",@progbits",
    ".globl __ptrs_unwind_regs",
    ".hidden __ptrs_unwind_regs",
    ".type __ptrs_unwind_regs, @function",
    "__ptrs_unwind_regs:",
    ".cfi_startproc",
    "mov rax, qword ptr [rsp]",
    "mov qword ptr [rdi], rax",
    "lea rax, [rsp + 8]",
    "mov qword ptr [rdi + 8], rax",
    "mov qword ptr [rdi + 16], rbp",
    "ret",
    ".cfi_endproc",
    ".size __ptrs_unwind_regs, . - __ptrs_unwind_regs",
    ".popsection",
);

unsafe extern "C" {
    fn __ptrs_unwind_regs(out: *mut [usize; 3]);
}

type FindObject = unsafe extern "C" fn(*mut c_void, *mut DlFindObject) -> i32;

/// `_dl_find_object`, or None before glibc 2.35.
#[inline(always)]
fn find_object_fn() -> Option<FindObject> {
    let f: usize;
    // SAFETY: loads the GOT slot of the weak symbol declared above (0 when
    // undefined); reads nothing else.
    unsafe {
        core::arch::asm!(
            "mov {f}, qword ptr [rip + _dl_find_object@GOTPCREL]",
            f = out(reg) f,
            options(nostack, readonly, pure, preserves_flags),
        );
    }
    if f == 0 {
        None
    } else {
        // SAFETY: a non-null address of glibc's `_dl_find_object`, whose
        // C signature is the one of `FindObject`.
        Some(unsafe { core::mem::transmute::<usize, FindObject>(f) })
    }
}

/// Whether this unwinder can run at all (glibc 2.35 or later).
pub fn available() -> bool {
    find_object_fn().is_some()
}

/// The start of the mapping of the loaded object holding `addr`, from
/// `_dl_find_object` (lock-free, far cheaper than `dladdr`, which scans the
/// object's symbols). None: no object holds it, or glibc predates 2.35.
pub fn object_start(addr: usize) -> Option<usize> {
    let find = find_object_fn()?;
    let mut o = DlFindObject { flags: 0, map_start: 0, map_end: 0, link_map: 0, eh_frame: 0, reserved: [0; 7] };
    // SAFETY: `_dl_find_object` only fills `o`.
    if unsafe { find(addr as *mut c_void, &mut o) } != 0 {
        return None;
    }
    Some(o.map_start)
}

// ---------------------------------------------------------------------
// Rules

/// How to step from a frame to its caller.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Rule {
    /// Not expressible here: the capture falls back to libgcc.
    Fallback,
    /// The return address is undefined: the outermost frame.
    End,
    /// CFA = (rbp if `cfa_rbp` else rsp) + `cfa_off`; the return address at
    /// CFA + `ra_off`; rbp saved at CFA + `bp_off` (None: unchanged).
    Step { cfa_rbp: bool, cfa_off: u32, ra_off: i16, bp_off: Option<i16> },
}

const K_STEP: u64 = 0;
const K_END: u64 = 1;
const K_FALLBACK: u64 = 2;
const CFA_OFF_MAX: u32 = (1 << 24) - 1;

impl Rule {
    /// One word: bits 0-1 kind, 2 CFA on rbp, 3 rbp saved, 8-31 CFA
    /// offset, 32-47 rbp offset, 48-63 return address offset.
    fn encode(self) -> u64 {
        match self {
            Rule::Fallback => K_FALLBACK,
            Rule::End => K_END,
            Rule::Step { cfa_rbp, cfa_off, ra_off, bp_off } => {
                K_STEP
                    | (cfa_rbp as u64) << 2
                    | (bp_off.is_some() as u64) << 3
                    | ((cfa_off & CFA_OFF_MAX) as u64) << 8
                    | (bp_off.unwrap_or(0) as u16 as u64) << 32
                    | (ra_off as u16 as u64) << 48
            }
        }
    }

    fn decode(w: u64) -> Rule {
        match w & 3 {
            K_END => Rule::End,
            K_STEP => Rule::Step {
                cfa_rbp: w & 4 != 0,
                cfa_off: ((w >> 8) as u32) & CFA_OFF_MAX,
                ra_off: (w >> 48) as u16 as i16,
                bp_off: if w & 8 != 0 { Some((w >> 32) as u16 as i16) } else { None },
            },
            _ => Rule::Fallback,
        }
    }
}

// ---------------------------------------------------------------------
// The cache

/// One cached rule. `seq` is odd while a writer fills the entry.
struct Entry {
    seq: AtomicU64,
    pc: AtomicU64,
    tag: AtomicU64,
    rule: AtomicU64,
}

const CACHE_BITS: u32 = 11;
const CACHE_LEN: usize = 1 << CACHE_BITS;

/// The rules, 2048 entries of 32 bytes (64 KiB of .bss), handed out in the
/// order they are first computed ([`CACHE_USED`]), so that the return
/// addresses of a program's samples occupy a few contiguous pages: placed
/// by hash, the ~20 addresses of a small program's samples touched ~10
/// pages of the table (measured with /proc/self/smaps, falsesharing at
/// the default rate: 52 KiB of ptrs's .bss resident against 12 KiB
/// without the profiler).
static CACHE: [Entry; CACHE_LEN] = [const {
    Entry { seq: AtomicU64::new(0), pc: AtomicU64::new(0), tag: AtomicU64::new(0), rule: AtomicU64::new(0) }
}; CACHE_LEN];
/// Bucket (a hash of the return address) -> entry number in [`CACHE`]
/// plus one; 0: none yet. 4 KiB.
static CACHE_INDEX: [AtomicU16; CACHE_LEN] = [const { AtomicU16::new(0) }; CACHE_LEN];
/// Entries of [`CACHE`] handed out so far (may run past its length: see
/// [`cache_put`]).
static CACHE_USED: AtomicUsize = AtomicUsize::new(0);
/// Threads inside [`cache_put`] (counted before an entry's sequence turns
/// odd and after it is even again), so that a fork child knows whether
/// an entry may have been left odd by a thread it does not have
/// ([`after_fork_child`]).
static CACHE_WRITERS: AtomicUsize = AtomicUsize::new(0);

#[inline(always)]
fn bucket(pc: usize) -> usize {
    ((pc as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (64 - CACHE_BITS)) as usize
}

#[inline(always)]
fn cache_get(pc: usize, tag: u64) -> Option<u64> {
    let n = CACHE_INDEX[bucket(pc)].load(Ordering::Acquire) as usize;
    if n == 0 {
        return None;
    }
    let e = &CACHE[n - 1];
    let s1 = e.seq.load(Ordering::Acquire);
    if s1 & 1 != 0 {
        return None;
    }
    let p = e.pc.load(Ordering::Relaxed);
    let t = e.tag.load(Ordering::Relaxed);
    let r = e.rule.load(Ordering::Relaxed);
    fence(Ordering::Acquire);
    if e.seq.load(Ordering::Relaxed) != s1 || p != pc as u64 || t != tag {
        return None;
    }
    Some(r)
}

/// Caches `rule` for `pc` in object `tag`. A bucket without an entry gets
/// the next unused one, published in the index after it is written (two
/// threads racing for one bucket each fill an entry; the later index store
/// wins and the other entry stays unused). Once every entry is handed
/// out, a new bucket uses the entry of its own number, which other buckets
/// may point to as well: as for any collision, a reader tells by the
/// address and object in the entry, so a stale or foreign rule is a miss.
fn cache_put(pc: usize, tag: u64, rule: u64) {
    let b = bucket(pc);
    let mut n = CACHE_INDEX[b].load(Ordering::Acquire) as usize;
    let fresh = n == 0;
    if fresh {
        let k = CACHE_USED.fetch_add(1, Ordering::Relaxed);
        n = if k < CACHE_LEN { k + 1 } else { b + 1 };
    }
    let e = &CACHE[n - 1];
    CACHE_WRITERS.fetch_add(1, Ordering::SeqCst);
    let s = e.seq.load(Ordering::Relaxed);
    if s & 1 != 0 || e.seq.compare_exchange(s, s + 1, Ordering::Relaxed, Ordering::Relaxed).is_err() {
        CACHE_WRITERS.fetch_sub(1, Ordering::SeqCst);
        return; // being written (maybe by the thread this handler interrupted)
    }
    fence(Ordering::Release);
    e.pc.store(pc as u64, Ordering::Relaxed);
    e.tag.store(tag, Ordering::Relaxed);
    e.rule.store(rule, Ordering::Relaxed);
    e.seq.store(s + 2, Ordering::Release);
    if fresh {
        CACHE_INDEX[b].store(n as u16, Ordering::Release);
    }
    CACHE_WRITERS.fetch_sub(1, Ordering::SeqCst);
}

/// In the child after `fork`: an entry that another thread of the parent
/// was writing stays odd forever there (readers take it as a miss,
/// writers skip it), so its return address would be computed again at
/// every capture in the child, a long-lived worker of a forking server
/// included. When a write was in progress at the fork, every odd entry is
/// emptied and made even again; otherwise nothing is touched (the table
/// stays out of the child's RSS).
pub fn after_fork_child() {
    if CACHE_WRITERS.load(Ordering::Relaxed) == 0 {
        return;
    }
    for e in &CACHE {
        let s = e.seq.load(Ordering::Relaxed);
        if s & 1 != 0 {
            e.pc.store(0, Ordering::Relaxed);
            e.seq.store(s + 1, Ordering::Relaxed);
        }
    }
    CACHE_WRITERS.store(0, Ordering::Relaxed);
}

/// The tag of an object as `_dl_find_object` describes it (never 0).
fn object_tag(o: &DlFindObject) -> u64 {
    let mut h = o.eh_frame as u64 ^ 0x6a09_e667_f3bc_c908;
    for v in [o.map_start, o.map_end, o.link_map] {
        h = (h ^ v as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        h ^= h >> 31;
    }
    h | 1
}

// ---------------------------------------------------------------------
// Reading .eh_frame_hdr and .eh_frame

/// Reads the unwind tables at their mapped addresses: from the mapping
/// itself (`f` null), or from the object's file through `f` (see
/// `objfile.rs`).
struct Reader {
    p: usize,
    f: *mut ObjFile,
}

impl Reader {
    // SAFETY (all readers): with `f` null, the callers only read inside the
    // `.eh_frame_hdr` and `.eh_frame` sections of a loaded object, whose
    // contents (written by the linker) they trust, as libgcc does. With
    // `f` set, it points to the `ObjFile` of the computation in progress,
    // which outlives every reader and is used by one at a time.
    unsafe fn u8(&mut self) -> u8 {
        let v = if self.f.is_null() {
            // SAFETY: see above.
            unsafe { *(self.p as *const u8) }
        } else {
            // SAFETY: see above.
            unsafe { (*self.f).byte(self.p) }
        };
        self.p = self.p.wrapping_add(1);
        v
    }
    /// `N` bytes, little-endian.
    unsafe fn le<const N: usize>(&mut self) -> u64 {
        if self.f.is_null() {
            let mut b = [0u8; 8];
            // SAFETY: see above.
            unsafe { core::ptr::copy_nonoverlapping(self.p as *const u8, b.as_mut_ptr(), N) };
            self.p = self.p.wrapping_add(N);
            return u64::from_le_bytes(b);
        }
        let mut v = 0u64;
        for i in 0..N {
            // SAFETY: see above.
            v |= (unsafe { self.u8() } as u64) << (8 * i);
        }
        v
    }
    /// Whether a read from the file failed: what was read is not to be
    /// trusted, and loops over it must stop.
    fn failed(&self) -> bool {
        // SAFETY: see above.
        !self.f.is_null() && unsafe { (*self.f).failed }
    }
    unsafe fn u16(&mut self) -> u16 {
        // SAFETY: see above.
        unsafe { self.le::<2>() as u16 }
    }
    unsafe fn u32(&mut self) -> u32 {
        // SAFETY: see above.
        unsafe { self.le::<4>() as u32 }
    }
    unsafe fn u64(&mut self) -> u64 {
        // SAFETY: see above.
        unsafe { self.le::<8>() }
    }
    unsafe fn uleb(&mut self) -> u64 {
        let (mut v, mut shift) = (0u64, 0u32);
        loop {
            // SAFETY: see above.
            let b = unsafe { self.u8() };
            if shift < 64 {
                v |= ((b & 0x7f) as u64) << shift;
            }
            shift += 7;
            if b & 0x80 == 0 {
                return v;
            }
        }
    }
    unsafe fn sleb(&mut self) -> i64 {
        let (mut v, mut shift) = (0i64, 0u32);
        loop {
            // SAFETY: see above.
            let b = unsafe { self.u8() };
            if shift < 64 {
                v |= ((b & 0x7f) as i64) << shift;
            }
            shift += 7;
            if b & 0x80 == 0 {
                if shift < 64 && b & 0x40 != 0 {
                    v |= -1i64 << shift;
                }
                return v;
            }
        }
    }
    /// A pointer in DWARF EH encoding `enc` (absptr, (s|u)leb128,
    /// (s|u)data2/4/8; absolute, pc-relative or relative to `datarel`;
    /// the indirect bit is left to the caller). None: unsupported.
    unsafe fn encoded(&mut self, enc: u8, datarel: usize) -> Option<usize> {
        let field = self.p;
        // SAFETY: see above.
        let v = unsafe {
            match enc & 0x0f {
                0x00 | 0x04 | 0x0c => self.u64() as usize,
                0x01 => self.uleb() as usize,
                0x02 => self.u16() as usize,
                0x03 => self.u32() as usize,
                0x09 => self.sleb() as usize,
                0x0a => self.u16() as i16 as isize as usize,
                0x0b => self.u32() as i32 as isize as usize,
                _ => return None,
            }
        };
        let base = match enc & 0x70 {
            0x00 => 0,
            0x10 => field,
            0x30 => datarel,
            _ => return None,
        };
        Some(base.wrapping_add(v))
    }
}

const DW_EH_PE_OMIT: u8 = 0xff;
/// datarel | sdata4: the table encoding every linker writes.
const TABLE_ENC: u8 = 0x3b;
const REG_RBP: u64 = 6;
const REG_RSP: u64 = 7;
const REG_RA: u64 = 16;

/// A register's rule while running a CFA program.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Reg {
    Same,
    Offset(i64),
    Undefined,
    Unsupported,
}

#[derive(Clone, Copy)]
struct Row {
    cfa_reg: u64,
    cfa_off: i64,
    cfa_ok: bool,
    bp: Reg,
    ra: Reg,
    /// A rule for rsp itself: anything but `Same` (the caller's rsp is
    /// the CFA) is not supported, as libgcc would honour it.
    sp: Reg,
}

/// What the CIE says.
struct Cie {
    code_align: u64,
    data_align: i64,
    fde_enc: u8,
    has_z: bool,
    insns: usize,
    end: usize,
}

/// Parses the CIE at `p`. None: unsupported (the caller falls back).
///
/// # Safety
/// `p` must be a CIE inside a loaded object's `.eh_frame`.
unsafe fn parse_cie(p: usize, f: *mut ObjFile) -> Option<Cie> {
    let mut r = Reader { p, f };
    // SAFETY: reads inside the CIE (caller).
    unsafe {
        let mut len = r.u32() as u64;
        if len == 0xffff_ffff {
            len = r.u64();
        }
        let end = r.p.wrapping_add(len as usize);
        if r.u32() != 0 {
            return None; // not a CIE
        }
        let version = r.u8();
        if version != 1 && version != 3 {
            return None;
        }
        // The augmentation string (every one in use has a few letters).
        let mut aug_buf = [0u8; 8];
        let mut aug_len = 0;
        loop {
            let c = r.u8();
            if c == 0 {
                break;
            }
            if aug_len == aug_buf.len() {
                return None;
            }
            aug_buf[aug_len] = c;
            aug_len += 1;
        }
        let aug = &aug_buf[..aug_len];
        let code_align = r.uleb();
        let data_align = r.sleb();
        let ra = if version == 1 { r.u8() as u64 } else { r.uleb() };
        if ra != REG_RA {
            return None;
        }
        let mut cie = Cie { code_align, data_align, fde_enc: 0, has_z: false, insns: 0, end };
        if aug.first() == Some(&b'z') {
            cie.has_z = true;
            let len = r.uleb() as usize;
            let data_end = r.p.wrapping_add(len);
            for &c in &aug[1..] {
                match c {
                    b'L' => {
                        r.u8();
                    }
                    b'P' => {
                        let enc = r.u8();
                        r.encoded(enc & 0x7f, 0)?;
                    }
                    b'R' => cie.fde_enc = r.u8(),
                    // 'S': a signal frame; anything else unknown.
                    _ => return None,
                }
            }
            r.p = data_end;
        } else if !aug.is_empty() {
            return None;
        }
        cie.insns = r.p;
        if r.failed() {
            return None;
        }
        Some(cie)
    }
}

/// The largest frame offset kept in a rule (bigger: fallback).
const MAX_REMEMBER: usize = 8;

/// Runs the CFA program `[p, end)` into `row`, stopping before the first
/// instruction located after `target` (`loc` is the starting location).
/// False: something unsupported appeared for the CFA (the row's other
/// registers say so themselves).
///
/// # Safety
/// The program must be inside a loaded object's `.eh_frame`.
#[allow(clippy::too_many_arguments)]
unsafe fn run_program(
    p: usize,
    end: usize,
    f: *mut ObjFile,
    cie: &Cie,
    init: &Row,
    row: &mut Row,
    mut loc: usize,
    target: usize,
) -> bool {
    let mut r = Reader { p, f };
    let mut stack = [*row; MAX_REMEMBER];
    let mut depth = 0;
    let ca = cie.code_align as usize;
    let da = cie.data_align;
    // SAFETY: reads inside the program (caller).
    unsafe {
        fn set(row: &mut Row, reg: u64, rule: Reg) {
            match reg {
                REG_RBP => row.bp = rule,
                REG_RA => row.ra = rule,
                // The caller's rsp is the CFA unless a rule says
                // otherwise (hand-written code that moves its frame).
                REG_RSP => row.sp = rule,
                // Other registers do not take part in finding the CFA.
                _ => {}
            }
        }
        fn restore(row: &mut Row, init: &Row, reg: u64) {
            match reg {
                REG_RBP => row.bp = init.bp,
                REG_RA => row.ra = init.ra,
                REG_RSP => row.sp = init.sp,
                _ => {}
            }
        }
        while r.p < end && !r.failed() {
            let op = r.u8();
            let (hi, lo) = (op & 0xc0, (op & 0x3f) as u64);
            match hi {
                0x40 => {
                    loc = loc.wrapping_add(lo as usize * ca);
                    if loc > target {
                        break;
                    }
                    continue;
                }
                0x80 => {
                    let off = r.uleb() as i64 * da;
                    set(row, lo, Reg::Offset(off));
                    continue;
                }
                0xc0 => {
                    restore(row, init, lo);
                    continue;
                }
                _ => {}
            }
            match op {
                0x00 => {}
                0x01 => {
                    let Some(l) = r.encoded(cie.fde_enc & 0x7f, 0) else { return false };
                    loc = l;
                    if loc > target {
                        break;
                    }
                }
                0x02..=0x04 => {
                    let d = match op {
                        0x02 => r.u8() as usize,
                        0x03 => r.u16() as usize,
                        _ => r.u32() as usize,
                    };
                    loc = loc.wrapping_add(d * ca);
                    if loc > target {
                        break;
                    }
                }
                0x05 => {
                    let reg = r.uleb();
                    let off = r.uleb() as i64 * da;
                    set(row, reg, Reg::Offset(off));
                }
                0x06 => {
                    let reg = r.uleb();
                    restore(row, init, reg);
                }
                0x07 => {
                    let reg = r.uleb();
                    set(row, reg, Reg::Undefined);
                }
                0x08 => {
                    let reg = r.uleb();
                    set(row, reg, Reg::Same);
                }
                0x09 => {
                    let reg = r.uleb();
                    let _other = r.uleb();
                    set(row, reg, Reg::Unsupported);
                }
                0x0a => {
                    if depth == MAX_REMEMBER {
                        return false;
                    }
                    stack[depth] = *row;
                    depth += 1;
                }
                0x0b => {
                    if depth == 0 {
                        return false;
                    }
                    depth -= 1;
                    // The CFA rule is part of the remembered row as well
                    // (DWARF 5 6.4.2.4; libgcc restores it too).
                    *row = stack[depth];
                }
                0x0c => {
                    row.cfa_reg = r.uleb();
                    row.cfa_off = r.uleb() as i64;
                    row.cfa_ok = true;
                }
                0x0d => {
                    row.cfa_reg = r.uleb();
                }
                0x0e => {
                    row.cfa_off = r.uleb() as i64;
                }
                0x0f => {
                    let len = r.uleb() as usize;
                    r.p = r.p.wrapping_add(len);
                    row.cfa_ok = false;
                }
                0x10 | 0x16 => {
                    let reg = r.uleb();
                    let len = r.uleb() as usize;
                    r.p = r.p.wrapping_add(len);
                    set(row, reg, Reg::Unsupported);
                }
                0x11 => {
                    let reg = r.uleb();
                    let off = r.sleb() * da;
                    set(row, reg, Reg::Offset(off));
                }
                0x12 => {
                    row.cfa_reg = r.uleb();
                    row.cfa_off = r.sleb() * da;
                    row.cfa_ok = true;
                }
                0x13 => {
                    row.cfa_off = r.sleb() * da;
                }
                0x14 | 0x15 => {
                    // val_offset: the register's value (not its save slot).
                    let reg = r.uleb();
                    if op == 0x14 {
                        r.uleb();
                    } else {
                        r.sleb();
                    }
                    set(row, reg, Reg::Unsupported);
                }
                0x2e => {
                    r.uleb(); // GNU_args_size
                }
                0x2f => {
                    let reg = r.uleb();
                    let off = -(r.uleb() as i64) * da;
                    set(row, reg, Reg::Offset(off));
                }
                _ => return false,
            }
        }
        !r.failed()
    }
}

/// Rules computed (or tried) from object files so far (see [`compute`]);
/// it keeps counting past the maximum (harmless: 2^64 computations).
static FILE_COMPUTES: AtomicUsize = AtomicUsize::new(0);
/// After this many rules computed from object files, the rest are computed
/// from the mappings. Each computation from a file costs about 20 system
/// calls (open, a build-id check, the table's binary search, the FDE and
/// CIE, close; some 10 us), against none from the mapping; a program
/// whose samples keep bringing new return addresses (every allocation
/// sampled, more addresses than the cache holds) would pay that on every
/// capture, and it is large enough that the tables' resident pages are a
/// small part of its memory.
const FILE_COMPUTES_MAX: usize = 1024;

/// Computes the rule for the instruction at `pc` (a return address minus
/// one) of the object `o`: from the object's file while
/// [`FILE_COMPUTES_MAX`] allows and the file can be used (`objfile.rs`
/// says why), else from its mapping.
///
/// # Safety
/// `o` must be `_dl_find_object`'s description of the object holding `pc`.
unsafe fn compute(pc: usize, o: &DlFindObject) -> Rule {
    // Attempts are counted, not successes: where files cannot be used
    // (open refused, libraries replaced by an upgrade), each attempt costs
    // the system calls all the same.
    // (A load first: past the maximum, no write to the shared line.)
    if o.eh_frame != 0
        && FILE_COMPUTES.load(Ordering::Relaxed) < FILE_COMPUTES_MAX
        && crate::options::profile_unwind_files()
        && FILE_COMPUTES.fetch_add(1, Ordering::Relaxed) < FILE_COMPUTES_MAX
    {
        // The system calls must not change errno under a malloc that
        // succeeds (a library deleted by an upgrade: ENOENT).
        let saved = crate::os::errno();
        // SAFETY: `o` describes a loaded object (caller).
        let file = unsafe { ObjFile::open(o.map_start, o.link_map) };
        let rule = file.map(|mut f| {
            // SAFETY: `f` reads the file; addresses are those of `o`.
            let rule = unsafe { compute_from(pc, o, &mut f) };
            (rule, f.failed || !f.still_ours())
        });
        crate::os::set_errno(saved);
        if let Some((rule, false)) = rule {
            return rule;
        }
    }
    // SAFETY: as the caller guarantees.
    unsafe { compute_from(pc, o, core::ptr::null_mut()) }
}

/// The start address of the function holding code address `pc`, from
/// libgcc's `_Unwind_FindEnclosingFunction`: the unwind data's FDE that
/// covers `pc`, range checked, so it works without symbols (a static
/// program, a program linked with `libptrs.a`). None where no FDE covers
/// `pc` (code without unwind data) or libgcc no longer has the program's
/// data (a static program after its destructors). May take libgcc's and
/// the loader's locks: never call it with the profiler's lock held.
pub fn function_start(pc: usize) -> Option<usize> {
    // SAFETY: libgcc only reads its registered unwind data and the
    // loader's tables.
    let start = unsafe { _Unwind_FindEnclosingFunction(pc as *mut c_void) } as usize;
    if start == 0 { None } else { Some(start) }
}

unsafe extern "C" {
    fn _Unwind_FindEnclosingFunction(pc: *mut c_void) -> *mut c_void;
}

/// [`compute`] reading through `f` (the mapping itself when null).
///
/// # Safety
/// `o` must be `_dl_find_object`'s description of the object holding `pc`;
/// `f` null or the object's open file.
unsafe fn compute_from(pc: usize, o: &DlFindObject, f: *mut ObjFile) -> Rule {
    let hdr = o.eh_frame;
    if hdr == 0 {
        return Rule::Fallback;
    }
    // SAFETY: `hdr` is the object's PT_GNU_EH_FRAME (caller), the FDE and
    // CIE it leads to lie in its .eh_frame; `f` reads the same bytes from
    // the file (or fails).
    unsafe {
        let mut r = Reader { p: hdr, f };
        if r.u8() != 1 {
            return Rule::Fallback;
        }
        let eh_frame_enc = r.u8();
        let count_enc = r.u8();
        let table_enc = r.u8();
        if eh_frame_enc == DW_EH_PE_OMIT || count_enc == DW_EH_PE_OMIT || table_enc != TABLE_ENC {
            return Rule::Fallback;
        }
        if r.encoded(eh_frame_enc, hdr).is_none() {
            return Rule::Fallback;
        }
        let Some(count) = r.encoded(count_enc, hdr) else { return Rule::Fallback };
        let table = r.p;
        if count == 0 || r.failed() {
            return Rule::Fallback;
        }
        // Entry `i` of the sorted table: (start, FDE), relative to `hdr`.
        let entry = |i: usize| -> (usize, usize) {
            let mut e = Reader { p: table.wrapping_add(i.wrapping_mul(8)), f };
            let start = e.u32() as i32 as isize as usize;
            let fde = e.u32() as i32 as isize as usize;
            (hdr.wrapping_add(start), hdr.wrapping_add(fde))
        };
        // The last entry whose start is at or below pc.
        let (mut lo, mut hi) = (0usize, count);
        while hi - lo > 1 && !r.failed() {
            let mid = lo + (hi - lo) / 2;
            if entry(mid).0 <= pc {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        let (start, fde) = entry(lo);
        if start > pc || r.failed() {
            return Rule::Fallback;
        }
        // The FDE.
        let mut r = Reader { p: fde, f };
        let mut len = r.u32() as u64;
        if len == 0xffff_ffff {
            len = r.u64();
        }
        if len == 0 {
            return Rule::Fallback;
        }
        let end = r.p.wrapping_add(len as usize);
        let id_field = r.p;
        let id = r.u32() as usize;
        if id == 0 {
            return Rule::Fallback; // a CIE, not an FDE
        }
        let Some(cie) = parse_cie(id_field.wrapping_sub(id), f) else { return Rule::Fallback };
        let Some(begin) = r.encoded(cie.fde_enc & 0x7f, hdr) else { return Rule::Fallback };
        let Some(range) = r.encoded(cie.fde_enc & 0x0f, 0) else { return Rule::Fallback };
        if pc < begin || pc - begin >= range {
            return Rule::Fallback; // no FDE covers pc (libgcc says end of stack)
        }
        if cie.has_z {
            let aug = r.uleb() as usize;
            r.p = r.p.wrapping_add(aug);
        }
        if r.failed() {
            return Rule::Fallback;
        }
        let mut row = Row { cfa_reg: REG_RSP, cfa_off: 0, cfa_ok: false, bp: Reg::Same, ra: Reg::Same, sp: Reg::Same };
        let blank = row;
        if !run_program(cie.insns, cie.end, f, &cie, &blank, &mut row, 0, usize::MAX) {
            return Rule::Fallback;
        }
        let init = row;
        if !run_program(r.p, end, f, &cie, &init, &mut row, begin, pc) {
            return Rule::Fallback;
        }
        finish(&row)
    }
}

/// The rule of a row, when it is simple enough.
fn finish(row: &Row) -> Rule {
    if row.ra == Reg::Undefined {
        return Rule::End;
    }
    let Reg::Offset(ra) = row.ra else { return Rule::Fallback };
    if !row.cfa_ok || !(row.cfa_reg == REG_RSP || row.cfa_reg == REG_RBP) || row.sp != Reg::Same {
        return Rule::Fallback;
    }
    if row.cfa_off < 8 || row.cfa_off > CFA_OFF_MAX as i64 {
        return Rule::Fallback;
    }
    let bp_off = match row.bp {
        Reg::Same => None,
        Reg::Offset(o) if (i16::MIN as i64..=i16::MAX as i64).contains(&o) => Some(o as i16),
        _ => return Rule::Fallback,
    };
    if !(i16::MIN as i64..=i16::MAX as i64).contains(&ra) {
        return Rule::Fallback;
    }
    Rule::Step { cfa_rbp: row.cfa_reg == REG_RBP, cfa_off: row.cfa_off as u32, ra_off: ra as i16, bp_off }
}

/// The rule for return address `ra` (looked up at `ra - 1`), cached.
#[inline]
fn rule_for(find: FindObject, ra: usize) -> Rule {
    let pc = ra - 1;
    let mut o = DlFindObject { flags: 0, map_start: 0, map_end: 0, link_map: 0, eh_frame: 0, reserved: [0; 7] };
    // SAFETY: `_dl_find_object` fills `o`; it takes no lock.
    if unsafe { find(pc as *mut c_void, &mut o) } != 0 {
        return Rule::Fallback; // not in a loaded object (JIT code, ...)
    }
    let tag = object_tag(&o);
    if let Some(w) = cache_get(pc, tag) {
        return Rule::decode(w);
    }
    // SAFETY: `o` describes the object holding `pc`.
    let rule = unsafe { compute(pc, &o) };
    cache_put(pc, tag, rule.encode());
    rule
}

/// The highest stack a capture climbs above its start (bytes) on a stack
/// whose top is not known (see [`stack_limit`]): a CFA beyond it is taken
/// for a broken rule (fallback).
const STACK_WINDOW: usize = 1 << 30;

unsafe extern "C" {
    /// The main thread's stack pointer at process entry (where `argc`
    /// sits), set by the dynamic loader before any code runs (ld.so).
    static __libc_stack_end: *mut c_void;
}

/// Bytes above `__libc_stack_end` a CFA of the main thread may reach:
/// `_start` calls `__libc_start_main` at most 16 bytes below it, and the
/// kernel puts `argc`, `argv`, `envp` and the auxiliary vector (far more
/// than this) above it, so the slots read stay mapped.
const MAIN_STACK_SLACK: usize = 256;

/// The highest CFA a frame of the stack that holds `start` may have. A
/// thread made by glibc has its thread control block (the thread pointer,
/// `%fs:0`) at the top of its stack, above every frame; the main thread's
/// frames lie below `__libc_stack_end`. Elsewhere (a stack of the
/// program's own, such as a coroutine's) `start` plus [`STACK_WINDOW`].
/// A rule that is wrong for its frame (a library unloaded and another
/// mapped at the same addresses with the same layout, which the cache's
/// object tag cannot tell apart) mostly yields a CFA above the top: the
/// walk stops there and libgcc takes the stack, instead of reading
/// beyond the stack.
fn stack_limit(start: usize) -> usize {
    let tp: usize;
    // SAFETY: reads the thread pointer, which glibc stores at %fs:0 on
    // x86-64 (the TCB's self pointer).
    unsafe { core::arch::asm!("mov {}, qword ptr fs:[0]", out(reg) tp, options(nostack, readonly, preserves_flags)) };
    if start < tp && tp - start <= STACK_WINDOW {
        return tp;
    }
    // SAFETY: a plain read of ld.so's variable, written once at start-up.
    let main_end = unsafe { __libc_stack_end } as usize;
    if start < main_end && main_end - start <= STACK_WINDOW {
        return main_end + MAIN_STACK_SLACK;
    }
    start.saturating_add(STACK_WINDOW)
}

/// How a trace ended.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Outcome {
    /// The whole stack (or MAX_DEPTH frames) was taken.
    Done,
    /// A frame's rule cannot be expressed here (libgcc is needed).
    Unsupported,
    /// A rule led to an impossible frame (a CFA that does not move up the
    /// stack, or leaves the window, or misaligned slots): a wrong rule, or
    /// a corrupt stack. The check mode reports it.
    Insane,
}

/// Fills `frames` with the return addresses of the calling thread's stack,
/// innermost first, starting with the return address into this function's
/// caller (as libgcc's `_Unwind_Backtrace` does when called from there),
/// and returns how many; None when a frame needs libgcc (see the module
/// documentation). No allocation, no lock, signal- and fork-safe.
#[inline(never)]
pub fn trace(frames: &mut [usize; MAX_DEPTH]) -> Option<usize> {
    let mut regs = [0usize; 3];
    // SAFETY: writes the three words of `regs`.
    unsafe { __ptrs_unwind_regs(&mut regs) };
    match walk(regs, frames) {
        (d, Outcome::Done) => Some(d),
        _ => None,
    }
}

/// As [`trace`], also when it cannot finish: the frames taken before the
/// frame it stopped at, and why (for the check mode).
#[inline(never)]
pub fn trace_partial(frames: &mut [usize; MAX_DEPTH]) -> (usize, Outcome) {
    let mut regs = [0usize; 3];
    // SAFETY: writes the three words of `regs`.
    unsafe { __ptrs_unwind_regs(&mut regs) };
    walk(regs, frames)
}

/// The walk from the frame `regs` (return address, stack pointer after
/// the return, rbp) of [`trace`]'s or [`trace_partial`]'s own frame.
#[inline(always)]
fn walk(regs: [usize; 3], frames: &mut [usize; MAX_DEPTH]) -> (usize, Outcome) {
    let Some(find) = find_object_fn() else { return (0, Outcome::Unsupported) };
    let [mut pc, mut sp, mut bp] = regs;
    let limit = stack_limit(sp);
    let mut depth = 0;
    let mut own = true; // the first frame is ours: stepped, not recorded
    loop {
        if pc == 0 {
            break;
        }
        if !own {
            frames[depth] = pc;
            depth += 1;
            if depth == MAX_DEPTH {
                break;
            }
        }
        own = false;
        let (cfa_rbp, cfa_off, ra_off, bp_off) = match rule_for(find, pc) {
            Rule::Step { cfa_rbp, cfa_off, ra_off, bp_off } => (cfa_rbp, cfa_off, ra_off, bp_off),
            Rule::End => break,
            Rule::Fallback => return (depth, Outcome::Unsupported),
        };
        let cfa = if cfa_rbp { bp } else { sp }.wrapping_add(cfa_off as usize);
        if cfa < sp.wrapping_add(8) || cfa & 7 != 0 || cfa > limit {
            return (depth, Outcome::Insane);
        }
        let ra_at = cfa.wrapping_add(ra_off as isize as usize);
        if ra_at < sp || ra_at & 7 != 0 || ra_at > limit {
            return (depth, Outcome::Insane);
        }
        // SAFETY: the slot lies between the frame's stack pointer and the
        // top of the thread's stack (`limit`, checked above), as the rule,
        // taken from the object's own unwind tables, describes.
        pc = unsafe { *(ra_at as *const usize) };
        if let Some(o) = bp_off {
            let at = cfa.wrapping_add(o as isize as usize);
            if at < sp || at & 7 != 0 || at > limit {
                return (depth, Outcome::Insane);
            }
            // SAFETY: as above, a saved-register slot of the frame.
            bp = unsafe { *(at as *const usize) };
        }
        sp = cfa;
    }
    (depth, Outcome::Done)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A rule cached, then an entry left odd as by a writer of a parent
    /// that forked: the child's handler makes it usable again, and a
    /// cached rule survives it. (Other tests of this binary share the
    /// table: the addresses here are not code addresses.)
    #[test]
    fn fork_child_clears_entries_left_odd() {
        // Addresses whose buckets no other test uses yet.
        let mut free_pcs = (0..4096usize)
            .map(|i| 0x7777_0000_0000usize + i * 0x10)
            .filter(|&pc| CACHE_INDEX[bucket(pc)].load(Ordering::Relaxed) == 0);
        let (pc, tag) = (free_pcs.next().unwrap(), 0x55u64);
        let pc2 = free_pcs.find(|&p| bucket(p) != bucket(pc)).unwrap();
        let tag2 = 0x66u64;
        cache_put(pc, tag, 0x1234);
        assert_eq!(cache_get(pc, tag), Some(0x1234));
        cache_put(pc2, tag2, 0x5678);
        let n = CACHE_INDEX[bucket(pc2)].load(Ordering::Relaxed) as usize;
        assert!(n != 0);
        let e = &CACHE[n - 1];
        // A write in progress at the fork.
        CACHE_WRITERS.fetch_add(1, Ordering::SeqCst);
        e.seq.fetch_add(1, Ordering::SeqCst);
        assert_eq!(cache_get(pc2, tag2), None);
        cache_put(pc2, tag2, 0x5678); // skipped: the entry is odd
        assert_eq!(cache_get(pc2, tag2), None);
        after_fork_child();
        assert_eq!(e.seq.load(Ordering::Relaxed) & 1, 0);
        assert_eq!(cache_get(pc2, tag2), None); // emptied
        cache_put(pc2, tag2, 0x5678);
        assert_eq!(cache_get(pc2, tag2), Some(0x5678));
        assert_eq!(cache_get(pc, tag), Some(0x1234));
    }

    #[test]
    fn rules_encode_and_decode() {
        for r in [
            Rule::Fallback,
            Rule::End,
            Rule::Step { cfa_rbp: false, cfa_off: 8, ra_off: -8, bp_off: None },
            Rule::Step { cfa_rbp: true, cfa_off: 16, ra_off: -8, bp_off: Some(-16) },
            Rule::Step { cfa_rbp: false, cfa_off: CFA_OFF_MAX, ra_off: -8, bp_off: Some(-32000) },
        ] {
            assert_eq!(Rule::decode(r.encode()), r);
        }
    }

    /// Rules computed from an object's file equal those computed from its
    /// mapping, at addresses spread over the C library's text and over
    /// this test program's (the main program: its file is found through
    /// /proc/self/exe); most of them are simple rules, so the comparison
    /// covers the tables' search, the CIEs and the CFA programs.
    #[test]
    fn file_and_mapping_give_the_same_rules() {
        let Some(find) = find_object_fn() else { return };
        let anchors = [libc::qsort as *const () as usize, file_and_mapping_give_the_same_rules as *const () as usize];
        for (k, &anchor) in anchors.iter().enumerate() {
            let mut o = DlFindObject { flags: 0, map_start: 0, map_end: 0, link_map: 0, eh_frame: 0, reserved: [0; 7] };
            // SAFETY: `_dl_find_object` only fills `o`.
            assert_eq!(unsafe { find(anchor as *mut c_void, &mut o) }, 0);
            // SAFETY: `o` describes a loaded object.
            let Some(mut f) = (unsafe { ObjFile::open(o.map_start, o.link_map) }) else {
                panic!("object {k}: its file cannot be opened");
            };
            // (The C library has two PT_NOTE segments, a GNU property note
            // and then the build-id: it is opened only if the second is
            // searched too.)
            // 1 MiB of addresses around the anchor (code, mostly).
            let lo = anchor.saturating_sub(512 << 10).max(o.map_start);
            let hi = (anchor + (512 << 10)).min(o.map_end);
            let n = 3000;
            let (mut steps, mut t_file, mut t_map) = (0, 0u128, 0u128);
            for i in 0..n {
                let pc = lo + (hi - lo) / n * i + i % 7;
                let t = std::time::Instant::now();
                // SAFETY: `f` is the object's file; `pc` lies in the object.
                let a = unsafe { compute_from(pc, &o, &mut f) };
                t_file += t.elapsed().as_nanos();
                let t = std::time::Instant::now();
                // SAFETY: as above, from the mapping.
                let b = unsafe { compute_from(pc, &o, core::ptr::null_mut()) };
                t_map += t.elapsed().as_nanos();
                assert!(!f.failed, "object {k}: a read failed at {pc:#x}");
                assert_eq!(a, b, "object {k} at {pc:#x}");
                steps += matches!(a, Rule::Step { .. }) as usize;
            }
            println!(
                "object {k}: {steps} of {n} rules simple; {} ns per rule from the file, {} ns from the mapping",
                t_file / n as u128,
                t_map / n as u128
            );
            assert!(steps > n / 4, "object {k}: only {steps} of {n} rules are simple");
        }
    }

    #[inline(never)]
    fn nest(n: u32, out: &mut [usize; MAX_DEPTH]) -> Option<usize> {
        if n == 0 {
            // Not a tail call: `nest(0)` keeps its frame.
            let r = trace(out);
            return core::hint::black_box(r);
        }
        let r = nest(n - 1, core::hint::black_box(out));
        core::hint::black_box(r)
    }

    #[test]
    fn trace_walks_up_the_stack() {
        if !available() {
            return;
        }
        let mut frames = [0usize; MAX_DEPTH];
        // Twice: computed, then from the cache.
        for _ in 0..2 {
            let Some(d) = nest(10, &mut frames) else { return };
            assert!(d >= 11, "{d}");
            // frames[0] is the return address of `trace` in `nest(0)`,
            // frames[1..=10] the one of the recursive call, ten times.
            assert!(frames[1..=10].iter().all(|&f| f == frames[1]), "{:#x?}", &frames[..d]);
            assert_ne!(frames[0], frames[1]);
            assert_ne!(frames[11], frames[1]);
        }
    }

    #[inline(never)]
    fn nest_with(n: u32, f: &mut dyn FnMut()) {
        if n == 0 {
            return f();
        }
        nest_with(n - 1, core::hint::black_box(f));
        core::hint::black_box(());
    }

    /// Per-capture cost of this unwinder and of libgcc's, stacks of about
    /// 10 and 30 frames, printed (`cargo test --release --lib capture_cost
    /// -- --nocapture`); the test itself checks that both walk the whole
    /// nested stack.
    #[test]
    fn capture_cost() {
        use std::time::Instant;
        if !available() {
            return;
        }
        for extra in [0u32, 20] {
            let n = 20_000;
            let mut frames = [0usize; MAX_DEPTH];
            let (mut mine, mut gcc, mut d1, mut d2) = (0.0, 0.0, 0, 0);
            nest_with(extra, &mut || {
                d1 = trace(&mut frames).unwrap_or(0);
                let t = Instant::now();
                for _ in 0..n {
                    core::hint::black_box(trace(&mut frames));
                }
                mine = t.elapsed().as_nanos() as f64 / n as f64;
                let t = Instant::now();
                for _ in 0..n / 10 {
                    d2 = super::super::stack::capture_libgcc_for_tests(&mut frames);
                }
                gcc = t.elapsed().as_nanos() as f64 / (n / 10) as f64;
            });
            println!("depth {d1} (libgcc {d2}): ptrs {mine:.0} ns, libgcc {gcc:.0} ns per capture");
            assert!(d1 > extra as usize && d2 > extra as usize, "depth {d1} / {d2} for {extra} nested frames");
        }
    }
}
