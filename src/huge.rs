//! Huge blocks: requests above the large threshold get a mapping of their
//! own, a segment whose header describes the one block (`pages[0]`), and
//! are unmapped on free. Growing one moves its pages with `mremap` rather
//! than copying.
//!
//! ```text
//!  base (4 MiB aligned)
//!  +-------+--------+---- ... ----+--------------------------------+
//!  | guard | header |  (padding)  | the block (page-rounded)        |
//!  +-------+--------+---- ... ----+--------------------------------+
//!  |<------ offset = max(HEADER_END, alignment) ---->|
//! ```
//!
//! For alignments of 4 MiB and more the block starts on a granule boundary
//! and the header sits in the granule just below it (`offset` = 4 MiB);
//! `segment_map` records those granules separately.

use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crate::os::{self, OS_PAGE_SIZE};
use crate::page::{FLAG_HUGE, FLAG_ZERO};
use crate::segment::{self, Segment, SegmentKind, GUARD_SIZE, HEADER_END, SEGMENT_SIZE};
use crate::segment_map;
use crate::sync::{OwnedGuard, OwnedLock};

/// Freed huge mappings kept for reuse for about one purge delay, so a
/// program that repeatedly allocates and frees multi-MiB blocks does not pay
/// for mmap, munmap and page faults every time (glibc gets the same effect
/// by raising its mmap threshold).
///
/// Sixteen mappings and 64 MiB: with 8 and 32 MiB, largeset run 5 times
/// as long as the suite's (`lifecycle largeset 20000`: 24 live blocks of
/// 64 KiB to 4 MiB replaced at random, a sixth of them huge) faulted 46 k
/// pages in 0.13 s, against 19 k in 0.08 s now. The count of live huge
/// blocks wanders; whenever it rose past what the cache held a fresh
/// mapping was faulted in whole, and whenever it fell past 8 the oldest
/// was unmapped. Peak RSS there +1 to +5 %; the suite's mixedlarge +2.6 %.
const CACHE_SLOTS: usize = 16;
const CACHE_MAX_BYTES: usize = 64 << 20;

/// The most of its mapping a huge block keeps unused after a shrink
/// (bytes): smaller shrinks make no system call (a block shrunk and grown
/// back by a little faults nothing); larger ones unmap the tail.
const SHRINK_KEEP_MAX: usize = 1 << 20;

#[derive(Clone, Copy)]
struct Cached {
    base: usize,
    total: usize,
    freed_at: u64,
}

struct Cache {
    slots: [Cached; CACHE_SLOTS],
    count: usize,
    bytes: usize,
}

/// The cache, behind its own lock ([`CACHE_LOCK`], a leaf: nothing else
/// is taken while it is held). Not GLOBAL, whose guard blocks every signal
/// for the hold: two system calls per hold made a huge malloc and free
/// pair take 920 ns (glibc: 19 ns; a tester). A signal handler that
/// interrupts its own thread inside the cache goes around it: a fresh
/// mapping for an allocation, an unmapping for a free.
static CACHE_LOCK: OwnedLock = OwnedLock::new();

struct CacheCell(core::cell::UnsafeCell<Cache>);

// SAFETY: the cache is reached only through `get`, which needs a guard of
// CACHE_LOCK, so one thread at a time.
unsafe impl Sync for CacheCell {}

impl CacheCell {
    /// The cache, for as long as the guard of [`CACHE_LOCK`] lives.
    #[allow(clippy::mut_from_ref)]
    fn get<'a>(&'a self, _held: &'a mut OwnedGuard<'_>) -> &'a mut Cache {
        // SAFETY: the caller holds CACHE_LOCK (its guard, borrowed
        // mutably for the lifetime of the reference, so one reference at a
        // time per hold).
        unsafe { &mut *self.0.get() }
    }
}

static CACHE: CacheCell = CacheCell(core::cell::UnsafeCell::new(Cache {
    slots: [Cached { base: 0, total: 0, freed_at: 0 }; CACHE_SLOTS],
    count: 0,
    bytes: 0,
}));

/// Takes [`CACHE_LOCK`] for a cache operation; `None` sends the caller
/// around the cache: on the thread that holds the lock already (a signal
/// handler that interrupted it there), and on the forking thread between
/// ptrs's prepare handler and its parent or child handler, where the lock
/// may be held by another thread that a signal handler stopped in it, and
/// waiting could close the cycle `fork_prepare` avoids (see there).
fn lock_cache() -> Option<OwnedGuard<'static>> {
    if crate::sync::holds_global_across_fork() {
        return None;
    }
    CACHE_LOCK.lock()
}

/// Whether `fork_prepare` took [`CACHE_LOCK`].
static FORK_TOOK_CACHE: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// Before `fork` (after GLOBAL): takes the cache's lock if it is free, so
/// that the child finds the cache whole; never waits for it. Its holder
/// may be a thread that a signal handler interrupted there, and that
/// handler may wait for a lock this thread took before (the shared heap's,
/// the profiler's): waiting here deadlocked (a reviewer: 5 of 5 runs of
/// forks against a thread churning huge blocks and signalled non-stop).
/// Taking it before the other fork locks is no way out either: pools free
/// huge blocks under their own locks. See [`fork_child`] for a cache that
/// was held.
pub fn fork_prepare() {
    let g = CACHE_LOCK.try_lock();
    FORK_TOOK_CACHE.store(g.is_some(), Ordering::Relaxed);
    core::mem::forget(g);
}

/// In the parent after `fork`: releases what [`fork_prepare`] took.
pub fn fork_parent() {
    if FORK_TOOK_CACHE.load(Ordering::Relaxed) {
        CACHE_LOCK.force_unlock();
    }
}

/// In the child after `fork`: releases what [`fork_prepare`] took. If
/// another thread of the parent held the cache at the fork, the cache may
/// be half updated and that thread does not exist here: the child forgets
/// the cached mappings (they stay mapped, counted in `mapped`, and are
/// never reused; a child usually execs) and frees the lock. If this very
/// thread held it (a fork from a signal handler that interrupted it
/// there), the interrupted update finishes and releases it.
pub fn fork_child() {
    if FORK_TOOK_CACHE.load(Ordering::Relaxed) {
        CACHE_LOCK.force_unlock();
        return;
    }
    let holder = CACHE_LOCK.holder();
    if holder == 0 || holder == crate::sync::thread_token() {
        return;
    }
    CACHE_LOCK.force_unlock();
    if let Some(mut g) = CACHE_LOCK.lock() {
        let c = CACHE.get(&mut g);
        c.count = 0;
        c.bytes = 0;
        publish(c);
        HUGE_CACHED.store(0, Ordering::Relaxed);
    }
}
static CACHE_COUNT: AtomicUsize = AtomicUsize::new(0);
/// When the oldest cached mapping was freed (coarse ms; `u64::MAX` when
/// the cache is empty), written under the cache's lock with the slots:
/// the decay tick, which runs on every slow path once something is due,
/// looks here before it takes that lock for a cache with nothing old
/// enough to unmap.
static CACHE_OLDEST: AtomicU64 = AtomicU64::new(u64::MAX);

/// Publishes the cache's figures read without the lock.
fn publish(c: &Cache) {
    CACHE_COUNT.store(c.count, Ordering::Relaxed);
    let oldest = c.slots[..c.count].iter().map(|e| e.freed_at).min().unwrap_or(u64::MAX);
    CACHE_OLDEST.store(oldest, Ordering::Relaxed);
}

/// Takes the cached mapping that best fits `total` bytes: the smallest one
/// at least that large, or else (unless `at_least`) the largest one
/// (which the caller grows with mremap, keeping its resident pages).
fn cache_take(total: usize, at_least: bool) -> Option<Cached> {
    if CACHE_COUNT.load(Ordering::Relaxed) == 0 {
        return None;
    }
    // Held by this thread already (a signal handler), or a fork handler:
    // no cached mapping.
    let mut g = lock_cache()?;
    let c = CACHE.get(&mut g);
    let mut best: Option<usize> = None;
    for i in 0..c.count {
        let e = c.slots[i].total;
        // The block's usable size is what was asked for, not the mapping's,
        // so a larger mapping wastes only address space and whatever of its
        // tail is still resident; more than 4 times the request is too much.
        if e > total.saturating_mul(4) || (at_least && e < total) {
            continue;
        }
        best = match best {
            None => Some(i),
            Some(b) => {
                let bt = c.slots[b].total;
                let better = if e >= total { bt < total || e < bt } else { bt < total && e > bt };
                if better { Some(i) } else { Some(b) }
            }
        };
    }
    let i = best?;
    let e = c.slots[i];
    c.count -= 1;
    c.slots[i] = c.slots[c.count];
    c.bytes -= e.total;
    publish(c);
    Some(e)
}

/// Offers a freed mapping to the cache; returns the mappings to unmap now
/// (the offered one if it does not fit, and expired or evicted ones).
fn cache_put(base: usize, total: usize, out: &mut [Cached; CACHE_SLOTS + 1]) -> usize {
    let now = os::now_ms();
    let delay = crate::retain::wait_ms();
    let Some(mut g) = lock_cache() else {
        // Held by this thread already (a signal handler), or a fork
        // handler: unmapped now.
        out[0] = Cached { base, total, freed_at: now };
        return 1;
    };
    let c = CACHE.get(&mut g);
    let mut n = expire(c, now, delay, true, out);
    if total > CACHE_MAX_BYTES / 2 || delay == 0 || os::running_on_valgrind() {
        out[n] = Cached { base, total, freed_at: now };
        return n + 1;
    }
    while c.count > 0 && (c.count == CACHE_SLOTS || c.bytes + total > CACHE_MAX_BYTES) {
        // Evict the oldest.
        let mut oldest = 0;
        for i in 1..c.count {
            if c.slots[i].freed_at < c.slots[oldest].freed_at {
                oldest = i;
            }
        }
        out[n] = c.slots[oldest];
        n += 1;
        c.bytes -= c.slots[oldest].total;
        c.count -= 1;
        c.slots[oldest] = c.slots[c.count];
    }
    c.slots[c.count] = Cached { base, total, freed_at: now };
    c.count += 1;
    c.bytes += total;
    publish(c);
    // The next slow path after one delay unmaps it (retain.rs's tick).
    crate::retain::arm(now + delay);
    n
}

/// The demand for huge blocks (the most live at once, recently), which
/// keeps cached mappings past the purge delay while huge blocks are still
/// being asked for (see `retain::Demand`).
static DEMAND: crate::retain::Demand = crate::retain::Demand::new();

/// The length of the demand's windows (ms).
fn demand_window() -> u64 {
    crate::retain::HUGE_DEMAND_WINDOW_MS.max(crate::retain::wait_ms())
}

/// Moves to `out` the entries older than `delay` ms that the recent
/// demand does not keep (all entries if `delay` is 0; none kept unless
/// `honor_demand`). The demand keeps as many cached mappings as the
/// recent peak of live huge blocks exceeds those live now, the young ones
/// counted first, then the most recently freed.
fn expire(c: &mut Cache, now: u64, delay: u64, honor_demand: bool, out: &mut [Cached; CACHE_SLOTS + 1]) -> usize {
    let aged = |e: &Cached| delay == 0 || now >= e.freed_at + delay;
    let young = c.slots[..c.count].iter().filter(|e| !aged(e)).count();
    let spare = if delay == 0 || !honor_demand {
        0
    } else {
        DEMAND.spare(now, delay, demand_window(), HUGE_COUNT.load(Ordering::Relaxed))
    };
    // Keep the `spare - young` most recently freed of the aged entries.
    let mut kept = [false; CACHE_SLOTS];
    for _ in young..spare.min(c.count) {
        let newest = (0..c.count).filter(|&i| !kept[i] && aged(&c.slots[i])).max_by_key(|&i| c.slots[i].freed_at);
        match newest {
            Some(i) => kept[i] = true,
            None => break,
        }
    }
    let kept_aged = kept.iter().any(|&k| k);
    let mut n = 0;
    let mut i = c.count;
    // From the end, so that moving the last entry into a freed slot never
    // moves one not looked at yet.
    while i > 0 {
        i -= 1;
        if aged(&c.slots[i]) && !kept[i] {
            out[n] = c.slots[i];
            n += 1;
            c.bytes -= c.slots[i].total;
            c.count -= 1;
            c.slots[i] = c.slots[c.count];
            kept[i] = kept[c.count];
        }
    }
    publish(c);
    // The entries left wait for their own delay, and the ones the demand
    // kept for the demand to lapse: a tick must come then (the one that
    // ran this was armed for an older entry; without this a mapping freed
    // a few ms after another stayed cached, resident, until some
    // unrelated slow path re-armed the tick).
    if delay != 0 {
        let young_due = c.slots[..c.count].iter().filter(|e| !aged(e)).map(|e| e.freed_at + delay).min();
        if let Some(due) = young_due {
            crate::retain::arm(due);
        }
        if kept_aged {
            crate::retain::arm(DEMAND.lapses_at(delay).max(now + 1));
        }
    }
    n
}

/// Unmaps mappings that are in no block and no longer in the cache, then
/// counts them out of the cached and the mapped bytes (after the unmap:
/// the heap limit, `segment::charge_limit`, must never see less than is
/// mapped).
fn unmap_all(list: &[Cached]) {
    for e in list {
        // SAFETY: cached mappings are ours and referenced by nothing.
        unsafe { os::unmap(e.base as *mut u8, e.total) };
        HUGE_CACHED.fetch_sub(e.total, Ordering::Relaxed);
        map_delta(-(e.total as isize));
    }
}

/// Unmaps cached mappings older than the purge delay that the recent
/// demand does not keep (`all`: every one). Returns true if any was
/// unmapped.
pub fn trim_cache(all: bool) -> bool {
    trim_cache_with(all, true)
}

/// Unmaps every cached mapping older than the purge delay, whatever the
/// recent demand: for a thread that exits or goes idle (its own demand
/// ends there, and in a program that then goes quiet no slow path may come
/// to tick: a tester saw 43 MiB that the demand had kept stay cached for
/// good after `ptrs_thread_idle()`). Returns true if any was unmapped.
pub fn trim_cache_aged() -> bool {
    trim_cache_with(false, false)
}

/// [`trim_cache`]; `honor_demand`: whether the recent demand keeps
/// mappings past the delay.
fn trim_cache_with(all: bool, honor_demand: bool) -> bool {
    if CACHE_COUNT.load(Ordering::Relaxed) == 0 {
        return false;
    }
    if !all {
        let due = CACHE_OLDEST.load(Ordering::Relaxed).saturating_add(crate::retain::wait_ms());
        if os::now_ms() < due {
            // The tick that called us cleared its request; the oldest
            // entry's own time stays asked for (as `expire` would).
            if due != u64::MAX {
                crate::retain::arm(due);
            }
            return false;
        }
    }
    let mut out = [Cached { base: 0, total: 0, freed_at: 0 }; CACHE_SLOTS + 1];
    let n = {
        // Held by this thread already (a signal handler), or a fork
        // handler (see `lock_cache`), or, for a tick, held by another
        // thread beyond a bounded wait: left for a later tick, which the
        // caller's tick (which cleared its request) must still ask for (a
        // reviewer: 8 MiB stayed cached). A tick never waits without
        // bound: ticks run inside slow paths that hold other threads' heap
        // locks (statistics, sweeps), and the cache's holder may be a
        // thread whose signal handler forks, which waits for glibc's stdio
        // list lock, held by a second forking thread that waits for its
        // own heap's lock (a hang of tst-mt-signal-fork-sweeps). An
        // explicit trim (`all`: malloc_trim, from no slow path) waits.
        let g = if crate::sync::holds_global_across_fork() {
            None
        } else if all {
            CACHE_LOCK.lock()
        } else {
            CACHE_LOCK.lock_bounded(64)
        };
        let Some(mut g) = g else {
            crate::retain::arm(os::now_ms() + 1);
            return false;
        };
        let c = CACHE.get(&mut g);
        let delay = if all { 0 } else { crate::retain::wait_ms() };
        expire(c, os::now_ms(), delay, honor_demand, &mut out)
    };
    unmap_all(&out[..n]);
    n > 0
}

static HUGE_COUNT: AtomicUsize = AtomicUsize::new(0);
static HUGE_MAPPED: AtomicUsize = AtomicUsize::new(0);
static HUGE_USABLE: AtomicUsize = AtomicUsize::new(0);
static HUGE_PEAK_MAPPED: AtomicUsize = AtomicUsize::new(0);
/// Peak of HUGE_COUNT (glibc's `max_n_mmaps`, for malloc_stats).
static HUGE_PEAK_COUNT: AtomicUsize = AtomicUsize::new(0);
/// Bytes of freed huge mappings kept in the cache.
static HUGE_CACHED: AtomicUsize = AtomicUsize::new(0);

/// Bytes of freed huge mappings kept for reuse.
pub fn cached_bytes() -> usize {
    HUGE_CACHED.load(Ordering::Relaxed)
}

/// Most huge blocks live at once so far.
pub fn peak_count() -> usize {
    HUGE_PEAK_COUNT.load(Ordering::Relaxed)
}

/// Live huge blocks, bytes mapped for them, their usable bytes, peak mapped.
pub fn totals() -> (usize, usize, usize, usize) {
    (
        HUGE_COUNT.load(Ordering::Relaxed),
        HUGE_MAPPED.load(Ordering::Relaxed),
        HUGE_USABLE.load(Ordering::Relaxed),
        HUGE_PEAK_MAPPED.load(Ordering::Relaxed),
    )
}

/// Adds `delta` bytes (a mapping made, or unmapped when negative) to the
/// total that the heap limit and `ptrs_stats.mapped` read
/// (`segment::all_mapped_delta`): after the mapping is made (under the
/// caller's charge), after it is unmapped. A block moving between the
/// cache and live use changes nothing there, so it never counts twice or
/// not at all (with the live and cached counters added, a thread taking a
/// cached mapping left a moment in which it counted in neither, and
/// threads charged past the limit: a fresh reviewer's 8 threads of huge
/// blocks reached 82 MB mapped under 64 MiB).
fn map_delta(delta: isize) {
    segment::all_mapped_delta(delta);
}

fn account(mapped_delta: isize, usable_delta: isize) {
    let mapped = if mapped_delta >= 0 {
        HUGE_MAPPED.fetch_add(mapped_delta as usize, Ordering::Relaxed) + mapped_delta as usize
    } else {
        HUGE_MAPPED.fetch_sub((-mapped_delta) as usize, Ordering::Relaxed) - (-mapped_delta) as usize
    };
    if usable_delta >= 0 {
        HUGE_USABLE.fetch_add(usable_delta as usize, Ordering::Relaxed);
    } else {
        HUGE_USABLE.fetch_sub((-usable_delta) as usize, Ordering::Relaxed);
    }
    HUGE_PEAK_MAPPED.fetch_max(mapped, Ordering::Relaxed);
}

fn page_round(size: usize) -> Option<usize> {
    size.checked_add(OS_PAGE_SIZE - 1).map(|s| s & !(OS_PAGE_SIZE - 1))
}

/// Where the block starts relative to the mapping's base.
fn block_offset(align: usize) -> usize {
    if align <= HEADER_END {
        HEADER_END
    } else if align < SEGMENT_SIZE {
        align
    } else {
        SEGMENT_SIZE
    }
}

/// Maps a huge block of at least `size` bytes aligned to `align` (a power of
/// two). Null when out of memory or the size is impossible.
pub fn alloc(size: usize, align: usize) -> *mut u8 {
    alloc_with(size, align, true)
}

fn alloc_with(size: usize, align: usize, use_cache: bool) -> *mut u8 {
    let offset = block_offset(align);
    let Some(data) = page_round(size.max(1)) else { return core::ptr::null_mut() };
    trim_cache(false);
    let Some(total) = data.checked_add(offset) else { return core::ptr::null_mut() };
    if total > isize::MAX as usize {
        return core::ptr::null_mut();
    }
    // Every cached mapping has its header at its 4 MiB-aligned base, so
    // it serves any alignment below 4 MiB (the block starts `align` past
    // the base). A tester's loop of memalign(128 KiB) / free mapped,
    // protected and unmapped a fresh mapping per call: 0.94 s for 50 000,
    // glibc 0.62, the others 0.005 to 0.009. An aligned block takes only
    // a mapping that holds it whole: one that needs growing may be
    // shorter than the block's offset.
    let cached = if use_cache && offset < SEGMENT_SIZE { cache_take(total, offset != HEADER_END) } else { None };
    // A fresh mapping's charge to the heap limit, held until `account`.
    let mut charge = None;
    let (base, total, fresh) = match cached {
        Some(e) => (e.base as *mut u8, e.total, false),
        None => {
            if total > os::overcommit_cap() {
                return core::ptr::null_mut();
            }
            charge = segment::charge_limit(total);
            if charge.is_none() {
                return core::ptr::null_mut();
            }
            let base = if align < SEGMENT_SIZE {
                os::map_aligned(total, SEGMENT_SIZE)
            } else {
                map_high_aligned(total, align)
            };
            if base.is_null() {
                return base;
            }
            if !segment_map::prepare(base as usize, base as usize + total) {
                // SAFETY: the fresh mapping, not handed out.
                unsafe { os::unmap(base, total) };
                return core::ptr::null_mut();
            }
            (base, total, true)
        }
    };
    // The block may sit in a larger cached mapping: its usable size is the
    // request (page-rounded); the rest of the mapping is room to grow.
    let data = (total - offset).min(data);
    let seg = if fresh {
        // SAFETY: `base` is a fresh mapping of `total` bytes, 4 MiB aligned.
        unsafe { segment::init_header(base, total, SegmentKind::Huge) }
    } else {
        let seg = Segment::of_unchecked(base as usize);
        // SAFETY: a cached mapping keeps its (guard and) header; it is ours
        // alone and gets a valid cookie back before it is published.
        unsafe { segment::revalidate(seg) };
        segment_map::set_segment(base as usize, true);
        seg
    };
    let start = base as usize + offset;
    // SAFETY: `seg` is initialised; pages[0] describes the block.
    unsafe {
        (*seg).mapped_size = total;
        let page = &mut (*seg).pages[0];
        page.flags = FLAG_HUGE | if fresh { FLAG_ZERO } else { 0 };
        page.set_block_size(data);
        page.start = start as *mut u8;
        page.reserved = 1;
        page.capacity = 1;
        page.used = 1;
    }
    if offset == SEGMENT_SIZE {
        segment_map::set_segment_below(start, true);
    }
    segment_map::set_huge_tail(base as usize + SEGMENT_SIZE, base as usize + total, true);
    let live = HUGE_COUNT.fetch_add(1, Ordering::Relaxed) + 1;
    HUGE_PEAK_COUNT.fetch_max(live, Ordering::Relaxed);
    DEMAND.note(os::now_ms(), demand_window(), live);
    if fresh {
        map_delta(total as isize);
    } else {
        HUGE_CACHED.fetch_sub(total, Ordering::Relaxed);
    }
    account(total as isize, data as isize);
    drop(charge);
    if data < size {
        // A smaller cached mapping: grow it (its pages move, no copy).
        // SAFETY: `seg` is the live huge segment just set up.
        let p = unsafe { resize(seg, size) };
        if p.is_null() {
            // SAFETY: as above; the block was never handed out.
            unsafe { free(seg) };
            return alloc_with(size, align, false);
        }
        return p;
    }
    start as *mut u8
}


/// Maps `total` bytes whose base lies 4 MiB below an `align`-aligned address.
fn map_high_aligned(total: usize, align: usize) -> *mut u8 {
    let Some(over) = total.checked_add(align) else { return core::ptr::null_mut() };
    let raw = os::map(over);
    if raw.is_null() {
        return raw;
    }
    let start = (raw as usize + SEGMENT_SIZE + align - 1) & !(align - 1);
    let base = start - SEGMENT_SIZE;
    let lead = base - raw as usize;
    let tail = over - lead - total;
    // SAFETY: both ranges are parts of the fresh mapping outside the kept one.
    unsafe {
        os::unmap(raw, lead);
        os::unmap((base + total) as *mut u8, tail);
    }
    base as *mut u8
}

/// Records in `seg.written_end` that its block may have written all of
/// its usable bytes.
fn note_written(seg: &mut Segment) {
    let end = seg.pages[0].start as usize + seg.pages[0].block_size - seg.base();
    seg.written_end = seg.written_end.max(end).min(seg.mapped_size);
}

/// For `calloc`: zeroes the first `size` bytes of the live huge block at
/// `p`, of `seg`, where earlier blocks of its mapping (a cached mapping
/// reused) may have written: the whole pages by purging them (they read
/// as zero and become resident only when touched, as a fresh mapping's
/// would, which is what glibc's `calloc` of such a size gets), the parts
/// of pages at the edges by writing. The rest of the block is zero.
///
/// A tester's `calloc` of 1 to 64 MiB at random, one byte written per 256
/// KiB, zeroed every block from the cache whole with writes: 1.02 M page
/// faults, 3.4 s and 66 MB of peak RSS for 300 rounds, against glibc's
/// 63 k, 0.3 s and 33 MB. Zeroing only the written part with writes: 467 k
/// and 1.5 s (the earlier blocks' untouched pages were faulted in).
///
/// # Safety
/// `seg` must be the live huge segment of the block at `p`, which holds at
/// least `size` bytes and is not yet handed out.
pub unsafe fn zero_for_calloc(seg: *const Segment, p: *mut u8, size: usize) {
    // SAFETY: the caller guarantees `seg` is live.
    let end = unsafe { (*seg).base() + (*seg).written_end };
    let dirty = end.saturating_sub(p as usize).min(size);
    let start = p as usize;
    let lo = start.next_multiple_of(OS_PAGE_SIZE).min(start + dirty);
    let hi = ((start + dirty) & !(OS_PAGE_SIZE - 1)).max(lo);
    // SAFETY: all three ranges lie in the block's first `size` bytes, ours
    // and not yet handed out.
    unsafe {
        core::ptr::write_bytes(p, 0, lo - start);
        if hi > lo {
            os::purge(lo as *mut u8, hi - lo);
        }
        core::ptr::write_bytes(hi as *mut u8, 0, start + dirty - hi);
    }
}

/// Unmaps the huge block described by `seg`.
///
/// # Safety
/// `seg` must be a live huge segment whose block is no longer used.
pub unsafe fn free(seg: *mut Segment) {
    // SAFETY: the caller guarantees `seg` is a live huge segment.
    let (base, total, data, start) = unsafe {
        let s = &mut *seg;
        let r = (s.base(), s.mapped_size, s.pages[0].block_size, s.pages[0].start as usize);
        s.cookie = 0;
        note_written(s);
        r
    };
    segment_map::set_segment(base, false);
    if start - base == SEGMENT_SIZE {
        segment_map::set_segment_below(start, false);
    }
    segment_map::set_huge_tail(base + SEGMENT_SIZE, base + total, false);
    HUGE_COUNT.fetch_sub(1, Ordering::Relaxed);
    account(-(total as isize), -(data as isize));
    if start - base >= SEGMENT_SIZE {
        // Its header lies a granule below the block, whose alignment the
        // next block would need again: not cached.
        // SAFETY: the whole mapping is ours and unreferenced now.
        unsafe { os::unmap(base as *mut u8, total) };
        map_delta(-(total as isize));
        return;
    }
    let mut out = [Cached { base: 0, total: 0, freed_at: 0 }; CACHE_SLOTS + 1];
    HUGE_CACHED.fetch_add(total, Ordering::Relaxed);
    let n = cache_put(base, total, &mut out);
    unmap_all(&out[..n]);
    // Cached (not among those just unmapped): left for the tick.
    if !out[..n].iter().any(|e| e.base == base) {
        crate::heap::note_left_to_tick(total);
    }
}

/// Resizes a huge block in place or by moving its pages. Returns the block's
/// new address, or null if it could not (the block is then unchanged).
///
/// # Safety
/// `seg` must be a live huge segment owned by the caller's block.
pub unsafe fn resize(seg: *mut Segment, new_size: usize) -> *mut u8 {
    // SAFETY: the caller guarantees `seg` is a live huge segment.
    let (base, total, data, start) = unsafe {
        let s = &mut *seg;
        // Whatever the block's new size, what it wrote so far stays
        // written (a shrink that keeps the pages keeps it).
        note_written(s);
        (s.base(), s.mapped_size, s.pages[0].block_size, s.pages[0].start as usize)
    };
    let offset = start - base;
    let Some(new_data) = page_round(new_size.max(1)) else { return core::ptr::null_mut() };
    let Some(new_total) = new_data.checked_add(offset) else { return core::ptr::null_mut() };
    if new_total > isize::MAX as usize {
        return core::ptr::null_mut();
    }
    // Room left in the mapping (a cached mapping larger than the block, or
    // a shrink that kept the pages): no system call. A shrink keeps the
    // pages only while less than SHRINK_KEEP_MAX of the mapping would be
    // unused; beyond, the tail is unmapped (mremap), as glibc does: the
    // tail of a block shrunk to half or more stayed resident until the
    // block was freed, even through malloc_trim (a tester: 100 MB shrunk
    // to 50 MB kept 100 MB resident; glibc 50 MB).
    if new_total <= total && (new_data >= data || total - new_total < SHRINK_KEEP_MAX) {
        // SAFETY: the header is live; only the block's size changes.
        unsafe { (*seg).pages[0].set_block_size(new_data) };
        account(0, new_data as isize - data as isize);
        return start as *mut u8;
    }
    // Growth's charge to the heap limit, held until `account` (to the end).
    let _charge = if new_total > total {
        if new_total > os::overcommit_cap() {
            return core::ptr::null_mut();
        }
        let Some(c) = segment::charge_limit(new_total - total) else {
            return core::ptr::null_mut();
        };
        Some(c)
    } else {
        None
    };
    // The guard page is a separate mapping: resize the part after it.
    let rw = (base + GUARD_SIZE) as *mut u8;
    if new_total > total && !segment_map::prepare(base, base + new_total) {
        return core::ptr::null_mut();
    }
    // SAFETY: [rw, base + total) is the huge block's read-write mapping.
    if unsafe { os::remap_in_place(rw, total - GUARD_SIZE, new_total - GUARD_SIZE) } {
        segment_map::set_huge_tail(base + SEGMENT_SIZE, base + total, false);
        segment_map::set_huge_tail(base + SEGMENT_SIZE, base + new_total, true);
        // SAFETY: the header is still at the same place.
        unsafe {
            (*seg).mapped_size = new_total;
            (*seg).pages[0].block_size = new_data;
        }
        map_delta(new_total as isize - total as isize);
        account(new_total as isize - total as isize, new_data as isize - data as isize);
        return start as *mut u8;
    }
    if offset == SEGMENT_SIZE || new_total < total {
        return core::ptr::null_mut();
    }
    // Move: reserve an aligned range and move the pages (and header) there.
    let target = reserve_aligned(new_total);
    if target.is_null() {
        return target;
    }
    if !segment_map::prepare(target as usize, target as usize + new_total) {
        // SAFETY: the reservation is ours and unused.
        unsafe { os::unmap(target, new_total) };
        return core::ptr::null_mut();
    }
    // Forget the old granules before the old range can be unmapped: once it
    // is, another thread may map a segment there and set the same bits.
    segment_map::set_segment(base, false);
    segment_map::set_huge_tail(base + SEGMENT_SIZE, base + total, false);
    // SAFETY: `target` is our fresh reservation of new_total bytes; the
    // source is the block's read-write mapping.
    let moved = unsafe {
        os::remap_to(rw, total - GUARD_SIZE, target.add(GUARD_SIZE), new_total - GUARD_SIZE)
    };
    if !moved {
        segment_map::set_segment(base, true);
        segment_map::set_huge_tail(base + SEGMENT_SIZE, base + total, true);
        // SAFETY: the reservation is ours and unused.
        unsafe { os::unmap(target, new_total) };
        return core::ptr::null_mut();
    }
    // SAFETY: the old guard page is ours and nothing refers to it now.
    unsafe { os::unmap(base as *mut u8, GUARD_SIZE) };
    let new_seg = Segment::of_unchecked(target as usize);
    let new_start = target as usize + offset;
    // SAFETY: the header moved with the pages to `new_seg`.
    unsafe {
        (*new_seg).cookie = 0;
        (*new_seg).mapped_size = new_total;
        (*new_seg).pages[0].block_size = new_data;
        (*new_seg).pages[0].start = new_start as *mut u8;
        segment::revalidate(new_seg);
    }
    segment_map::set_segment(target as usize, true);
    segment_map::set_huge_tail(target as usize + SEGMENT_SIZE, target as usize + new_total, true);
    map_delta(new_total as isize - total as isize);
    account(new_total as isize - total as isize, new_data as isize - data as isize);
    new_start as *mut u8
}

/// Reserves `size` bytes 4 MiB aligned with a guard page at the start.
fn reserve_aligned(size: usize) -> *mut u8 {
    let Some(over) = size.checked_add(SEGMENT_SIZE) else { return core::ptr::null_mut() };
    let raw = os::reserve(over);
    if raw.is_null() {
        return raw;
    }
    let start = (raw as usize + SEGMENT_SIZE - 1) & !(SEGMENT_SIZE - 1);
    let lead = start - raw as usize;
    // SAFETY: the trimmed parts belong to the fresh reservation.
    unsafe {
        os::unmap(raw, lead);
        os::unmap((start + size) as *mut u8, over - lead - size);
    }
    start as *mut u8
}
