//! Per-thread sampling state: the byte countdown to the next sample, the
//! random generator that draws it, and the "inside the profiler" flag.
//!
//! Sampling by bytes as tcmalloc and jemalloc do it: the gaps between
//! sampled bytes are exponentially distributed with mean `rate`, so an
//! allocation of `s` bytes is sampled with probability `1 - exp(-s/rate)`
//! and `bytes / (1 - exp(-avg/rate))` is an unbiased estimate (pprof applies
//! this correction itself to `heap_v2/<rate>` profiles).
//!
//! The state lives in an initial-exec TLS slot declared in assembly, as the
//! heap pointer does (`tls.rs`): a `thread_local!` in a shared library costs
//! a `__tls_get_addr` call, which may itself call malloc in a library loaded
//! by `dlopen`.

/// One thread's sampling state (zero-initialised TLS).
#[repr(C)]
pub struct ThreadState {
    /// Bytes left before the next sample.
    pub left: i64,
    /// xorshift64* state (0: not seeded yet).
    pub rng: u64,
    /// The profiler epoch this countdown was drawn for.
    pub epoch: u32,
    /// Non-zero while this thread is inside the profiler: allocations it
    /// makes then (the unwinder's, a signal handler's) are never sampled.
    pub busy: u32,
}

#[cfg(target_arch = "x86_64")]
core::arch::global_asm!(
    ".pushsection .tbss,\"awT\",@nobits",
    ".p2align 3",
    ".globl __ptrs_tls_prof",
    ".hidden __ptrs_tls_prof",
    ".type __ptrs_tls_prof, @object",
    ".size __ptrs_tls_prof, 24",
    "__ptrs_tls_prof:",
    ".zero 24",
    ".popsection",
);

/// The calling thread's sampling state.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub fn state() -> *mut ThreadState {
    let p: *mut ThreadState;
    // SAFETY: computes the address of the initial-exec TLS block declared
    // above: the thread pointer (%fs:0 holds its own address on x86-64
    // glibc) plus the slot's offset from the GOT.
    unsafe {
        core::arch::asm!(
            "mov {p}, qword ptr fs:[0]",
            "add {p}, qword ptr [rip + __ptrs_tls_prof@GOTTPOFF]",
            p = out(reg) p,
            options(nostack, readonly, pure),
        );
    }
    p
}

#[cfg(not(target_arch = "x86_64"))]
std::thread_local! {
    static STATE: core::cell::UnsafeCell<ThreadState> =
        const { core::cell::UnsafeCell::new(ThreadState { left: 0, rng: 0, epoch: 0, busy: 0 }) };
}

#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
pub fn state() -> *mut ThreadState {
    STATE.with(|s| s.get())
}

/// A seed for a thread's generator: the process's seed (64 bits from the
/// kernel, drawn once) and a count of the seeds handed out, through the
/// splitmix64 finaliser, so that every thread's stream starts elsewhere.
/// A `getrandom` call per thread cost the latedtor workload (3000
/// short-lived threads) about 5 % of its time with the profiler on.
fn thread_seed() -> u64 {
    use core::sync::atomic::{AtomicU64, Ordering};
    static SEED: AtomicU64 = AtomicU64::new(0);
    static SEEDS: AtomicU64 = AtomicU64::new(0);
    let mut seed = SEED.load(Ordering::Relaxed);
    if seed == 0 {
        let fresh = crate::os::random_u64() | 1;
        seed = match SEED.compare_exchange(0, fresh, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => fresh,
            Err(other) => other,
        };
    }
    let n = SEEDS.fetch_add(1, Ordering::Relaxed);
    crate::os::splitmix64(seed.wrapping_add(n.wrapping_mul(0x9e37_79b9_7f4a_7c15)))
}

/// The next pseudo-random number of this thread (xorshift64*).
pub fn next_random(t: &mut ThreadState) -> u64 {
    if t.rng == 0 {
        t.rng = thread_seed() | 1;
    }
    let mut x = t.rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    t.rng = x;
    x.wrapping_mul(0x2545_f491_4f6c_dd1d)
}

/// A uniform number in [0, 1) (53 random bits).
pub fn uniform(t: &mut ThreadState) -> f64 {
    (next_random(t) >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// The probability that an allocation of `size` bytes is sampled at
/// `rate` bytes per sample: 1 - exp(-size / rate) (1 at rate 1).
pub fn probability(size: usize, rate: usize) -> f64 {
    if rate <= 1 {
        return 1.0;
    }
    1.0 - super::math::exp(-(size as f64) / rate as f64)
}

/// Draws the number of bytes until the next sample: exponential with mean
/// `rate` bytes, at least 1. Out of line: drawn once per sample, it kept
/// [`should_sample`] from being inlined into the hooks.
#[cold]
#[inline(never)]
pub fn draw_countdown(t: &mut ThreadState, rate: usize) -> i64 {
    // A uniform number in (0, 1]: 53 random bits, never 0.
    let u = ((next_random(t) >> 11) + 1) as f64 * (1.0 / (1u64 << 53) as f64);
    let gap = -super::math::ln(u) * rate as f64;
    if gap >= (i64::MAX / 2) as f64 { i64::MAX / 2 } else { gap as i64 + 1 }
}

/// Whether an allocation of `size` bytes is sampled, given the thread's
/// countdown; redraws the countdown after a sample.
#[inline(always)]
pub fn should_sample(t: &mut ThreadState, size: usize, rate: usize, epoch: u32) -> bool {
    if rate <= 1 {
        return true;
    }
    if t.epoch != epoch {
        t.epoch = epoch;
        t.left = draw_countdown(t, rate);
    }
    t.left -= size.min(i64::MAX as usize / 4) as i64;
    if t.left > 0 {
        return false;
    }
    // Several gaps may end inside a large allocation: it is still one
    // sample, and the next gap starts after it.
    t.left = draw_countdown(t, rate);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn countdowns_average_the_rate() {
        let mut t = ThreadState { left: 0, rng: 12345, epoch: 0, busy: 0 };
        let n = 200_000;
        let sum: f64 = (0..n).map(|_| draw_countdown(&mut t, 4096) as f64).sum();
        let mean = sum / n as f64;
        assert!((mean - 4096.0).abs() < 4096.0 * 0.02, "mean {mean}");
    }

    #[test]
    fn sampling_probability_grows_with_size() {
        let mut t = ThreadState { left: 0, rng: 99, epoch: 0, busy: 0 };
        let count = |t: &mut ThreadState, size| (0..100_000).filter(|_| should_sample(t, size, 65536, 1)).count();
        let small = count(&mut t, 64);
        let big = count(&mut t, 65536);
        // 1 - exp(-64/65536) ~ 0.098 %; 1 - exp(-1) ~ 63 %.
        assert!((60..=140).contains(&small), "{small}");
        assert!((60_000..=66_500).contains(&big), "{big}");
    }
}
