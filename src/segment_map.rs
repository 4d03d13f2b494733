//! Which 4 MiB granules of the address space hold a ptrs segment header.
//!
//! One byte per granule, in a zero-initialised static array (it lives in
//! `.bss`, so only the pages ever touched become resident). `free` tests the
//! bit of a pointer's granule before it reads any header, so a pointer that
//! ptrs never handed out (a stack address, another allocator's block) is
//! recognised without touching unmapped memory.
//!
//! A second map marks granules whose block starts at the granule boundary
//! and whose header therefore lives one granule lower: only huge blocks
//! aligned to 4 MiB or more need it, and only slow paths read it.

use core::sync::atomic::{AtomicU64, AtomicU8, Ordering};

use crate::segment::SEGMENT_SHIFT;

/// Bits of user address space covered (x86-64 user space is 47 bits).
#[cfg(target_arch = "x86_64")]
pub(crate) const ADDRESS_BITS: u32 = 47;
#[cfg(not(target_arch = "x86_64"))]
pub(crate) const ADDRESS_BITS: u32 = 48;

const GRANULES: usize = 1 << (ADDRESS_BITS - SEGMENT_SHIFT);
const WORDS: usize = GRANULES / 64;

struct Bitmap([AtomicU64; WORDS]);

impl Bitmap {
    const fn new() -> Self {
        Self([const { AtomicU64::new(0) }; WORDS])
    }

    #[inline(always)]
    fn contains(&self, addr: usize) -> bool {
        let granule = addr >> SEGMENT_SHIFT;
        match self.0.get(granule / 64) {
            Some(word) => word.load(Ordering::Relaxed) & (1u64 << (granule % 64)) != 0,
            None => false,
        }
    }

    fn set(&self, addr: usize, on: bool) {
        let granule = addr >> SEGMENT_SHIFT;
        let Some(word) = self.0.get(granule / 64) else { return };
        let bit = 1u64 << (granule % 64);
        if on {
            word.fetch_or(bit, Ordering::Release);
        } else {
            word.fetch_and(!bit, Ordering::Release);
        }
    }
}

/// One byte per granule (32 MiB of `.bss`, of which only the pages
/// covering granules ever used become resident: one 4 KiB page of the map
/// per 16 GiB of address space). A byte rather than a bit: the free fast
/// path then tests it with one shift and one compare (a bitmap costs four
/// instructions more per free, measured with callgrind).
struct ByteMap([AtomicU8; GRANULES]);

impl ByteMap {
    const fn new() -> Self {
        Self([const { AtomicU8::new(0) }; GRANULES])
    }

    #[inline(always)]
    fn contains(&self, addr: usize) -> bool {
        match self.0.get(addr >> SEGMENT_SHIFT) {
            Some(b) => b.load(Ordering::Relaxed) != 0,
            None => false,
        }
    }

    fn set(&self, addr: usize, on: bool) {
        if let Some(b) = self.0.get(addr >> SEGMENT_SHIFT) {
            b.store(on as u8, Ordering::Release);
        }
    }
}

static HEADERS: ByteMap = ByteMap::new();
static HEADER_BELOW: Bitmap = Bitmap::new();
/// Granules covered by huge blocks past their first one (for `ptrs_owns`).
static HUGE_TAIL: Bitmap = Bitmap::new();

/// Records (or forgets) the granules of `[start, end)` as the tail of a
/// huge block.
pub fn set_huge_tail(start: usize, end: usize, on: bool) {
    let mut g = start & !((1 << SEGMENT_SHIFT) - 1);
    while g < end {
        HUGE_TAIL.set(g, on);
        g += 1 << SEGMENT_SHIFT;
    }
}

/// True if `addr` lies in the tail of a huge block.
pub fn in_huge_tail(addr: usize) -> bool {
    HUGE_TAIL.contains(addr)
}

/// True if the granule containing `addr` starts with a ptrs segment.
#[inline(always)]
pub fn has_segment(addr: usize) -> bool {
    HEADERS.contains(addr)
}

/// The start of the granule holding `addr` with its bits above the user
/// range cleared, if the map says a ptrs segment starts there: the free
/// fast path's lookup. The granule index is the address's modulo the map's
/// size, and the start is formed from that same index (one shift), so the
/// answer is a live header for any `addr`, null and non-user addresses
/// included; the caller must still reject an address that is not one of
/// its blocks (see `free::mapped_segment`).
#[inline(always)]
pub fn granule_if_mapped(addr: usize) -> Option<usize> {
    let granule = (addr >> SEGMENT_SHIFT) & (GRANULES - 1);
    if HEADERS.0[granule].load(Ordering::Relaxed) == 0 {
        return None;
    }
    Some(granule << SEGMENT_SHIFT)
}

/// True if the granule containing `addr` is the first data granule of a huge
/// block whose header is one granule lower.
pub fn has_segment_below(addr: usize) -> bool {
    HEADER_BELOW.contains(addr)
}

/// Records (or forgets) a segment starting at `base` (granule aligned).
pub fn set_segment(base: usize, on: bool) {
    HEADERS.set(base, on);
}

/// Records (or forgets) that the granule at `addr` has its header below.
pub fn set_segment_below(addr: usize, on: bool) {
    HEADER_BELOW.set(addr, on);
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
        set_segment(base, true);
        assert!(has_segment(base));
        assert!(has_segment(base + (1 << SEGMENT_SHIFT) - 1));
        assert!(!has_segment(base + (1 << SEGMENT_SHIFT)));
        assert!(!has_segment(base - 1));
        set_segment(base, false);
        assert!(!has_segment(base));
        assert!(!has_segment(usize::MAX));
        assert!(!has_segment(0));
    }
}
