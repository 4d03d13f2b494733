//! Size classes ("bins"): which block size serves a request.
//!
//! Up to 128 bytes the classes are every multiple of 16 (16, 32, ... 128).
//! Above that each power of two is split into 8 classes, so a block is at
//! most 12.5 % larger than the request (144, 160, ... 256, 288, 320, ...,
//! 57344, 61440, 65536). 80 classes in all, the largest 64 KiB ([`SMALL_MAX`]);
//! larger requests are spans of whole slices (see `segment.rs`).
//!
//! Every block is 16-byte aligned, and every class size is a multiple of 16.
//! This module is pure arithmetic: no `unsafe`.

/// Minimum alignment and granularity of every block.
pub const MIN_ALIGN: usize = 16;
/// Largest request served from a size class.
pub const SMALL_MAX: usize = 64 << 10; // 64 KiB
/// Number of size classes.
pub const BIN_COUNT: usize = 80;
/// Requests up to this size are looked up by `(size + 15) / 16` in a
/// per-heap table on the fast path.
pub const DIRECT_MAX: usize = 1024;
/// Number of entries of that table (indices 0 ..= 64).
pub const DIRECT_COUNT: usize = DIRECT_MAX / MIN_ALIGN + 1;

/// The class serving a request of `size` bytes (`size <= SMALL_MAX`).
#[inline(always)]
pub const fn bin_of(size: usize) -> usize {
    if size <= 128 {
        if size == 0 { 0 } else { (size + 15) / 16 - 1 }
    } else {
        let s = size - 1;
        let e = (usize::BITS - 1 - s.leading_zeros()) as usize; // floor(log2(s)) >= 7
        let m = (s >> (e - 3)) & 7;
        8 + (e - 7) * 8 + m
    }
}

/// The block size of class `bin`.
#[inline]
pub const fn bin_size(bin: usize) -> usize {
    if bin < 8 {
        (bin + 1) * 16
    } else {
        let e = 7 + (bin - 8) / 8;
        let m = (bin - 8) % 8;
        (1 << e) + ((m + 1) << (e - 3))
    }
}

/// How far a sized free's size may fall below half of a small or large
/// block (bytes): a block of `usable` bytes accepts a size when
/// `usable <= 2 * size + SIZED_FREE_SLACK`. Every request maps to a class
/// at most twice its size except those below 8 bytes, whose class is 16:
/// 16 is the least slack that accepts them all. It was 32, which let a
/// 64-byte block be freed as 16 bytes, and a C++ object of 64 bytes
/// deleted through a 16-byte base without a virtual destructor went
/// undetected (a fresh tester).
pub const SIZED_FREE_SLACK: usize = MIN_ALIGN;

/// The sizes a sized free (`free_sized`, C++'s sized `operator delete`)
/// may name for a block of each class, indexed by a page's `bin` byte:
/// `size` fits when `size - lo` (wrapping) is below `count`, which is
/// exactly `size <= block && block - size <= size + SIZED_FREE_SLACK` (the fast test of
/// `free::free_checked`; the slow path accepts more). One subtraction and
/// one compare, from a table rather than the page's `block_size`, which
/// lies in the descriptor's second cache line. `count` is 0 for the bytes
/// that are no class (`page::NO_BIN` among them), so nothing fits there
/// and the slow path decides. 256 entries, so that a `u8` index needs no
/// bounds check.
pub static SIZED_FREE_FIT: [SizedFit; 256] = {
    let mut t = [SizedFit { lo: 0, count: 0 }; 256];
    let mut bin = 0;
    while bin < BIN_COUNT {
        let block = bin_size(bin);
        // The smallest size with block - size <= size + SIZED_FREE_SLACK.
        let lo = if block <= SIZED_FREE_SLACK { 0 } else { (block - SIZED_FREE_SLACK).div_ceil(2) };
        t[bin] = SizedFit { lo: lo as u32, count: (block - lo + 1) as u32 };
        bin += 1;
    }
    t
};

/// An entry of [`SIZED_FREE_FIT`]: sizes `lo .. lo + count` fit.
#[derive(Clone, Copy)]
pub struct SizedFit {
    pub lo: u32,
    pub count: u32,
}

/// How many 64 KiB slices a page of class `bin` spans: one for blocks up to
/// 8 KiB (at least 8 blocks a page), eight (512 KiB) above.
#[inline]
pub const fn bin_slices(bin: usize) -> usize {
    if bin_size(bin) <= 8 << 10 { 1 } else { 8 }
}

/// The smallest class at or above `bin_of(size)` whose block size is a
/// multiple of `align` (a power of two, at most 64 KiB): every block of
/// such a class is `align`-aligned because pages start on 64 KiB
/// boundaries. `None` if no class up to [`SMALL_MAX`] qualifies.
///
/// One lookup in [`ALIGNED_BIN`]. Walking up the classes with a division
/// for each cost `posix_memalign` of 64 B to 4 KiB alignments about 355
/// instructions per call (a fresh tester, callgrind: 670 per
/// `posix_memalign` + free against mimalloc's 409).
#[inline]
pub const fn bin_for_aligned(size: usize, align: usize) -> Option<usize> {
    if size > SMALL_MAX || !align.is_power_of_two() || align > SMALL_MAX {
        return None;
    }
    let bin = ALIGNED_BIN[align.trailing_zeros() as usize][bin_of(size)];
    if bin == NO_ALIGNED_BIN { None } else { Some(bin as usize) }
}

/// In [`ALIGNED_BIN`]: no class qualifies.
const NO_ALIGNED_BIN: u8 = u8::MAX;

/// `ALIGNED_BIN[k][b]`: the smallest class at or above `b` whose block size
/// is a multiple of `1 << k` (alignments 1 B to 64 KiB), or
/// [`NO_ALIGNED_BIN`]. 17 x 80 bytes, computed at compile time.
static ALIGNED_BIN: [[u8; BIN_COUNT]; 17] = {
    let mut t = [[NO_ALIGNED_BIN; BIN_COUNT]; 17];
    let mut k = 0;
    while k < 17 {
        // From the largest class down: each entry is its own class when
        // aligned, else the entry above it.
        let mut next = NO_ALIGNED_BIN;
        let mut bin = BIN_COUNT;
        while bin > 0 {
            bin -= 1;
            if bin_size(bin) % (1 << k) == 0 {
                next = bin as u8;
            }
            t[k][bin] = next;
        }
        k += 1;
    }
    t
};

/// Parameters of the block-start test for blocks of `d` bytes (any d > 0):
/// with `d = d0 << shift`, `d0` odd and `inverse` its inverse modulo 2^64,
/// an offset `off` is a multiple of `d` exactly when
/// `(off * inverse).rotate_right(shift)` is at most `u64::MAX / d`, and
/// that value is then `off / d` (Granlund and Montgomery's divisibility
/// test). So "`off` is the start of block number < capacity" is one
/// multiply, one rotate and one compare against `capacity`.
pub const fn div_params(d: usize) -> (u64, u8) {
    let shift = d.trailing_zeros();
    let d0 = (d >> shift) as u64;
    // Newton's iteration doubles the correct low bits each step, starting
    // from 3 correct bits (d0 * d0 == 1 mod 8 for odd d0).
    let mut inv = d0;
    let mut i = 0;
    while i < 5 {
        inv = inv.wrapping_mul(2u64.wrapping_sub(d0.wrapping_mul(inv)));
        i += 1;
    }
    (inv, shift as u8)
}

const _: () = assert!(bin_of(SMALL_MAX) == BIN_COUNT - 1);
const _: () = assert!(bin_size(BIN_COUNT - 1) == SMALL_MAX);
const _: () = assert!(bin_of(DIRECT_MAX) < BIN_COUNT);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_size_maps_to_the_smallest_fitting_class() {
        for size in 0..=SMALL_MAX {
            let bin = bin_of(size);
            assert!(bin < BIN_COUNT);
            assert!(bin_size(bin) >= size, "size {size} bin {bin}");
            if bin > 0 {
                assert!(bin_size(bin - 1) < size.max(1), "size {size} could use bin {}", bin - 1);
            }
        }
    }

    #[test]
    fn classes_increase_and_are_16_byte_multiples() {
        for bin in 0..BIN_COUNT {
            assert_eq!(bin_size(bin) % MIN_ALIGN, 0);
            if bin > 0 {
                assert!(bin_size(bin) > bin_size(bin - 1));
            }
            assert_eq!(bin_of(bin_size(bin)), bin);
        }
    }

    #[test]
    fn internal_waste_is_bounded() {
        for size in 129..=SMALL_MAX {
            let block = bin_size(bin_of(size));
            // At most 12.5 % of the block is unused.
            assert!((block - size) * 8 <= block, "size {size} block {block}");
        }
        for size in 1..=128 {
            assert!(bin_size(bin_of(size)) - size < 16);
        }
    }

    #[test]
    fn pages_hold_at_least_eight_blocks() {
        for bin in 0..BIN_COUNT {
            let page = bin_slices(bin) << 16;
            assert!(page / bin_size(bin) >= 8, "bin {bin}");
        }
    }

    #[test]
    fn divisibility_test_finds_exactly_the_block_starts() {
        let mut sizes: [usize; BIN_COUNT + 4] = [0; BIN_COUNT + 4];
        for (bin, s) in sizes.iter_mut().enumerate().take(BIN_COUNT) {
            *s = bin_size(bin);
        }
        sizes[BIN_COUNT..].copy_from_slice(&[65536, 3 << 16, 32 << 16, 48]);
        for d in sizes {
            let (inv, shift) = div_params(d);
            let span = (512usize << 10).max(2 * d);
            for off in (0..span).step_by(16).chain([1, 7, d + 8, span - 1]) {
                let q = (off as u64).wrapping_mul(inv).rotate_right(shift as u32);
                if off % d == 0 {
                    assert_eq!(q, (off / d) as u64, "d {d} off {off}");
                } else {
                    assert!(q > u64::MAX / d as u64, "d {d} off {off} q {q}");
                }
            }
        }
    }

    #[test]
    fn aligned_bins_are_multiples_of_the_alignment() {
        for align in [32usize, 64, 128, 256, 4096, 65536] {
            for size in [1usize, 17, 100, 1000, 5000, 40000] {
                if let Some(bin) = bin_for_aligned(size, align) {
                    assert_eq!(bin_size(bin) % align, 0);
                    assert!(bin_size(bin) >= size);
                }
            }
        }
        // The table against the walk it replaced, for every class and
        // alignment.
        for k in 0..=16usize {
            for size in (0..=SMALL_MAX).step_by(7).chain([SMALL_MAX]) {
                let mut want = None;
                let mut bin = bin_of(size);
                while bin < BIN_COUNT {
                    if bin_size(bin) % (1 << k) == 0 {
                        want = Some(bin);
                        break;
                    }
                    bin += 1;
                }
                assert_eq!(bin_for_aligned(size, 1 << k), want, "size {size} align {}", 1 << k);
            }
        }
        assert_eq!(bin_for_aligned(1, 65536), Some(BIN_COUNT - 1));
        assert_eq!(bin_for_aligned(SMALL_MAX + 1, 32), None);
    }

    #[test]
    fn every_request_fits_the_sized_free_rule() {
        for size in 0..=SMALL_MAX {
            let block = bin_size(bin_of(size));
            assert!(block <= 2 * size + SIZED_FREE_SLACK, "size {size} block {block}");
            let mut align = 2 * MIN_ALIGN;
            while align <= SMALL_MAX {
                if let Some(bin) = bin_for_aligned(size, align) {
                    let block = bin_size(bin);
                    assert!(block <= 2 * size.max(align) + SIZED_FREE_SLACK, "size {size} align {align} block {block}");
                }
                align *= 2;
            }
        }
    }

    #[test]
    fn sized_free_fit_matches_the_rule() {
        for bin in 0..256usize {
            let f = SIZED_FREE_FIT[bin];
            for size in 0..=(SMALL_MAX + 64) {
                let fits = size.wrapping_sub(f.lo as usize) < f.count as usize;
                let rule = bin < BIN_COUNT && {
                    let block = bin_size(bin);
                    size <= block && block - size <= size + SIZED_FREE_SLACK
                };
                assert_eq!(fits, rule, "bin {bin} size {size}");
            }
            assert!(usize::MAX.wrapping_sub(f.lo as usize) >= f.count as usize);
        }
    }
}
