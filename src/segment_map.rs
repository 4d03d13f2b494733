//! Which 4 MiB granules of the address space hold a ptrs segment header.
//!
//! One byte per granule: `free` tests the byte of a pointer's granule
//! before it reads any header, so a pointer that ptrs never handed out (a
//! stack address, another allocator's block) is recognised without
//! touching unmapped memory. Two bitmaps follow it: granules whose block
//! starts at the granule boundary and whose header therefore lives one
//! granule lower (only huge blocks aligned to 4 MiB or more need it, and
//! only slow paths read it), and granules covered by the tail of a huge
//! block (for `ptrs_owns`).
//!
//! The three live in one mapping of 40 MiB made at the first segment,
//! read-only, so that it counts against neither `RLIMIT_DATA` nor the
//! commit charge: reads of pages never written map the kernel's zero page.
//! A 64 KiB unit of it is made writable (`prepare`) before the first
//! segment whose granules it describes is registered; a unit stays
//! writable for the life of the process, so clearing never needs it. Until
//! the mapping exists the fast path's lookup reads one static zero byte.
//! Before, the maps were 40 MiB of `.bss`, which `RLIMIT_DATA` counts: a
//! program run with `ulimit -d 100000` got 41 MB of heap where glibc gave
//! it 99, and below about 45 MB the library could not load (a tester).
//! jemalloc's radix tree likewise makes its levels only when an address
//! range first needs them.

use core::ptr;
use core::sync::atomic::{AtomicPtr, AtomicU64, AtomicU8, AtomicUsize, Ordering};

use crate::os;
use crate::segment::SEGMENT_SHIFT;

/// Bits of user address space covered (x86-64 user space is 47 bits).
#[cfg(target_arch = "x86_64")]
pub(crate) const ADDRESS_BITS: u32 = 47;
#[cfg(not(target_arch = "x86_64"))]
pub(crate) const ADDRESS_BITS: u32 = 48;

const GRANULES: usize = 1 << (ADDRESS_BITS - SEGMENT_SHIFT);

/// Offsets in the table (bytes): the header byte map (one byte per granule,
/// rather than a bit: the free fast path then tests it with one shift and
/// one compare; a bitmap cost four instructions more per free, measured
/// with callgrind), then the two bitmaps.
const HEADERS_AT: usize = 0;
const BELOW_AT: usize = GRANULES;
const TAIL_AT: usize = GRANULES + GRANULES / 8;
const TABLE_BYTES: usize = GRANULES + GRANULES / 4;

/// What is made writable at a time: a multiple of every page size Linux
/// uses (4, 16 and 64 KiB), so one `mprotect` call per unit is valid
/// anywhere. One unit of the byte map covers 256 GiB of address space.
const UNIT: usize = 64 << 10;
const UNITS: usize = TABLE_BYTES / UNIT;
const _: () = assert!(TABLE_BYTES % UNIT == 0);

/// The table, null until the first `prepare`.
static TABLE: AtomicPtr<u8> = AtomicPtr::new(ptr::null_mut());
/// One bit per unit of the table: made writable.
static WRITABLE: [AtomicU64; UNITS.div_ceil(64)] = [const { AtomicU64::new(0) }; UNITS.div_ceil(64)];

/// The fast path's view: the byte map and the mask of its index. Until the
/// table exists, one zero byte and mask 0, so that every lookup reads that
/// byte and answers "no segment". `prepare` stores the base first and the
/// mask after it (release), and the lookup loads the mask first (acquire):
/// a lookup that sees the new mask sees the new base.
static NO_SEGMENT: AtomicU8 = AtomicU8::new(0);
static FAST_BASE: AtomicPtr<AtomicU8> = AtomicPtr::new(&NO_SEGMENT as *const AtomicU8 as *mut AtomicU8);
static FAST_MASK: AtomicUsize = AtomicUsize::new(0);

/// The byte at `offset` of the table, if the table exists.
fn table_byte(offset: usize) -> Option<&'static AtomicU8> {
    let table = TABLE.load(Ordering::Acquire);
    if table.is_null() || offset >= TABLE_BYTES {
        return None;
    }
    // SAFETY: the table is a live mapping of TABLE_BYTES readable bytes for
    // the rest of the process, and AtomicU8 has the layout of u8.
    Some(unsafe { &*(table.add(offset) as *const AtomicU8) })
}

fn unit_writable(offset: usize) -> bool {
    let unit = offset / UNIT;
    WRITABLE[unit / 64].load(Ordering::Acquire) & (1 << (unit % 64)) != 0
}

/// The granule index of `addr`, if it is a user address.
fn granule(addr: usize) -> Option<usize> {
    let g = addr >> SEGMENT_SHIFT;
    (g < GRANULES).then_some(g)
}

fn bit_test(at: usize, addr: usize) -> bool {
    let Some(g) = granule(addr) else { return false };
    table_byte(at + g / 8).is_some_and(|b| b.load(Ordering::Relaxed) & (1 << (g % 8)) != 0)
}

/// Sets or clears one flag byte or bit. Setting needs the unit prepared
/// (a missing `prepare` is a ptrs bug, reported and fatal); clearing a
/// unit never made writable has nothing to clear.
fn store(offset: usize, bit: Option<u8>, on: bool) {
    if !unit_writable(offset) {
        if on {
            crate::diag::fatal(format_args!("segment map: table offset {offset:#x} set before prepare"));
        }
        return;
    }
    let Some(b) = table_byte(offset) else { return };
    match (bit, on) {
        (None, _) => b.store(on as u8, Ordering::Release),
        (Some(bit), true) => {
            b.fetch_or(1 << bit, Ordering::Release);
        }
        (Some(bit), false) => {
            b.fetch_and(!(1 << bit), Ordering::Release);
        }
    }
}

/// The table, mapped read-only on first use (several threads may race to
/// map it: one mapping wins, the others are unmapped). Null if it cannot
/// be mapped.
fn table() -> *mut u8 {
    let table = TABLE.load(Ordering::Acquire);
    if !table.is_null() {
        return table;
    }
    // SAFETY: a fresh private anonymous mapping; no existing memory is
    // affected. MAP_NORESERVE and PROT_READ: no commit charge, and not
    // counted as data by RLIMIT_DATA.
    let p = unsafe {
        libc::mmap(
            ptr::null_mut(),
            TABLE_BYTES,
            libc::PROT_READ,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return ptr::null_mut();
    }
    let p = p.cast::<u8>();
    match TABLE.compare_exchange(ptr::null_mut(), p, Ordering::AcqRel, Ordering::Acquire) {
        Ok(_) => {
            FAST_BASE.store(p.cast(), Ordering::Relaxed);
            FAST_MASK.store(GRANULES - 1, Ordering::Release);
            p
        }
        Err(winner) => {
            // SAFETY: our mapping, never published.
            unsafe { os::unmap(p, TABLE_BYTES) };
            winner
        }
    }
}

/// Makes the table's bytes `[first, last]` writable. False if the kernel
/// refuses (`RLIMIT_DATA` reached).
fn make_writable(table: *mut u8, first: usize, last: usize) -> bool {
    for unit in first / UNIT..=last / UNIT {
        let word = &WRITABLE[unit / 64];
        let bit = 1u64 << (unit % 64);
        if word.load(Ordering::Acquire) & bit != 0 {
            continue;
        }
        // SAFETY: the unit lies inside the table, a mapping ptrs owns for
        // the process's life; making it writable changes no byte. Two
        // threads may both do it: the second call is a no-op.
        let ok = unsafe { libc::mprotect(table.add(unit * UNIT).cast(), UNIT, libc::PROT_READ | libc::PROT_WRITE) } == 0;
        if !ok {
            return false;
        }
        word.fetch_or(bit, Ordering::Release);
    }
    true
}

/// Makes the map ready to record a segment or huge block at
/// `[start, end)` (`start` granule aligned, `end > start`): maps the table
/// on first use and makes writable the parts that describe those
/// granules. Every site that registers a mapping calls it first and fails
/// its allocation (null, ENOMEM) when it returns false: the table cannot
/// be mapped, the kernel refuses to make it writable (`RLIMIT_DATA`), or
/// the range is not user address space. errno is kept.
#[must_use]
pub fn prepare(start: usize, end: usize) -> bool {
    let (Some(first), Some(last)) = (granule(start), end.checked_sub(1).and_then(granule)) else {
        return false;
    };
    let saved = os::errno();
    let table = table();
    let ok = !table.is_null()
        && make_writable(table, HEADERS_AT + first, HEADERS_AT + last)
        && make_writable(table, BELOW_AT + first / 8, BELOW_AT + last / 8)
        && make_writable(table, TAIL_AT + first / 8, TAIL_AT + last / 8);
    os::set_errno(saved);
    ok
}

/// Records (or forgets) the granules of `[start, end)` as the tail of a
/// huge block (prepared).
pub fn set_huge_tail(start: usize, end: usize, on: bool) {
    let mut g = start & !((1 << SEGMENT_SHIFT) - 1);
    while g < end {
        if let Some(i) = granule(g) {
            store(TAIL_AT + i / 8, Some((i % 8) as u8), on);
        }
        g += 1 << SEGMENT_SHIFT;
    }
}

/// True if `addr` lies in the tail of a huge block.
pub fn in_huge_tail(addr: usize) -> bool {
    bit_test(TAIL_AT, addr)
}

/// True if the granule containing `addr` starts with a ptrs segment.
pub fn has_segment(addr: usize) -> bool {
    granule(addr).and_then(|g| table_byte(HEADERS_AT + g)).is_some_and(|b| b.load(Ordering::Relaxed) != 0)
}

/// The start of the granule holding `addr` with its bits above the user
/// range cleared, if the map says a ptrs segment starts there: the free
/// fast path's lookup. The granule index is the address's modulo the map's
/// size, and the start is formed from that same index (one shift), so the
/// answer is a live header for any `addr`, null and non-user addresses
/// included; the caller must still reject an address that is not one of
/// its blocks (see `free::mapped_segment`).
///
/// On x86-64 the lookup is written in assembly, six instructions: LLVM
/// folds no atomic load into an ALU instruction, and its version (a load
/// and an `and` for the mask, a `movzx` and a `test` for the byte) cost
/// the free fast path one instruction more than the static table's did
/// (callgrind: pair 72.00 -> 73.00 with the loaded mask).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub fn granule_if_mapped(addr: usize) -> Option<usize> {
    let mut granule = addr >> SEGMENT_SHIFT;
    // SAFETY: reads FAST_MASK, a static aligned AtomicUsize (an aligned
    // 8-byte load is atomic on x86-64, and x86 keeps loads in order: the
    // acquire that FAST_MASK's comment asks for), and writes only
    // `granule` and the flags. Without `nomem` the block is a compiler
    // barrier, so the base is loaded after it.
    unsafe {
        core::arch::asm!(
            "and {granule}, qword ptr [rip + {mask}]",
            granule = inout(reg) granule,
            mask = sym FAST_MASK,
            options(nostack),
        )
    };
    let base = FAST_BASE.load(Ordering::Relaxed);
    // SAFETY: reads one byte at base + granule, which is readable:
    // `granule` is at most the mask, and the base loaded after it has
    // mask + 1 readable bytes (the table's byte map, or NO_SEGMENT while
    // the mask is 0); the byte is an AtomicU8, and an x86 byte load is
    // atomic. Writes only the flags.
    unsafe {
        core::arch::asm!(
            "cmp byte ptr [{base} + {granule}], 0",
            "je {unmapped}",
            base = in(reg) base,
            granule = in(reg) granule,
            unmapped = label { return None },
            options(nostack, readonly),
        )
    };
    Some(granule << SEGMENT_SHIFT)
}

/// As the x86-64 version, in Rust.
#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
pub fn granule_if_mapped(addr: usize) -> Option<usize> {
    let granule = (addr >> SEGMENT_SHIFT) & FAST_MASK.load(Ordering::Acquire);
    let base = FAST_BASE.load(Ordering::Relaxed);
    // SAFETY: `granule` is at most the mask loaded above, and the base
    // loaded after it (see FAST_MASK) has mask + 1 readable bytes: the
    // table's byte map, or NO_SEGMENT while the mask is 0.
    if unsafe { (*base.add(granule)).load(Ordering::Relaxed) } == 0 {
        return None;
    }
    Some(granule << SEGMENT_SHIFT)
}

/// True if the granule containing `addr` is the first data granule of a huge
/// block whose header is one granule lower.
pub fn has_segment_below(addr: usize) -> bool {
    bit_test(BELOW_AT, addr)
}

/// Records (or forgets) a segment starting at `base` (granule aligned,
/// prepared).
pub fn set_segment(base: usize, on: bool) {
    if let Some(g) = granule(base) {
        store(HEADERS_AT + g, None, on);
    }
}

/// Records (or forgets) that the granule at `addr` has its header below
/// (prepared).
pub fn set_segment_below(addr: usize, on: bool) {
    if let Some(g) = granule(addr) {
        store(BELOW_AT + g / 8, Some((g % 8) as u8), on);
    }
}

/// Whether an address can be a user address at all.
pub fn in_range(addr: usize) -> bool {
    addr >> ADDRESS_BITS == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_are_set_and_cleared_per_granule() {
        let base = 0x5555_0000_0000usize & !((1 << SEGMENT_SHIFT) - 1);
        assert!(!has_segment(base));
        assert!(granule_if_mapped(base).is_none());
        assert!(prepare(base, base + (3 << SEGMENT_SHIFT)));
        set_segment(base, true);
        assert!(has_segment(base));
        assert_eq!(granule_if_mapped(base + 5), Some(base));
        assert!(has_segment(base + (1 << SEGMENT_SHIFT) - 1));
        assert!(!has_segment(base + (1 << SEGMENT_SHIFT)));
        assert!(!has_segment(base - 1));
        set_segment_below(base + (1 << SEGMENT_SHIFT), true);
        assert!(has_segment_below(base + (1 << SEGMENT_SHIFT)));
        assert!(!has_segment_below(base));
        set_huge_tail(base + (1 << SEGMENT_SHIFT), base + (3 << SEGMENT_SHIFT), true);
        assert!(in_huge_tail(base + (2 << SEGMENT_SHIFT) + 7));
        assert!(!in_huge_tail(base + (3 << SEGMENT_SHIFT)));
        set_huge_tail(base + (1 << SEGMENT_SHIFT), base + (3 << SEGMENT_SHIFT), false);
        set_segment_below(base + (1 << SEGMENT_SHIFT), false);
        set_segment(base, false);
        assert!(!has_segment(base));
        assert!(!in_huge_tail(base + (2 << SEGMENT_SHIFT)));
        assert!(!has_segment_below(base + (1 << SEGMENT_SHIFT)));
        assert!(!has_segment(usize::MAX));
        assert!(!has_segment(0));
        assert!(!prepare(usize::MAX & !((1 << SEGMENT_SHIFT) - 1), usize::MAX));
    }
}
