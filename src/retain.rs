//! The retention policy: what memory ptrs keeps mapped and resident for
//! reuse, and when it goes back to the OS. Every decision of that kind is
//! made here; the mechanisms (purging slices, unmapping segments and huge
//! mappings) live in `segment.rs`, `huge.rs` and `os.rs`.
//!
//! The policy is time decay, in the spirit of mimalloc's purge delay and
//! jemalloc's dirty decay, with one delay `D` (`PTRS_PURGE_DELAY`, 10 ms;
//! waited out on a coarse clock as `D` plus the clock's tick, [`wait_ms`]):
//!
//! - **Reuse before refault.** Memory freed a moment ago is the memory the
//!   program is about to ask for again (a data structure torn down and
//!   rebuilt, a buffer freed and reallocated, a thread replaced by the next
//!   one). It stays resident for one to two delays: free slices inside a
//!   heap's segments (aged by `segment::purge_aged_slices`), empty segments
//!   (the dirty list below), freed huge mappings (`huge.rs`'s cache).
//!   A heap in use also keeps free slices up to a quarter of its active
//!   bytes resident past the delay ([`kept_free_bytes`]), for what a
//!   program frees and rebuilds more slowly while it keeps as much live;
//!   the heap of an exited thread keeps none. While a program keeps
//!   asking for large or huge blocks, the recent peak of them in use
//!   stays resident past the delay too ([`Demand`]), and while it keeps
//!   taking new small pages, the recent peak of them
//!   ([`PAGE_DEMAND_WINDOW_MS`]).
//!   Allocation takes resident memory first: the heap's own free slices
//!   (for a large block, the run with the most resident slices over all
//!   of the heap's segments, then the shortest: `heap::alloc_span_resident`),
//!   then the resident empty segment that emptied longest ago (the next the
//!   decay would purge), then a purged one, and only then a new mapping.
//! - **Return what nobody reuses.** Memory that has stayed unused for one
//!   to two delays is purged (`MADV_DONTNEED`): by the next slow path of any
//!   thread (`maybe_tick`), by a thread that exits (its heap keeps nothing
//!   empty: [`on_thread_exit`]), by `ptrs_thread_idle()`, by `malloc_trim`
//!   / `ptrs_purge()` at once for every heap, and by the opt-in background
//!   purger (`PTRS_BACKGROUND_PURGE=1`) when every thread is quiet.
//! - **Bounded mapped memory.** Purged empty segments stay mapped (no page
//!   of them resident) up to `PTRS_RETAIN` bytes (glibc's trim threshold),
//!   so that address space is reused without `mmap`; beyond that they are
//!   unmapped.
//! - **Exiting threads** release their empty pages and segments at once;
//!   dirty empty segments beyond `PTRS_RETAIN` are purged at that moment,
//!   so a burst of threads that exit leaves no more than that resident.
//! - **Heaps of exited threads** (parked, with the pages that still hold
//!   live blocks) are collected by the decay tick one purge delay after a
//!   thread exited holding pages or another thread freed into one of their
//!   full pages ([`parked_pending`]), then again while they hold pages, at
//!   waits that double up to a second while nothing comes back (a free into
//!   a page that is not full does not say so). What they emptied joins the
//!   empty segments above. A thread about to map a segment and
//!   `ptrs_thread_idle()` collect them at once.

use core::ptr;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crate::options;
use crate::os;
use crate::segment::{self, Segment, SEGMENT_SIZE};
use crate::sync::{GlobalCell, GlobalGuard};

/// Empty small segments owned by no heap, under GLOBAL.
struct EmptySegments {
    /// Not purged since they emptied, ordered by the time they emptied:
    /// `dirty` the newest, `dirty_oldest` the oldest (linked through
    /// `next` towards the oldest and `prev` towards the newest).
    dirty: *mut Segment,
    dirty_oldest: *mut Segment,
    dirty_count: usize,
    /// Purged (mapped, nothing resident), most recent first.
    clean: *mut Segment,
    clean_count: usize,
}

static EMPTY: GlobalCell<EmptySegments> = GlobalCell::new(EmptySegments {
    dirty: ptr::null_mut(),
    dirty_oldest: ptr::null_mut(),
    dirty_count: 0,
    clean: ptr::null_mut(),
    clean_count: 0,
});

/// Number of segments on both lists (read without the lock as a hint).
static EMPTY_COUNT: AtomicUsize = AtomicUsize::new(0);
/// Bytes of dirty empty segments (statistics, hint).
static DIRTY_BYTES: AtomicUsize = AtomicUsize::new(0);
/// When the next decay tick is due (coarse ms), 0: nothing pending.
static NEXT_TICK: AtomicU64 = AtomicU64::new(0);
/// When the decay tick next collects the parked heaps (coarse ms), 0: not
/// scheduled.
static PARKED_DUE: AtomicU64 = AtomicU64::new(0);
/// The wait before the collection after [`PARKED_DUE`] (ms): one purge
/// delay after something was freed into a parked heap, doubling (up to
/// [`PARKED_MAX_WAIT_MS`]) while collections find nothing to take back.
static PARKED_WAIT: AtomicU64 = AtomicU64::new(0);
/// The longest wait between two collections of parked heaps that still
/// hold live blocks: their owners exited, so only other threads' frees can
/// empty their pages, and a free into a page that is not full does not
/// say so.
const PARKED_MAX_WAIT_MS: u64 = 1000;

/// How long the decay waits before it purges, on [`os::now_ms`]'s coarse
/// clock: the purge delay plus the clock's resolution (0 when the delay
/// is 0). Two readings of that clock can be up to one resolution closer
/// than the real time between them, so waiting the bare delay purged
/// memory up to 4 ms early (tst-options-effect saw 199 ms for a 200 ms
/// delay, with a drop measured on the precise clock).
pub fn wait_ms() -> u64 {
    let delay = options::purge_delay_ms();
    if delay == 0 { 0 } else { delay + os::coarse_resolution_ms() }
}

/// How many bytes of free slices a heap whose pages span `active` bytes
/// keeps resident past the purge delay: a quarter of them. The delay
/// alone serves memory freed and allocated again within one to two
/// delays; this is for what a program frees and rebuilds more slowly
/// while it keeps as much live. The share shrinks with what is live, so a
/// program that frees most of its memory still sees it go back within
/// the delay. (jemalloc's first decay, `lg_dirty_mult`, kept a share of
/// the active pages dirty the same way.)
///
/// python3 (`bench/python_alloc.py`, PYTHONMALLOC=malloc), whose phases
/// free and rebuild small pages tens of ms apart, with none kept, an
/// eighth, a quarter, a half, all (medians of 3, one interleaved run):
/// 70.5 k, 44.7 k, 26.2 k, 21.0 k, 19.5 k page faults; 1.53, 1.45, 1.47,
/// 1.44, 1.41 s; peak RSS 33.0, 34.7, 33.1, 36.7, 33.1 MiB (mimalloc,
/// which purges nothing there: 18.5 k, 1.43 s, 39.7 MiB). The suite's
/// realloc, which keeps more of its memory live, pays for a quarter with
/// 6 % more peak RSS (31.4 -> 32.8 MiB, 20 % fewer faults).
pub fn kept_free_bytes(active: usize) -> usize {
    active / 4
}

/// The window of the demand for small pages (ms): a heap's
/// (`Heap::small_demand`), and all heaps' together ([`SMALL_DEMAND`]),
/// which keeps empty segments. While a program keeps taking new small
/// pages, the most bytes of them it held at once over the last one or two
/// windows stay resident past the purge delay; once it takes none for a
/// window, the plain decay returns them. The delay alone returned what a
/// program tore down while it tore down the rest: a tester's loop that
/// builds 200 000 strings, frees half, builds half again and frees
/// everything (15 rounds of 20 to 100 ms) faulted 32 to 54 k pages, 131 k
/// on a loaded machine (mimalloc 16 k), each round's pages purged by the
/// time the next one asked for them; 15 k with this demand. Small pages only: a program's large blocks have their
/// own demand with windows of one delay, and the memory-lifecycle targets
/// ask for their memory back two delays after they are all freed
/// (tst-lifecycle-trim's largeset, which a window for all pages failed).
pub const PAGE_DEMAND_WINDOW_MS: u64 = 100;

/// [`PAGE_DEMAND_WINDOW_MS`], or the purge wait if that is longer (0 when
/// the delay is 0).
pub fn page_demand_window() -> u64 {
    let wait = wait_ms();
    if wait == 0 { 0 } else { PAGE_DEMAND_WINDOW_MS.max(wait) }
}

/// Bytes of the spans of every heap's small pages, and their demand
/// ([`PAGE_DEMAND_WINDOW_MS`]): the decay keeps that many bytes of the
/// newest dirty empty segments resident ([`tick`]).
static SMALL_LIVE: AtomicUsize = AtomicUsize::new(0);
static SMALL_DEMAND: Demand = Demand::new();

/// A heap took (`bytes` > 0) or gave back (< 0) a small page's span.
pub fn note_small_pages(bytes: isize) {
    if bytes >= 0 {
        let live = SMALL_LIVE.fetch_add(bytes as usize, Ordering::Relaxed) + bytes as usize;
        SMALL_DEMAND.note(os::now_ms(), page_demand_window(), live);
    } else {
        let less = bytes.unsigned_abs();
        let _ = SMALL_LIVE.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| Some(n.saturating_sub(less)));
    }
}

/// The window of the demand for huge mappings (ms; at least the delay;
/// see [`Demand`]).
pub const HUGE_DEMAND_WINDOW_MS: u64 = 100;

/// Recent demand for one kind of memory (huge mappings; a heap's large
/// blocks), which keeps freed memory of that kind resident past the purge
/// delay while the program is still asking for it: the decay alone purged
/// a block's memory whenever the next request of its size came more than
/// a delay after its free, and the program then faulted it in again.
/// mixedlarge (bench/: a 1 to 8 MiB block every millisecond or two,
/// rarely two live at once) paid 13 k such faults in 1.2 s (20.8 k in all,
/// 14.1 k now, medians of 5), where mimalloc paid none (6.8 k in all).
///
/// The demand is the most in use at once (`note`'s unit: mappings or
/// bytes) over the current and the previous window, and it counts only
/// while the kind was asked for within the last purge delay. A program
/// that stops asking gets the plain decay (its memory back one to two
/// delays after the free); one that keeps asking but holds less than
/// before gets the excess back within two windows and a delay. A heap's
/// large blocks use windows of one delay (tst-options-effect frees half
/// of 20 MiB of 256 KiB blocks and keeps allocating one at a time: the
/// drop must come by two delays and a margin); huge mappings, whose every
/// refault costs a `mmap`, a `munmap` and megabytes of page faults and
/// which the huge cache bounds anyway (16 mappings, 64 MiB), use windows
/// of [`HUGE_DEMAND_WINDOW_MS`]: mixedlarge has two huge blocks live at
/// once a few times a second. With windows of 1 s its page faults were
/// 11.4 to 12.2 k (from 17.7 to 22.3 k; mimalloc 6.8 k), with 100 ms
/// 11.4 to 14.6 k; but a program that freed twelve 4 MiB blocks and then
/// used one at a time kept the other 44 MiB resident for 2 s, against
/// 250 ms with 100 ms windows.
/// Atomics without a lock: `note` may race with a window's turn and lose
/// one peak update, which only makes the decay purge earlier.
pub struct Demand {
    /// When the kind was last asked for (coarse ms).
    last_ms: AtomicU64,
    /// When the current window began (coarse ms).
    window_start: AtomicU64,
    /// The most in use at once in the current window.
    peak_now: AtomicUsize,
    /// The most in use at once in the previous window.
    peak_before: AtomicUsize,
}

impl Demand {
    pub const fn new() -> Demand {
        Demand {
            last_ms: AtomicU64::new(0),
            window_start: AtomicU64::new(0),
            peak_now: AtomicUsize::new(0),
            peak_before: AtomicUsize::new(0),
        }
    }

    /// An allocation at `now` (coarse ms), with `in_use` in use counting
    /// it; `window`: the length of a window (ms, the same at every call).
    pub fn note(&self, now: u64, window: u64, in_use: usize) {
        self.turn_window(now, window, in_use);
        self.last_ms.store(now, Ordering::Relaxed);
        self.peak_now.fetch_max(in_use, Ordering::Relaxed);
    }

    /// Starts a new window if the current one is `window` ms old: the
    /// previous window's peak becomes the current one's, or `in_use` if
    /// that window ended long ago (nothing was noted since: a note would
    /// have turned it).
    fn turn_window(&self, now: u64, window: u64, in_use: usize) {
        let start = self.window_start.load(Ordering::Relaxed);
        if now < start + window {
            return;
        }
        let before = if now >= start + 2 * window { in_use } else { self.peak_now.load(Ordering::Relaxed) };
        self.peak_before.store(before, Ordering::Relaxed);
        self.peak_now.store(in_use, Ordering::Relaxed);
        self.window_start.store(now, Ordering::Relaxed);
    }

    /// How much more than `in_use` the recent demand keeps resident past
    /// the purge delay at `now`: none when the kind was not asked for
    /// within the last `delay` ms (or `delay` is 0), else the recent peak
    /// (over windows of `window` ms) less what is in use.
    pub fn spare(&self, now: u64, delay: u64, window: u64, in_use: usize) -> usize {
        if delay == 0 || now >= self.last_ms.load(Ordering::Relaxed).saturating_add(delay) {
            return 0;
        }
        self.turn_window(now, window, in_use);
        let peak = self.peak_now.load(Ordering::Relaxed).max(self.peak_before.load(Ordering::Relaxed));
        peak.saturating_sub(in_use)
    }

    /// When the demand lapses if nothing more is asked for (coarse ms):
    /// a tick must come then to purge what it kept.
    pub fn lapses_at(&self, delay: u64) -> u64 {
        self.last_ms.load(Ordering::Relaxed).saturating_add(delay)
    }
}

/// Bytes of empty segments kept resident (dirty) for reuse.
pub fn dirty_bytes() -> usize {
    DIRTY_BYTES.load(Ordering::Relaxed)
}

/// Bytes of empty segments kept mapped but purged.
pub fn clean_bytes() -> usize {
    let _g = GlobalGuard::lock();
    // SAFETY: GLOBAL is held.
    let e = unsafe { EMPTY.get() };
    e.clean_count * SEGMENT_SIZE
}

/// Segments of the two lists (statistics).
pub fn cached_segments() -> usize {
    EMPTY_COUNT.load(Ordering::Relaxed)
}

/// Unlinks the first segment of a list.
///
/// # Safety
/// GLOBAL must be held; `head` is one of the lists.
unsafe fn pop(head: &mut *mut Segment, count: &mut usize) -> *mut Segment {
    let seg = *head;
    if !seg.is_null() {
        // SAFETY: listed segments are valid, linked through `next`.
        *head = unsafe { (*seg).next };
        *count -= 1;
        EMPTY_COUNT.fetch_sub(1, Ordering::Relaxed);
    }
    seg
}

/// Unlinks the oldest dirty segment.
///
/// # Safety
/// GLOBAL must be held.
unsafe fn pop_oldest_dirty(e: &mut EmptySegments) -> *mut Segment {
    let seg = e.dirty_oldest;
    if !seg.is_null() {
        // SAFETY: listed segments are valid; links are under GLOBAL.
        unsafe {
            e.dirty_oldest = (*seg).prev;
            if e.dirty_oldest.is_null() {
                e.dirty = ptr::null_mut();
            } else {
                (*e.dirty_oldest).next = ptr::null_mut();
            }
            (*seg).prev = ptr::null_mut();
        }
        e.dirty_count -= 1;
        EMPTY_COUNT.fetch_sub(1, Ordering::Relaxed);
        DIRTY_BYTES.fetch_sub(SEGMENT_SIZE, Ordering::Relaxed);
    }
    seg
}

/// Takes an empty segment for reuse: a resident one, the one that emptied
/// longest ago first (it is the next the decay would purge, so reusing it
/// saves the most page faults), else a purged one. Null when there is none.
pub fn take_empty() -> *mut Segment {
    if EMPTY_COUNT.load(Ordering::Relaxed) == 0 {
        return ptr::null_mut();
    }
    let _g = GlobalGuard::lock();
    // SAFETY: GLOBAL is held.
    let e = unsafe { EMPTY.get() };
    // SAFETY: GLOBAL is held; the lists are ours.
    let seg = unsafe { pop_oldest_dirty(e) };
    if !seg.is_null() {
        return seg;
    }
    // SAFETY: as above.
    unsafe { pop(&mut e.clean, &mut e.clean_count) }
}

/// Takes back an empty segment that no heap owns any more. It stays
/// resident for one to two purge delays (none when the delay is 0).
///
/// # Safety
/// `seg` must be an empty small segment on no heap's list and no list here.
pub unsafe fn put_empty(seg: *mut Segment) {
    let delay = wait_ms();
    // SAFETY: the caller hands us the segment.
    let dirty = unsafe {
        (*seg).heap = ptr::null_mut();
        (*seg).dirty_slices & !1 != 0
    };
    if !dirty || delay == 0 {
        // SAFETY: as above; nothing references the segment.
        unsafe { put_clean(seg) };
        return;
    }
    let now = os::now_ms();
    {
        let _g = GlobalGuard::lock();
        // SAFETY: GLOBAL is held.
        let e = unsafe { EMPTY.get() };
        // SAFETY: the segment is ours; the list is under GLOBAL.
        unsafe {
            (*seg).freed_at = now;
            (*seg).prev = ptr::null_mut();
            (*seg).next = e.dirty;
            if e.dirty.is_null() {
                e.dirty_oldest = seg;
            } else {
                (*e.dirty).prev = seg;
            }
        }
        e.dirty = seg;
        e.dirty_count += 1;
        EMPTY_COUNT.fetch_add(1, Ordering::Relaxed);
        DIRTY_BYTES.fetch_add(SEGMENT_SIZE, Ordering::Relaxed);
    }
    arm(now + delay);
}

/// Purges a segment and keeps it mapped while the purged list holds less
/// than `PTRS_RETAIN` bytes; unmaps it otherwise.
///
/// # Safety
/// As `put_empty`.
#[unsafe(link_section = ".text.hot.ptrs")]
unsafe fn put_clean(seg: *mut Segment) {
    // SAFETY: the caller hands us the segment; it is empty.
    unsafe { segment::purge_free_slices(&mut *seg) };
    let keep = {
        let _g = GlobalGuard::lock();
        // SAFETY: GLOBAL is held.
        let e = unsafe { EMPTY.get() };
        if (e.clean_count + 1) * SEGMENT_SIZE <= options::retain() {
            // SAFETY: the segment is ours; the list is under GLOBAL.
            unsafe { (*seg).next = e.clean };
            e.clean = seg;
            e.clean_count += 1;
            EMPTY_COUNT.fetch_add(1, Ordering::Relaxed);
            true
        } else {
            false
        }
    };
    if !keep {
        // SAFETY: the segment is unreferenced.
        unsafe { segment::destroy(seg) };
    }
}

/// Asks for a decay tick at `when` (coarse ms) or earlier. A
/// compare-and-swap: two threads arming at once must leave the earlier
/// time, not whichever stored last.
pub(crate) fn arm(when: u64) {
    set_earlier(&NEXT_TICK, when);
}

/// Stores `when` (coarse ms) in `due` unless it already holds an earlier
/// time (0: none).
fn set_earlier(due: &AtomicU64, when: u64) {
    let when = when.max(1);
    let mut cur = due.load(Ordering::Relaxed);
    while cur == 0 || when < cur {
        match due.compare_exchange_weak(cur, when, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return,
            Err(now) => cur = now,
        }
    }
}

/// Whether empty segments wait for the decay tick to purge them.
pub fn dirty_pending() -> bool {
    DIRTY_BYTES.load(Ordering::Relaxed) != 0
}

/// Whether a decay tick is scheduled (due or not).
pub fn tick_pending() -> bool {
    NEXT_TICK.load(Ordering::Relaxed) != 0
}

/// Whether a decay tick is due: one load and, when something is pending,
/// a coarse clock read. Called from slow paths only.
#[inline]
#[unsafe(link_section = ".text.hot.ptrs")]
pub fn maybe_tick() {
    let due = NEXT_TICK.load(Ordering::Relaxed);
    if due != 0 && os::now_ms() >= due {
        tick(false);
    }
}

/// The heaps of exited threads may hold memory to give back: a thread
/// exited holding pages, or another thread freed into one of their full
/// pages (`fresh`: one purge delay from now; otherwise keep the wait the
/// last collection set, if one is scheduled). The decay tick then
/// collects them (`heap::collect_parked_on_tick`): the empty memory goes to
/// the empty-segment lists here, to be reused or purged in its turn.
#[unsafe(link_section = ".text.hot.ptrs")]
pub fn parked_pending(fresh: bool) {
    let wait = wait_ms().max(1);
    if fresh {
        PARKED_WAIT.store(wait, Ordering::Relaxed);
    } else if PARKED_DUE.load(Ordering::Relaxed) != 0 {
        return;
    }
    let when = os::now_ms() + PARKED_WAIT.load(Ordering::Relaxed).max(wait);
    set_earlier(&PARKED_DUE, when);
    arm(when);
}

/// Collects the parked heaps if their turn has come, and schedules the
/// next collection while they hold pages: one purge delay after one that
/// took something back, twice the last wait after one that did not.
#[unsafe(link_section = ".text.hot.ptrs")]
fn tick_parked(now: u64) {
    let due = PARKED_DUE.load(Ordering::Relaxed);
    if due == 0 {
        return;
    }
    if now < due {
        // This tick was for something else and cleared the request: the
        // collection's own time stays asked for.
        arm(due);
        return;
    }
    if PARKED_DUE.compare_exchange(due, 0, Ordering::Relaxed, Ordering::Relaxed).is_err() {
        return; // another thread's tick took it
    }
    let wait = wait_ms().max(1);
    let next = match crate::heap::collect_parked_on_tick() {
        // Busy: another thread is collecting them; look again soon.
        None => wait,
        Some(c) if !c.holds_pages => return,
        Some(c) if c.gave_back => wait,
        Some(_) => (PARKED_WAIT.load(Ordering::Relaxed) * 2).clamp(wait, PARKED_MAX_WAIT_MS.max(wait)),
    };
    PARKED_WAIT.store(next, Ordering::Relaxed);
    set_earlier(&PARKED_DUE, now + next);
    arm(now + next);
}

/// Purges the dirty empty segments that have waited at least one purge
/// delay (`all`: every one), and the huge mappings that have; first, when
/// their turn has come, collects the heaps of exited threads. Returns the
/// bytes purged or unmapped.
#[unsafe(link_section = ".text.hot.ptrs")]
pub fn tick(all: bool) -> usize {
    NEXT_TICK.store(0, Ordering::Relaxed);
    let now = os::now_ms();
    if !all {
        tick_parked(now);
        // What other threads freed into the pages of a thread that has
        // made no slow path for a delay (blocked, or running without
        // allocating): taken back and purged here too, not only when some
        // thread maps a new segment (a producer that slept while two
        // threads freed its 64 MiB kept 40 MiB of it resident).
        crate::heap::collect_dormant_heaps();
    }
    let delay = if all { 0 } else { wait_ms() };
    let released = if crate::huge::trim_cache(all) { 1 } else { 0 };
    // The newest dirty segments that the recent demand for small pages
    // asks for stay (the oldest are purged first), until it lapses.
    let mut max = usize::MAX;
    if !all {
        let window = page_demand_window();
        let spare = SMALL_DEMAND.spare(now, window, window, SMALL_LIVE.load(Ordering::Relaxed));
        if spare != 0 {
            let dirty = DIRTY_BYTES.load(Ordering::Relaxed) / SEGMENT_SIZE;
            max = dirty.saturating_sub(spare.div_ceil(SEGMENT_SIZE));
            arm(SMALL_DEMAND.lapses_at(window).max(now + 1));
        }
    }
    released + purge_dirty(|seg| now >= seg.freed_at + delay, max)
}

/// Segments kept resident when a thread exits: enough for the next thread
/// of a pool that replaces its threads to start without page faults.
const EXIT_KEEP_SEGMENTS: usize = 1;

/// Called when a thread has released its heap's empty memory at exit (or
/// gone idle): resident empty segments beyond one are purged now, the
/// oldest first, so a burst of exiting threads leaves little behind, and
/// so are the huge mappings cached past the purge delay, whatever the
/// recent demand kept (`huge::trim_cache_aged`).
#[unsafe(link_section = ".text.hot.ptrs")]
pub fn on_thread_exit() {
    let keep = EXIT_KEEP_SEGMENTS.min(options::retain() / SEGMENT_SIZE);
    let dirty = DIRTY_BYTES.load(Ordering::Relaxed) / SEGMENT_SIZE;
    if dirty > keep {
        purge_dirty(|_| true, dirty - keep);
    }
    // The thread's own demand for huge blocks ends here, and the program
    // may go quiet: the huge mappings cached past the delay go now,
    // whatever the recent demand kept.
    crate::huge::trim_cache_aged();
    maybe_tick();
}

/// Takes up to `max` dirty segments off the old end of the dirty list while
/// `pick` accepts them (the list is ordered by age, so the first refusal
/// ends the walk), purges them outside the lock and keeps them clean (or
/// unmaps them). Re-arms the tick for those left. Returns bytes purged.
#[unsafe(link_section = ".text.hot.ptrs")]
fn purge_dirty(pick: impl Fn(&Segment) -> bool, max: usize) -> usize {
    if DIRTY_BYTES.load(Ordering::Relaxed) == 0 {
        return 0;
    }
    let mut taken: *mut Segment = ptr::null_mut();
    let mut n = 0;
    let oldest_left = {
        let _g = GlobalGuard::lock();
        // SAFETY: GLOBAL is held.
        let e = unsafe { EMPTY.get() };
        // SAFETY: the list is consistent under GLOBAL.
        unsafe {
            while n < max && !e.dirty_oldest.is_null() && pick(&*e.dirty_oldest) {
                let seg = pop_oldest_dirty(e);
                (*seg).next = taken;
                taken = seg;
                n += 1;
            }
            if e.dirty_oldest.is_null() { None } else { Some((*e.dirty_oldest).freed_at) }
        }
    };
    if let Some(t) = oldest_left {
        arm(t + wait_ms().max(1));
    }
    while !taken.is_null() {
        // SAFETY: the segments taken above are ours alone now.
        unsafe {
            let next = (*taken).next;
            put_clean(taken);
            taken = next;
        }
    }
    n * SEGMENT_SIZE
}

/// malloc_trim: purges every empty segment and unmaps the purged ones.
/// Returns true if anything was released.
pub fn flush() -> bool {
    let purged = tick(true);
    let mut list = {
        let _g = GlobalGuard::lock();
        // SAFETY: GLOBAL is held.
        let e = unsafe { EMPTY.get() };
        let list = e.clean;
        EMPTY_COUNT.fetch_sub(e.clean_count, Ordering::Relaxed);
        e.clean = ptr::null_mut();
        e.clean_count = 0;
        list
    };
    let any = purged > 0 || !list.is_null();
    while !list.is_null() {
        // SAFETY: the segments are ours alone now; nothing references them.
        unsafe {
            let next = (*list).next;
            segment::destroy(list);
            list = next;
        }
    }
    any
}

#[cfg(test)]
mod tests {
    use super::Demand;

    #[test]
    fn demand_keeps_the_recent_peak_while_asked_for() {
        let d = Demand::new();
        let (delay, window) = (14, 100);
        // Three live at once at 10 000 ms, then one.
        d.note(10_000, window, 1);
        d.note(10_001, window, 2);
        d.note(10_002, window, 3);
        // Two freed: the peak keeps them while the kind is asked for.
        assert_eq!(d.spare(10_005, delay, window, 1), 2);
        // Not asked for within a delay: nothing is kept.
        assert_eq!(d.spare(10_002 + delay, delay, window, 1), 0);
        assert_eq!(d.lapses_at(delay), 10_002 + delay);
        // Asked for again (one at a time): the peak is remembered for the
        // current and the next window, then forgotten.
        d.note(10_050, window, 1);
        assert_eq!(d.spare(10_060, delay, window, 0), 3);
        d.note(10_110, window, 1); // turns the window: 3 is the previous peak
        assert_eq!(d.spare(10_115, delay, window, 0), 3);
        d.note(10_210, window, 1); // turns again: the peaks are 1 and 1
        assert_eq!(d.spare(10_215, delay, window, 0), 1);
        assert_eq!(d.spare(10_215, delay, window, 1), 0);
        // A window that ended long ago leaves no peak behind.
        d.note(10_220, window, 5);
        assert_eq!(d.spare(10_700, 1000, window, 0), 0);
        // A delay of 0 keeps nothing.
        d.note(20_000, window, 4);
        assert_eq!(d.spare(20_000, 0, window, 0), 0);
    }
}
