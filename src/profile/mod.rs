//! The heap profiler: sampling by bytes with call stacks, heap profiles in
//! gperftools' text format (read by `google-pprof` and Go's `pprof`), the
//! leak report at exit, and the support `mtrace` builds on.
//!
//! Ideas from tcmalloc's and jemalloc's samplers (byte countdowns drawn
//! from an exponential distribution, pprof's unsampling); the code is ours.
//!
//! Cost: malloc's fast path tests one byte of its heap (`Heap::sampling`,
//! set for every heap while [`armed`]); off, that is all. On, it also
//! subtracts each request from its heap's byte countdown
//! (`Heap::sample_left`, one `sub` to memory) and misses when it goes
//! negative ([`malloc_slow_hook`]); its slow paths, and calloc, realloc
//! and aligned allocation, go through [`malloc_hook`] while the byte is
//! set; free tests nothing on its fast path. A small sampled block is
//! allocated from the profiler's own heap, which no thread owns, so every free of it takes
//! free's remote path (`free::free_remote`), where one comparison of the
//! owner with that heap (a load free already made) hands it here, where
//! it is forgotten and freed into that heap under the profiler's lock
//! ([`free_sampled_small`]); a larger one is a large block of the thread's
//! heap whose page is marked `FLAG_SAMPLED`, which the slow paths of large
//! frees test. Huge blocks are told from their (already slow) unmapping
//! path. realloc that keeps a large or huge block in place with a new
//! size samples it afresh ([`note_resized_large`]); a small one of the
//! profiler heap tells [`note_resized`].
//!
//! Locking: one spin lock, [`LOCK`], held with the thread's `busy` flag set
//! (see [`Locked`]), only around table updates and allocation from and
//! frees into the profiler heap (which take that heap's slow-path lock and
//! may take GLOBAL: order LOCK, profiler heap, GLOBAL; mtrace's lock also
//! comes after LOCK). Never held while unwinding or calling the loader
//! (`dladdr`), so no cycle with the loader's locks exists.

pub mod math;
mod objfile;
pub mod sample;
pub mod stack;
pub mod table;
pub mod unwind;
pub mod write;

use core::ptr;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicUsize, Ordering};

use crate::heap::{self, Heap};
use crate::sync::OwnedLock;
use crate::{alloc, huge, options};
use stack::MAX_DEPTH;
use table::Tables;

/// The default sampling rate: one sample per 512 KiB allocated on average.
pub const DEFAULT_RATE: usize = 512 << 10;

/// Set while malloc must call [`malloc_hook`]: sampling or tracing is on.
static ARMED: AtomicBool = AtomicBool::new(false);
/// Sampling (ptrs_profile_start / PTRS_PROFILE) is on.
static SAMPLING: AtomicBool = AtomicBool::new(false);
/// mtrace is on: every allocation is recorded and logged.
static TRACING: AtomicBool = AtomicBool::new(false);
/// Bytes between samples on average (1: every allocation).
static RATE: AtomicUsize = AtomicUsize::new(DEFAULT_RATE);
/// Bumped by every start, so threads redraw their countdowns.
static EPOCH: AtomicU32 = AtomicU32::new(1);
/// The heap sampled blocks come from (null until the profiler first runs).
static PROF_HEAP: AtomicPtr<Heap> = AtomicPtr::new(ptr::null_mut());

/// The profiler's lock; see the module documentation. Its word is its
/// holder's token, taken in one compare-and-swap, so that a `fork` from a
/// signal handler that interrupted the holder inside the profiler knows
/// not to wait for it ([`fork_prepare`]).
static LOCK: OwnedLock = OwnedLock::new();
static TABLES: crate::sync::GlobalCell<Tables> = crate::sync::GlobalCell::new(Tables::new());

/// True while sampling or tracing is on: every malloc that misses the
/// fast path, and every calloc, realloc and aligned allocation, then goes
/// through [`malloc_hook`]. One load of a global byte, on slow paths only.
#[inline(always)]
pub fn armed() -> bool {
    ARMED.load(Ordering::Relaxed)
}

/// What a heap's sampling countdown (`Heap::sample_left`) is set to while
/// the profiler is off (malloc's fast path does not count it down then).
/// It bounds what a thread may miss when it does not see [`start`]'s
/// reset (see there).
pub const IDLE_COUNTDOWN: isize = 1 << 20;

/// The countdown that asks for a new one: the next malloc misses its fast
/// path and [`malloc_slow_hook`] draws a countdown for the current state,
/// against which that allocation is then counted like any other (sampled
/// with probability `1 - exp(-size/rate)`). It is far below any countdown
/// that ran out (which lies between `-size` and -1 after the fast path's
/// subtraction), so the two are told apart: a countdown of -1 taken as run
/// out sampled the first allocation of every new heap and every first
/// allocation after a start (a 100-byte block of a five-malloc program was
/// reported as 5243 leaked blocks at the default rate).
pub const REDRAW_COUNTDOWN: isize = isize::MIN / 2;

/// Whether a heap's countdown `v` (negative) asks for a new draw rather than
/// having run out: below [`REDRAW_COUNTDOWN`] / 2 (the fast path subtracts
/// at most one request before it misses).
#[inline]
fn is_redraw(v: isize) -> bool {
    v <= REDRAW_COUNTDOWN / 2
}

/// The countdown a new heap starts with: [`REDRAW_COUNTDOWN`] (the next
/// malloc comes to [`malloc_slow_hook`], which draws a real one) while the
/// profiler is armed, else [`IDLE_COUNTDOWN`].
pub fn initial_countdown() -> isize {
    if armed() { REDRAW_COUNTDOWN } else { IDLE_COUNTDOWN }
}

/// Whether the calling thread's heap's countdown ran out, i.e. malloc's
/// fast path missed because of it (or the heap has none: the static heaps
/// without pages always hold [`IDLE_COUNTDOWN`]).
#[inline]
pub fn countdown_expired() -> bool {
    // SAFETY: the thread's heap pointer is always valid.
    unsafe { (*crate::tls::current()).sample_left.load(Ordering::Relaxed) < 0 }
}

/// Sets every heap's countdown to [`REDRAW_COUNTDOWN`] and its
/// `sampling` byte to [`armed`], so that, while armed, each thread's next
/// malloc fast path misses and [`malloc_slow_hook`] draws a countdown for
/// the new state. A heap's owner updates its countdown with a plain load
/// and store (no atomic read-modify-write, which would cost the fast
/// path); if this store falls between the two, it is lost, and that
/// thread sees the new state only after at most the countdown it had
/// ([`IDLE_COUNTDOWN`] bytes when the profiler was off: the owner does not
/// count down then). Allocations that miss the fast path see it at once
/// (they test [`armed`]). Runs under GLOBAL (`for_each_heap`), as does a
/// new heap's registration, which reads the same state.
fn reset_countdowns() {
    let on = armed();
    heap::for_each_heap(|h| {
        h.sample_left.store(REDRAW_COUNTDOWN, Ordering::Relaxed);
        h.sampling.store(on, Ordering::Relaxed);
    });
}

/// The sampling rate in bytes (1: every allocation).
pub fn rate() -> usize {
    RATE.load(Ordering::Relaxed)
}

fn update_armed() {
    let sampling = SAMPLING.load(Ordering::SeqCst);
    let tracing = TRACING.load(Ordering::SeqCst);
    ARMED.store(sampling || tracing, Ordering::SeqCst);
    EXACT.store(tracing || (sampling && RATE.load(Ordering::SeqCst) <= 1), Ordering::SeqCst);
    reset_countdowns();
}

/// Set while every allocation is recorded (rate 1, or mtrace): then
/// realloc also reports a small block it keeps in place with a new size
/// ([`exact_sizes`]).
static EXACT: AtomicBool = AtomicBool::new(false);

/// Whether realloc must report small blocks kept in place with a new size
/// (one load on its fast path). At sampling rates above 1 it does not:
/// a sampled small block, rounded up to a power of two, keeps the size it
/// was allocated with while realloc changes it within that block (so its
/// in-use bytes are within 2x of the truth), because the test for the
/// profiler's heap on every in-place realloc cost the realloc workload 8 %
/// with the profiler on. Large and huge blocks are always reported.
#[inline(always)]
pub fn exact_sizes() -> bool {
    EXACT.load(Ordering::Relaxed)
}

/// Holds [`LOCK`] with the thread marked as inside the profiler (its
/// sampling state's `busy` flag), and no signal blocked.
///
/// A signal handler that interrupts this thread while it holds the lock
/// sees the flag: its allocations take the plain path (`malloc_hook`) and
/// its frees of sampled blocks are queued (see [`defer_forget`]) instead of
/// waiting for the lock its own thread holds. Blocking every signal around
/// the lock instead cost two `pthread_sigmask` system calls per sampled
/// allocation and per free of a sampled block.
struct Locked {
    was_busy: u32,
    /// False when this thread held the lock already (see `new`).
    release: bool,
}

impl Locked {
    fn new() -> Self {
        // SAFETY: the thread's own state; a signal handler of this thread
        // restores what it changes before returning.
        let t = unsafe { &mut *sample::state() };
        let was_busy = t.busy;
        t.busy = 1;
        // The flag must be set before the lock is taken, as the compiler
        // and a signal handler of this thread see it.
        core::sync::atomic::compiler_fence(Ordering::SeqCst);
        // None only if this thread holds the lock already, which the flag
        // above rules out (the profiler is never entered from inside it):
        // then the holder's work goes on and releases it.
        let release = LOCK.lock().map(core::mem::forget).is_some();
        let mut l = Self { was_busy, release };
        l.drain_deferred();
        l
    }

    /// As `new` from a thread that may already be inside the profiler (a
    /// signal handler that dumps the profile): the lock may then be held
    /// by the very thread this handler interrupted, so only `tries`
    /// attempts are made. None: not taken.
    fn try_new(tries: u32) -> Option<Self> {
        // SAFETY: as in `new`.
        let t = unsafe { &mut *sample::state() };
        let was_busy = t.busy;
        t.busy = 1;
        core::sync::atomic::compiler_fence(Ordering::SeqCst);
        for _ in 0..tries {
            if let Some(g) = LOCK.try_lock() {
                core::mem::forget(g);
                let mut l = Self { was_busy, release: true };
                l.drain_deferred();
                return Some(l);
            }
            // SAFETY: sched_yield has no preconditions.
            unsafe { libc::sched_yield() };
        }
        core::sync::atomic::compiler_fence(Ordering::SeqCst);
        t.busy = was_busy;
        None
    }

    /// Records the block `p` of `size` bytes: with its stack when the
    /// sampler chose it at `rate`, the current rate; otherwise (a block
    /// only mtrace logs, or one chosen at a rate that [`start`] changed
    /// since) as known to the live table alone, so that its free is logged,
    /// and counted in no stack's figures, which the writers scale up as
    /// samples at the current rate.
    fn record(&mut self, p: *mut u8, frames: &[usize], size: usize, chosen: bool, rate: usize) {
        let chosen = chosen && rate == RATE.load(Ordering::Relaxed);
        let tables = self.tables();
        if !chosen {
            if TRACING.load(Ordering::Relaxed) {
                tables.add_traced(p as usize, size);
            }
        } else if let Some(id) = tables.intern(frames, size) {
            tables.add_live(p as usize, size, id);
        }
    }

    fn tables(&mut self) -> &mut Tables {
        // SAFETY: LOCK is held for the lifetime of `self`; TABLES is only
        // touched under it (GlobalCell's contract, with LOCK for GLOBAL).
        unsafe { TABLES.get() }
    }

    /// Takes the queued frees of sampled blocks out of the tables (each
    /// before its address can be handed out again: the queue is drained
    /// when the lock is taken and after every allocation from the profiler
    /// heap, and a block is queued before its memory is released).
    #[inline]
    fn drain_deferred(&mut self) {
        if DEFERRED_COUNT.load(Ordering::Acquire) == 0 {
            return;
        }
        for slot in &DEFERRED {
            let a = slot.swap(0, Ordering::AcqRel);
            if a != 0 {
                DEFERRED_COUNT.fetch_sub(1, Ordering::AcqRel);
                if self.tables().remove_live(a) {
                    crate::mtrace::log_free(a as *mut u8);
                }
            }
        }
    }
}

impl Drop for Locked {
    fn drop(&mut self) {
        if self.release {
            LOCK.force_unlock();
        }
        core::sync::atomic::compiler_fence(Ordering::SeqCst);
        // SAFETY: the thread's own state (see `new`).
        unsafe { (*sample::state()).busy = self.was_busy };
    }
}

/// Frees of sampled blocks made by signal handlers while their thread was
/// inside the profiler (addresses; 0 = free slot).
static DEFERRED: [AtomicUsize; 256] = [const { AtomicUsize::new(0) }; 256];
/// How many slots of [`DEFERRED`] are taken.
static DEFERRED_COUNT: AtomicUsize = AtomicUsize::new(0);
/// Deferred frees lost because the queue was full (their blocks then stay
/// counted as in use).
static DEFERRED_LOST: AtomicUsize = AtomicUsize::new(0);

/// Queues the free of `block` for the next holder of the lock. Lock-free.
#[cold]
fn defer_forget(block: *mut u8) {
    let start = (block as usize >> 4) % DEFERRED.len();
    for i in 0..DEFERRED.len() {
        let slot = &DEFERRED[(start + i) % DEFERRED.len()];
        if slot.compare_exchange(0, block as usize, Ordering::AcqRel, Ordering::Relaxed).is_ok() {
            DEFERRED_COUNT.fetch_add(1, Ordering::AcqRel);
            return;
        }
    }
    DEFERRED_LOST.fetch_add(1, Ordering::Relaxed);
}

/// Sets up the profiler heap and tables once. Returns 0 or ENOMEM.
fn prepare() -> i32 {
    crate::init::ensure();
    if PROF_HEAP.load(Ordering::Acquire).is_null() {
        let mut l = Locked::new();
        if !l.tables().init() {
            return libc::ENOMEM;
        }
        if PROF_HEAP.load(Ordering::Acquire).is_null() {
            let h = heap::new_heap();
            if h.is_null() {
                return libc::ENOMEM;
            }
            PROF_HEAP.store(h, Ordering::Release);
        }
    }
    0
}

/// Set while every allocation of the process's life has been recorded:
/// sampling started from the environment at rate 1, never stopped nor
/// started again at another rate. Only then does the leak report call its
/// figures complete.
static COMPLETE: AtomicBool = AtomicBool::new(false);

/// Whether every allocation of the process's life was recorded (see
/// [`COMPLETE`]).
pub fn complete() -> bool {
    COMPLETE.load(Ordering::SeqCst)
}

/// Starts sampling, one sample per `rate` bytes on average (0: the
/// default, [`DEFAULT_RATE`]; 1: every allocation). Returns 0 or ENOMEM.
/// Any thread. Records of an earlier run at the same rate are kept; when
/// the rate changes, the records taken at the old one are discarded, with
/// their live-table entries (a later free of such a block finds nothing
/// to forget), because a profile has one rate, which its writers and
/// pprof scale every record by (records of rate 1 written under a
/// `heap_v2/4096` header made 1 MB kept read as 41 MB).
pub fn start(rate: usize) -> i32 {
    let e = prepare();
    if e != 0 {
        return e;
    }
    // Capped where `ptrs_option_get` caps what it reports (its values are
    // signed), so that the profile's header and the option read back say
    // the same rate (a tester: `heap_v2/18446744073709551615` against
    // 9223372036854775807). No allocation is sampled at either.
    let rate = if rate == 0 { DEFAULT_RATE } else { rate.min(isize::MAX as usize) };
    {
        let mut l = Locked::new();
        let old = RATE.load(Ordering::SeqCst);
        if old != rate {
            l.tables().discard_samples();
        }
        if old != rate || !SAMPLING.load(Ordering::SeqCst) {
            COMPLETE.store(false, Ordering::SeqCst);
        }
        RATE.store(rate, Ordering::SeqCst);
    }
    EPOCH.fetch_add(1, Ordering::SeqCst);
    SAMPLING.store(true, Ordering::SeqCst);
    update_armed();
    0
}

/// Stops sampling; sampled blocks stay tracked until freed.
pub fn stop() {
    SAMPLING.store(false, Ordering::SeqCst);
    COMPLETE.store(false, Ordering::SeqCst);
    update_armed();
}

/// Turns tracing (every allocation recorded, for mtrace) on or off.
pub fn set_tracing(on: bool) -> i32 {
    if on {
        let e = prepare();
        if e != 0 {
            return e;
        }
    }
    TRACING.store(on, Ordering::SeqCst);
    update_armed();
    0
}

/// Whether sampling is on.
pub fn sampling() -> bool {
    SAMPLING.load(Ordering::Relaxed)
}

/// malloc's hook while the profiler is armed: `size` bytes aligned to
/// `align` (0: malloc's 16 bytes). Decides by the thread's byte countdown
/// whether to sample; a sampled block comes from the profiler heap and its
/// stack is recorded. Null when out of memory.
#[cold]
#[inline(never)]
pub fn malloc_hook(size: usize, align: usize) -> *mut u8 {
    // SAFETY: the thread's own state; nothing else touches it except a
    // signal handler of this thread, which only runs this same code, and
    // the flag below keeps it from nesting.
    let t = unsafe { &mut *sample::state() };
    if t.busy != 0 {
        return plain(size, align);
    }
    let tracing = TRACING.load(Ordering::Relaxed);
    let rate = RATE.load(Ordering::Relaxed);
    let chosen = SAMPLING.load(Ordering::Relaxed) && sample::should_sample(t, size, rate, EPOCH.load(Ordering::Relaxed));
    if !(tracing || chosen) {
        return plain(size, align);
    }
    t.busy = 1;
    let p = sampled(size, align, tracing, chosen, rate);
    t.busy = 0;
    p
}

/// malloc's hook when it missed its fast path while the profiler is armed
/// or because the heap's sampling countdown ran out. A miss for another
/// reason is counted on the heap's countdown here. When the countdown
/// runs out, this allocation is the one it chose: it is sampled (when
/// sampling is on) and a new countdown is drawn. The bytes of the other
/// allocation functions (calloc, realloc, the aligned ones), and all
/// bytes while tracing, reach [`malloc_hook`] and are counted by the
/// thread's own countdown there. Two independent countdowns, each
/// exponential with the same mean, sample each byte with the same
/// probability as one would (the sampled bytes form one Poisson process),
/// so the estimates stay unbiased. Null when out of memory.
#[cold]
#[inline(never)]
#[unsafe(link_section = ".text.hot.ptrs")]
pub fn malloc_slow_hook(size: usize) -> *mut u8 {
    let heap = crate::tls::current();
    // SAFETY: the thread's heap pointer is always valid.
    let countdown = unsafe { &(*heap).sample_left };
    let left = countdown.load(Ordering::Relaxed);
    if left >= 0 && !EXACT.load(Ordering::Relaxed) && crate::heap::is_real(heap) {
        // A miss for another reason (an empty page, a block above the
        // fast path's sizes): this allocation is counted on the heap's
        // countdown, as the fast path counts the others, and is the one
        // it chooses if it runs out (then handled as one that ran out on
        // the fast path). All malloc bytes then run down one exponential
        // countdown: the sampling stays unbiased. Through `malloc_hook`,
        // with its own countdown, and with a second try of the fast pop,
        // such a miss cost 80 instructions more (callgrind, churn: 395 k
        // misses, the profiler's whole cost 3.7 % of the instructions).
        // Not when every allocation is recorded (rate 1, tracing): a
        // countdown set before the rate changed may still be positive
        // (see `reset_countdowns`), and `malloc_hook` records them all.
        // Not for the static heaps of threads without one of their own,
        // whose countdown all such threads would share.
        let after = left.saturating_sub(size.min(isize::MAX as usize) as isize);
        countdown.store(after, Ordering::Relaxed);
        if after >= 0 {
            if size > crate::size_class::SMALL_MAX {
                return plain(size, 0);
            }
            // The fast path's pop failed: no second try.
            return alloc::malloc_generic(size);
        }
    }
    countdown_ran_out(heap, size)
}

/// [`malloc_slow_hook`] for an allocation that its heap's countdown chose
/// (or asks a new draw for, or while tracing): out of line, so that the
/// common miss above needs no stack frame.
#[cold]
#[inline(never)]
#[unsafe(link_section = ".text.hot.ptrs")]
fn countdown_ran_out(heap: *mut crate::heap::Heap, size: usize) -> *mut u8 {
    // SAFETY: the thread's heap pointer is always valid.
    let countdown = unsafe { &(*heap).sample_left };
    let tracing = TRACING.load(Ordering::Relaxed);
    if countdown.load(Ordering::Relaxed) >= 0 {
        // Tracing: counted by the thread's countdown, in `malloc_hook`.
        return malloc_hook(size, 0);
    }
    let sampling = SAMPLING.load(Ordering::Relaxed);
    if !tracing && !sampling {
        // SAFETY: as above.
        if unsafe { (*heap).purge_watch } {
            // The heap's purge watch counts on the fast path
            // (`heap::arm_purge_watch`): its check re-arms or stops it.
            crate::heap::purge_watch_check(heap);
        } else {
            countdown.store(IDLE_COUNTDOWN, Ordering::Relaxed);
        }
        return plain(size, 0);
    }
    // SAFETY: the thread's own state (see `malloc_hook`).
    let t = unsafe { &mut *sample::state() };
    let rate = RATE.load(Ordering::Relaxed);
    // A countdown that asks for a draw (a new heap's, or after a start)
    // chose nothing: this allocation is counted against the new draw, which
    // is what an exponential countdown running since any earlier point
    // would give it (memoryless), so sampling stays unbiased.
    let redraw = is_redraw(countdown.load(Ordering::Relaxed));
    let mut hit = true;
    // Tracing and rate 1 record every allocation: the countdown stays
    // negative, so that every malloc comes here. While tracing, the
    // heap's countdown chooses nothing: the thread's does, as in
    // `malloc_hook`.
    let next = if tracing || rate <= 1 {
        -1
    } else {
        let mut gap = sample::draw_countdown(t, rate);
        if redraw {
            let s = size.min(i64::MAX as usize / 4) as i64;
            if gap > s {
                gap -= s;
                hit = false;
            } else {
                gap = sample::draw_countdown(t, rate);
            }
        }
        gap.min(isize::MAX as i64 / 2) as isize
    };
    countdown.store(next, Ordering::Relaxed);
    if t.busy != 0 {
        return plain(size, 0);
    }
    let chosen = sampling
        && if tracing { sample::should_sample(t, size, rate, EPOCH.load(Ordering::Relaxed)) } else { hit };
    if !(tracing || chosen) {
        return plain(size, 0);
    }
    t.busy = 1;
    let p = sampled(size, 0, tracing, chosen, rate);
    t.busy = 0;
    p
}

/// An allocation the profiler does not record.
#[inline(always)]
fn plain(size: usize, align: usize) -> *mut u8 {
    if size > crate::size_class::SMALL_MAX {
        let p = if align == 0 { alloc::malloc_generic(size) } else { alloc::malloc_aligned_unhooked(align, size) };
        note_charged(p, size);
        return p;
    }
    if align == 0 {
        let p = alloc::try_pop(size);
        if !p.is_null() {
            return p;
        }
        return alloc::malloc_generic(size);
    }
    alloc::malloc_aligned_unhooked(align, size)
}

/// Notes on the page of `p` (null, or a block just allocated for a
/// request of `size` bytes) the size its sampling odds cover, if it is a
/// large block: realloc's growth in place is charged from there
/// ([`note_resized_large`]). Returns the page's info.
fn note_charged(p: *mut u8, size: usize) -> Option<crate::free::BlockInfo> {
    // SAFETY: `p` is null or a block just allocated (block_info validates
    // it before reading anything).
    let info = unsafe { crate::free::block_info(p) }?;
    if info.large_or_huge && !info.huge {
        // SAFETY: the block is not yet returned to the program, so nothing
        // else refers to its page.
        unsafe { (*info.page).charged = size };
    }
    Some(info)
}

#[inline(never)]
fn sampled(size: usize, align: usize, tracing: bool, chosen: bool, rate: usize) -> *mut u8 {
    let mut frames = [0usize; MAX_DEPTH];
    let (depth, first) = stack::capture(&mut frames);
    // Our own frame (capture's caller) is always internal; the rest of the
    // allocator's frames are cut when the profile is written.
    let frames = &frames[first.min(depth)..depth];
    // The program's request (in memcheck mode `size` includes the redzone).
    let recorded = crate::valgrind::program_size(size);
    // A small block comes from the profiler heap, so that its free is
    // recognised on free's remote path at no cost to other blocks' frees;
    // there blocks of one class are packed as densely as in any heap. A
    // large block comes from the thread's own heap, as it would unsampled
    // (in the profiler heap, large spans were kept apart from the memory
    // the program reuses: +40 % peak RSS with mixedlarge); its page is
    // marked, and the frees of large blocks take slow paths, which test
    // the mark. (Small sampled blocks as spans of their own were tried: a
    // span reuses dirty slices, so each live sample kept 64 KiB resident,
    // up to 12.5 % of the live bytes at the default rate: +12 % peak RSS
    // for larson4 and rounds16k, +25 % time for rounds16k.)
    let p = if size > crate::size_class::SMALL_MAX {
        // Allocated as unsampled (large or huge, with its alignment).
        let p = plain(size, align);
        if let Some(info) = note_charged(p, size) {
            if info.large_or_huge && !info.huge {
                // SAFETY: the block is not yet returned to the program, so
                // nothing else refers to its page: its flags are ours.
                unsafe { (*info.page).flags |= crate::page::FLAG_SAMPLED };
            }
        }
        if !p.is_null() {
            Locked::new().record(p, frames, recorded, chosen, rate);
        }
        p
    } else {
        let mut l = Locked::new();
        let heap = PROF_HEAP.load(Ordering::Acquire);
        // SAFETY: the profiler heap is valid forever and used only under LOCK.
        let p = unsafe { alloc_in(&mut *heap, profiler_class_size(size, tracing), align) };
        if !p.is_null() {
            l.drain_deferred();
            l.record(p, frames, recorded, chosen, rate);
        }
        p
    };
    if tracing && !p.is_null() {
        crate::mtrace::log_alloc(p, recorded, frames);
    }
    p
}

/// The size a sampled small block is allocated with in the profiler heap:
/// rounded up to a power of two, so that the samples of a program share a
/// dozen size classes instead of spreading over up to 80 (each class in
/// use keeps at least a page of the profiler heap resident: about 200 KiB
/// measured with samples of 16 B to 3 KB). Above 16 KiB a class is 1.5 or
/// 2 times a power of two: such a block is sampled with a probability
/// near size / rate, so rounding it up wastes a share of the program's
/// memory that grows with the size (up to 6 % for 33 KiB blocks at the
/// default rate if rounded to 64 KiB; at most 3 % so). Exact classes there
/// cost more: a string grown to 320 KiB by realloc passes through eight
/// classes of 32 to 64 KiB, each a 512 KiB page with a block or two
/// touched, +1.0 MiB of peak RSS in the realloc-growth workload against
/// +0.4 MiB so. The block's usable size is then at most twice the
/// request, as for any small block. mtrace, which records every block,
/// keeps the exact size.
fn profiler_class_size(size: usize, tracing: bool) -> usize {
    if tracing {
        return size;
    }
    let octave = size.max(16).next_power_of_two();
    let three_quarters = octave / 4 * 3;
    if size > 16 << 10 && size <= three_quarters {
        three_quarters
    } else {
        octave
    }
}

/// Allocates from `heap` as malloc would from a thread heap.
///
/// # Safety
/// `heap` must be exclusively held (the profiler heap under LOCK).
unsafe fn alloc_in(heap: &mut Heap, size: usize, align: usize) -> *mut u8 {
    use crate::segment::{LARGE_MAX, SLICE_SIZE};
    use crate::size_class::{bin_for_aligned, bin_of, MIN_ALIGN, SMALL_MAX};
    if size > alloc::MAX_REQUEST || align > alloc::MAX_REQUEST / 2 {
        return ptr::null_mut();
    }
    let large_limit = options::large_threshold().min(LARGE_MAX);
    let align = align.max(MIN_ALIGN);
    if align == MIN_ALIGN && size <= SMALL_MAX {
        // SAFETY: `heap` is exclusively ours (caller).
        return unsafe { heap::alloc_bin(heap, bin_of(size)) };
    }
    if align <= SLICE_SIZE {
        if let Some(bin) = bin_for_aligned(size, align) {
            // SAFETY: as above.
            return unsafe { heap::alloc_bin(heap, bin) };
        }
        if size <= large_limit {
            // SAFETY: as above.
            return unsafe { heap::alloc_large(heap, size.div_ceil(SLICE_SIZE).max(1)) };
        }
    }
    huge::alloc(size, align)
}

/// free's hook: `block` (a block start, validated by free, not a double
/// free) of `page` is being freed by a thread other than the page's owner
/// `owner`. A sampled small block (the owner is the profiler heap) is
/// forgotten and freed here, into the profiler heap as its holder: true,
/// the caller has nothing left to do. A large block whose page is marked
/// [`FLAG_SAMPLED`](crate::page::FLAG_SAMPLED) is forgotten and freed by
/// the caller as usual (false), as is every other block. The flags of a
/// large page are written only by its block's owner, so another thread may
/// read them; a small page's flags change under its owner (the pinned
/// bit), so they are read only after its class says it is large.
///
/// # Safety
/// `page` must be the live page of `block`.
#[inline(always)]
pub unsafe fn note_free(owner: *mut Heap, page: *mut crate::page::Page, block: *mut u8) -> bool {
    use crate::page::{FLAG_SAMPLED, NO_BIN};
    if owner == PROF_HEAP.load(Ordering::Relaxed) {
        // SAFETY: the caller's guarantees.
        return unsafe { free_sampled_small(owner, page, block) };
    }
    // SAFETY: the caller guarantees `page` is live; see above for `flags`.
    if unsafe { (*page).bin == NO_BIN && (*page).flags & FLAG_SAMPLED != 0 } {
        forget(block);
    }
    false
}

/// Forgets the sampled small block `block` and frees it into the profiler
/// heap `heap` under the profiler's lock, which makes this thread the
/// heap's holder: a local free, so the block is the first one its class
/// hands out again and a page whose blocks are all free is retired at
/// once. (Pushed on the page's remote list instead, as other threads'
/// frees are, the blocks came back only when a class ran out of fresh
/// blocks, and every page a class had touched stayed resident: 240 KiB of
/// the profiler heap at the end of cxx at the default rate, 160 to 176 KiB
/// freed here. Giving a page that empties back to the OS at once as well
/// left 0 KiB at the end but lowered no workload's peak RSS, measured 5
/// times, and once in three runs of dormant cost 4 MiB more; dropped.) From
/// a thread inside the profiler (a signal handler), the block is queued
/// for the tables and freed remotely by the caller (false), as from a
/// handler that interrupted this thread while it held the profiler heap's
/// slow-path lock.
///
/// # Safety
/// As [`note_free`], with `heap` the profiler heap and `page` one of its pages.
#[cold]
#[inline(never)]
unsafe fn free_sampled_small(heap: *mut Heap, page: *mut crate::page::Page, block: *mut u8) -> bool {
    // Inside the profiler (its lock may be ours), or a handler that
    // interrupted this thread inside a slow path of the profiler heap (a
    // scan of another heap's pages: the re-entrant slow-path lock would
    // let this free change the heap under it): queue it for the tables and
    // let the caller push the block on the page's remote list.
    // SAFETY: the thread's own state; the profiler heap is a real heap.
    if unsafe { (*sample::state()).busy != 0 || heap::slow_lock_held_here(heap) } {
        defer_forget(block);
        return false;
    }
    let mut l = Locked::new();
    if l.tables().remove_live(block as usize) {
        // Logged before the block can be handed out again, so that the
        // trace never shows another thread's `+` of this address before
        // this `-` (a review replayed 24 such lines in 400 000 frees).
        crate::mtrace::log_free(block);
    }
    // SAFETY: the profiler heap is held by whoever holds LOCK (every
    // allocation from it and every local free into it is under LOCK);
    // the caller guarantees the page and block.
    unsafe { crate::free::free_into_held_heap(&mut *heap, &mut *page, block.cast()) };
    drop(l);
    true
}

/// The owner's free of a large block whose page is marked
/// [`FLAG_SAMPLED`](crate::page::FLAG_SAMPLED) (from the slow path that
/// every local free of a large block takes).
#[cold]
#[inline(never)]
pub fn note_free_sampled_large(block: *mut u8) {
    forget(block);
}

/// free's hook for huge blocks (whose free unmaps, so a test costs nothing).
#[inline]
pub fn note_free_huge(block: *mut u8) {
    if !PROF_HEAP.load(Ordering::Relaxed).is_null() {
        forget(block);
    }
}

/// True once the profiler or mtrace has run in this process (its heap
/// exists): only then can a block be in the live table. One load.
#[inline(always)]
pub fn ever_started() -> bool {
    !PROF_HEAP.load(Ordering::Relaxed).is_null()
}

/// True if `heap` is the profiler's heap (where sampled small blocks live).
#[inline(always)]
pub fn is_profiler_heap(heap: *mut Heap) -> bool {
    heap == PROF_HEAP.load(Ordering::Relaxed)
}

/// realloc's hook when it keeps `p`, a small block of the profiler heap,
/// in place with a new size of `size` bytes (only while every allocation
/// is recorded, [`exact_sizes`], or for a block sampled before the
/// profiler stopped): its record and its stack's in-use bytes take the new
/// size, and mtrace logs the block freed and allocated again, naming
/// realloc's caller. (Testing every block here with `block_info` cost
/// realloc +33 % with the profiler on.)
#[cold]
#[inline(never)]
pub fn note_resized(p: *mut u8, size: usize) {
    // SAFETY: the thread's own state.
    if unsafe { (*sample::state()).busy } != 0 {
        return;
    }
    let mut frames = [0usize; MAX_DEPTH];
    let (depth, first) = if TRACING.load(Ordering::Relaxed) { stack::capture(&mut frames) } else { (0, 0) };
    let mut l = Locked::new();
    if let Some(old) = l.tables().resize_live(p as usize, size) {
        if old != size {
            crate::mtrace::log_free(p);
            crate::mtrace::log_moved(p, size, &frames[first.min(depth)..depth]);
        }
    }
    drop(l);
}

/// realloc's hook when it keeps a large or huge block in place with a new
/// size of `size` bytes, or when `mremap` moved a huge block from `old`
/// to `new` (`old == new` otherwise); `page` is the large block's page
/// (null for a huge one), `old_usable` the block's usable bytes before.
/// Called once the profiler has run ([`ever_started`]).
///
/// While sampling, the block keeps the sampling odds of one allocation of
/// its new size, 1 - exp(-size / rate), so that the estimates stay
/// unbiased: grown, an unsampled block is sampled now with the odds of
/// its growth (the thread's countdown is charged the bytes it gained over
/// the request its odds cover, `Page::charged`, or for a huge block over
/// its usable size: by the memorylessness of the countdown, the odds of
/// the old size and of the growth combine into those of the new size),
/// recorded with realloc's stack; shrunk, a sampled block stays sampled with the odds of the new
/// size over those of its recorded size, else its record goes. A sampled
/// block that stays keeps its stack, with its new size. With the record
/// merely resized, a block grown in place kept the odds of its first size
/// and a block shrunk kept those of its old one (a fresh tester: 100
/// blocks grown in place from 64 KiB to 440 KiB estimated at 6 to 11 MB
/// against 43; 200 of 1.9 MB shrunk to 960 KB at 214 to 226 MB against
/// 192). Charging the whole new size at every resize, as a new allocation
/// would be, sampled a buffer grown by 64 KiB steps to 8 MiB a thousand
/// times (+57 % time for reallocgrow). Not sampling, a block sampled
/// before keeps its record with the new size. mtrace logs the block freed
/// and allocated again by realloc's caller.
///
/// The common case, an unsampled large block resized while mtrace is
/// off, is inline in the caller: the charge and the countdown. A loop
/// resizing a 200 000-byte block in place paid 81 instructions per
/// realloc over the profiler off when the whole hook was one cold call
/// (reallocgrow's string builders: 6 % of its instructions), 31 with
/// this part inline, 43 from realloc's fast path, which reaches it
/// through one out-of-line call (`alloc::kept_large_profiled`). The rest
/// ([`resized_large_general`]: huge blocks, sampled ones, mtrace, and
/// [`resized_large_record`] for a growth the countdown chose) is out of
/// line.
#[inline(always)]
pub(crate) fn note_resized_large(old: *mut u8, new: *mut u8, size: usize, page: *mut crate::page::Page, old_usable: usize) {
    use crate::page::FLAG_SAMPLED;
    if !page.is_null() {
        // SAFETY: the caller's large page; its `flags` and `charged` are
        // written only by the block's holder (this thread, in realloc).
        let (flags, charged) = unsafe { ((*page).flags, (*page).charged) };
        if flags & FLAG_SAMPLED == 0 && charged != 0 && !TRACING.load(Ordering::Relaxed) {
            // SAFETY: the thread's own state (see `malloc_hook`).
            let t = unsafe { &mut *sample::state() };
            if t.busy != 0 {
                return; // inside the profiler: its lock may be this thread's
            }
            // SAFETY: as above.
            unsafe { (*page).charged = size };
            if size <= charged || !SAMPLING.load(Ordering::Relaxed) {
                return;
            }
            let rate = RATE.load(Ordering::Relaxed);
            if sample::should_sample(t, size - charged, rate, EPOCH.load(Ordering::Relaxed)) {
                let r = Resize { old, new, size, page, tracing: false, sampling: true, rate, chosen: true };
                resized_large_record(r, t);
            }
            return;
        }
    }
    resized_large_general(old, new, size, page, old_usable);
}

/// [`note_resized_large`] for a huge block, a sampled one, a block with
/// no charge noted, or while mtrace is on.
#[cold]
#[inline(never)]
fn resized_large_general(old: *mut u8, new: *mut u8, size: usize, page: *mut crate::page::Page, old_usable: usize) {
    use crate::page::FLAG_SAMPLED;
    // SAFETY: the thread's own state (see `malloc_hook`).
    let t = unsafe { &mut *sample::state() };
    if t.busy != 0 {
        return; // inside the profiler: its lock may be this thread's
    }
    // SAFETY: the caller's large page, whose flags the block's holder (this
    // thread, in realloc) writes.
    let marked = !page.is_null() && unsafe { (*page).flags } & FLAG_SAMPLED != 0;
    let tracing = TRACING.load(Ordering::Relaxed);
    let sampling = SAMPLING.load(Ordering::Relaxed);
    let rate = RATE.load(Ordering::Relaxed);
    // The bytes the block gained over those its odds cover: from its
    // last request, noted on a large page (`note_charged`), else from its
    // usable size before and after (a huge block's slack is under a page).
    // SAFETY: as above; `charged` is written only by the block's holder.
    let charged = if page.is_null() { 0 } else { unsafe { (*page).charged } };
    let gained = if charged != 0 {
        size.saturating_sub(charged)
    } else {
        // SAFETY: `new` is the live block realloc is about to return.
        match unsafe { crate::free::block_info(new) } {
            Some(info) => info.usable.saturating_sub(old_usable),
            None => 0,
        }
    };
    if !page.is_null() {
        // SAFETY: as above.
        unsafe { (*page).charged = size };
    }
    // Drawn before the lock; used only if the block has no sample.
    let chosen = sampling && gained > 0 && sample::should_sample(t, gained, rate, EPOCH.load(Ordering::Relaxed));
    // An unsampled large block (no record: mtrace is off) that its growth
    // did not choose: nothing to do, and no lock taken.
    if !page.is_null() && !marked && !tracing && !chosen {
        return;
    }
    resized_large_record(Resize { old, new, size, page, tracing, sampling, rate, chosen }, t);
}

/// A resize that [`note_resized_large`] hands to the tables: the block
/// `old` now at `new` with `size` bytes, its large page (null for a huge
/// block), and the profiler's state read for it.
#[derive(Clone, Copy)]
struct Resize {
    old: *mut u8,
    new: *mut u8,
    size: usize,
    page: *mut crate::page::Page,
    tracing: bool,
    sampling: bool,
    rate: usize,
    /// The countdown chose the growth: a stack is taken and recorded for
    /// the block unless it already has a sample.
    chosen: bool,
}

/// The rest of [`note_resized_large`] once it needs the tables: the block
/// is sampled, mtrace is on, the countdown chose its growth, or it is a
/// huge block (no page to carry its mark).
#[cold]
#[inline(never)]
fn resized_large_record(r: Resize, t: &mut sample::ThreadState) {
    if r.chosen || r.tracing {
        let mut frames = [0usize; MAX_DEPTH];
        let (depth, first) = stack::capture(&mut frames);
        resized_large_apply(r, t, &frames[first.min(depth)..depth]);
    } else {
        // No stack to take: the 512-byte buffer is not even zeroed.
        resized_large_apply(r, t, &[]);
    }
}

/// [`resized_large_record`] with the stack taken (`frames`, empty when
/// neither a sample nor mtrace needs one).
#[inline(always)]
fn resized_large_apply(r: Resize, t: &mut sample::ThreadState, frames: &[usize]) {
    let Resize { old, new, size, page, tracing, sampling, rate, chosen } = r;
    use crate::page::FLAG_SAMPLED;
    // (Memcheck mode resizes in place without the engine, so `size` is
    // the program's own.)
    let mut l = Locked::new();
    let tables = l.tables();
    let entry = tables.live_entry(old as usize);
    if old != new {
        tables.move_live(old as usize, new as usize);
    }
    let has = match entry {
        Some((recorded, true)) if sampling && size < recorded => {
            let keep = sample::probability(size, rate);
            if sample::uniform(t) * sample::probability(recorded, rate) < keep {
                tables.resize_live(new as usize, size);
                true
            } else {
                tables.remove_live(new as usize);
                if tracing {
                    tables.add_traced(new as usize, size);
                }
                tracing
            }
        }
        Some((_, true)) => {
            tables.resize_live(new as usize, size);
            true
        }
        Some((_, false)) if chosen => {
            tables.remove_live(new as usize);
            l.record(new, frames, size, true, rate);
            true
        }
        Some((_, false)) => {
            tables.resize_live(new as usize, size);
            true
        }
        None if chosen => {
            l.record(new, frames, size, true, rate);
            true
        }
        None => false,
    };
    drop(l);
    if !page.is_null() {
        // The mark tells the block's free to look for its record.
        // SAFETY: `page` is the large page of the block realloc holds for
        // its caller (note_resized_large), whose flags only it writes.
        unsafe {
            if has {
                (*page).flags |= FLAG_SAMPLED;
            } else {
                (*page).flags &= !FLAG_SAMPLED;
            }
        }
    }
    if tracing {
        if entry.is_some() {
            crate::mtrace::log_free(old);
        }
        if has {
            crate::mtrace::log_moved(new, size, frames);
        }
    }
}

/// realloc's hook for a huge block of `old_usable` bytes that
/// `huge::resize` gave `size` bytes, in place or moved by `mremap` from
/// `old` to `new`: as [`note_resized_large`].
#[inline]
pub fn note_resized_huge(old: *mut u8, new: *mut u8, size: usize, old_usable: usize) {
    if ever_started() {
        note_resized_large(old, new, size, ptr::null_mut(), old_usable);
    }
}

#[cold]
#[inline(never)]
fn forget(block: *mut u8) {
    // SAFETY: the thread's own state.
    if unsafe { (*sample::state()).busy } != 0 {
        // A signal handler (or the profiler itself) on a thread that may
        // hold the lock: queue it.
        return defer_forget(block);
    }
    let found = {
        let mut l = Locked::new();
        l.tables().remove_live(block as usize)
    };
    if found {
        crate::mtrace::log_free(block);
    }
}

/// Copies the stack records under the lock into a private mapping, so
/// that they can be written (and resolved with `dladdr`) without the lock.
/// Also gives the profiler heap's freed memory back. Ok(None) when nothing
/// was ever recorded; Err(ENOMEM) when the copy cannot be mapped, and
/// Err(EBUSY) when called from a signal handler that interrupted its
/// thread inside the profiler and the lock stays taken (a dump then wrote
/// an empty profile and returned 0: a fresh tester's handler, dumping
/// every 20 ms while its thread allocated at rate 1, got 6 empty profiles
/// of 23, each indistinguishable from a real one).
pub fn snapshot() -> Result<Option<Snapshot>, i32> {
    if PROF_HEAP.load(Ordering::Acquire).is_null() {
        return Ok(None);
    }
    // SAFETY: the thread's own state.
    let inside = unsafe { (*sample::state()).busy } != 0;
    let mut l = if inside {
        Locked::try_new(10_000).ok_or(libc::EBUSY)?
    } else {
        Locked::new()
    };
    let heap = PROF_HEAP.load(Ordering::Acquire);
    {
        // Memcheck mode: collecting reads links inside freed blocks.
        let _q = crate::valgrind::Quiet::new();
        // SAFETY: the profiler heap is exclusively held under LOCK.
        unsafe { heap::collect(&mut *heap, false) };
    }
    let overflowed = l.tables().overflowed();
    let recs = l.tables().records();
    let bytes = recs.len().max(1) * core::mem::size_of::<table::StackRec>();
    let map = crate::os::map(bytes) as *mut table::StackRec;
    if map.is_null() {
        return Err(libc::ENOMEM);
    }
    // SAFETY: `map` holds room for `recs.len()` records.
    unsafe { ptr::copy_nonoverlapping(recs.as_ptr(), map, recs.len()) };
    let rate = RATE.load(Ordering::SeqCst);
    let complete = COMPLETE.load(Ordering::SeqCst);
    Ok(Some(Snapshot { recs: map, len: recs.len(), bytes, rate, complete, overflowed }))
}

/// A private copy of the stack records (see [`snapshot`]).
pub struct Snapshot {
    recs: *mut table::StackRec,
    len: usize,
    bytes: usize,
    /// The rate every record was taken at (read under the lock, so that a
    /// concurrent [`start`] at another rate cannot pair them wrongly).
    pub rate: usize,
    /// [`complete`] when the copy was made.
    pub complete: bool,
    /// Whether stacks beyond the table were merged into one record
    /// (`table::Tables::overflowed`).
    pub overflowed: bool,
}

impl Snapshot {
    pub fn records(&mut self) -> &mut [table::StackRec] {
        // SAFETY: `recs` holds `len` initialised records, ours alone.
        unsafe { core::slice::from_raw_parts_mut(self.recs, self.len) }
    }
}

impl Drop for Snapshot {
    fn drop(&mut self) {
        // SAFETY: the mapping was made by `snapshot` and is ours.
        unsafe { crate::os::unmap(self.recs.cast(), self.bytes) };
    }
}

/// Fork prepare (called with every signal blocked, before GLOBAL is
/// taken): no unwind in progress, and the profiler lock and the profiler
/// heap's slow-path lock held across fork. The second is taken by other
/// threads too (the scans of `heap::hold_for_statistics`,
/// `heap::collect_dormant_heaps` and
/// `heap::purge_other_heaps`); held by one of them at the fork, the child
/// would wait for it forever in its first refill of the profiler heap.
pub fn fork_prepare() {
    // SAFETY: this thread's own state.
    let t = unsafe { &mut *sample::state() };
    let busy = t.busy != 0;
    stack::fork_prepare(busy);
    // Not taken when this thread holds it already: a signal handler that
    // interrupted the profiler (a sampled allocation, a dump) forks. The
    // interrupted work resumes after the handler, in the parent and in the
    // child, and releases it then; waiting for it here spun forever with
    // every signal blocked (a fresh tester: SIGALRM handlers forking while
    // the program allocated at rate 4096 hung 6 runs of 6, and ignored
    // SIGTERM). The shared heap's lock is treated so (`heap::fork_prepare`).
    let took = LOCK.lock().map(core::mem::forget).is_some();
    FORK_TOOK_LOCK.store(took, Ordering::Relaxed);
    // Until `fork_done`, this thread's allocations and frees leave the
    // profiler alone, as inside it: the prepare handlers that run after
    // ptrs's (and the parent and child handlers that run before ptrs's)
    // allocate on this thread while LOCK is held by it (`sync::FORK_HOLDER`).
    FORK_WAS_BUSY.store(t.busy, Ordering::Relaxed);
    t.busy = 1;
    crate::mtrace::fork_prepare();
    // False unless taken here: another thread may make the profiler heap
    // before `fork_done`, which must then leave its lock alone.
    FORK_TOOK_HEAP.store(false, Ordering::Relaxed);
    let heap = PROF_HEAP.load(Ordering::Acquire);
    if !heap.is_null() {
        // SAFETY: the profiler heap is never unmapped; released by `fork_done`.
        let took = unsafe { heap::lock_across_fork(heap) };
        FORK_TOOK_HEAP.store(took, Ordering::Relaxed);
    }
}

/// The forking thread's `busy` flag before [`fork_prepare`] set it.
static FORK_WAS_BUSY: AtomicU32 = AtomicU32::new(0);
/// Whether [`fork_prepare`] took [`LOCK`], and the profiler heap's lock
/// (neither when the forking thread held it already), for [`fork_done`].
static FORK_TOOK_LOCK: AtomicBool = AtomicBool::new(false);
static FORK_TOOK_HEAP: AtomicBool = AtomicBool::new(false);

/// Fork parent and child handlers (after GLOBAL is released or reset).
pub fn fork_done(child: bool) {
    // SAFETY: this thread's own state (the thread that forked).
    unsafe { (*sample::state()).busy = FORK_WAS_BUSY.load(Ordering::Relaxed) };
    let heap = PROF_HEAP.load(Ordering::Acquire);
    if !heap.is_null() && FORK_TOOK_HEAP.load(Ordering::Relaxed) {
        // SAFETY: taken by `fork_prepare` in this fork.
        unsafe { heap::unlock_after_fork(heap) };
    }
    crate::mtrace::fork_done();
    if FORK_TOOK_LOCK.load(Ordering::Relaxed) {
        // In the child as in the parent: the holder is this thread.
        LOCK.force_unlock();
    }
    stack::fork_done(child);
}

/// Start-up from the environment (PTRS_PROFILE, PTRS_PROFILE_RATE,
/// PTRS_LEAK_REPORT), called by `init` once allocation works. Arms the
/// exit handler's part that writes the profile and the leak report
/// ([`at_exit`]).
pub fn start_from_environment() {
    let want_profile = !options::profile_prefix().is_null();
    let want_leaks = options::leak_report();
    if !want_profile && !want_leaks {
        return;
    }
    if start(options::profile_rate()) != 0 {
        crate::diag::print(format_args!("ptrs: warning: heap profiler could not start (out of memory)\n"));
        return;
    }
    // Started before the program's first allocation: at rate 1, every
    // allocation is recorded from here on.
    COMPLETE.store(rate() <= 1, Ordering::SeqCst);
    // Only the leak report writes to stderr at exit: with the profile
    // alone the process keeps no extra descriptor (a fresh tester:
    // CPython's test_subprocess lists a child's descriptors and found the
    // copy under PTRS_PROFILE).
    if want_leaks {
        write::remember_stderr();
    }
    EXIT_ARMED.store(true, Ordering::Release);
}

/// Set once the profiler runs for the profile or leak report at exit.
static EXIT_ARMED: AtomicBool = AtomicBool::new(false);

/// `ptrs_option_set` turned the leak report on (`leak_report`): starts the
/// profiler, if it is not running, at the rate of `profile_rate`, as
/// `PTRS_LEAK_REPORT=1` does at start-up; the report at exit covers the
/// allocations from here on (exact mode needs the variable at start-up).
pub fn arm_leak_report_at_run_time() {
    if !options::leak_report() || EXIT_ARMED.load(Ordering::Acquire) {
        return;
    }
    if !sampling() && start(options::profile_rate()) != 0 {
        crate::diag::print(format_args!("ptrs: warning: heap profiler could not start (out of memory)\n"));
        return;
    }
    write::remember_stderr();
    EXIT_ARMED.store(true, Ordering::Release);
}

/// The exit handler's profiler part (see `init::exit_hook`): writes the
/// profile (`PTRS_PROFILE`) and the leak report (`PTRS_LEAK_REPORT`), and
/// ends the process with `PTRS_LEAK_EXITCODE` when leaks were found.
#[inline]
pub fn at_exit() {
    if EXIT_ARMED.load(Ordering::Acquire) {
        at_exit_armed();
    }
}

/// [`at_exit`] once armed: out of line, so that the exit hook that every
/// process runs stays small (it lives in the hot text, `lib.rs`).
#[cold]
#[inline(never)]
fn at_exit_armed() {
    let prefix = options::profile_prefix();
    if !prefix.is_null() {
        // SAFETY: a non-null prefix is the NUL-terminated PTRS_PROFILE
        // value from the environment.
        unsafe { write::dump_at_exit(prefix) };
    }
    if options::leak_report() {
        let leaks = write::leak_report(write::stderr_fd()).sites;
        let code = options::leak_exitcode();
        if leaks > 0 && code != 0 {
            // SAFETY: flushing stdio and _exit have no preconditions; the
            // program is exiting anyway (as LeakSanitizer's exitcode does).
            unsafe {
                libc::fflush(ptr::null_mut());
                libc::_exit(code as i32);
            }
        }
    }
}
