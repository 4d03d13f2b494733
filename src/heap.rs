//! Thread heaps: each thread allocates from its own heap, which owns
//! segments and, in them, pages of every size class.
//!
//! A heap keeps, per size class, a queue of pages that may have free blocks
//! (`bins`), and one list of pages known to be full (`full`). The first page
//! of each queue is the one the fast path pops from; `pages_direct` mirrors
//! it for requests up to 1 KiB, indexed by `(size + 15) / 16`, so the fast
//! path needs no size-class computation for them.
//!
//! Everything here runs on the owning thread except `push_notify`, which
//! other threads call to hand back a full page they freed into. A heap whose
//! thread exits is collected and parked in a pool; the next new thread
//! adopts it with all its pages, so memory of exited threads is reused.
//! Heaps are never unmapped: a remote free may still reach a parked heap.

use core::cell::UnsafeCell;
use core::ptr;
use core::sync::atomic::{AtomicBool, AtomicIsize, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering};

use crate::options;
use crate::os;
use crate::page::{
    self, Page, FLAG_LARGE, FLAG_PINNED, IN_FULL, NO_BIN, TF_FLAGS, TF_NOTIFIED, TF_WANT_NOTIFY,
};
use crate::segment::{self, Segment};
use crate::size_class::{bin_of, bin_size, bin_slices, BIN_COUNT, DIRECT_COUNT, MIN_ALIGN};
use crate::sync::{thread_token, GlobalCell, GlobalGuard, RawLock, SignalsBlocked};
use crate::tls;

/// A doubly linked queue of pages.
#[derive(Clone, Copy)]
#[repr(C)]
pub struct PageQueue {
    pub first: *mut Page,
    pub last: *mut Page,
}

impl PageQueue {
    const EMPTY: Self = Self { first: ptr::null_mut(), last: ptr::null_mut() };

    /// # Safety
    /// `page` must be valid and on no queue.
    unsafe fn push_front(&mut self, page: *mut Page) {
        // SAFETY: the caller guarantees `page` is valid; queue links are
        // consistent because only the owning thread touches them.
        unsafe {
            (*page).prev = ptr::null_mut();
            (*page).next = self.first;
            if self.first.is_null() {
                self.last = page;
            } else {
                (*self.first).prev = page;
            }
        }
        self.first = page;
    }

    /// # Safety
    /// `page` must be on this queue.
    unsafe fn remove(&mut self, page: *mut Page) {
        // SAFETY: the caller guarantees `page` is on this queue.
        unsafe {
            let (prev, next) = ((*page).prev, (*page).next);
            if prev.is_null() {
                self.first = next;
            } else {
                (*prev).next = next;
            }
            if next.is_null() {
                self.last = prev;
            } else {
                (*next).prev = prev;
            }
            (*page).next = ptr::null_mut();
            (*page).prev = ptr::null_mut();
        }
    }
}

/// Slow-path event counters, owner-written, read racily for statistics.
#[derive(Clone, Copy, Default)]
#[repr(C)]
pub struct HeapCounters {
    pub page_refills: u64,
    pub pages_allocated: u64,
    pub pages_freed: u64,
    pub remote_collected: u64,
    pub notifications: u64,
    pub purged_bytes: u64,
    pub large_allocs: u64,
    pub large_frees: u64,
}

#[repr(C)]
pub struct Heap {
    /// The first page of the class serving `16 * i` bytes (the empty page
    /// when there is none).
    pub pages_direct: [*mut Page; DIRECT_COUNT],
    /// The heap profiler's byte countdown for malloc's fast path (see
    /// `alloc::try_pop_counted`): while [`Heap::sampling`] is set, malloc
    /// subtracts every request it serves from a page of this table and
    /// takes its slow path when the result is negative. Written by the
    /// owner with relaxed loads and stores (one `sub` to memory on
    /// x86-64); the profiler's start and stop store
    /// `profile::REDRAW_COUNTDOWN` into every heap, so that each draws a
    /// countdown for the new state at its next counted allocation.
    pub sample_left: AtomicIsize,
    /// Whether malloc's fast path counts down [`Heap::sample_left`]: the
    /// profiler (or mtrace) is armed. Written for every heap under GLOBAL
    /// by the profiler's start and stop, and when the heap is registered;
    /// read by the owner (relaxed), which sees a change at its next
    /// allocation or soon after. Next to the countdown, so that the test
    /// reads a line malloc already has, and costs no store while off.
    pub sampling: AtomicBool,
    /// Per class: pages that may have free blocks.
    pub bins: [PageQueue; BIN_COUNT],
    /// Per class: the pinned queue head (see `page.rs`), or null.
    pub pinned: [*mut Page; BIN_COUNT],
    /// Pages with no free block, whatever their class.
    pub full: PageQueue,
    /// Full pages and large spans that other threads freed into, pushed by
    /// them (see `page::push_remote`), popped all at once by the owner.
    pub notify: AtomicPtr<Page>,
    /// Segments owned by this heap, most recent first.
    pub segments: *mut Segment,
    /// Segments of this heap where a span was freed lately, most recent
    /// first (null: none): where free slices are most likely still
    /// resident, looked at first by a large block's span search
    /// ([`alloc_span_resident`]). Set by [`note_span_freed`], cleared
    /// for a segment leaving the heap ([`forget_span_hint`]); under the
    /// slow-path lock.
    pub span_hints: [*mut Segment; SPAN_HINTS],
    /// What the last span search that found no fit learnt: no segment
    /// from `no_fit_stop` to the list's end has room for `no_fit_count`
    /// free slices starting at a multiple of `no_fit_step` slices (1: a
    /// free run that long anywhere), so searches for as many, at a
    /// multiple of as many, stop there ([`no_fit_end`]). Reset
    /// (`usize::MAX`, null) when a span is freed in the heap or
    /// `no_fit_stop` leaves it; under the slow-path lock.
    pub no_fit_count: usize,
    pub no_fit_step: usize,
    pub no_fit_stop: *mut Segment,
    /// The segment where the last span search of the list found its span
    /// (null: the head), where the next one starts ([`walk_segments`]);
    /// under the slow-path lock.
    pub span_cursor: *mut Segment,
    /// When to purge free slices (coarse ms), 0 if nothing is pending.
    pub purge_deadline: u64,
    /// Bytes of spans the owner freed since the heap's last purge (see
    /// [`PURGE_WATCH_BYTES`]).
    pub freed_since_purge: usize,
    /// Bytes the owner left for the decay tick to give back since its
    /// purge watch was last armed for them (see [`note_left_to_tick`]).
    pub left_to_tick: usize,
    /// The owner's malloc fast path counts towards a purge check
    /// ([`purge_watch_check`]); owner only.
    pub purge_watch: bool,
    /// Bytes the fast path serves before the next purge check while only
    /// a decay tick waits (see [`purge_watch_check`]); owner only.
    pub purge_watch_step: isize,
    /// The slow-path lock: 0, or the token of the thread that holds it
    /// (see [`SlowLock`]). The owner takes it in every slow path that
    /// changes its queues or segments; other threads take it to purge the
    /// heap's free memory (malloc_trim, the background purger).
    pub slow_lock: AtomicUsize,
    /// Threads waiting in [`SlowLock::lock`] for `slow_lock` (the shared
    /// heap's users): [`SlowLock::try_lock_unwanted`], which the sweeps of
    /// other heaps use, leaves the lock to them.
    pub slow_waiters: AtomicU32,
    /// When the owner was last in a slow path (coarse ms): a heap with
    /// notifications and no recent slow path has a dormant owner.
    pub last_active: core::sync::atomic::AtomicU64,
    /// [`alloc_bin`] calls under way on the owner's thread, which pop from
    /// a queue head without the slow-path lock: written by the owner only
    /// (a depth, for a signal handler that allocates inside one), read by
    /// a thread taking the heap's empty queue heads
    /// ([`take_empty_queue_heads`]).
    pub pop_depth: AtomicU32,
    /// Set, under the slow-path lock, by a thread taking this heap's empty
    /// queue heads: the owner's [`alloc_bin`] then pops under the lock.
    pub heads_claimed: AtomicBool,
    /// Set by the owner when a page of a class above 1 KiB went back
    /// empty: the dormant-heap scan then looks at the heap for empty
    /// queue heads ([`take_empty_queue_heads`]) once its owner sleeps,
    /// and clears it.
    pub heads_to_check: AtomicBool,
    /// `last_active` when another thread last purged the inside of this
    /// heap's free blocks (the background purger's sweeps; under the
    /// slow-path lock).
    pub insides_purged_at: u64,
    /// Owned by a live thread (under GLOBAL).
    pub owned: bool,
    /// Every heap ever made (under GLOBAL).
    pub registry_next: *mut Heap,
    /// The pool of parked heaps (under GLOBAL).
    pub pool_next: *mut Heap,
    pub counters: HeapCounters,
    /// The memory pool this heap serves (`pool.rs`), null for thread heaps
    /// and the shared heap. Set once when the pool is made.
    pub pool: *mut crate::pool::Pool,
    /// Set while `pool::visit` walks this heap's segments: a segment that
    /// the visitor's frees leave empty stays with the heap (it is given
    /// back by a later purge), so the walk never reads an unmapped one.
    pub hold_segments: bool,
    /// Set while a statistics snapshot on another thread holds this
    /// heap's lock (see [`StatisticsHold`]); written only by that holder.
    pub statistics_held: bool,
    /// In the child of `fork`: the heap of a thread of the parent other
    /// than the forking one (its lock may be held for good). Statistics
    /// only try its lock.
    pub forked_away: bool,
    /// Bit `bin`: the heap has made a page of class `bin` (never cleared;
    /// see `purge_first_page_tail`).
    pub classes_paged: u128,
    /// Bytes of the heap's live large blocks (their spans), under the
    /// slow-path lock.
    pub large_live: usize,
    /// The demand for large blocks, in bytes of them live at once: free
    /// slices it asks for stay resident past the purge delay
    /// (`purge_with`, `retain::Demand`).
    pub large_demand: crate::retain::Demand,
    /// Bytes of the spans of the heap's small pages, and the demand for
    /// them (`retain::PAGE_DEMAND_WINDOW_MS`): what a program that tears
    /// its small blocks down and builds them again a few tens of ms later
    /// frees stays resident for the rebuild. Under the slow-path lock.
    pub small_live: usize,
    pub small_demand: crate::retain::Demand,
    /// The most bytes of spans (`large_live + small_live`) in use at once
    /// since the current owner took the heap, and when it took it (coarse
    /// ms). Under the slow-path lock.
    pub owner_peak: usize,
    pub owner_since: u64,
    /// What a thread that adopts this parked heap inherits from the one
    /// that exited: that thread's peak ([`Heap::owner_peak`]), kept
    /// resident as demand (`purge_with`) until `inherited_until` (coarse
    /// ms), as long as that thread lived, at most
    /// [`INHERIT_MAX_MS`]. Under the slow-path lock.
    pub inherited_peak: usize,
    pub inherit_ms: u64,
    pub inherited_until: u64,
    /// Set by another thread's free that made the remote list of one of
    /// this heap's pages non-empty without notifying it (a page its owner
    /// took off the full list, by a free of its own): the dormant-heap
    /// scan then looks at all of the heap's pages if the owner sleeps
    /// ([`collect_dormant_heaps`]), which it otherwise skips. Cleared by
    /// that scan.
    pub remote_unseen: AtomicBool,
    /// When the dormant-heap scan may next look at all of this heap's
    /// pages for `remote_unseen` (coarse ms; 0: at once), and the gap it
    /// waits, doubled while each look finds pages that others freed only
    /// in part and nothing to take (under the slow-path lock).
    pub rewalk_at: u64,
    pub rewalk_gap: u64,
    /// Blocks this thread freed into other live threads' pages, kept for
    /// its next allocations (`foreign.rs`); under the slow-path lock. Last,
    /// so that `new_heap` leaves its (zero) pages untouched.
    pub foreign: crate::foreign::ForeignCache,
}

/// A heap in a static.
#[repr(transparent)]
pub struct HeapCell(UnsafeCell<Heap>);

// SAFETY: the only static heap is EMPTY_HEAP, which is never written: every
// slow path checks for it before touching a heap.
unsafe impl Sync for HeapCell {}

impl HeapCell {
    pub const fn get(&self) -> *mut Heap {
        self.0.get()
    }
}

#[repr(transparent)]
struct PageCell(UnsafeCell<Page>);

// SAFETY: EMPTY_PAGE is never written: its free list is empty, so the fast
// path only reads it, and slow paths never treat it as a real page.
unsafe impl Sync for PageCell {}

static EMPTY_PAGE: PageCell = PageCell(UnsafeCell::new(Page::empty_at((&raw const EMPTY_PAGE).cast())));

const fn empty_page() -> *mut Page {
    (&raw const EMPTY_PAGE) as *mut Page
}

/// A heap with no pages and no segments: the fast path always misses on it.
const fn heap_without_pages() -> Heap {
    Heap {
        pages_direct: [empty_page(); DIRECT_COUNT],
        sample_left: AtomicIsize::new(crate::profile::IDLE_COUNTDOWN),
        sampling: AtomicBool::new(false),
        bins: [PageQueue::EMPTY; BIN_COUNT],
        pinned: [ptr::null_mut(); BIN_COUNT],
        full: PageQueue::EMPTY,
        notify: AtomicPtr::new(ptr::null_mut()),
        segments: ptr::null_mut(),
        span_hints: [ptr::null_mut(); SPAN_HINTS],
        no_fit_count: usize::MAX,
        no_fit_step: 1,
        no_fit_stop: ptr::null_mut(),
        span_cursor: ptr::null_mut(),
        purge_deadline: 0,
        freed_since_purge: 0,
        left_to_tick: 0,
        purge_watch: false,
        purge_watch_step: PURGE_CHECK_BYTES,
        slow_lock: AtomicUsize::new(0),
        slow_waiters: AtomicU32::new(0),
        last_active: core::sync::atomic::AtomicU64::new(0),
        pop_depth: AtomicU32::new(0),
        heads_claimed: AtomicBool::new(false),
        heads_to_check: AtomicBool::new(false),
        insides_purged_at: 0,
        owned: false,
        registry_next: ptr::null_mut(),
        pool_next: ptr::null_mut(),
        counters: HeapCounters {
            page_refills: 0,
            pages_allocated: 0,
            pages_freed: 0,
            remote_collected: 0,
            notifications: 0,
            purged_bytes: 0,
            large_allocs: 0,
            large_frees: 0,
        },
        pool: ptr::null_mut(),
        hold_segments: false,
        statistics_held: false,
        forked_away: false,
        classes_paged: 0,
        large_live: 0,
        large_demand: crate::retain::Demand::new(),
        small_live: 0,
        small_demand: crate::retain::Demand::new(),
        owner_peak: 0,
        owner_since: 0,
        inherited_peak: 0,
        inherit_ms: 0,
        inherited_until: 0,
        remote_unseen: AtomicBool::new(false),
        rewalk_at: 0,
        rewalk_gap: 0,
        foreign: crate::foreign::ForeignCache::EMPTY,
    }
}

/// The heap every thread starts with: no pages, so the first allocation
/// takes the slow path, which gives the thread a real heap.
pub static EMPTY_HEAP: HeapCell = HeapCell(UnsafeCell::new(heap_without_pages()));

/// What a thread's heap slot holds when the thread allocates from the
/// shared heap: after its own heap was parked at thread exit (allocations
/// in later thread-exit destructors), or when the arena limit is reached.
/// Like `EMPTY_HEAP` it has no pages, so the fast paths miss and every
/// allocation takes the slow path, which locks the shared heap; every free
/// of such a thread is a remote free (one compare-and-swap).
pub static SHARED_MARK: HeapCell = HeapCell(UnsafeCell::new(heap_without_pages()));

/// The shared heap, made on first use; owned by no thread, used under its
/// slow-path lock.
static SHARED_HEAP: AtomicPtr<Heap> = AtomicPtr::new(ptr::null_mut());


#[inline(always)]
pub fn is_empty_heap(heap: *mut Heap) -> bool {
    heap == EMPTY_HEAP.get()
}

/// Heaps ever made and the pool of parked ones, under GLOBAL.
struct HeapRegistry {
    all: *mut Heap,
    pool: *mut Heap,
    /// Heaps ever made, less those that lost the race to become the
    /// shared heap (registered, never used: `shared_heap`).
    count: usize,
    /// Heaps owned by a live thread.
    owned: usize,
}

static HEAPS: GlobalCell<HeapRegistry> = GlobalCell::new(HeapRegistry {
    all: ptr::null_mut(),
    pool: ptr::null_mut(),
    count: 0,
    owned: 0,
});

/// True if the calling thread holds `heap`'s slow-path lock (a signal
/// handler that interrupted its own thread inside a slow path of `heap`).
///
/// # Safety
/// `heap` must be a real heap (heaps are never unmapped).
pub unsafe fn slow_lock_held_here(heap: *mut Heap) -> bool {
    // SAFETY: the caller guarantees `heap` is valid.
    unsafe { (*heap).slow_lock.load(Ordering::Relaxed) == thread_token() }
}

/// A held heap slow-path lock, released when dropped.
///
/// The owner of a heap takes it in its slow paths (refill, large
/// allocation, a free that empties a page, thread exit), so another thread
/// holding it may purge the heap's free slices and give back its empty
/// segments (`malloc_trim` from any thread, the background purger) while
/// the owner keeps allocating on its fast path, which never touches
/// segments. The owner never waits for long: a foreign holder only purges.
/// Re-entrant for the thread that holds it (a signal handler that
/// allocates inside the owner's slow path must not deadlock; such a
/// handler is outside POSIX anyway, as malloc is not async-signal-safe).
pub struct SlowLock {
    heap: *mut Heap,
    release: bool,
}

impl SlowLock {
    /// Takes `heap`'s lock, waiting while another thread holds it.
    ///
    /// # Safety
    /// `heap` must be a real heap (heaps are never unmapped).
    pub unsafe fn lock(heap: *mut Heap) -> Self {
        let me = thread_token();
        // SAFETY: the caller guarantees `heap` is valid.
        let lock = unsafe { &(*heap).slow_lock };
        let mut spins = 0u32;
        let mut waiting = false;
        loop {
            match lock.compare_exchange_weak(0, me, Ordering::Acquire, Ordering::Relaxed) {
                Ok(_) => {
                    if waiting {
                        // Saturating: a fork from a signal handler that
                        // interrupted this wait leaves the child with its
                        // counts cleared (`after_fork_child`) and this
                        // thread still counted (tester8: the count wrapped
                        // to u32::MAX and the child's trims skipped the
                        // shared heap for good).
                        // SAFETY: as above.
                        let waiters = unsafe { &(*heap).slow_waiters };
                        let _ = waiters.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| Some(n.saturating_sub(1)));
                    }
                    return Self { heap, release: true };
                }
                Err(cur) if cur == me => return Self { heap, release: false },
                Err(_) => {
                    if !waiting {
                        waiting = true;
                        // SAFETY: as above.
                        unsafe { (*heap).slow_waiters.fetch_add(1, Ordering::Relaxed) };
                    }
                    spins = spins.saturating_add(1);
                    if spins < 64 {
                        core::hint::spin_loop();
                    } else {
                        // SAFETY: sched_yield has no preconditions.
                        unsafe { libc::sched_yield() };
                    }
                }
            }
        }
    }

    /// Takes `heap`'s lock if nobody holds it.
    ///
    /// # Safety
    /// As `lock`.
    pub unsafe fn try_lock(heap: *mut Heap) -> Option<Self> {
        let me = thread_token();
        // SAFETY: the caller guarantees `heap` is valid.
        let lock = unsafe { &(*heap).slow_lock };
        match lock.compare_exchange(0, me, Ordering::Acquire, Ordering::Relaxed) {
            Ok(_) => Some(Self { heap, release: true }),
            Err(_) => None,
        }
    }

    /// [`SlowLock::try_lock`] that also fails while another thread waits
    /// in [`SlowLock::lock`]: for the sweeps that purge other threads'
    /// heaps (`malloc_trim`, the background purger), which must not keep
    /// the shared heap from its users. A thread calling `malloc_trim` in a
    /// loop took the shared heap's lock in every call; under valgrind,
    /// which runs one thread at a time and switches at system calls, the
    /// waiting threads ran only while it held the lock (its system calls
    /// were inside it), and tst-mt-purge-stress hung in memcheck mode
    /// (30 million trims in 10 minutes, the workers and main waiting).
    ///
    /// # Safety
    /// As `lock`.
    pub unsafe fn try_lock_unwanted(heap: *mut Heap) -> Option<Self> {
        // SAFETY: the caller guarantees `heap` is valid.
        if unsafe { (*heap).slow_waiters.load(Ordering::Relaxed) } != 0 {
            return None;
        }
        // SAFETY: as above.
        unsafe { Self::try_lock(heap) }
    }
}

impl Drop for SlowLock {
    fn drop(&mut self) {
        if self.release {
            // SAFETY: `heap` was valid when locked and heaps are never unmapped.
            unsafe { (*self.heap).slow_lock.store(0, Ordering::Release) };
        }
    }
}

/// The classes the direct table names (up to 1 KiB): per class, the first
/// and last entry of `Heap::pages_direct` (`(size + 15) / 16` for the
/// sizes it serves) that point at its first page.
const DIRECT_RANGE: [(u8, u8); bin_of(crate::size_class::DIRECT_MAX) + 1] = {
    let mut t = [(0u8, 0u8); bin_of(crate::size_class::DIRECT_MAX) + 1];
    let mut bin = 0;
    while bin < t.len() {
        let lo = if bin == 0 { 0 } else { bin_size(bin - 1) / MIN_ALIGN + 1 };
        t[bin] = (lo as u8, (bin_size(bin) / MIN_ALIGN) as u8);
        bin += 1;
    }
    t
};

/// Heaps owned by live threads (`HeapRegistry::owned`, copied under
/// GLOBAL at every change), for reads without the lock.
pub static OWNED_HEAPS: AtomicUsize = AtomicUsize::new(0);

/// Set when a parked heap may have memory to give back (a remote free
/// notified it, or it was parked holding live pages): the next thread that
/// needs a new segment collects parked heaps first.
static PARKED_PENDING: AtomicBool = AtomicBool::new(false);

impl Heap {
    /// Makes the queue head of `bin` visible to the fast path and moves the
    /// pin to it.
    #[unsafe(link_section = ".text.hot.ptrs")]
    fn publish_first(&mut self, bin: usize) {
        let first = self.bins[bin].first;
        let old = self.pinned[bin];
        if old != first {
            // SAFETY: pinned pages and queue heads are live pages of this heap.
            unsafe {
                if !old.is_null() {
                    (*old).used -= 1;
                    (*old).flags &= !FLAG_PINNED;
                }
                if !first.is_null() {
                    (*first).used += 1;
                    (*first).flags |= FLAG_PINNED;
                }
            }
            self.pinned[bin] = first;
        }
        let page = if first.is_null() { empty_page() } else { first };
        // Direct entries i with bin_of(16 * i) == bin, from a table: this
        // runs at every change of a class's first page (a fresh tester's
        // random replacement of 1 KiB blocks changed it at every other
        // call, and computing the range took a fifth of the time).
        let Some(&(lo, hi)) = DIRECT_RANGE.get(bin) else { return };
        for slot in &mut self.pages_direct[lo as usize..=hi as usize] {
            *slot = page;
        }
    }

    fn push_page(&mut self, bin: usize, page: *mut Page) {
        // SAFETY: `page` is a fresh or unqueued page of this heap.
        unsafe { self.bins[bin].push_front(page) };
        self.publish_first(bin);
    }

    /// Appends a page; the head (and its pin) changes only if the queue was
    /// empty.
    fn push_page_back(&mut self, bin: usize, page: *mut Page) {
        let q = &mut self.bins[bin];
        if q.first.is_null() {
            self.push_page(bin, page);
            return;
        }
        // SAFETY: `page` is valid and on no queue; `q.last` is a live page.
        unsafe {
            (*page).next = ptr::null_mut();
            (*page).prev = q.last;
            (*q.last).next = page;
        }
        q.last = page;
    }

    fn remove_page(&mut self, bin: usize, page: *mut Page) {
        // SAFETY: `page` is on queue `bin` of this heap.
        unsafe { self.bins[bin].remove(page) };
        self.publish_first(bin);
    }
}

/// The calling thread's heap, setting one up if it has none. Null when out
/// of memory.
#[inline]
pub fn thread_heap() -> *mut Heap {
    let heap = tls::current();
    if is_empty_heap(heap) { thread_heap_slow() } else { heap }
}

/// Runs `f` on the calling thread's heap (its own, or the shared heap
/// under its lock); `fail` when there is none (out of memory).
#[inline]
pub fn with_thread_heap<R>(fail: R, f: impl FnOnce(&mut Heap) -> R) -> R {
    if crate::purger::wanted() {
        // No ptrs lock is held here, so the purger thread may be created.
        crate::purger::start_if_wanted();
    }
    let heap = thread_heap();
    if heap.is_null() {
        return fail;
    }
    if heap == SHARED_MARK.get() {
        return with_shared_heap(fail, f);
    }
    // SAFETY: `heap` is the calling thread's real heap.
    f(unsafe { &mut *heap })
}

#[cold]
#[inline(never)]
fn with_shared_heap<R>(fail: R, f: impl FnOnce(&mut Heap) -> R) -> R {
    let heap = shared_heap();
    if heap.is_null() {
        return fail;
    }
    // SAFETY: the shared heap is a real heap, never unmapped.
    let _l = unsafe { SlowLock::lock(heap) };
    // SAFETY: its lock is held: no other thread uses it now.
    f(unsafe { &mut *heap })
}

/// The shared heap, or null if no thread has needed it yet.
#[inline]
pub fn shared_heap_if_made() -> *mut Heap {
    SHARED_HEAP.load(Ordering::Acquire)
}

/// The shared heap, made on first use. Null when out of memory.
fn shared_heap() -> *mut Heap {
    let heap = SHARED_HEAP.load(Ordering::Acquire);
    if !heap.is_null() {
        return heap;
    }
    let heap = new_heap();
    if heap.is_null() {
        return heap;
    }
    match SHARED_HEAP.compare_exchange(ptr::null_mut(), heap, Ordering::AcqRel, Ordering::Acquire) {
        Ok(_) => heap,
        // Another thread made it first; ours stays registered, empty and
        // unowned (a few KiB, once), and is not counted: the statistics'
        // heap count would otherwise depend on how many threads raced here
        // (tst-arena-max saw 4 heaps under its bound of 3, once, with 64
        // threads starting at once under valgrind on a busy machine).
        Err(winner) => {
            // SAFETY: `heap` is ours and on no list but the registry.
            unsafe { (*heap).owned = false };
            let _g = GlobalGuard::lock();
            // SAFETY: GLOBAL is held.
            unsafe { HEAPS.get() }.count -= 1;
            winner
        }
    }
}

/// True if `heap` is a heap with memory (not one of the two static marks).
#[inline]
pub fn is_real(heap: *mut Heap) -> bool {
    !is_empty_heap(heap) && heap != SHARED_MARK.get()
}

#[cold]
#[inline(never)]
#[unsafe(link_section = ".text.hot.ptrs")]
fn thread_heap_slow() -> *mut Heap {
    crate::init::ensure();
    // Under valgrind's memcheck no thread owns a heap: every allocation
    // misses the fast path and every free is a remote free, which is where
    // memcheck mode (`valgrind.rs`) hooks in.
    if crate::valgrind::active() {
        tls::set_current(SHARED_MARK.get());
        return SHARED_MARK.get();
    }
    // The arena limit (`options::arena_max`): with a limit `n`, the first
    // `n - 1` threads (at least one) that need a heap own one and every
    // later thread shares the shared heap, as ptmalloc's `reused_arena`
    // shares arenas beyond its limit.
    let limit = match options::arena_max() {
        0 => usize::MAX,
        n => (n - 1).max(1),
    };
    let (adopted, capped) = loop {
        let _g = GlobalGuard::lock();
        // SAFETY: GLOBAL is held.
        let reg = unsafe { HEAPS.get() };
        if reg.owned >= limit {
            break (ptr::null_mut(), true);
        } else {
            let heap = reg.pool;
            // A collection of the parked heaps holds all of them out of
            // the pool while it works (`collect_parked_with`, which sets
            // PARK_OWNER before it takes the pool under GLOBAL and clears
            // it after it puts them back): wait for them rather than map
            // a heap of our own beside them. The decay tick's collections
            // run every purge delay in a program with parked heaps, and a
            // thread that started during one got a new heap: a tester's
            // thread-per-request program (4 threads a wave, 5 % of the
            // blocks kept in a cache) ended with 8 to 12 heaps instead of
            // 5, each with its own pages. Spun without a lock held, so a
            // signal handler that allocates here waits the same way.
            let collector = PARK_OWNER.load(Ordering::Relaxed);
            if heap.is_null() && collector != 0 && collector != thread_token() {
                drop(_g);
                // SAFETY: sched_yield has no preconditions.
                unsafe { libc::sched_yield() };
                continue;
            }
            if !heap.is_null() {
                // SAFETY: pooled heaps are valid; pool links are under GLOBAL.
                unsafe {
                    reg.pool = (*heap).pool_next;
                    (*heap).pool_next = ptr::null_mut();
                    (*heap).owned = true;
                }
            }
            // Counted now, so that threads starting together respect the limit.
            reg.owned += 1;
            OWNED_HEAPS.store(reg.owned, Ordering::Relaxed);
            break (heap, false);
        }
    };
    if capped {
        tls::set_current(SHARED_MARK.get());
        return SHARED_MARK.get();
    }
    let heap = if adopted.is_null() {
        new_heap()
    } else {
        inherit(adopted);
        adopted
    };
    if heap.is_null() {
        let _g = GlobalGuard::lock();
        // SAFETY: GLOBAL is held.
        let reg = unsafe { HEAPS.get() };
        reg.owned -= 1;
        OWNED_HEAPS.store(reg.owned, Ordering::Relaxed);
        return heap;
    }
    tls::set_current(heap);
    crate::init::register_thread(heap);
    heap
}

#[unsafe(link_section = ".text.hot.ptrs")]
pub(crate) fn new_heap() -> *mut Heap {
    let size = (core::mem::size_of::<Heap>() + os::OS_PAGE_SIZE - 1) & !(os::OS_PAGE_SIZE - 1);
    let heap = os::map(size) as *mut Heap;
    if heap.is_null() {
        return heap;
    }
    // SAFETY: `heap` is a fresh mapping large enough for a Heap; EMPTY_HEAP
    // is a valid template (pointers to the shared empty page, empty queues).
    // The foreign-block cache, last, is left as mapped: all zero is its
    // empty state, and copying it would make its pages resident.
    unsafe {
        let head = core::mem::offset_of!(Heap, foreign);
        ptr::copy_nonoverlapping(EMPTY_HEAP.get() as *const u8, heap as *mut u8, head);
        (*heap).owned = true;
        (*heap).owner_since = os::now_ms();
    }
    let _g = GlobalGuard::lock();
    // The profiler's state is read under GLOBAL, which its start and stop
    // hold while they set every registered heap's: read before, a start
    // between the read and the registration would miss this heap.
    // SAFETY: `heap` is valid and not yet shared.
    unsafe {
        (*heap).sample_left.store(crate::profile::initial_countdown(), Ordering::Relaxed);
        (*heap).sampling.store(crate::profile::armed(), Ordering::Relaxed);
    }
    // SAFETY: GLOBAL is held.
    let reg = unsafe { HEAPS.get() };
    // SAFETY: `heap` is valid; registry links are under GLOBAL.
    unsafe { (*heap).registry_next = reg.all };
    reg.all = heap;
    reg.count += 1;
    heap
}

/// Parks the calling thread's heap at thread exit: collects what other
/// threads freed, returns every empty page, hands its empty segments to the
/// retention policy and purges its other free slices (nothing of it is
/// about to be reused by this thread), and puts the heap in the pool, with
/// the pages that still hold live blocks, for the next new thread.
///
/// # Safety
/// `heap` must be the calling thread's heap.
pub unsafe fn abandon(heap: *mut Heap) {
    {
        // SAFETY: the caller guarantees `heap` is ours.
        let _l = unsafe { SlowLock::lock(heap) };
        // SAFETY: as above.
        unsafe { collect(&mut *heap, true) };
        // SAFETY: as above.
        bequeath(unsafe { &mut *heap });
        // Unowned from here on, while its lock is held: the scans of
        // other heaps check `owned` again once they hold a heap's lock, so
        // none of them holds the lock of a heap being parked (a fork then
        // would give the child a parked heap locked forever).
        let _g = GlobalGuard::lock();
        // SAFETY: GLOBAL is held; `heap` is valid.
        unsafe { (*heap).owned = false };
    }
    crate::retain::on_thread_exit();
    // Thread-exit destructors that run after this one (or in a later round)
    // and allocate use the shared heap: a heap of their own would never be
    // parked, as destructor rounds are limited.
    tls::set_current(SHARED_MARK.get());
    // SAFETY: `heap` is valid.
    let holds_pages = unsafe { !(*heap).segments.is_null() };
    {
        let _g = GlobalGuard::lock();
        // SAFETY: GLOBAL is held; `heap` is valid.
        let reg = unsafe { HEAPS.get() };
        // SAFETY: as above.
        unsafe { (*heap).pool_next = reg.pool };
        reg.pool = heap;
        reg.owned -= 1;
        OWNED_HEAPS.store(reg.owned, Ordering::Relaxed);
    }
    if holds_pages {
        PARKED_PENDING.store(true, Ordering::Relaxed);
        crate::retain::parked_pending(true);
    }
}

/// Collects every parked heap: takes back what other threads freed into
/// them and hands their empty memory to the retention policy. Heaps are
/// taken out of the pool while they are worked on, so no new thread adopts
/// one meanwhile. Called by malloc_trim and statistics (`force` false: only
/// take back remote frees and empty pages, so the figures are exact), and by
/// a thread about to map a new segment when a parked heap may have memory
/// to give.
pub fn collect_parked(force: bool) {
    collect_parked_with(force, force, true);
}

/// [`collect_parked`] for a thread about to map a segment or going idle:
/// empty memory is handed over, free slices purged only once free for a
/// purge delay.
fn collect_parked_reclaim() {
    collect_parked_with(true, false, true);
}

/// What a collection of the parked heaps found.
pub struct ParkedCollection {
    /// Some parked heap still holds pages (live blocks of exited threads).
    pub holds_pages: bool,
    /// Blocks freed by other threads were taken back or segments released.
    pub gave_back: bool,
}

/// The decay tick's collection of the parked heaps (`retain::tick`): as
/// [`collect_parked_reclaim`], but never waits for another collection (nor
/// for one this thread is inside of, when the tick runs from a slow path of
/// that collection). None when it did not run.
pub fn collect_parked_on_tick() -> Option<ParkedCollection> {
    collect_parked_with(true, false, false)
}

/// Held while the parked heaps are out of the pool (taken out, worked on,
/// put back), and across `fork` (see [`fork_prepare`]): a child forked in
/// between would otherwise find the pool empty and never reuse the heaps
/// of the threads that exited before it (a review: 81 of 300 children).
static PARK_LOCK: RawLock = RawLock::new();
/// The thread holding [`PARK_LOCK`] (its token), 0 when free: a fork from
/// a signal handler that interrupted that very thread must not wait for it.
static PARK_OWNER: AtomicUsize = AtomicUsize::new(0);
/// What `fork_prepare` took, for `fork_parent` to release (under GLOBAL,
/// held across the fork).
static FORK_TOOK_OWN: AtomicBool = AtomicBool::new(false);
static FORK_TOOK_SHARED: AtomicBool = AtomicBool::new(false);
static FORK_TOOK_PARK: AtomicBool = AtomicBool::new(false);

/// `force`: every empty page goes (see [`collect`]); `purge_all`: free
/// slices are purged now; `wait`: wait for a collection under way in
/// another thread rather than leave the work pending for the next one.
fn collect_parked_with(force: bool, purge_all: bool, wait: bool) -> Option<ParkedCollection> {
    // PARK_LOCK, which `fork_prepare` takes after glibc's stdio list lock,
    // is held below (see `SignalsBlocked`: a tester's handler that forked
    // inside a collection waited for the stdio lock of a second forking
    // thread, which waited for PARK_LOCK).
    let _sig = SignalsBlocked::new();
    if !PARK_LOCK.try_lock() {
        if !force || !wait || PARK_OWNER.load(Ordering::Relaxed) == thread_token() {
            // Another thread is at it (or this thread, interrupted by a
            // signal handler that allocates, or ticking from inside the
            // collection): leave the work pending.
            PARKED_PENDING.store(true, Ordering::Relaxed);
            return None;
        }
        PARK_LOCK.lock();
    }
    PARK_OWNER.store(thread_token(), Ordering::Relaxed);
    PARKED_PENDING.store(false, Ordering::Relaxed);
    let mut list = {
        let _g = GlobalGuard::lock();
        // SAFETY: GLOBAL is held.
        let reg = unsafe { HEAPS.get() };
        let list = reg.pool;
        reg.pool = ptr::null_mut();
        list
    };
    let mut kept: *mut Heap = ptr::null_mut();
    let mut kept_last: *mut Heap = ptr::null_mut();
    let mut holds_pages = false;
    let mut gave_back = false;
    while !list.is_null() {
        // SAFETY: the heaps taken from the pool are valid and now
        // exclusively ours until they are put back.
        unsafe {
            let next = (*list).pool_next;
            {
                let _l = SlowLock::lock(list);
                gave_back |= gives_back(&mut *list, |h| {
                    collect(h, force);
                    if purge_all {
                        // A trim: the insides of free blocks too, as for
                        // live threads' heaps (no owner pops a parked
                        // heap's lists; its lock is held). A tester's 4
                        // threads that freed 9 of 10 blocks of 8 to 64 KB
                        // and exited kept 213 MB through malloc_trim(0)
                        // (glibc 34 MB).
                        purge_free_block_insides(h);
                        purge(h, true);
                    }
                });
            }
            holds_pages |= !(*list).segments.is_null();
            (*list).pool_next = kept;
            if kept.is_null() {
                kept_last = list;
            }
            kept = list;
            list = next;
        }
    }
    if !kept.is_null() {
        let _g = GlobalGuard::lock();
        // SAFETY: GLOBAL is held; `kept_last` ends the list taken above.
        let reg = unsafe { HEAPS.get() };
        // SAFETY: as above.
        unsafe { (*kept_last).pool_next = reg.pool };
        reg.pool = kept;
    }
    // The shared heap (threads beyond the arena limit) is like a parked
    // heap once its users have gone quiet: nobody takes back what other
    // threads freed into it (a tester: with PTRS_ARENA_MAX=2, 93 MiB that a
    // thread allocated there and main freed after it exited stayed
    // resident). Its users take back remote frees in their own slow paths,
    // so it is left to them while they are active.
    let shared = SHARED_HEAP.load(Ordering::Acquire);
    if !shared.is_null() {
        let now = os::now_ms();
        // SAFETY: the shared heap is never unmapped; it is changed only
        // under its lock, which every user takes.
        unsafe {
            let idle = (*shared).last_active.load(Ordering::Relaxed) + crate::retain::wait_ms() <= now;
            if idle && let Some(_l) = SlowLock::try_lock_unwanted(shared) {
                gave_back |= gives_back(&mut *shared, |h| collect(h, false));
            }
            holds_pages |= !(*shared).segments.is_null();
        }
    }
    PARK_OWNER.store(0, Ordering::Relaxed);
    PARK_LOCK.unlock();
    if holds_pages {
        PARKED_PENDING.store(true, Ordering::Relaxed);
        if wait {
            // The tick schedules its own next collection.
            crate::retain::parked_pending(false);
        }
    }
    Some(ParkedCollection { holds_pages, gave_back })
}

/// Runs `work` on `heap` and says whether it took back blocks other
/// threads freed or gave back segments.
fn gives_back(heap: &mut Heap, work: impl FnOnce(&mut Heap)) -> bool {
    let (collected, segments) = (heap.counters.remote_collected, segment_count(heap));
    work(heap);
    heap.counters.remote_collected != collected || segment_count(heap) != segments
}

/// Segments the heap owns.
fn segment_count(heap: &Heap) -> usize {
    let mut n = 0;
    let mut seg = heap.segments;
    while !seg.is_null() {
        n += 1;
        // SAFETY: the heap's segments are live and linked through `next`.
        seg = unsafe { (*seg).next };
    }
    n
}

/// Calls `visit` for every registered heap other than the calling
/// thread's, without holding GLOBAL while it runs: the registry only grows
/// at its head and heaps are never unmapped, so the list from a snapshot
/// of its head on stays valid. `visit` may take heap locks and GLOBAL.
fn for_each_other_heap(mut visit: impl FnMut(*mut Heap)) {
    let me = tls::current();
    let first = {
        let _g = GlobalGuard::lock();
        // SAFETY: GLOBAL is held.
        unsafe { HEAPS.get() }.all
    };
    let mut heap = first;
    while !heap.is_null() {
        if heap != me {
            visit(heap);
        }
        // SAFETY: registered heaps are valid forever.
        heap = unsafe { (*heap).registry_next };
    }
}

/// Purges the free memory of every heap that another live thread owns:
/// free slices and empty segments (not its pages, which only the owner may
/// touch). A heap whose slow-path lock is busy, or wanted by a thread that
/// waits for it, is skipped: its owner is in a slow path, which purges by
/// itself (`SlowLock::try_lock_unwanted`). `all`: everything free now;
/// otherwise what has been free for one to two purge delays, less the
/// share a heap in use keeps (`retain::kept_free_bytes`: the owner is
/// alive and may be between two phases; `ptrs_thread_idle` and
/// `malloc_trim` give that back too).
pub fn purge_other_heaps(all: bool) {
    if all {
        // Heaps whose lock is busy give their kept blocks back themselves.
        crate::foreign::request_give_back();
    }
    // Other threads' heap locks are held below (see `SignalsBlocked`).
    let _sig = SignalsBlocked::new();
    for_each_other_heap(|heap| {
        // SAFETY: registered heaps are valid forever; the lock is taken
        // before anything of the heap is changed.
        unsafe {
            if !(*heap).owned {
                return;
            }
            if let Some(_l) = SlowLock::try_lock_unwanted(heap) {
                if !(*heap).owned {
                    return; // parked meanwhile (see `abandon`)
                }
                if heap == SHARED_HEAP.load(Ordering::Relaxed) {
                    collect(&mut *heap, all);
                    if all {
                        // Its users pop only under the lock held here.
                        purge_free_block_insides(&mut *heap);
                    }
                } else {
                    // The blocks it keeps from other heaps (`foreign.rs`):
                    // all of them for a trim, else those of a thread that
                    // has made no slow path for a purge delay (the
                    // background purger's sweeps).
                    let idle = (*heap).last_active.load(Ordering::Relaxed) + options::purge_delay_ms()
                        <= os::now_ms();
                    if all || idle {
                        crate::foreign::give_back_all(&mut (*heap).foreign);
                    }
                    collect_all_freed_pages(&mut *heap);
                    // The empty first pages of classes above 1 KiB: all of
                    // them for a trim, else those of a thread that has
                    // made no slow path for a purge delay.
                    if (all || idle) && is_thread_heap(heap) {
                        // The insides of its free blocks: at a trim, and
                        // once per quiet spell of an idle owner (each
                        // block's purge asks mincore first, which a sweep
                        // every purge delay would repeat for nothing).
                        let h = &mut *heap;
                        let active = h.last_active.load(Ordering::Relaxed);
                        let insides = all || h.insides_purged_at != active;
                        h.insides_purged_at = active;
                        take_empty_queue_heads(h, insides);
                    }
                    if all {
                        purge_pending_blocks(&mut *heap);
                    }
                }
                if all {
                    purge(&mut *heap, true);
                } else {
                    maybe_purge(&mut *heap);
                }
            }
        }
    });
}

/// Takes the slow-path lock of `heap`, a heap the child of a `fork` may
/// use that no single thread owns (the shared heap, the profiler's heap),
/// and keeps it across `fork`: another thread of the parent may hold it to
/// purge or collect the heap, and the child, where that thread does not
/// exist, would otherwise find it held forever and the heap mid-update.
/// Released by [`unlock_after_fork`] in the parent and the child. False
/// when the calling thread already held it (a fork from a signal handler
/// that interrupted a slow path of `heap`): then it is not released.
///
/// # Safety
/// `heap` must be a real heap (heaps are never unmapped); only from a fork
/// prepare handler.
pub unsafe fn lock_across_fork(heap: *mut Heap) -> bool {
    // SAFETY: the caller guarantees `heap` is valid.
    let l = unsafe { SlowLock::lock(heap) };
    let took = l.release;
    core::mem::forget(l);
    took
}

/// Releases what [`lock_across_fork`] took (in the child, whose only
/// thread is the one that took it).
///
/// # Safety
/// `heap` must have been locked by [`lock_across_fork`] in this fork.
pub unsafe fn unlock_after_fork(heap: *mut Heap) {
    // SAFETY: the caller guarantees `heap` is valid and held by us.
    unsafe { (*heap).slow_lock.store(0, Ordering::Release) };
}

/// Before `fork` (before GLOBAL): takes the shared heap's lock, so that
/// the child finds the shared heap consistent (another thread may be
/// using it); the forking thread's own heap's lock (another thread may be
/// purging it or taking back its freed pages); and the parked heaps' lock
/// ([`PARK_LOCK`]: the pool of parked heaps is whole in the child).
pub fn fork_prepare() {
    let shared = SHARED_HEAP.load(Ordering::Acquire);
    // Not taken when this thread holds it already (a fork from a signal
    // handler that interrupted an allocation from the shared heap): the
    // interrupted update releases it when it is done, in the parent and in
    // the child. Releasing it after the fork let the other users of the
    // shared heap in while the update was half done (tester8: live blocks
    // overwritten, "corrupted remote free list", 3 runs of 3).
    // SAFETY: the shared heap is never unmapped; released by
    // `fork_parent` or `after_fork_child`.
    let took_shared = !shared.is_null() && unsafe { lock_across_fork(shared) };
    let own = tls::current();
    // SAFETY: this thread's heap; released as above.
    let took_own = is_real(own) && own != shared && unsafe { lock_across_fork(own) };
    let took_park = PARK_OWNER.load(Ordering::Relaxed) != thread_token();
    if took_park {
        PARK_LOCK.lock();
        // Owned by this thread: an allocation from a prepare handler that
        // runs after ptrs's leaves the parked heaps' work pending instead
        // of waiting for this lock (`collect_parked_with`).
        PARK_OWNER.store(thread_token(), Ordering::Relaxed);
    }
    FORK_TOOK_OWN.store(took_own, Ordering::Relaxed);
    FORK_TOOK_SHARED.store(took_shared, Ordering::Relaxed);
    FORK_TOOK_PARK.store(took_park, Ordering::Relaxed);
}

/// In the parent after `fork`: releases what `fork_prepare` took.
pub fn fork_parent() {
    if FORK_TOOK_PARK.load(Ordering::Relaxed) {
        PARK_OWNER.store(0, Ordering::Relaxed);
        PARK_LOCK.unlock();
    }
    let shared = SHARED_HEAP.load(Ordering::Acquire);
    if FORK_TOOK_OWN.load(Ordering::Relaxed) {
        // SAFETY: taken by `fork_prepare`.
        unsafe { unlock_after_fork(tls::current()) };
    }
    if FORK_TOOK_SHARED.load(Ordering::Relaxed) {
        // SAFETY: as in `fork_prepare`; this thread took the lock there.
        unsafe { unlock_after_fork(shared) };
    }
}

/// In the child after `fork`: a thread of the parent may have held the
/// forking thread's heap lock (to purge it); that thread does not exist
/// here.
pub fn after_fork_child() {
    PARK_OWNER.store(0, Ordering::Relaxed);
    PARK_LOCK.reset();
    let shared = SHARED_HEAP.load(Ordering::Relaxed);
    if FORK_TOOK_SHARED.load(Ordering::Relaxed) {
        // SAFETY: the shared heap is never unmapped. Its lock was taken by
        // `fork_prepare`.
        unsafe { unlock_after_fork(shared) };
    }
    let heap = tls::current();
    if is_real(heap) {
        // SAFETY: `heap` is the calling thread's real heap.
        unsafe { (*heap).slow_lock.store(0, Ordering::Relaxed) };
    }
    // Threads of the parent that were waiting for a heap's lock do not
    // exist here: their counts would make the sweeps skip that heap for
    // good (`SlowLock::try_lock_unwanted`).
    for_each_heap(|h| h.slow_waiters.store(0, Ordering::Relaxed));
    // The heaps other threads of the parent owned: statistics try their
    // locks once. A snapshot another thread was taking does not go on
    // here; the heap locks it held stay held (the heaps may be mid-update),
    // its marks are cleared.
    let in_statistics = IN_STATISTICS.with(|c| c.get());
    if !in_statistics {
        STATISTICS_LOCK.reset();
    }
    let _g = GlobalGuard::lock();
    // SAFETY: GLOBAL is held.
    let mut h = unsafe { HEAPS.get() }.all;
    while !h.is_null() {
        // SAFETY: registered heaps are valid forever; this is the child's
        // only thread, and GLOBAL is held.
        unsafe {
            if h != heap && h != shared && (*h).owned {
                (*h).forked_away = true;
            }
            if !in_statistics {
                (*h).statistics_held = false;
            }
            h = (*h).registry_next;
        }
    }
}

/// Gives back everything the calling thread's own heap holds free, if it
/// has one: takes back what other threads freed into it, returns its
/// empty pages, purges its free slices and the inside of its free blocks
/// of 8 KiB and more (`malloc_trim` and `ptrs_thread_idle`).
pub fn release_own_heap() {
    let heap = tls::current();
    if !is_real(heap) {
        return;
    }
    // SAFETY: `heap` is the calling thread's real heap, held under its
    // slow-path lock for the rest.
    unsafe {
        let _l = SlowLock::lock(heap);
        collect(&mut *heap, true);
        purge(&mut *heap, true);
        purge_free_block_insides(&mut *heap);
    }
}

/// `ptrs_thread_idle`: the calling thread is about to block for a while.
/// Takes back what other threads freed into its heap, returns its empty
/// pages and purges its free memory now, as at thread exit but keeping the
/// heap.
pub fn thread_idle() {
    // A thread without a heap of its own (one that allocated only huge
    // blocks, which take none) still ends its demand for huge blocks
    // below (a tester: 48 MiB stayed cached after its idle call).
    release_own_heap();
    // What this thread freed into the heaps of exited threads may be all
    // that keeps their segments: it is going idle, perhaps the last thread
    // to run for a while.
    if PARKED_PENDING.load(Ordering::Relaxed) {
        collect_parked_reclaim();
    }
    crate::retain::on_thread_exit();
}

/// Visits every heap ever made (statistics) under GLOBAL.
pub fn for_each_heap(mut visit: impl FnMut(&Heap)) -> usize {
    let _g = GlobalGuard::lock();
    // SAFETY: GLOBAL is held.
    let reg = unsafe { HEAPS.get() };
    let mut heap = reg.all;
    while !heap.is_null() {
        // SAFETY: heaps are never unmapped.
        unsafe {
            visit(&*heap);
            heap = (*heap).registry_next;
        }
    }
    reg.count
}


// ---------------------------------------------------------------------------
// Slow paths of allocation.

/// Pops a block of class `bin`, refilling the class's first page if needed.
/// Null when out of memory.
///
/// The pop from the queue head runs without the slow-path lock, so it is
/// one side of a handshake with a thread that takes the heap's empty
/// queue heads ([`take_empty_queue_heads`]): the owner raises
/// `pop_depth` and then reads `heads_claimed` with only a compiler fence
/// between (two stores and a load; no fence instruction on the way of
/// every allocation above 1 KiB); the taker sets `heads_claimed`, makes
/// every running thread pass a full barrier (`os::membarrier_all_threads`)
/// and only then reads `pop_depth`. Either the taker sees the owner's
/// pop under way and takes nothing, or the owner sees the claim and pops
/// under the lock, which the taker holds while it takes.
///
/// # Safety
/// `heap` must be the calling thread's (real) heap, or a heap the caller
/// has to itself (the shared heap under its lock, a pool's heap).
#[inline]
#[unsafe(link_section = ".text.hot.ptrs")]
pub unsafe fn alloc_bin(heap: &mut Heap, bin: usize) -> *mut u8 {
    pop_depth_step::<true>(heap);
    core::sync::atomic::compiler_fence(Ordering::SeqCst);
    let b = if heap.heads_claimed.load(Ordering::Relaxed) {
        alloc_bin_claimed(heap, bin)
    } else {
        // SAFETY: as the caller guarantees.
        unsafe { alloc_bin_unclaimed(heap, bin) }
    };
    // After the pop's stores (the page's list and count).
    core::sync::atomic::compiler_fence(Ordering::SeqCst);
    pop_depth_step::<false>(heap);
    b
}

/// [`alloc_bin`] while another thread takes queue heads: under the lock.
#[cold]
#[inline(never)]
fn alloc_bin_claimed(heap: &mut Heap, bin: usize) -> *mut u8 {
    // SAFETY: `heap` is a real heap (alloc_bin's caller); the lock is
    // re-entrant.
    let _l = unsafe { SlowLock::lock(heap) };
    // SAFETY: as alloc_bin's caller guarantees.
    unsafe { alloc_bin_unclaimed(heap, bin) }
}

/// Adds 1 (`ENTER`) or -1 to a heap's `pop_depth`: its owner's thread is
/// its only writer, so on x86-64 one `inc` or `dec` of memory, which is
/// also a release store there (other threads read it with an acquire
/// load). Elsewhere a relaxed load and a release store.
#[inline(always)]
fn pop_depth_step<const ENTER: bool>(heap: &Heap) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `heap.pop_depth` is a valid, aligned u32 at that offset of
    // `heap`; the `inc`/`dec` is one atomic read-modify-write of it on
    // x86-64 (not locked, which only the owner's thread writing needs),
    // and x86-64 keeps the stores before it before it.
    unsafe {
        if ENTER {
            core::arch::asm!("inc dword ptr [{h} + {off}]", h = in(reg) heap as *const Heap,
                off = const core::mem::offset_of!(Heap, pop_depth), options(nostack));
        } else {
            core::arch::asm!("dec dword ptr [{h} + {off}]", h = in(reg) heap as *const Heap,
                off = const core::mem::offset_of!(Heap, pop_depth), options(nostack));
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let d = &heap.pop_depth;
        let v = d.load(Ordering::Relaxed);
        d.store(if ENTER { v.wrapping_add(1) } else { v.wrapping_sub(1) }, Ordering::Release);
    }
}

/// [`alloc_bin`] without the handshake.
///
/// # Safety
/// As [`alloc_bin`].
#[inline(always)]
unsafe fn alloc_bin_unclaimed(heap: &mut Heap, bin: usize) -> *mut u8 {
    let mut page = heap.bins[bin].first;
    // SAFETY: queue pages are live pages of this heap.
    unsafe {
        if page.is_null() || page::at_end(page, (*page).free) {
            // Blocks this thread freed into other threads' pages first
            // (`foreign.rs`): they are free memory, the page's tail is not.
            // Not from a signal handler that interrupted this thread in a
            // slow path (its lock held here): the cache may be mid-update.
            if heap.foreign.has(bin) && !slow_lock_held_here(heap) {
                let _l = SlowLock::lock(heap as *mut Heap);
                let b = crate::foreign::take(heap, bin);
                if !b.is_null() {
                    return b;
                }
            }
            page = refill(heap, bin);
            if page.is_null() {
                return ptr::null_mut();
            }
        }
        pop(&mut *page)
    }
}

/// Pops the first block of a page whose free list is not empty.
///
/// # Safety
/// `page` must be a live page of the calling thread's heap with a block on
/// its free list.
#[inline(always)]
pub unsafe fn pop(page: &mut Page) -> *mut u8 {
    // SAFETY: the caller's guarantee.
    unsafe { pop_block(page, page.free) }
}

/// [`pop`] with the head of the free list already loaded by the caller.
///
/// # Safety
/// As [`pop`], and `block` must be `page.free`.
#[inline(always)]
pub unsafe fn pop_block(page: &mut Page, block: *mut page::Block) -> *mut u8 {
    // SAFETY: as the caller guarantees.
    let b = unsafe { try_pop_block(page, block) };
    if b.is_null() {
        // SAFETY: `block` heads the page's free list (caller).
        let problem = if unsafe { (*block).mark } != page.key {
            "double free or write after free detected"
        } else {
            "corrupted free list detected"
        };
        crate::diag::heap_error_fatal("malloc", problem, block as usize);
    }
    b
}

/// [`pop_block`] for the fast paths of malloc and the pools: null instead
/// of the report when the next link is corrupted, the page left as it was,
/// so that the fast path makes no call and needs no stack frame. The
/// caller's slow path then pops the same page (the first of its class,
/// which the direct table names) with [`pop`], which reports it.
///
/// # Safety
/// As [`pop_block`].
#[inline(always)]
pub unsafe fn try_pop_block(page: &mut Page, block: *mut page::Block) -> *mut u8 {
    // SAFETY: the free list holds free blocks of this page.
    unsafe {
        // A block on a free list carries the free mark; one that does not
        // was handed out already (freed twice, so it is on the list twice)
        // or written after its free. Its line is loaded for the link anyway.
        if (*block).mark != page.key {
            return ptr::null_mut();
        }
        try_pop_marked(page, block, page.key)
    }
}

/// [`try_pop_block`] after its test of the free mark, which the caller
/// made: malloc's fast path, which tests the mark first (see
/// `page::KEY_TAG`).
///
/// # Safety
/// As [`pop_block`], `block` must carry the free mark of `page` and `key`
/// must be `page.key` (passed in so that a caller holding it in a
/// register need not load it again).
#[inline(always)]
pub unsafe fn try_pop_marked(page: &mut Page, block: *mut page::Block, key: usize) -> *mut u8 {
    // SAFETY: the free list holds free blocks of this page.
    unsafe {
        // The list ends at the page descriptor, in the same segment.
        let next = page::next_of(block, key);
        if !page::same_segment(next, page) {
            return ptr::null_mut();
        }
        page.free = next;
        (*block).mark = 0;
    }
    page.used += 1;
    block as *mut u8
}

/// Finds (or makes) a page of class `bin` with a free block and puts it
/// first in its queue. Null when out of memory.
///
/// # Safety
/// `heap` must be the calling thread's (real) heap.
#[cold]
#[inline(never)]
#[unsafe(link_section = ".text.hot.ptrs")]
pub unsafe fn refill(heap: &mut Heap, bin: usize) -> *mut Page {
    // SAFETY: `heap` is ours (caller).
    let _l = unsafe { SlowLock::lock(heap) };
    heap.counters.page_refills += 1;
    let now = os::now_ms();
    heap.last_active.store(now, Ordering::Relaxed);
    // SAFETY: `heap` is ours, its lock held.
    unsafe { crate::foreign::tick(heap, now) };
    // SAFETY: `heap` is ours (caller).
    unsafe {
        if !heap.notify.load(Ordering::Relaxed).is_null() {
            process_notify(heap);
        }
        maybe_purge(heap);
        let mut page = heap.bins[bin].first;
        while !page.is_null() {
            let next = (*page).next;
            let p = &mut *page;
            if page::at_end(p, p.free) {
                heap.counters.remote_collected += page::collect_remote(p, false) as u64;
            }
            if page::at_end(p, p.free) {
                page::extend(p);
            }
            if !page::at_end(p, p.free) {
                if heap.bins[bin].first != page {
                    heap.remove_page(bin, page);
                    heap.push_page(bin, page);
                }
                return page;
            }
            move_to_full(heap, page);
            page = next;
        }
        let page = new_page(heap, bin);
        if page.is_null() {
            return page;
        }
        heap.push_page(bin, page);
        page::extend(&mut *page);
        purge_first_page_tail(heap, bin, &mut *page);
        page
    }
}

/// Moves a page with no free block to the full list and asks remote freers
/// to notify. If remote frees arrived meanwhile, collects them and leaves
/// the page where it is.
///
/// # Safety
/// `page` must be on queue `page.bin` of `heap`, the calling thread's heap.
unsafe fn move_to_full(heap: &mut Heap, page: *mut Page) {
    // SAFETY: the caller guarantees the page is a live queued page of ours.
    unsafe {
        let p = &mut *page;
        if p.thread_free.compare_exchange(0, TF_WANT_NOTIFY, Ordering::AcqRel, Ordering::Relaxed).is_err() {
            // Remote frees came in; they will be collected when this page is
            // next at the head of its queue.
            return;
        }
        heap.remove_page(p.bin as usize, page);
        p.used |= IN_FULL;
        heap.full.push_front(page);
    }
}

/// Takes a page off the full list and back into its queue (front).
///
/// # Safety
/// `page` must be on `heap.full`.
unsafe fn unfull(heap: &mut Heap, page: *mut Page) {
    // SAFETY: the caller guarantees the page is on the full list of `heap`.
    unsafe {
        let p = &mut *page;
        // Stop asking for notifications, unless one is already on its way (then
        // `process_notify` clears the flags when it takes the page).
        let mut tf = p.thread_free.load(Ordering::Relaxed);
        while tf & TF_NOTIFIED == 0 {
            match p.thread_free.compare_exchange_weak(tf, tf & !TF_FLAGS, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => break,
                Err(cur) => tf = cur,
            }
        }
        heap.full.remove(page);
        p.used &= !IN_FULL;
        // In front when the class's first page has nothing left to hand
        // out: the next malloc of the class then pops the block just freed
        // on its fast path, where it went through `refill` to reach this
        // page at the back. A fresh tester's random replacement of
        // 1 KiB blocks among 20 000 live (one free block per page in the
        // steady state) took a refill for nearly every malloc.
        let bin = p.bin as usize;
        let first = heap.bins[bin].first;
        if !first.is_null() && page::at_end(first, (*first).free) && remote_count(&*first) == 0 {
            heap.push_page(bin, page);
        } else {
            heap.push_page_back(bin, page);
        }
    }
}

/// A fresh page of class `bin`, not on any queue. Null when out of memory.
fn new_page(heap: &mut Heap, bin: usize) -> *mut Page {
    let slices = bin_slices(bin);
    let page = alloc_span(heap, slices);
    if page.is_null() {
        return page;
    }
    heap.counters.pages_allocated += 1;
    let bytes = slices << segment::SLICE_SHIFT;
    heap.small_live += bytes;
    let window = crate::retain::page_demand_window();
    heap.small_demand.note(os::now_ms(), window, heap.small_live);
    note_owner_peak(heap);
    crate::retain::note_small_pages(bytes as isize);
    // SAFETY: `alloc_span` returned a claimed, initialised page of ours.
    let p = unsafe { &mut *page };
    let size = bin_size(bin);
    p.bin = bin as u8;
    p.set_block_size(size);
    p.reserved = ((slices << segment::SLICE_SHIFT) / size) as u32;
    page
}

/// Claims `count` free slices in one of the heap's segments (acquiring a new
/// segment if none has room). Null when out of memory.
#[unsafe(link_section = ".text.hot.ptrs")]
pub fn alloc_span(heap: &mut Heap, count: usize) -> *mut Page {
    let mut found = None;
    // SAFETY: segments on the heap's list are live and owned by it.
    walk_segments(heap, count, 1, |seg| match segment::find_span(unsafe { &*seg }, count) {
        Some(index) => {
            found = Some((seg, index));
            true
        }
        None => false,
    });
    match found {
        Some((seg, index)) => {
            heap.span_cursor = seg;
            // SAFETY: as above; the run is free.
            unsafe { segment::claim_span(&mut *seg, index, count, heap as *mut Heap) }
        }
        None => alloc_span_in_new_segment(heap, count, 1, 1),
    }
}

/// Calls `visit` on the heap's segments in next-fit order, until it
/// returns true: from the segment where the last search found its span
/// ([`Heap::span_cursor`]) to the list's end, then from the head to that
/// segment; in both legs it stops at [`no_fit_end`]. Returns whether
/// `visit` stopped the walk.
///
/// From the head every time (first fit), a program that frees blocks all
/// over a big heap and allocates them again filled the holes nearest the
/// head first, and each search read every segment it had filled before
/// finding a hole: 10 000 blocks of 600 000 bytes allocated into the
/// holes of 10 000 freed ones took 25 us each (mimalloc 0.2 us).
fn walk_segments(heap: &Heap, count: usize, step: usize, mut visit: impl FnMut(*mut Segment) -> bool) -> bool {
    let end = no_fit_end(heap, count, step);
    let start = heap.span_cursor;
    let mut seg = if start.is_null() { heap.segments } else { start };
    while !seg.is_null() && seg != end {
        if visit(seg) {
            return true;
        }
        // SAFETY: segments on the heap's list are live and owned by it.
        seg = unsafe { (*seg).next };
    }
    if start.is_null() {
        return false;
    }
    seg = heap.segments;
    while !seg.is_null() && seg != end && seg != start {
        if visit(seg) {
            return true;
        }
        // SAFETY: as above.
        seg = unsafe { (*seg).next };
    }
    false
}

/// Where a search for `count` free slices starting at a multiple of `step`
/// slices (a power of two; 1: anywhere) may stop: the segment from which
/// on the last failed search found no room for as many at a multiple of
/// as many (null: the list's end). Multiples of a larger power of two are
/// among those of a smaller one.
fn no_fit_end(heap: &Heap, count: usize, step: usize) -> *mut Segment {
    if count >= heap.no_fit_count && step >= heap.no_fit_step { heap.no_fit_stop } else { ptr::null_mut() }
}

/// Claims `count` slices in a new segment, once a search of the heap's
/// segments found no free run of `count` slices: records that, so that
/// the next searches for as many read only the segments added since
/// ([`Heap::no_fit_count`]). Without it every large block of a heap
/// growing in large blocks read every segment header whenever its newest
/// segment was full (a cache and TLB miss each: 20 000 blocks of 256 KiB
/// averaged 9.3 us per malloc and touch, and rising with the heap;
/// mimalloc 2.3 us, glibc 3.6 us). Null when out of memory.
///
/// The search found no room for `count` slices at a multiple of
/// `no_fit_step` slices (1: anywhere); the new span starts at a multiple
/// of `step` slices (as in [`alloc_span_aligned`]; 1: anywhere).
fn alloc_span_in_new_segment(heap: &mut Heap, count: usize, no_fit_step: usize, step: usize) -> *mut Page {
    if PARKED_PENDING.load(Ordering::Relaxed) {
        // Memory other threads freed into the heaps of exited threads may
        // have left whole segments empty: take those before mapping more.
        collect_parked_reclaim();
    }
    // Likewise the pages other threads freed entirely in the heaps of
    // dormant threads (blocked for a while: they would not take them back).
    collect_dormant_heaps();
    // Neither touches this heap's segments (they look at other heaps).
    if !heap.segments.is_null() {
        heap.no_fit_count = count;
        heap.no_fit_step = no_fit_step;
        heap.no_fit_stop = heap.segments;
    }
    heap.span_cursor = ptr::null_mut();
    let seg = add_segment(heap);
    if seg.is_null() {
        return ptr::null_mut();
    }
    // SAFETY: `seg` is a fresh segment now owned by this heap: slices
    // 1.. are free, and so are `step..step + count` (`step + count` is at
    // most a segment's slices).
    unsafe {
        let index = if step > 1 { step } else { segment::find_span(&*seg, count).unwrap_or(1) };
        segment::claim_span(&mut *seg, index, count, heap as *mut Heap)
    }
}

/// Maps (or takes from the retained ones) a segment for `heap` and puts it
/// first on its list. Null when out of memory.
fn add_segment(heap: &mut Heap) -> *mut Segment {
    let seg = segment::acquire(heap as *mut Heap);
    if seg.is_null() {
        return seg;
    }
    // SAFETY: `seg` is a fresh segment now owned by this heap.
    unsafe {
        (*seg).next = heap.segments;
        if !heap.segments.is_null() {
            (*heap.segments).prev = seg;
        }
    }
    heap.segments = seg;
    seg
}

/// Claims `count` free slices starting at a multiple of `step` slices (a
/// power of two above 1, with `step + count` at most a segment's slices):
/// a span aligned to `step` slices, in the heap's segment with the most
/// resident slices there, else in a new segment. Null when out of memory.
fn alloc_span_aligned(heap: &mut Heap, count: usize, step: usize) -> *mut Page {
    let mut best: Option<(*mut Segment, segment::SpanFit)> = None;
    // As in `alloc_span_resident`, the search ends SPAN_SEARCH_SLACK
    // segments after the best fit so far: 100 000 live `memalign(128 KiB,
    // 100)` blocks in 3 226 segments took 4.4 s when every allocation
    // looked at all of them for a resident fit (0.67 s then).
    let mut since_best = 0;
    // Whether a segment has a free run of `count` slices, aligned or not:
    // a failed search records that none has room at a multiple of `step`
    // (`Heap::no_fit_count`), or, when none has such a run at all, that
    // none has room anywhere, as `alloc_span`'s failures do. Without the
    // record, the live `memalign` blocks above filled a segment every 31
    // allocations, and the next read every segment header.
    // The segments past the end of the walk are known to have no room at
    // a multiple of `step`, not to have no run.
    let mut any_run = !no_fit_end(heap, count, step).is_null() && heap.no_fit_step > 1;
    walk_segments(heap, count, step, |seg| {
        // SAFETY: segments on the heap's list are live and owned by it.
        let s = unsafe { &*seg };
        match segment::find_aligned_span(s, count, step) {
            Some(fit) if best.is_none_or(|(_, b)| fit.dirty > b.dirty) => {
                best = Some((seg, fit));
                since_best = 0;
                if fit.dirty as usize == count {
                    return true;
                }
            }
            Some(_) => {}
            None => any_run = any_run || segment::find_span(s, count).is_some(),
        }
        if best.is_some() {
            since_best += 1;
        }
        since_best > SPAN_SEARCH_SLACK
    });
    match best {
        // SAFETY: as above; the run is free.
        Some((seg, fit)) => unsafe { segment::claim_span(&mut *seg, fit.index, count, heap as *mut Heap) },
        None => alloc_span_in_new_segment(heap, count, if any_run { step } else { 1 }, step),
    }
}

/// How many more segments a large block's span search reads once it holds
/// a fit (see `alloc_span_resident`).
const SPAN_SEARCH_SLACK: usize = 8;

/// How many segments with lately freed spans a heap remembers
/// ([`Heap::span_hints`]).
pub const SPAN_HINTS: usize = 16;

/// Remembers that a span of `seg` was just freed (its slices are free and
/// resident until the decay purges them): first in [`Heap::span_hints`].
/// The heap's segments may now hold longer free runs than its last failed
/// search found ([`Heap::no_fit_count`]), which is forgotten.
///
/// # Safety
/// `seg` is one of `heap`'s segments; the caller holds its slow-path lock.
pub unsafe fn note_span_freed(heap: &mut Heap, seg: *mut Segment) {
    heap.no_fit_count = usize::MAX;
    heap.no_fit_stop = ptr::null_mut();
    let hints = &mut heap.span_hints;
    let at = hints.iter().position(|&h| h == seg).unwrap_or(SPAN_HINTS - 1);
    hints[..=at].rotate_right(1);
    hints[0] = seg;
}

/// Forgets `seg` as a hint of `heap`'s, and as the start and the end of
/// its searches ([`Heap::span_cursor`], [`Heap::no_fit_stop`]): it leaves the heap (to the retention policy or
/// the OS), and the search must not read it. The caller holds the heap's
/// slow-path lock.
fn forget_span_hint(heap: &mut Heap, seg: *mut Segment) {
    if heap.no_fit_stop == seg {
        heap.no_fit_count = usize::MAX;
        heap.no_fit_stop = ptr::null_mut();
    }
    if heap.span_cursor == seg {
        heap.span_cursor = ptr::null_mut();
    }
    for h in heap.span_hints.iter_mut() {
        if *h == seg {
            *h = ptr::null_mut();
        }
    }
}

/// A span of `count` slices for a large block: where the most of it is
/// still resident, then the shortest free run (`segment::SpanFit`). Looks
/// first at the segments where spans were freed lately
/// ([`Heap::span_hints`]), where resident free slices are; unless one of
/// them holds a fit all resident, then at the heap's segments in next-fit
/// order ([`walk_segments`]), up to [`SPAN_SEARCH_SLACK`] segments past
/// the best fit found; else in a new segment.
///
/// The list walk used to go on until it met a fit all resident. A heap
/// growing in large blocks has none (its newest segment is fresh, the
/// others full), so every allocation read the header of every segment, a
/// cache and TLB miss each: 20 000 blocks of 256 KiB averaged 9.3 us per
/// malloc and touch, growing with the heap (mimalloc 2.3, glibc 3.6), and
/// after a purge each block of the next round paid the same walk. A heap
/// that freed 1000 blocks of 256 KiB read all 62 segment headers per
/// allocation before the slack rule (a third of rounds256k's allocation
/// time).
fn alloc_span_resident(heap: &mut Heap, count: usize) -> *mut Page {
    let mut best: Option<(*mut Segment, segment::SpanFit)> = None;
    let consider = |seg: *mut Segment, best: &mut Option<(*mut Segment, segment::SpanFit)>| -> bool {
        // SAFETY: hints and listed segments are live segments of this heap
        // (a segment leaving the heap is forgotten as a hint first).
        let fit = unsafe { segment::find_span_fit(&*seg, count) };
        match fit {
            Some(fit) if best.is_none_or(|(_, b)| fit.better_than(&b)) => {
                *best = Some((seg, fit));
                true
            }
            _ => false,
        }
    };
    for i in 0..SPAN_HINTS {
        let seg = heap.span_hints[i];
        if seg.is_null() {
            continue;
        }
        consider(seg, &mut best);
        if best.is_some_and(|(_, b)| b.perfect(count)) {
            break;
        }
    }
    let mut from_walk = false;
    if !best.is_some_and(|(_, b)| b.dirty as usize == count) {
        let mut since_best = 0;
        walk_segments(heap, count, 1, |seg| {
            if consider(seg, &mut best) {
                since_best = 0;
                from_walk = true;
            } else if best.is_some() {
                since_best += 1;
            }
            best.is_some_and(|(_, b)| b.perfect(count)) || since_best > SPAN_SEARCH_SLACK
        });
    }
    match best {
        Some((seg, fit)) => {
            if from_walk {
                heap.span_cursor = seg;
            }
            // SAFETY: as above; the run is free.
            unsafe { segment::claim_span(&mut *seg, fit.index, count, heap as *mut Heap) }
        }
        // The hints are segments of the list, which was read to its end.
        None => alloc_span_in_new_segment(heap, count, 1, 1),
    }
}

/// A large block: a span of `count` slices holding one block. Remote frees
/// of it notify the owner. Null when out of memory.
///
/// # Safety
/// `heap` must be the calling thread's (real) heap.
pub unsafe fn alloc_large(heap: &mut Heap, count: usize) -> *mut u8 {
    // SAFETY: as the caller guarantees.
    unsafe { alloc_large_aligned(heap, count, 1) }
}

/// [`alloc_large`] whose span starts at a multiple of `step` slices (a
/// power of two; 1: anywhere), so that the block is aligned to `step`
/// slices: `memalign` and `posix_memalign` above 64 KiB. They were huge
/// mappings of their own, which a cache of freed mappings rarely fitted
/// when alignments and sizes varied together (a fresh tester's mix of
/// plain `malloc` and `posix_memalign` of 64 B to 2 MiB alignments: 1.9x
/// glibc's time, 8x its page faults). `step + count` must be at most a
/// segment's slices.
///
/// # Safety
/// `heap` must be the calling thread's (real) heap.
pub unsafe fn alloc_large_aligned(heap: &mut Heap, count: usize, step: usize) -> *mut u8 {
    debug_assert!(step.is_power_of_two() && step + count <= segment::SLICE_COUNT);
    // SAFETY: `heap` is ours.
    let _l = unsafe { SlowLock::lock(heap) };
    // SAFETY: `heap` is ours.
    unsafe {
        if !heap.notify.load(Ordering::Relaxed).is_null() {
            process_notify(heap);
        }
        maybe_purge(heap);
    }
    let page = if step <= 1 { alloc_span_resident(heap, count) } else { alloc_span_aligned(heap, count, step) };
    if page.is_null() {
        return ptr::null_mut();
    }
    heap.counters.large_allocs += 1;
    let now = os::now_ms();
    heap.last_active.store(now, Ordering::Relaxed);
    // SAFETY: `heap` is ours, its lock held.
    unsafe { crate::foreign::tick(heap, now) };
    heap.large_live += count << segment::SLICE_SHIFT;
    heap.large_demand.note(now, crate::retain::wait_ms(), heap.large_live);
    note_owner_peak(heap);
    // SAFETY: `page` is a claimed page of ours.
    let p = unsafe { &mut *page };
    p.bin = NO_BIN;
    p.flags |= FLAG_LARGE;
    p.set_block_size(count << segment::SLICE_SHIFT);
    p.reserved = 1;
    p.capacity = 1;
    p.used = 1;
    p.thread_free.store(TF_WANT_NOTIFY, Ordering::Relaxed);
    p.start
}

/// Grows a large block of the calling thread's heap in place to `count`
/// slices when the slices after it are free (realloc growth then copies
/// nothing and faults only what it touches anew). False otherwise.
///
/// # Safety
/// `page` must be a live large page; `heap` the calling thread's heap.
pub unsafe fn grow_large_in_place(heap: &mut Heap, page: *mut Page, count: usize) -> bool {
    // SAFETY: the caller guarantees `page` is a live large page.
    unsafe {
        if (*page).heap != heap as *mut Heap || count > segment::LARGE_MAX_SLICES {
            return false;
        }
        let _l = SlowLock::lock(heap);
        let seg = Segment::of_unchecked(page as usize);
        if !segment::grow_span(&mut *seg, page, count) {
            return false;
        }
        let new_size = count << segment::SLICE_SHIFT;
        heap.large_live = (heap.large_live + new_size).saturating_sub((*page).block_size);
        heap.large_demand.note(os::now_ms(), crate::retain::wait_ms(), heap.large_live);
        note_owner_peak(heap);
        (*page).set_block_size(new_size);
        (*page).flags &= !page::FLAG_ZERO;
        true
    }
}

/// Shrinks a large block of the calling thread's heap in place to `count`
/// slices (at least 1, fewer than it has): the slices after them become
/// free slices of the heap, reused by the next spans or purged by the
/// decay like those of a freed block. realloc then copies nothing, and a
/// block shrunk to more than half no longer keeps its tail resident until
/// it is freed (a tester: 8 blocks of 1.9 MB shrunk to 1 MB kept 17 MB
/// after `malloc_trim`; glibc 9 MB). False if `page` is not the heap's.
///
/// # Safety
/// `page` must be a live large page; `heap` the calling thread's heap.
pub unsafe fn shrink_large_in_place(heap: &mut Heap, page: *mut Page, count: usize) -> bool {
    // SAFETY: the caller guarantees `page` is a live large page.
    unsafe {
        if (*page).heap != heap as *mut Heap || count == 0 || count >= (*page).slice_count as usize {
            return false;
        }
        let _l = SlowLock::lock(heap);
        let seg = Segment::of_unchecked(page as usize);
        let freed = ((*page).slice_count as usize - count) << segment::SLICE_SHIFT;
        segment::shrink_span(&mut *seg, page, count);
        let new_size = count << segment::SLICE_SHIFT;
        heap.large_live = heap.large_live.saturating_sub((*page).block_size - new_size);
        (*page).set_block_size(new_size);
        count_freed_span(heap, freed);
        schedule_slice_purge(heap, seg);
        true
    }
}

// ---------------------------------------------------------------------------
// Slow paths of free.

/// A local free of `block` that empties its page, or into a page on the
/// full list: pushes the block under the slow-path lock, then retires or
/// requeues the page. `func` names the C function in a report of a double
/// free ("free", "free_sized", ...).
///
/// # Safety
/// `page` must be a live page of `heap`, the calling thread's heap, and
/// `block` one of its blocks in use.
#[cold]
#[inline(never)]
#[unsafe(link_section = ".text.hot.ptrs")]
pub unsafe fn free_local_slow(heap: &mut Heap, page: *mut Page, block: *mut page::Block, func: &str) {
    // free must preserve errno; purging could change it.
    let saved = os::errno();
    // A large block the heap profiler sampled (told before the slow-path
    // lock is taken: the profiler's lock is never taken under it).
    // SAFETY: the caller guarantees the page is ours.
    if unsafe { (*page).flags } & page::FLAG_SAMPLED != 0 {
        crate::profile::note_free_sampled_large(block as *mut u8);
    }
    // SAFETY: the caller guarantees the page, block and heap are ours.
    unsafe {
        let _l = SlowLock::lock(heap);
        let p = &mut *page;
        // The head of the remote list: freed a moment ago by another
        // thread. free's fast path tests it too; this covers the other
        // ways here (the profiler's `free::free_into_held_heap`).
        if block as usize == p.thread_free.load(Ordering::Relaxed) & page::TF_LIST {
            drop(_l);
            crate::diag::heap_error(func, "double free detected", block as usize);
            os::set_errno(saved);
            return;
        }
        // A small page with no block in use by count: this block is free
        // already (freed twice, with other frees of the page in between,
        // so free's test of the list heads missed it). Pushing it would
        // take the count below zero.
        if p.flags & FLAG_LARGE == 0 && p.used_count() == 0 {
            // The block freed twice earlier, if the list shows one; else
            // this one, which must be on the list already.
            let twice = repeated_block(p).unwrap_or(block);
            drop(_l);
            crate::diag::heap_error(func, "double free detected", twice as usize);
            os::set_errno(saved);
            return;
        }
        page::set_next(block, p.free, p.key);
        (*block).mark = p.key;
        p.free = block;
        p.used = p.used.wrapping_sub(1);
        free_local_slow_inner(heap, page);
    }
    os::set_errno(saved);
}

/// Checks a small page whose blocks are all free by count, before its
/// memory is given back: every carved block must carry the free mark. A
/// block freed twice (past free's test of the list heads) is on the list
/// twice and leaves the count one short of the truth, so a block may still
/// be in use, without the mark: reported as a double free (naming the
/// block on the list twice) and aborted whatever the abort option says.
/// The marks are read in address order, one load per carved block, which
/// the hardware prefetches: walking the list instead (the same loads in
/// the order of the frees) cost the python workload 12 % of its time.
/// Not in memcheck mode (see inside).
///
/// # Safety
/// `page` must be a live small page, its remote frees collected, that no
/// other thread changes.
pub unsafe fn check_empty_page(page: &Page) {
    // Memcheck mode tests the mark at every free (all of them take the
    // remote path), and memcheck itself would report these reads of freed
    // blocks.
    if crate::valgrind::active() {
        return;
    }
    let start = page.start as usize;
    for i in 0..page.capacity as usize {
        let b = (start + i * page.block_size) as *mut page::Block;
        // SAFETY: blocks below `capacity` are carved blocks of the page,
        // whose first two words are readable.
        if unsafe { (*b).mark } != page.key {
            // SAFETY: as the caller guarantees.
            let twice = unsafe { repeated_block(page) }.unwrap_or(b);
            crate::diag::heap_error_fatal("free", "double free detected", twice as usize);
        }
    }
}

/// The first block met twice on the page's local free list (a block freed
/// twice: its second push made the list a cycle), if any.
///
/// # Safety
/// As [`check_empty_page`].
unsafe fn repeated_block(page: &Page) -> Option<*mut page::Block> {
    let mut seen = page::BlockSet::new();
    let mut cur = page.free;
    // SAFETY: blocks on the list are carved blocks of the page; the walk
    // stops after `capacity + 1` of them and at a link outside the segment.
    unsafe {
        for _ in 0..=page.capacity {
            if page::at_end(page, cur) || !page::same_segment(cur, page) {
                return None;
            }
            if !seen.insert(page, cur) {
                return Some(cur);
            }
            cur = page::next_of(cur, page.key);
        }
    }
    None
}

/// Set by remote freers when they notify a heap: the next thread about to
/// map a segment looks for dormant heaps whose pages were freed entirely.
static NOTIFY_PENDING: AtomicBool = AtomicBool::new(false);

/// Sets [`NOTIFY_PENDING`]; true when this call set it (it was clear).
/// Loaded first and stored only on a change: every thread that frees into
/// other heaps comes here, and a store each time would bounce the flag's
/// cache line between them.
#[inline]
fn raise_notify_pending() -> bool {
    if NOTIFY_PENDING.load(Ordering::Relaxed) {
        return false;
    }
    NOTIFY_PENDING.store(true, Ordering::Relaxed);
    true
}

/// When that look last happened (coarse ms): at most once per purge delay.
static LAST_DORMANT_SCAN: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// Calls `f` for each block on a page's remote list, from a snapshot of
/// its head, and returns how many there were. Blocks below the head do not
/// change until a holder of the owner's slow-path lock takes the list; the
/// walk stops at the page's capacity or at a link outside its segment.
///
/// # Safety
/// The caller holds the slow-path lock of the page's heap.
unsafe fn for_each_remote_block(page: &Page, mut f: impl FnMut(*mut page::Block)) -> u32 {
    let mut cur = page::remote_head(page.thread_free.load(Ordering::Acquire));
    let limit = page.reserved + 1;
    let mut n = 0;
    while !page::at_end(page, cur) && n < limit {
        if !page::same_segment(cur, page) {
            break;
        }
        f(cur);
        n += 1;
        // SAFETY: `cur` is a free block of this page on its remote list.
        cur = unsafe { page::next_of(cur, page.key) };
    }
    n
}

/// The number of blocks on a page's remote list, which `used` still
/// counts: the length kept in the list's word (`page::TF_COUNT_SHIFT`), so
/// `remote_count(p) == used` proves every block of the page free.
///
/// # Safety
/// The caller holds the slow-path lock of the page's heap.
unsafe fn remote_count(page: &Page) -> u32 {
    page::remote_len(page.thread_free.load(Ordering::Acquire))
}

/// Calls `f` for every page on the heap's class queues and its full list.
///
/// # Safety
/// The caller holds `heap`'s slow-path lock (queue links change only under
/// it) and `f` takes no page off a queue.
unsafe fn for_each_queued_page(heap: &Heap, mut f: impl FnMut(*mut Page)) {
    for queue in heap.bins.iter().chain(core::iter::once(&heap.full)) {
        let mut page = queue.first;
        while !page.is_null() {
            f(page);
            // SAFETY: queued pages are live pages of this heap.
            page = unsafe { (*page).next };
        }
    }
}

/// Takes back, in a heap whose owner is another (perhaps dormant) thread,
/// the pages on its notify list whose every block in use was freed by
/// other threads: their spans go back to the heap's segments (and empty
/// segments to the retention policy), so other threads can reuse them. A
/// page with a live block is left for its owner (put back on the list).
/// Safe against the owner's fast paths: those never touch a page on the
/// full list (a local free into one takes the slow path and this lock),
/// and a page with no live block cannot be freed into by its owner.
///
/// Returns whether it left any page on the list.
///
/// # Safety
/// The caller holds `heap`'s slow-path lock and `heap` is not its own.
unsafe fn collect_freed_pages(heap: &mut Heap) -> bool {
    let mut page = heap.notify.swap(ptr::null_mut(), Ordering::Acquire);
    let mut kept: *mut Page = ptr::null_mut();
    while !page.is_null() {
        // SAFETY: pages on the notify list are live pages of this heap; the
        // lock excludes the owner's slow paths.
        unsafe {
            let next = (*page).notify_next;
            let p = &mut *page;
            let large = p.flags & FLAG_LARGE != 0;
            let used = p.used_count();
            if (large || p.is_in_full()) && used != 0 && remote_count(p) == used {
                heap.counters.notifications += 1;
                heap.counters.remote_collected += page::collect_remote(p, true) as u64;
                if !large {
                    heap.full.remove(page);
                    p.used &= !IN_FULL;
                }
                free_page(heap, page);
            } else {
                (*page).notify_next = kept;
                kept = page;
            }
            page = next;
        }
    }
    let any_kept = !kept.is_null();
    while !kept.is_null() {
        // SAFETY: the kept pages stay notified (TF_NOTIFIED set) for the owner.
        unsafe {
            let next = (*kept).notify_next;
            push_notify(heap, kept);
            kept = next;
        }
    }
    any_kept
}

/// The first class whose blocks are larger than the direct table serves
/// (above 1 KiB): its queue heads are reached by the owner only through
/// [`alloc_bin`], and so may be taken by another thread.
const FIRST_UNDIRECT_BIN: usize = bin_of(crate::size_class::DIRECT_MAX) + 1;

/// Gives back, in a heap whose owner is another thread, the queue heads
/// of the classes above 1 KiB that hold no block in use: the memory a
/// thread keeps in the first page of each such class after it freed all
/// of it, which [`retire`] leaves pinned (up to 64 KiB blocks, pages of
/// up to 512 KiB). A tester: 8 threads that allocated 4 MiB each in
/// blocks of 4 to 64 KiB, freed them and waited on a condition variable
/// kept 36 MB resident through `malloc_trim(0)` (glibc 2.7 MB). The owner
/// pops from those pages without a lock, so they are taken only after
/// the handshake described at [`alloc_bin`]; the queue heads of the
/// classes up to 1 KiB, which malloc's fast path reads from the direct
/// table with no handshake at all, stay. Returns the pages given back.
///
/// With `insides` (x86-64 only), it also purges the inside of the
/// owner's own free blocks of 8 KiB and more in every queued page
/// ([`purge_free_block_insides`], as the owner's `malloc_trim` does):
/// the handshake keeps the owner from popping any of them, and its frees
/// only push new blocks in front of the lists, writing nothing of the
/// blocks already there (x86-64 keeps its stores in order, so a list head
/// read after the handshake is a whole block; elsewhere the walk could
/// meet a pushed block before its link, and is not made). A fresh
/// tester's 128 threads that each kept 10 blocks of 16 B to 64 KiB live
/// after replacing them 100 times kept 96 MB through `malloc_trim(0)`
/// (glibc 15 MB).
///
/// # Safety
/// The caller holds `heap`'s slow-path lock; `heap` is another thread's
/// heap (not the shared heap, nor a pool's).
unsafe fn take_empty_queue_heads(heap: &mut Heap, insides: bool) -> usize {
    let empty_head = |heap: &Heap, bin: usize| -> *mut Page {
        let first = heap.bins[bin].first;
        // SAFETY: queue heads are live pages of the heap, whose queues
        // the caller's lock keeps still. The owner's stores to a page's
        // free list come before its store of `used` (see
        // `collect_freed_queued_pages`).
        unsafe {
            // Only the queue's one page: taking a head with pages behind it
            // would move the pin (a count in `used`) to the next page,
            // which the owner may be freeing into without the lock.
            if first.is_null() || !(*first).next.is_null() || (*first).used_count() != 0 {
                return ptr::null_mut();
            }
            core::sync::atomic::fence(Ordering::Acquire);
            if (*first).thread_free.load(Ordering::Acquire) & TF_NOTIFIED != 0 {
                return ptr::null_mut();
            }
        }
        first
    };
    // SAFETY: the caller holds the lock.
    let insides = insides && cfg!(target_arch = "x86_64") && unsafe { has_free_large_class_blocks(heap) };
    if !insides && !(FIRST_UNDIRECT_BIN..BIN_COUNT).any(|bin| !empty_head(heap, bin).is_null()) {
        return 0;
    }
    heap.heads_claimed.store(true, Ordering::Relaxed);
    let mut taken = 0;
    if crate::os::membarrier_all_threads() && heap.pop_depth.load(Ordering::Acquire) == 0 {
        for bin in FIRST_UNDIRECT_BIN..BIN_COUNT {
            let page = empty_head(heap, bin);
            if !page.is_null() {
                // SAFETY: an empty queue head of this heap, which the owner
                // cannot pop from until the claim is lifted (handshake
                // above) nor free into (no block of it is in use).
                unsafe { retire(heap, page, true) };
                taken += 1;
            }
        }
        if insides {
            // SAFETY: the lock is held and the owner pops nothing until
            // the claim is lifted (above); its pushes leave the blocks
            // already listed alone.
            unsafe { purge_free_block_insides(heap) };
        }
    }
    heap.heads_claimed.store(false, Ordering::Release);
    taken
}

/// Whether a queued page of a class of 8 KiB or more has a block on its
/// local free list (a read of each such page's list head, no walk).
///
/// # Safety
/// The caller holds `heap`'s slow-path lock.
unsafe fn has_free_large_class_blocks(heap: &Heap) -> bool {
    let mut any = false;
    // SAFETY: the lock keeps the queues still; a list head is one word.
    unsafe {
        for_each_queued_page(heap, |page| {
            let p = &*page;
            if has_block_insides(p) && !page::at_end(p, p.free) {
                any = true;
            }
        });
    }
    any
}

/// Takes back, in a heap whose owner is another (perhaps idle) thread, the
/// pages of its class queues, other than the queue heads, whose every block
/// in use was freed by other threads. A free into a page that is not full
/// does not notify its owner (only the first into a full page does), so a
/// thread that stops allocating a size class kept such pages, counted in
/// use, until it allocated that class again (a tester: 28 MB freed by main
/// for 8 waiting threads stayed in use and resident through malloc_trim).
/// Safe against the owner's fast paths: malloc pops only from a queue head;
/// a page with no live block cannot be freed into by its owner, and the
/// owner's free of a page's last live block takes the slow path and this
/// lock (so while it is on its way the block still counts in `used`).
/// Returns the pages taken, and whether it left a page with some of its
/// blocks, not all, freed by other threads.
///
/// # Safety
/// The caller holds `heap`'s slow-path lock and `heap` is not its own.
unsafe fn collect_freed_queued_pages(heap: &mut Heap) -> (usize, bool) {
    let mut taken = 0;
    let mut partial = false;
    for bin in 0..BIN_COUNT {
        let first = heap.bins[bin].first;
        if first.is_null() {
            continue;
        }
        // SAFETY: queued pages are live pages of this heap; the queues are
        // changed only under the lock the caller holds.
        let mut page = unsafe { (*first).next };
        while !page.is_null() {
            // SAFETY: as above.
            unsafe {
                let next = (*page).next;
                let p = &mut *page;
                let used = p.used_count();
                // The owner's stores to the page's free list come before its
                // store of `used` (see above): read them after it.
                core::sync::atomic::fence(Ordering::Acquire);
                if used != 0
                    && p.thread_free.load(Ordering::Acquire) & TF_NOTIFIED == 0
                    && remote_count(p) == used
                {
                    heap.counters.remote_collected += page::collect_remote(p, false) as u64;
                    heap.remove_page(bin, page);
                    free_page(heap, page);
                    taken += 1;
                } else if used != 0 && remote_count(p) != 0 {
                    partial = true;
                }
                page = next;
            }
        }
    }
    (taken, partial)
}

/// Purges the memory inside the blocks that other threads freed into the
/// pages of `heap` and its owner has not taken back yet, all but each
/// block's first OS page (its link and free mark): the pages of an idle
/// thread that were the heads of their queues stay its own (its malloc may
/// pop from them without a lock at any moment) but the blocks on their
/// remote lists are untouchable by it until it takes them back under the
/// lock the caller holds (a pool's allocating thread takes back the remote
/// lists of its direct-table pages without it, `pool::collect_direct`:
/// those classes are far smaller). For classes of 8 KiB and more; the
/// owner finds those blocks zero-filled when it reuses them. Returns the
/// bytes purged.
///
/// # Safety
/// The caller holds `heap`'s slow-path lock and `heap` is not its own.
unsafe fn purge_pending_blocks(heap: &mut Heap) -> usize {
    let mut purged = 0;
    // SAFETY: the caller holds the lock; the visit only reads the pages.
    unsafe {
        for_each_queued_page(heap, |page| {
            let p = &*page;
            if !has_block_insides(p) {
                return;
            }
            let size = p.block_size;
            for_each_remote_block(p, |block| {
                // SAFETY: a free block on the remote list, which nobody
                // touches until it is taken back.
                purged += purge_block_inside(block, size);
            });
        });
    }
    heap.counters.purged_bytes += purged as u64;
    purged
}

/// Whether the free blocks of `p` have an inside to purge past their first
/// OS page: a page of a size class (not a large span, not a pool's bump
/// page, whose block size is only its grain) with blocks of 8 KiB or more.
fn has_block_insides(p: &Page) -> bool {
    p.flags & (FLAG_LARGE | page::FLAG_BUMP) == 0 && p.bin != NO_BIN && p.block_size >= 2 * os::OS_PAGE_SIZE
}

/// Purges the OS pages inside the free block `block` of `size` bytes past
/// its first one (which holds its link and free mark), where any of them
/// is resident: a later `malloc_trim` finds them purged already and must
/// not say it released them. Returns the bytes purged.
///
/// # Safety
/// `block` must be a free block of `size` bytes that no other thread
/// touches until the call returns.
unsafe fn purge_block_inside(block: *mut page::Block, size: usize) -> usize {
    let start = (block as usize + os::OS_PAGE_SIZE) & !(os::OS_PAGE_SIZE - 1);
    let end = (block as usize + size) & !(os::OS_PAGE_SIZE - 1);
    // SAFETY: [start, end) lies past the block's first OS page and inside
    // the block, which nobody else touches now (the caller).
    unsafe {
        if end <= start || !os::any_resident(start as *mut u8, end - start) {
            return 0;
        }
        os::purge(start as *mut u8, end - start);
    }
    end - start
}

/// Purges the memory inside the free blocks of the caller's own heap's
/// small pages, all but each block's first OS page (its link and free
/// mark), for classes of 8 KiB and more: `malloc_trim` and
/// `ptrs_thread_idle` from the owner, after its remote frees were
/// collected onto the local lists. A page keeps a single live block from
/// going back whole, and so kept up to 512 KiB resident for it: a fresh
/// tester's cache that evicted all but 1 % of a million entries of 16 B
/// to 16 KiB kept 134 MB through `malloc_trim(0)` (glibc, which trims the
/// inside of its free chunks, 67 MB). The owner finds such blocks
/// zero-filled when it reuses them. Returns the bytes purged.
///
/// # Safety
/// The caller holds `heap`'s slow-path lock, and `heap` is its own (no
/// other thread pops or pushes its local lists then) or another thread's
/// whose pops the handshake of [`take_empty_queue_heads`] holds off, on
/// x86-64 (that owner's frees push in front of the lists).
unsafe fn purge_free_block_insides(heap: &mut Heap) -> usize {
    let mut purged = 0;
    // SAFETY: as the caller guarantees, the listed blocks stay free; the
    // walk of a list stops after `capacity + 1` blocks, at its end, and at
    // a link outside the page's segment.
    unsafe {
        for_each_queued_page(heap, |page| {
            let p = &*page;
            if !has_block_insides(p) {
                return;
            }
            let size = p.block_size;
            let mut cur = p.free;
            for _ in 0..=p.capacity {
                if page::at_end(p, cur) || !page::same_segment(cur, p) {
                    break;
                }
                // SAFETY: a free block on the owner's list, which stays
                // free and untouched while the caller holds the lock (and,
                // for another thread's heap, the handshake's claim).
                purged += purge_block_inside(cur, size);
                cur = page::next_of(cur, p.key);
            }
        });
    }
    heap.counters.purged_bytes += purged as u64;
    purged
}

/// Takes back, in a heap whose owner is another thread, every page whose
/// blocks other threads freed entirely: notified full pages and queued
/// ones alike (see [`collect_freed_pages`], [`collect_freed_queued_pages`]).
///
/// # Safety
/// As both.
unsafe fn collect_all_freed_pages(heap: &mut Heap) {
    // SAFETY: as the caller guarantees.
    unsafe {
        collect_freed_pages(heap);
        collect_freed_queued_pages(heap);
    }
}

/// The heap locks a statistics snapshot holds while it reads the pages'
/// counts of blocks in use (see [`hold_for_statistics`]); released when
/// dropped.
///
/// Held, a heap's owner cannot take back the blocks other threads freed
/// into its pages (which only happens in its slow paths, under the lock)
/// while a page's count and its list of those blocks are read, so no
/// block is counted free twice (on the list, and again gone from its
/// page's count). Counting the lists of each heap and releasing it at
/// once, before the pages' counts were read, did that: in a program whose
/// four threads free each other's blocks (`bench/larson 4`), `mallinfo2`
/// read 4.6 to 29 MB in use against 9.6 MB really in use.
pub struct StatisticsHold {
    own: *mut Heap,
    shared: *mut Heap,
    /// A snapshot taken inside another one on this thread (a signal
    /// handler): it holds nothing and counts nothing pending.
    nested: bool,
    /// Other threads' heap locks are held (see `SignalsBlocked`); the mask
    /// is restored after they are released (fields drop after `drop`).
    _signals: Option<SignalsBlocked>,
}

std::thread_local! {
    /// Set while this thread holds a [`StatisticsHold`].
    static IN_STATISTICS: core::cell::Cell<bool> = const { core::cell::Cell::new(false) };
}

/// One statistics snapshot at a time: the heaps' `statistics_held` marks
/// belong to the snapshot in progress (two at once released each other's
/// heap locks, and then an owner's: a fresh reviewer, 120 to 890 times
/// in 8 s of threads looping `mallinfo2`).
static STATISTICS_LOCK: RawLock = RawLock::new();

/// How long a snapshot waits for a heap whose lock is busy before it
/// leaves that heap's pending blocks uncounted: 64 spins, then this many
/// `sched_yield`s (the holder is in a slow path, which takes microseconds
/// unless it is descheduled).
const STATISTICS_LOCK_YIELDS: u32 = 64;

/// The most a snapshot spends in those bounded waits, all heaps together
/// (ms, on the coarse clock).
const STATISTICS_WAIT_MS: u64 = 20;

/// How many times a snapshot goes over the heaps whose lock it could not
/// take (see [`hold_for_statistics`]).
const STATISTICS_LOCK_PASSES: u32 = 4;

/// How many times a snapshot tries to take every heap's lock at once,
/// without waiting, before it waits for the busy ones.
const STATISTICS_ALL_ATTEMPTS: u32 = 4;

/// Takes `heap`'s lock for a statistics snapshot, waiting a bounded time
/// (never forever, so no lock order is needed against the other locks
/// the snapshot holds). None if this thread holds it already (a signal
/// handler inside a slow path of `heap`: the heap is mid-update) or the
/// wait ran out.
///
/// # Safety
/// `heap` must be a real heap (heaps are never unmapped).
unsafe fn lock_for_statistics(heap: *mut Heap, deadline: u64) -> Option<SlowLock> {
    let me = thread_token();
    let mut tries = 0u32;
    loop {
        // SAFETY: the caller guarantees `heap` is valid.
        if let Some(l) = unsafe { SlowLock::try_lock(heap) } {
            return Some(l);
        }
        // A heap of a thread that does not exist (in a fork child) is
        // tried once: its lock may be held for good.
        // SAFETY: as above.
        if unsafe { (*heap).slow_lock.load(Ordering::Relaxed) } == me
            // SAFETY: as above.
            || unsafe { (*heap).forked_away }
            || tries >= 64 + STATISTICS_LOCK_YIELDS
            || (tries > 64 && os::now_ms() >= deadline)
        {
            return None;
        }
        tries += 1;
        if tries <= 64 {
            core::hint::spin_loop();
        } else {
            // SAFETY: sched_yield has no preconditions.
            unsafe { libc::sched_yield() };
        }
    }
}

/// For statistics: takes the locks of every heap that a live thread owns
/// (and of the shared heap) and, in the others' heaps, takes back the
/// pages other threads freed entirely (the shared heap: every remote
/// free). The locks stay held until the returned hold is dropped; while it
/// lasts, [`StatisticsHold::pending`] tells, for a page of a held heap,
/// how many of its blocks other threads freed that its owner has not
/// taken back yet (counted free, so the figures are exact even while those
/// owners wait). A heap whose lock stays busy is not held: its pending
/// blocks count as in use (its owner, in a slow path, takes them back; or
/// this thread is, when a signal handler asks for statistics).
///
/// Lock order: with every signal blocked, STATISTICS_LOCK (one snapshot
/// at a time), then the shared heap, as `fork_prepare` takes it before the
/// forking thread's own; every other lock is taken without waiting or
/// with a bounded wait; GLOBAL may be taken while the hold lasts (heap
/// locks come before GLOBAL everywhere).
pub fn hold_for_statistics() -> StatisticsHold {
    let mut hold = StatisticsHold { own: ptr::null_mut(), shared: ptr::null_mut(), nested: false, _signals: None };
    // Set before the lock is waited for: a handler that interrupts this
    // thread from here on takes a nested snapshot, which holds nothing.
    if IN_STATISTICS.with(|c| c.replace(true)) {
        hold.nested = true;
        return hold;
    }
    hold._signals = Some(SignalsBlocked::new());
    STATISTICS_LOCK.lock();
    // The bounded waits below stop at this time, however many heaps are
    // busy (a fork child finds the heaps of its parent's other threads
    // locked for good: 3.9 s per snapshot there before).
    let deadline = os::now_ms() + STATISTICS_WAIT_MS;
    NOTIFY_PENDING.store(false, Ordering::Relaxed);
    let own = tls::current();
    let shared = SHARED_HEAP.load(Ordering::Relaxed);
    if !shared.is_null() {
        // The shared heap has no owner: whoever holds its lock may take
        // back every remote free (its users free only remotely). Waited
        // for as before: its users hold it only for one allocation.
        // SAFETY: the shared heap is never unmapped.
        let l = unsafe { SlowLock::lock(shared) };
        if l.release {
            core::mem::forget(l);
            hold.shared = shared;
            // SAFETY: held by this thread now.
            unsafe { collect(&mut *shared, false) };
        }
    }
    if is_real(own) && own != shared {
        // SAFETY: the calling thread's real heap.
        if let Some(l) = unsafe { lock_for_statistics(own, deadline) } {
            core::mem::forget(l);
            hold.own = own;
            // Its pages that other threads freed entirely, too: a large
            // block freed by another thread reaches its owner only as a
            // notification, taken at the owner's next slow path, and the
            // walk below counts large pages by their count alone (a
            // tester: 100 blocks of 1 MB freed by another thread read as
            // in use from the owner's own mallinfo2 until it allocated).
            // SAFETY: held by this thread, outside any slow path of it
            // (`lock_for_statistics` refuses a lock this thread holds).
            unsafe { collect_all_freed_pages(&mut *own) };
        }
    }
    // First, up to STATISTICS_ALL_ATTEMPTS attempts to take the lock of
    // every other live thread's heap without waiting: a busy one releases
    // all of them and yields, so that no owner's slow path waits for a
    // lock held while this thread waits for another (on a machine with
    // fewer cores than threads, waits of that kind kept slow paths from
    // their own heaps for 10 to 200 ms per snapshot in `bench/larson 4`).
    for _ in 0..STATISTICS_ALL_ATTEMPTS {
        let mut missed = false;
        for_each_other_heap(|heap| {
            // SAFETY: registered heaps are valid forever.
            unsafe {
                if missed || heap == shared || !(*heap).owned || (*heap).statistics_held {
                    return;
                }
                match SlowLock::try_lock(heap) {
                    Some(l) => {
                        core::mem::forget(l);
                        (*heap).statistics_held = true;
                    }
                    // A heap of a thread that does not exist (fork child)
                    // is left out rather than retried.
                    None => missed = !(*heap).forked_away,
                }
            }
        });
        if !missed {
            break;
        }
        release_statistics_held();
        // SAFETY: sched_yield has no preconditions.
        unsafe { libc::sched_yield() };
    }
    // Then, if one stayed busy, bounded waits while holding the others (its
    // holder may have been descheduled), up to STATISTICS_LOCK_PASSES
    // passes.
    for pass in 1..=STATISTICS_LOCK_PASSES {
        let mut missed = false;
        for_each_other_heap(|heap| {
            // SAFETY: registered heaps are valid forever; the lock is taken
            // before anything of the heap is read or changed.
            unsafe {
                if heap == shared || !(*heap).owned || (*heap).statistics_held {
                    return;
                }
                match lock_for_statistics(heap, deadline) {
                    Some(l) => {
                        core::mem::forget(l);
                        (*heap).statistics_held = true;
                    }
                    None => missed = true,
                }
            }
        });
        if !missed {
            break;
        }
        if pass == STATISTICS_LOCK_PASSES {
            NOTIFY_PENDING.store(true, Ordering::Relaxed);
        }
    }
    // Every heap held now: its fully freed pages taken back, unless it was
    // parked meanwhile (see `abandon`: the heaps of exited threads are
    // collected by `collect_parked`), then let go.
    for_each_other_heap(|heap| {
        // SAFETY: registered heaps are valid forever; those marked are held
        // by this thread.
        unsafe {
            if (*heap).statistics_held {
                if (*heap).owned {
                    collect_all_freed_pages(&mut *heap);
                } else {
                    (*heap).statistics_held = false;
                    (*heap).slow_lock.store(0, Ordering::Release);
                }
            }
        }
    });
    hold
}

impl StatisticsHold {
    /// The blocks of `page` (a live small page; read under GLOBAL, so its
    /// segment stays mapped) that other threads freed and its owner has not
    /// taken back, if this hold holds its heap's lock; else 0. Read with
    /// the page's count of blocks in use, so that blocks freed while the
    /// snapshot runs are counted in one of the two or in both, never in
    /// neither: the sum of pending counts taken first, then the pages'
    /// counts a walk of every segment later, read 10 to 18 MB in use
    /// against 9.6 MB (`bench/larson 4`), the frees of that interval.
    pub fn pending(&self, page: &Page) -> u32 {
        if self.nested || page.heap.is_null() {
            return 0;
        }
        let heap = page.heap;
        // SAFETY: the page's heap is a registered heap (valid forever);
        // `statistics_held` is written only by this thread while it holds
        // the lock.
        let held = heap == self.own || heap == self.shared || unsafe { (*heap).statistics_held };
        if !held {
            return 0;
        }
        // SAFETY: the heap's lock is held by this thread, so its owner
        // cannot take the remote list and its count back meanwhile.
        unsafe { remote_count(page) }
    }

    /// Calls `f(bin, blocks)` for the blocks of class `bin` that the heaps
    /// this hold holds keep from other heaps (`foreign.rs`): counted in
    /// use by their pages, but free.
    pub fn foreign_kept(&self, mut f: impl FnMut(usize, usize)) {
        if self.nested {
            return;
        }
        if !self.own.is_null() {
            // SAFETY: held by this hold; its cache changes only under the lock.
            unsafe { (*self.own).foreign.for_each_class(&mut f) };
        }
        for_each_other_heap(|heap| {
            // SAFETY: registered heaps are valid forever; `statistics_held`
            // is written only by this thread, which holds those heaps' locks.
            unsafe {
                if (*heap).statistics_held {
                    (*heap).foreign.for_each_class(&mut f);
                }
            }
        });
    }
}

/// Releases the heap locks a statistics snapshot of this thread holds
/// (those marked `statistics_held`).
fn release_statistics_held() {
    for_each_other_heap(|heap| {
        // SAFETY: registered heaps are valid forever; the flag is set only
        // by the holder of the heap's lock, this thread.
        unsafe {
            if (*heap).statistics_held {
                (*heap).statistics_held = false;
                (*heap).slow_lock.store(0, Ordering::Release);
            }
        }
    });
}

impl Drop for StatisticsHold {
    fn drop(&mut self) {
        if self.nested {
            return;
        }
        release_statistics_held();
        STATISTICS_LOCK.unlock();
        for held in [self.own, self.shared] {
            if !held.is_null() {
                // SAFETY: taken by `hold_for_statistics` on this thread.
                unsafe { (*held).slow_lock.store(0, Ordering::Release) };
            }
        }
        IN_STATISTICS.with(|c| c.set(false));
    }
}

/// Takes back the notified, fully freed pages (see
/// [`collect_freed_pages`]) of heaps whose owner has not been in a slow path
/// for a purge delay, at most once per delay: a thread about to map a new
/// segment. Heaps whose lock is busy are skipped.
#[unsafe(link_section = ".text.hot.ptrs")]
pub fn collect_dormant_heaps() {
    let now = os::now_ms();
    let delay = options::purge_delay_ms();
    if !NOTIFY_PENDING.load(Ordering::Relaxed) && !crate::foreign::PENDING.load(Ordering::Relaxed) {
        return;
    }
    let last = LAST_DORMANT_SCAN.load(Ordering::Relaxed);
    if now < last + delay.max(1) {
        // Too soon after the last scan: the tick that called this has
        // cleared its request, so ask for one when the next scan may run
        // (without it a scan that still had a purge to wait for was never
        // made: tst-lifecycle-dormant-owner kept 16 to 42 MiB in 3 runs
        // of 8).
        crate::retain::arm(last + delay.max(1));
        return;
    }
    if LAST_DORMANT_SCAN.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_err() {
        return;
    }
    NOTIFY_PENDING.store(false, Ordering::Relaxed);
    crate::foreign::PENDING.store(false, Ordering::Relaxed);
    // The calling thread's own heap is not scanned (it is awake): its mark
    // keeps the request for a later scan by another thread, once this one
    // sleeps. Without it, an owner that woke now and then while others
    // freed its blocks cleared the request in its own ticks, and its later
    // frees found the mark set and asked again for nothing (a tester: 350
    // MB of 480 stayed resident once it slept for good; glibc 2.4 MB).
    let me = tls::current();
    // SAFETY: the thread's heap pointer is always valid.
    if is_real(me) && unsafe { (*me).remote_unseen.load(Ordering::Relaxed) } {
        NOTIFY_PENDING.store(true, Ordering::Relaxed);
        crate::retain::arm(now + delay.max(1));
    }
    // Other threads' heap locks are held below (see `SignalsBlocked`).
    let _sig = SignalsBlocked::new();
    for_each_other_heap(|heap| {
        // SAFETY: registered heaps are valid forever; the lock is taken
        // before anything of the heap is changed.
        unsafe {
            let h = &*heap;
            let notified = !h.notify.load(Ordering::Relaxed).is_null();
            // Blocks a dormant thread keeps from other heaps
            // (`foreign.rs`) go back to their owners as well.
            let keeps = !h.foreign.is_empty();
            // Free slices that pages taken back at an earlier scan left,
            // which its owner's purge tick would give back.
            let purge_due = h.purge_deadline != 0;
            // Blocks freed into pages that asked for no notification
            // (`remote_pushed`).
            let unseen = h.remote_unseen.load(Ordering::Relaxed);
            // Classes above 1 KiB whose pages its owner emptied.
            let heads = h.heads_to_check.load(Ordering::Relaxed);
            if !h.owned || !(notified || keeps || purge_due || unseen || heads) {
                return;
            }
            let dormant = h.last_active.load(Ordering::Relaxed) + delay <= now;
            let taken = dormant
                && match SlowLock::try_lock(heap) {
                    Some(_l) => {
                        // Parked meanwhile (see `abandon`): the heaps of
                        // exited threads are collected by `collect_parked`.
                        if (*heap).owned {
                            crate::foreign::give_back_all(&mut (*heap).foreign);
                            if unseen && is_thread_heap(heap) {
                                rewalk_dormant(&mut *heap, now, delay);
                            } else {
                                collect_freed_pages(&mut *heap);
                            }
                            if heads && is_thread_heap(heap) {
                                // Their slices are free now, purged once
                                // their delay is over (`free_page` set it).
                                (*heap).heads_to_check.store(false, Ordering::Relaxed);
                                take_empty_queue_heads(&mut *heap, false);
                            }
                            // The purge tick its owner's slow paths would
                            // make: the pages just taken back are free
                            // slices, given back once their delay is over
                            // (at a later scan, which a decay tick makes).
                            let h = &mut *heap;
                            if h.purge_deadline != 0 && now >= h.purge_deadline {
                                purge_with(h, false, true);
                            }
                            if h.purge_deadline != 0 {
                                NOTIFY_PENDING.store(true, Ordering::Relaxed);
                                crate::retain::arm(h.purge_deadline.max(now + 1));
                            }
                        }
                        true
                    }
                    None => false,
                };
            if !taken {
                // Not dormant yet (or busy): look again at a later scan,
                // which a decay tick makes.
                if notified || purge_due || unseen || heads {
                    NOTIFY_PENDING.store(true, Ordering::Relaxed);
                }
                if keeps {
                    crate::foreign::PENDING.store(true, Ordering::Relaxed);
                }
                crate::retain::arm(now + delay.max(1));
            }
        }
    });
}

/// The dormant-heap scan's look at all of a sleeping owner's pages, for
/// blocks other threads freed into pages that asked for no notification
/// (`Heap::remote_unseen`): takes back every page whose blocks in use
/// were all freed by others, notified or not ([`collect_freed_pages`],
/// [`collect_freed_queued_pages`]), and purges the inside of the large
/// blocks others freed into the pages it leaves ([`purge_pending_blocks`]:
/// the first page of each class stays the owner's, and so does the memory
/// of the smaller blocks freed into it). Pages that others freed only in part
/// keep the mark set, since their later frees make no new mark (their
/// lists are not empty): the heap is looked at again after a gap that
/// starts at one purge delay and doubles, up to a second, while looks
/// take nothing, so a sleeper that keeps a few blocks in many pages costs
/// one walk of its pages a second at most. Waits for `rewalk_at`, keeping
/// the mark and asking for a scan then.
///
/// # Safety
/// The caller holds `heap`'s slow-path lock; `heap` is another thread's.
unsafe fn rewalk_dormant(heap: &mut Heap, now: u64, delay: u64) {
    /// The longest gap between two looks at a heap (ms).
    const MAX_GAP_MS: u64 = 1000;
    if now < heap.rewalk_at {
        // SAFETY: as the caller guarantees.
        unsafe { collect_freed_pages(heap) };
        NOTIFY_PENDING.store(true, Ordering::Relaxed);
        crate::retain::arm(heap.rewalk_at);
        return;
    }
    // Cleared before the walk: a free into a page after the walk read it
    // sets it again.
    heap.remote_unseen.store(false, Ordering::Relaxed);
    // SAFETY: as the caller guarantees.
    let (kept_notified, (taken, partial)) = unsafe { (collect_freed_pages(heap), collect_freed_queued_pages(heap)) };
    // The first page of each class stays the owner's (its malloc pops from
    // it without a lock), whatever others freed into it: the inside of
    // those blocks, in classes of 8 KiB and more, goes back at least (a
    // tester: 16 sleeping owners of 20 000-byte blocks kept 12.7 MB, glibc
    // 4 MB).
    // SAFETY: as the caller guarantees.
    unsafe { purge_pending_blocks(heap) };
    if !(partial || kept_notified) {
        heap.rewalk_gap = 0;
        heap.rewalk_at = 0;
        return;
    }
    heap.rewalk_gap = if taken > 0 || heap.rewalk_gap == 0 {
        delay.max(1)
    } else {
        (heap.rewalk_gap * 2).min(MAX_GAP_MS.max(delay))
    };
    heap.rewalk_at = now + heap.rewalk_gap;
    heap.remote_unseen.store(true, Ordering::Relaxed);
    NOTIFY_PENDING.store(true, Ordering::Relaxed);
    crate::retain::arm(heap.rewalk_at);
}

/// # Safety
/// As `free_local_slow`.
unsafe fn free_local_slow_inner(heap: &mut Heap, page: *mut Page) {
    // SAFETY: the caller guarantees the page is ours.
    unsafe {
        let p = &mut *page;
        if p.flags & FLAG_LARGE != 0 {
            free_page(heap, page);
            return;
        }
        if p.is_in_full() {
            unfull(heap, page);
        }
        if p.used_count() == 0 {
            let bin = p.bin as usize;
            retire(heap, page, false);
            // Pages of a class above 1 KiB empty out: its first page may be
            // next, with the fast path's free, which marks nothing. Once
            // the owner sleeps, the dormant-heap scan takes it
            // (`take_empty_queue_heads`).
            if bin >= FIRST_UNDIRECT_BIN && !heap.heads_to_check.load(Ordering::Relaxed) {
                heap.heads_to_check.store(true, Ordering::Relaxed);
                raise_notify_pending();
                crate::retain::arm(os::now_ms() + options::purge_delay_ms().max(1));
            }
        }
    }
}

/// A page with no block in use: returned to its segment unless it is the
/// only page of its class (kept to avoid thrashing) or a notification about
/// it is still on its way.
///
/// # Safety
/// `page` must be a live small page on a queue of `heap`, with no block in use.
unsafe fn retire(heap: &mut Heap, page: *mut Page, force: bool) {
    // SAFETY: the caller guarantees the page is a queued page of ours.
    unsafe {
        let p = &mut *page;
        debug_assert_eq!(p.used_count(), 0);
        if p.thread_free.load(Ordering::Acquire) & TF_NOTIFIED != 0 {
            return;
        }
        // The queue head stays (unless forced): it is where the next
        // allocation of its class goes.
        if !force && p.flags & FLAG_PINNED != 0 {
            return;
        }
        heap.remove_page(p.bin as usize, page);
        free_page(heap, page);
    }
}

/// Bytes of spans a heap's owner frees, with no purge between, after
/// which its malloc fast path counts towards a purge check
/// ([`arm_purge_watch`]). The purge tick runs on slow paths; a program
/// whose later allocations all take the fast path made none, and kept
/// what it freed for as long as it ran (a fresh tester: 100 blocks of 1
/// MiB shrunk to 100 bytes by realloc, then only small mallocs, 102 MiB
/// resident against glibc's 1 MiB). Counting costs each malloc a `sub` to
/// memory while it lasts (the profiler's countdown: 3 to 5 % of
/// mixedlarge's time when it ran on every malloc), so it is asked for
/// only when that much memory waits.
const PURGE_WATCH_BYTES: usize = 16 << 20;

/// Bytes the owner's fast path serves between two purge checks while the
/// watch is on: small, so that a program that allocates little still
/// reaches the check (a check is a lock of the heap's own and two clock
/// reads; it runs only while memory waits for its purge).
const PURGE_CHECK_BYTES: isize = 4 << 10;

/// The longest step between two purge checks while only a decay tick for
/// other heaps waits (see [`purge_watch_check`]): a check costs a lock and
/// two clock reads, so with 16-byte blocks about one instruction per
/// 4 000 mallocs.
const PURGE_WATCH_MAX_STEP: isize = 1 << 20;

/// Counts `bytes` that the calling thread has just left for the decay
/// tick (`retain::tick`) to give back, and arms its purge watch
/// ([`arm_purge_watch`]) every [`PURGE_WATCH_BYTES`] of them:
/// - a full page of another thread's heap that it freed a block into (the
///   free that sends the page to its owner, `page::PUSH_NOTIFY`): the
///   tick takes back what is freed into the heap of an exited or a
///   sleeping thread;
/// - a huge mapping it freed into `huge.rs`'s cache, which the tick
///   unmaps.
///
/// The tick runs on slow paths; a thread that freed such memory and then
/// allocated only on the fast path made none, and kept it for as long as
/// it ran: 100 MiB freed into an exited or a sleeping thread's heap
/// (glibc: 3 MiB after the exited one), 49 MiB of huge blocks freed by
/// the thread itself (glibc: 1.5 MiB). Counted on notifications, not on
/// every remote free: per free it cost the producer-consumer workload 4 %
/// of its instructions. The counter is the freeing thread's own, so the
/// owner's heap is not written.
#[cold]
pub fn note_left_to_tick(bytes: usize) {
    let me = tls::current();
    if !is_real(me) {
        return;
    }
    // SAFETY: the calling thread's own real heap; the fields touched are
    // the owner's.
    let h = unsafe { &mut *me };
    h.left_to_tick += bytes;
    if h.left_to_tick >= PURGE_WATCH_BYTES {
        h.left_to_tick = 0;
        if !h.sampling.load(Ordering::Relaxed) {
            arm_purge_watch(h);
        }
    }
}

/// Makes the owner's malloc fast path count down `Heap::sample_left`, as
/// the heap profiler does, so that it misses into
/// `profile::malloc_slow_hook` every [`PURGE_CHECK_BYTES`] and runs
/// [`purge_watch_check`]. Only on the calling thread's own heap, while
/// the profiler is off (on, its samples make the fast path miss anyway).
/// Without GLOBAL (free_page may run under it): setting the byte races
/// only with the profiler's start, which sets it too, and its stop, after
/// which the check stops counting.
fn arm_purge_watch(heap: &mut Heap) {
    if !ptr::eq(heap, tls::current()) || !is_real(heap) {
        return;
    }
    heap.purge_watch = true;
    heap.purge_watch_step = PURGE_CHECK_BYTES;
    if !crate::profile::armed() {
        heap.sample_left.store(PURGE_CHECK_BYTES, Ordering::Relaxed);
        heap.sampling.store(true, Ordering::Relaxed);
    }
}

/// The owner's fast path ran out of its purge-watch countdown (from
/// `profile::malloc_slow_hook`, the profiler off): runs the heap's purge
/// tick and the decay tick if due, then counts again while a purge is
/// still pending, else stops counting. `heap` is the calling thread's
/// heap (`tls::current()`, which the caller has read already).
pub fn purge_watch_check(heap: *mut Heap) {
    if !is_real(heap) {
        return;
    }
    // SAFETY: the calling thread's own real heap; its slow-path lock is
    // taken as in its other slow paths.
    unsafe {
        let h = &mut *heap;
        {
            let _l = SlowLock::lock(heap);
            maybe_purge(h);
        }
        // The heap's own free slices, or the empty segments it gave up
        // (the decay tick purges them a delay after they emptied): checked
        // every PURGE_CHECK_BYTES. Only a decay tick for other heaps (a
        // parked or dormant heap this thread freed into, which the tick
        // collects): every step, twice the last one up to
        // PURGE_WATCH_MAX_STEP, since such a tick may stay scheduled for
        // as long as a parked heap holds a live block.
        let step = if h.purge_deadline != 0 || crate::retain::dirty_pending() {
            PURGE_CHECK_BYTES
        } else if crate::retain::tick_pending() {
            h.purge_watch_step = (h.purge_watch_step * 2).min(PURGE_WATCH_MAX_STEP);
            h.purge_watch_step
        } else {
            0
        };
        if step != 0 {
            if !crate::profile::armed() {
                h.sample_left.store(step, Ordering::Relaxed);
            }
            return;
        }
        h.purge_watch = false;
        // Clearing the byte under GLOBAL, as the profiler's start sets it:
        // a start in between must not be undone.
        let _g = GlobalGuard::lock();
        if !crate::profile::armed() {
            h.sample_left.store(crate::profile::IDLE_COUNTDOWN, Ordering::Relaxed);
            h.sampling.store(false, Ordering::Relaxed);
        }
    }
}

/// Returns a page's slices to its segment and schedules a purge.
///
/// # Safety
/// `page` must be a page of `heap` on no queue, with no block in use.
unsafe fn free_page(heap: &mut Heap, page: *mut Page) {
    // SAFETY: `page` is a live page of this heap (caller).
    count_freed_span(heap, unsafe { (*page).slice_count as usize } << segment::SLICE_SHIFT);
    // SAFETY: as above.
    if unsafe { (*page).flags } & FLAG_LARGE != 0 {
        heap.counters.large_frees += 1;
        // SAFETY: as above.
        heap.large_live = heap.large_live.saturating_sub(unsafe { (*page).block_size });
    } else {
        heap.counters.pages_freed += 1;
        // SAFETY: as above.
        let bytes = unsafe { (*page).slice_count as usize } << segment::SLICE_SHIFT;
        heap.small_live = heap.small_live.saturating_sub(bytes);
        crate::retain::note_small_pages(-(bytes as isize));
    }
    let seg = Segment::of_unchecked(page as usize);
    // SAFETY: the page is ours, with no block in use (caller).
    unsafe {
        if (*page).flags & FLAG_LARGE == 0 {
            check_empty_page(&*page);
        }
    }
    // SAFETY: the page lives in the header of its segment, which `heap` owns.
    unsafe { segment::free_span(&mut *seg, page) };
    // A segment left empty goes back at once (to the purged cache or the
    // OS) if the heap already keeps another empty one: when a program frees
    // most of its memory, its RSS falls while it keeps running, without
    // waiting for a purge tick that a quiet program may never reach. One
    // empty segment stays, so a program that repeatedly frees and allocates
    // a large block does not fault its pages in every time.
    // SAFETY: as above; the heap's segment list is ours.
    unsafe {
        if (*seg).is_empty() && !heap.hold_segments && has_other_empty_segment(heap, seg) {
            unlink_segment(heap, seg);
            segment::release(seg);
            return;
        }
    }
    // SAFETY: as above.
    unsafe { schedule_slice_purge(heap, seg) };
}

/// Counts `bytes` of spans the owner just freed towards its purge watch
/// ([`PURGE_WATCH_BYTES`]).
fn count_freed_span(heap: &mut Heap, bytes: usize) {
    heap.freed_since_purge += bytes;
    // Not while the fast path counts already (the watch is on, or the
    // profiler's countdown runs).
    if heap.freed_since_purge >= PURGE_WATCH_BYTES && !heap.sampling.load(Ordering::Relaxed) {
        arm_purge_watch(heap);
    }
}

/// Schedules the purge of slices just freed in `seg`: at once with a
/// purge delay of 0, else at the heap's purge deadline (set now if none is
/// pending, with a scan of sleeping owners asked for after it).
///
/// # Safety
/// `seg` must be a segment of `heap`, the calling thread's heap, with its
/// slow-path lock held.
unsafe fn schedule_slice_purge(heap: &mut Heap, seg: *mut Segment) {
    // SAFETY: as the caller guarantees.
    unsafe { note_span_freed(heap, seg) };
    let delay = crate::retain::wait_ms();
    if delay == 0 {
        // SAFETY: as the caller guarantees.
        heap.counters.purged_bytes += segment::purge_free_slices(unsafe { &mut *seg }) as u64;
        // SAFETY: as above.
        if unsafe { (*seg).is_empty() } {
            purge(heap, true);
        }
    } else if heap.purge_deadline == 0 {
        heap.purge_deadline = os::now_ms() + delay;
        request_dormant_scan(heap);
    } else {
        maybe_purge(heap);
    }
}

/// Asks for a dormant-heap scan ([`collect_dormant_heaps`]) one purge
/// delay after `heap`'s purge deadline, which its owner has just set: if
/// the owner sleeps by then (a worker that freed its job's memory itself
/// and waits for the next job), the scan makes the purge its slow paths
/// would have made. Without it only blocks freed by other threads made a
/// scan look at a heap: a tester's 4 workers that each freed 16 MiB of
/// their own and slept kept 43 MiB resident for as long as they slept
/// (glibc: 3 MiB). Owner only; one flag and one tick request per deadline.
fn request_dormant_scan(heap: &Heap) {
    if !heap.owned || !heap.pool.is_null() {
        return;
    }
    raise_notify_pending();
    crate::retain::arm(heap.purge_deadline + crate::retain::wait_ms().max(1));
}

/// What a free into another thread's page does after its push on the
/// page's remote list (`pushed`, the answer of `page::push_remote`):
/// notifies the owner when the page asked for it ([`push_notify`]), or,
/// when the push made the list of a page that asked for nothing
/// non-empty, marks the owner's heap for the dormant-heap scan
/// (`Heap::remote_unseen`). Without the mark, the blocks freed into the
/// pages a sleeping owner had itself freed a block of (which takes a page
/// off the full list, and with it the request to be told) were never
/// taken back: a tester's owner freed every tenth of its 160 000 blocks
/// and slept, another thread freed the rest, and 43 MB stayed resident
/// for good (glibc: 3 MB).
///
/// Nothing of the page is read after a push that the owner may see: the
/// owner (or a trim holding its lock) may take the pushed block, free the
/// page and unmap its segment at once. The caller reads `owner` before its
/// push for the same reason; with [`page::PUSH_NOTIFY`] the page stays
/// live until it is on the notify list (`TF_NOTIFIED` blocks retiring
/// it), and here until `push_notify` has linked it. A tester's program
/// crashed reading the page's span length after `push_notify` (3 runs in
/// 20, with PTRS_ARENA_MAX=3 and a thread trimming in a loop): the segment
/// was gone.
///
/// # Safety
/// `owner` must be a registered heap and `page` its page just pushed to,
/// still protected as above.
#[inline]
pub unsafe fn remote_pushed(owner: *mut Heap, page: *mut Page, pushed: u8) {
    // SAFETY: as the caller guarantees.
    unsafe {
        if pushed & page::PUSH_NOTIFY != 0 {
            let span = ((*page).slice_count as usize) << segment::SLICE_SHIFT;
            push_notify(owner, page);
            note_left_to_tick(span);
        } else if pushed & page::PUSH_FIRST != 0 {
            note_remote_unseen(owner);
        }
    }
}

/// Whether `heap` is a live thread's own heap: not parked, not the shared
/// heap of the threads beyond the arena limit (collected as parked heaps
/// are), not a pool's heap nor the profiler's, whose blocks are handed out
/// and freed under their own rules (a pool's allocating thread takes back
/// remote lists without the heap's lock, the profiler frees into its heap
/// under the profiler's lock alone), so the dormant-heap scan must not
/// take their pages.
///
/// # Safety
/// `heap` must be a registered heap.
unsafe fn is_thread_heap(heap: *mut Heap) -> bool {
    // SAFETY: as the caller guarantees (`owned` read racily, as above).
    unsafe {
        (*heap).owned
            && (*heap).pool.is_null()
            && heap != SHARED_HEAP.load(Ordering::Relaxed)
            && !crate::profile::is_profiler_heap(heap)
    }
}

/// Sets the owner's `remote_unseen` mark (see [`remote_pushed`]): one
/// load where it is set already (the common case: it stays set while its
/// owner is active).
///
/// # Safety
/// `heap` must be a registered heap.
#[cold]
unsafe fn note_remote_unseen(heap: *mut Heap) {
    // SAFETY: heaps are never unmapped; the fields are atomics (`owned`
    // is read racily: a heap parked meanwhile is collected as parked).
    unsafe {
        if (*heap).remote_unseen.load(Ordering::Relaxed) || !is_thread_heap(heap) {
            return;
        }
        (*heap).remote_unseen.store(true, Ordering::Relaxed);
    }
    if raise_notify_pending() {
        crate::retain::arm(os::now_ms() + options::purge_delay_ms().max(1));
    }
}

/// Puts a page on its owner's notify list (called by a remote freer that
/// set `TF_NOTIFIED`). One compare-and-swap.
///
/// # Safety
/// `page` must be a live page whose owner is `heap`.
pub unsafe fn push_notify(heap: *mut Heap, page: *mut Page) {
    // SAFETY: heaps are never unmapped; the page stays live until its
    // owner takes it off the notify list (TF_NOTIFIED blocks retiring it).
    unsafe {
        let list = &(*heap).notify;
        let mut head = list.load(Ordering::Relaxed);
        loop {
            (*page).notify_next = head;
            match list.compare_exchange_weak(head, page, Ordering::Release, Ordering::Relaxed) {
                Ok(_) => break,
                Err(cur) => head = cur,
            }
        }
        // A racy read is enough: a heap parked meanwhile sets the flag
        // itself when it holds pages.
        if !(*heap).owned || heap == SHARED_HEAP.load(Ordering::Relaxed) {
            PARKED_PENDING.store(true, Ordering::Relaxed);
            crate::retain::parked_pending(true);
        } else if raise_notify_pending() {
            // The decay tick looks for dormant owners a delay from now
            // (`collect_dormant_heaps`), whatever else the program does.
            crate::retain::arm(os::now_ms() + options::purge_delay_ms().max(1));
        }
    }
}

/// Takes back every page other threads notified about.
///
/// # Safety
/// `heap` must be owned by the calling thread (or exclusively held).
#[unsafe(link_section = ".text.hot.ptrs")]
unsafe fn process_notify(heap: &mut Heap) {
    let mut page = heap.notify.swap(ptr::null_mut(), Ordering::Acquire);
    while !page.is_null() {
        heap.counters.notifications += 1;
        // SAFETY: pages on the notify list are live pages of this heap (see
        // `push_notify`), published by the Release CAS and acquired above.
        unsafe {
            let next = (*page).notify_next;
            let p = &mut *page;
            heap.counters.remote_collected += page::collect_remote(p, true) as u64;
            if p.flags & FLAG_LARGE != 0 {
                if p.used_count() == 0 {
                    free_page(heap, page);
                } else {
                    p.thread_free.fetch_or(TF_WANT_NOTIFY, Ordering::AcqRel);
                }
            } else {
                if p.is_in_full() {
                    unfull(heap, page);
                }
                if p.used_count() == 0 {
                    retire(heap, page, false);
                }
            }
            page = next;
        }
    }
}

/// True if a segment of the heap other than `seg` is empty.
fn has_other_empty_segment(heap: &Heap, seg: *mut Segment) -> bool {
    let mut cur = heap.segments;
    while !cur.is_null() {
        // SAFETY: the heap's segments are live and owned by it.
        unsafe {
            if cur != seg && (*cur).is_empty() {
                return true;
            }
            cur = (*cur).next;
        }
    }
    false
}

/// Takes a segment off the heap's list (and off its span hints).
///
/// # Safety
/// `seg` must be on `heap.segments`; the caller holds the heap's slow-path
/// lock.
pub unsafe fn unlink_segment(heap: &mut Heap, seg: *mut Segment) {
    forget_span_hint(heap, seg);
    // SAFETY: the caller guarantees `seg` is on the heap's list.
    unsafe {
        let (prev, next) = ((*seg).prev, (*seg).next);
        if prev.is_null() {
            heap.segments = next;
        } else {
            (*prev).next = next;
        }
        if !next.is_null() {
            (*next).prev = prev;
        }
        (*seg).next = ptr::null_mut();
        (*seg).prev = ptr::null_mut();
    }
}

/// The purge tick of a heap in use (its owner's slow paths, or a live
/// owner's heap purged by another thread), when one is due: keeps the
/// share of `retain::kept_free_bytes`.
fn maybe_purge(heap: &mut Heap) {
    if heap.purge_deadline != 0 && os::now_ms() >= heap.purge_deadline {
        purge_with(heap, false, true);
    }
    crate::retain::maybe_tick();
}

/// The longest a thread that adopts a parked heap keeps the memory of
/// the thread before it resident as its own demand ([`Heap::inherited_peak`]).
///
/// A program that runs a fresh set of threads for each request makes each
/// new thread do what the exited one did: it adopts that thread's heap and
/// builds the same working set again, over its whole life, which is far
/// longer than the windows of the heap's own demand (`large_demand`: one
/// purge delay). The free slices of the heap that it had not reached yet
/// were purged by its own first ticks and faulted in again a moment later:
/// a tester's waves of 4 threads, each allocating 2 000 blocks of 64 to
/// 256 KiB, keeping 1 in 20 in a cache and exiting, purged 1.4 GB a wave
/// and took 8.9 M page faults in 30 waves (glibc, which keeps its arenas
/// for the next threads: 0.8 M). The inheritance lasts as long as the
/// exited thread lived, bounded here, so a heap adopted by a thread that
/// does something else gives the memory back a second later at most.
pub const INHERIT_MAX_MS: u64 = 1000;

/// When a thread last adopted a parked heap (coarse ms; 0: never).
static LAST_ADOPTION_MS: AtomicU64 = AtomicU64::new(0);

/// Records the heap's current bytes of spans in its owner's peak. Under
/// the slow-path lock.
fn note_owner_peak(heap: &mut Heap) {
    heap.owner_peak = heap.owner_peak.max(heap.large_live + heap.small_live);
}

/// Bytes of free slices the inherited demand keeps at `now`: what the
/// exited thread before the owner had in use at its peak, less what the
/// owner has in use; 0 once the inheritance lapsed.
fn inherited_spare(heap: &Heap, now: u64) -> usize {
    if now >= heap.inherited_until {
        return 0;
    }
    heap.inherited_peak.saturating_sub(heap.large_live + heap.small_live)
}

/// At thread exit (the slow-path lock held): what the next owner will
/// inherit, the exiting owner's peak and how long it held the heap.
fn bequeath(heap: &mut Heap) {
    let now = os::now_ms();
    heap.inherited_peak = heap.owner_peak;
    heap.inherit_ms = now.saturating_sub(heap.owner_since).min(INHERIT_MAX_MS);
    heap.inherited_until = now + heap.inherit_ms;
}

/// When a thread adopts a parked heap: the inheritance starts now.
fn inherit(heap: *mut Heap) {
    // SAFETY: `heap` is a real heap just taken out of the pool by the
    // caller; its lock orders these writes with other threads' scans.
    unsafe {
        let _l = SlowLock::lock(heap);
        let h = &mut *heap;
        let now = os::now_ms();
        h.inherited_until = now + h.inherit_ms;
        LAST_ADOPTION_MS.store(now, Ordering::Relaxed);
        h.owner_since = now;
        h.owner_peak = h.large_live + h.small_live;
    }
}

/// The purge tick of a heap that no live thread owns (a parked heap, or
/// the shared heap collected by others), when one is due: keeps nothing
/// but what a parked heap's next owner inherits ([`INHERIT_MAX_MS`]: at
/// most as long as its last owner lived, at most a second), since no owner
/// is about to reuse the rest.
fn maybe_purge_unowned(heap: &mut Heap) {
    if heap.purge_deadline != 0 && os::now_ms() >= heap.purge_deadline {
        purge_with(heap, false, false);
    }
    crate::retain::maybe_tick();
}

/// The first page a heap makes of a class whose pages span several slices
/// (blocks above 8 KiB: 512 KiB pages) gives back its uncarved tail at
/// once when it was made on written slices: a class the heap never used
/// before is most often one that it uses for a block or two (a string
/// grown by realloc passes through every class of 8 to 64 KiB once), and
/// such a page kept what an earlier large block wrote resident until the
/// next purge tick (`purge_page_tails`), which came after the peak of the
/// realloc-growth workload (lifecycle reallocgrow: four such pages, +2.7
/// MiB of peak RSS, 13.9 -> 16.6 MiB, in the runs where the heap profiler
/// moved blocks so that they were made on written slices). Later pages of
/// a class, which a program that uses the class a lot fills at once (the
/// rounds of `lifecycle rounds16k`), are left to the ticks.
fn purge_first_page_tail(heap: &mut Heap, bin: usize, p: &mut Page) {
    let bit = 1u128 << bin;
    if heap.classes_paged & bit != 0 || p.slice_count <= 1 {
        return;
    }
    heap.classes_paged |= bit;
    heap.counters.purged_bytes += purge_tail(p) as u64;
}

/// Purges the uncarved tail of the small page `p` unless it is known clean
/// ([`page::FLAG_TAIL_CLEAN`], which it then is). Returns the bytes
/// purged.
fn purge_tail(p: &mut Page) -> usize {
    use crate::os::OS_PAGE_SIZE;
    if p.flags & (page::FLAG_TAIL_CLEAN | page::FLAG_BUMP) != 0 || p.capacity >= p.reserved {
        return 0;
    }
    p.flags |= page::FLAG_TAIL_CLEAN;
    let start = p.start as usize;
    let lo = (start + p.capacity as usize * p.block_size).next_multiple_of(OS_PAGE_SIZE);
    // SAFETY: `p` heads a span of one of its heap's segments.
    let hi = unsafe { segment::span_end(p) } & !(OS_PAGE_SIZE - 1);
    if hi <= lo {
        return 0;
    }
    // SAFETY: blocks at and above `capacity` are not carved: nothing lives
    // there, and only the holder of the heap carves them (the caller).
    unsafe { os::purge(lo as *mut u8, hi - lo) };
    hi - lo
}

/// Pages of a class looked at per purge tick (`purge_page_tails`): the
/// page being carved is the queue head, or next to it after a page that
/// got frees back moved in front of it.
const TAIL_PAGES_PER_CLASS: usize = 4;

/// Returns to the OS the uncarved tails of small pages made on slices
/// that held written memory: a page carves its blocks a few at a time
/// (`page::extend`), and a page of a class the program uses little (one
/// or two blocks of 40 KiB in a 512 KiB page) kept up to the whole span
/// resident that an earlier large block or page had written. Each page is
/// purged once ([`page::FLAG_TAIL_CLEAN`]); `all` looks at every page of
/// every class, a tick at the first [`TAIL_PAGES_PER_CLASS`] of each.
/// Carving happens under the heap's slow-path lock or by its owner, and
/// so does this (callers of `purge_with`). Returns the bytes purged.
///
/// The realloc-growth workload (`lifecycle reallocgrow`) left 20 such
/// pages resident after it freed everything; with the heap profiler on,
/// which moves some blocks elsewhere, they were 2 to 6 MiB, and its RSS
/// after the free was 10.4 to 12.6 MiB against 5.8 to 6.4 with the tails
/// purged (profiler at 64 KiB).
fn purge_page_tails(heap: &mut Heap, all: bool) -> usize {
    let mut purged = 0;
    for bin in 0..BIN_COUNT {
        let mut page = heap.bins[bin].first;
        let mut seen = 0;
        while !page.is_null() && (all || seen < TAIL_PAGES_PER_CLASS) {
            // SAFETY: queue pages are live pages of this heap, which the
            // caller holds: `&mut Heap` is its owner's, or one taken under
            // its slow-path lock, as for every caller of `purge_with`.
            let p = unsafe { &mut *page };
            purged += purge_tail(p);
            seen += 1;
            page = p.next;
        }
    }
    purged
}

/// Returns the memory of free slices of the heap's segments to the OS
/// (`all`: every free slice now; otherwise those free since the last
/// tick, less the share of the active bytes that
/// `retain::kept_free_bytes` keeps)
/// and gives back segments left empty and purged. Re-arms the deadline
/// while slices wait for their turn.
pub fn purge(heap: &mut Heap, all: bool) {
    purge_with(heap, all, true);
}

/// [`purge`]; `keep_share`: whether a tick (`all` false) keeps the share
/// of the active bytes.
fn purge_with(heap: &mut Heap, all: bool, keep_share: bool) {
    heap.purge_deadline = 0;
    heap.freed_since_purge = 0;
    heap.counters.purged_bytes += purge_page_tails(heap, all) as u64;
    let mut pending = false;
    let now = os::now_ms();
    let delay = crate::retain::wait_ms();
    let mut keep = 0;
    // Bytes kept for the recent demand for large blocks and small pages.
    let mut demand_keep = 0;
    let mut small_keep = 0;
    // What the heap's owner inherited from the exited thread before it.
    let inherited = inherited_spare(heap, now);
    // A delay of 0 asks for every free page to go back at once.
    if !all && keep_share && delay != 0 {
        let mut seg = heap.segments;
        while !seg.is_null() {
            // SAFETY: the heap's segments are live and owned by it.
            unsafe {
                keep += segment::active_bytes(&*seg);
                seg = (*seg).next;
            }
        }
        // The recent demand for large blocks raises the share; it alone
        // keeps slices of empty segments.
        demand_keep = heap.large_demand.spare(now, delay, delay, heap.large_live);
        // And the recent demand for small pages, for a program that
        // rebuilds what it tore down.
        let window = crate::retain::page_demand_window();
        small_keep = heap.small_demand.spare(now, window, window, heap.small_live);
        demand_keep = demand_keep.max(small_keep);
        demand_keep = demand_keep.max(inherited);
        keep = crate::retain::kept_free_bytes(keep).max(demand_keep);
    } else if !all && delay != 0 && now < LAST_ADOPTION_MS.load(Ordering::Relaxed).saturating_add(INHERIT_MAX_MS) {
        // A parked heap in a program that replaces its threads (one was
        // adopted within the last second): the thread that adopts it next
        // inherits its last owner's demand (see `INHERIT_MAX_MS`). In a
        // program that starts its threads in waves, the first of a wave to
        // exit waits parked until the next wave starts. A program whose
        // threads exit for good gives a parked heap's free memory back
        // after the purge delay, as before.
        demand_keep = inherited;
        keep = demand_keep;
    }
    let mut demand_left = demand_keep;
    let mut seg = heap.segments;
    while !seg.is_null() {
        // SAFETY: the heap's segments are live and owned by it.
        unsafe {
            let next = (*seg).next;
            let s = &mut *seg;
            let (purged, left) = if all {
                (segment::purge_free_slices(s), false)
            } else {
                segment::purge_aged_slices(s, now, delay, &mut keep, &mut demand_left)
            };
            heap.counters.purged_bytes += purged as u64;
            if s.is_empty() && s.dirty_slices == s.used_slices && !heap.hold_segments {
                unlink_segment(heap, seg);
                segment::release(seg);
            } else if left {
                pending = true;
            }
            seg = next;
        }
    }
    if pending {
        heap.purge_deadline = os::now_ms() + crate::retain::wait_ms().max(1);
    }
    if demand_keep != 0 {
        // What the demand kept goes when it lapses.
        let mut lapse = heap.large_demand.lapses_at(delay);
        if small_keep != 0 {
            lapse = lapse.max(heap.small_demand.lapses_at(crate::retain::page_demand_window()));
        }
        if inherited != 0 {
            lapse = lapse.max(heap.inherited_until);
        }
        let lapse = lapse.max(now + 1);
        if heap.purge_deadline == 0 || lapse < heap.purge_deadline {
            heap.purge_deadline = lapse;
        }
    }
    if heap.purge_deadline != 0 && ptr::eq(heap, tls::current()) {
        request_dormant_scan(heap);
    }
}

/// Collects everything the heap can give back: remote frees, empty pages
/// (all of them when `force`), free slices and empty segments.
///
/// # Safety
/// `heap` must be the calling thread's heap or exclusively held.
pub unsafe fn collect(heap: &mut Heap, force: bool) {
    // SAFETY: the caller guarantees exclusive access to `heap`.
    unsafe {
        if force {
            // The blocks kept from other heaps go back to their owners: the
            // thread exits, goes idle, or trims.
            crate::foreign::give_back_all(&mut heap.foreign);
        }
        process_notify(heap);
        // Full pages that got remote frees without a notification pending.
        let mut page = heap.full.first;
        while !page.is_null() {
            let next = (*page).next;
            let p = &mut *page;
            let tf = p.thread_free.load(Ordering::Acquire);
            if tf & TF_NOTIFIED == 0
                && tf & page::TF_LIST != 0
                && p.thread_free.compare_exchange(tf, tf & !TF_FLAGS, Ordering::AcqRel, Ordering::Relaxed).is_ok()
            {
                heap.counters.remote_collected += page::collect_remote(p, true) as u64;
                heap.full.remove(page);
                p.used &= !IN_FULL;
                heap.push_page_back(p.bin as usize, page);
            }
            page = next;
        }
        for bin in 0..BIN_COUNT {
            let mut page = heap.bins[bin].first;
            while !page.is_null() {
                let next = (*page).next;
                let p = &mut *page;
                heap.counters.remote_collected += page::collect_remote(p, false) as u64;
                if p.used_count() == 0 {
                    retire(heap, page, force);
                }
                page = next;
            }
        }
    }
    if force {
        // SAFETY: the caller guarantees exclusive access to `heap`.
        unsafe { release_free(heap) };
    } else {
        maybe_purge_unowned(heap);
    }
}

/// Hands every empty segment of the heap to the retention policy (which
/// keeps recently used ones resident for a while) and purges the free
/// slices of the others that have been free for a purge delay (the rest
/// when their turn comes: at a thread's exit they are the pages the next
/// thread to adopt the heap, in a program that replaces its threads, is
/// about to use; purging them at once cost 5 madvise calls per thread).
///
/// # Safety
/// `heap` must be the calling thread's heap or exclusively held.
unsafe fn release_free(heap: &mut Heap) {
    let mut seg = heap.segments;
    while !seg.is_null() {
        // SAFETY: the heap's segments are live and owned by it.
        unsafe {
            let next = (*seg).next;
            if (*seg).is_empty() {
                unlink_segment(heap, seg);
                segment::release(seg);
            }
            seg = next;
        }
    }
    // A purge tick only when one is due: ticks must be a delay apart, or
    // slices freed a moment ago would count as aged. Free slices that an
    // earlier tick kept (while the heap was in use) left no tick pending:
    // one is armed for them, so that they go back a delay after the heap
    // was given up (tester7's park2: an exited thread's heap kept a
    // quarter of its active bytes, 6.8 MiB, until malloc_trim).
    if heap.purge_deadline == 0 && has_free_dirty_slices(heap) {
        heap.purge_deadline = os::now_ms() + crate::retain::wait_ms().max(1);
    }
    maybe_purge_unowned(heap);
}

/// Whether any segment of the heap has free slices still resident.
fn has_free_dirty_slices(heap: &Heap) -> bool {
    let mut seg = heap.segments;
    while !seg.is_null() {
        // SAFETY: the heap's segments are live and owned by it.
        unsafe {
            if (*seg).free_dirty_slices() != 0 {
                return true;
            }
            seg = (*seg).next;
        }
    }
    false
}
