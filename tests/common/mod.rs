//! Helpers shared by the engine tests: a deterministic PRNG and block
//! content patterns.
#![allow(dead_code)]

/// splitmix64: small, fast, deterministic.
pub struct Rng(pub u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        ((self.next() >> 11) as u128 * n as u128 >> 53) as usize
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo + 1)
    }

    pub fn chance(&mut self, per_mille: usize) -> bool {
        self.below(1000) < per_mille
    }
}

pub const KIB: usize = 1 << 10;
pub const MIB: usize = 1 << 20;

/// A request size with a skewed distribution: mostly small, some medium
/// and large, a few huge (up to 3 MiB).
pub fn skewed_size(rng: &mut Rng) -> usize {
    let r = rng.below(1000);
    if r < 500 {
        rng.range(0, 128)
    } else if r < 750 {
        rng.range(129, 1024)
    } else if r < 880 {
        rng.range(1025, 8 * KIB)
    } else if r < 950 {
        rng.range(8 * KIB + 1, 64 * KIB)
    } else if r < 990 {
        rng.range(64 * KIB + 1, 2 * MIB)
    } else {
        rng.range(2 * MIB + 1, 3 * MIB)
    }
}

/// The byte expected at `off` of a block filled for `id`.
#[inline]
pub fn pattern(id: u64, off: usize) -> u8 {
    let x = id.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (off as u64).wrapping_mul(0xD6E8_FEB8_6659_FD93);
    (x >> 56) as u8 ^ off as u8
}

/// The offsets of a `len`-byte block that get a pattern: all of the first
/// 512 bytes, one byte per 1 KiB after that, and the last 64 bytes.
pub fn sample_offsets(len: usize) -> impl Iterator<Item = usize> {
    let dense = len.min(512);
    let tail = len.saturating_sub(64).max(dense);
    (0..dense)
        .chain((dense..tail).step_by(1024).map(|o| o + (o >> 10) % 16))
        .chain(tail..len)
        .filter(move |&o| o < len)
}

pub fn fill(p: *mut u8, len: usize, id: u64) {
    for off in sample_offsets(len) {
        // SAFETY: the caller passes a live block of at least `len` bytes.
        unsafe { *p.add(off) = pattern(id, off) };
    }
}

/// Checks the pattern of `id` at the sampled offsets below `upto` of a
/// block filled with length `len`.
pub fn verify(p: *const u8, len: usize, upto: usize, id: u64, what: &str) {
    for off in sample_offsets(len) {
        if off >= upto {
            continue;
        }
        // SAFETY: the caller passes a live block of at least `upto` bytes.
        let got = unsafe { *p.add(off) };
        if got != pattern(id, off) {
            panic!(
                "{what}: block {p:?} (id {id}, filled {len} bytes): byte {off} is {got:#04x}, expected {:#04x}",
                pattern(id, off)
            );
        }
    }
}

pub fn is_zero(p: *const u8, len: usize) -> bool {
    // SAFETY: the caller passes a live block of at least `len` bytes.
    let s = unsafe { std::slice::from_raw_parts(p, len) };
    s.iter().all(|&b| b == 0)
}
