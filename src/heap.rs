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
use core::sync::atomic::{AtomicPtr, Ordering};

use crate::options;
use crate::os;
use crate::page::{
    self, Page, FLAG_LARGE, FLAG_PINNED, IN_FULL, NO_BIN, TF_FLAGS, TF_NOTIFIED, TF_WANT_NOTIFY,
};
use crate::segment::{self, Segment};
use crate::size_class::{bin_size, bin_slices, BIN_COUNT, DIRECT_COUNT, MIN_ALIGN};
use crate::sync::{GlobalCell, GlobalGuard};
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
    /// When to purge free slices (coarse ms), 0 if nothing is pending.
    pub purge_deadline: u64,
    /// Owned by a live thread (under GLOBAL).
    pub owned: bool,
    /// Every heap ever made (under GLOBAL).
    pub registry_next: *mut Heap,
    /// The pool of parked heaps (under GLOBAL).
    pub pool_next: *mut Heap,
    pub counters: HeapCounters,
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

static EMPTY_PAGE: PageCell = PageCell(UnsafeCell::new(Page::empty()));

const fn empty_page() -> *mut Page {
    (&raw const EMPTY_PAGE) as *mut Page
}

/// The heap every thread starts with: no pages, so the first allocation
/// takes the slow path, which gives the thread a real heap.
pub static EMPTY_HEAP: HeapCell = HeapCell(UnsafeCell::new(Heap {
    pages_direct: [empty_page(); DIRECT_COUNT],
    bins: [PageQueue::EMPTY; BIN_COUNT],
    pinned: [ptr::null_mut(); BIN_COUNT],
    full: PageQueue::EMPTY,
    notify: AtomicPtr::new(ptr::null_mut()),
    segments: ptr::null_mut(),
    purge_deadline: 0,
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
}));

#[inline(always)]
pub fn is_empty_heap(heap: *mut Heap) -> bool {
    heap == EMPTY_HEAP.get()
}

/// Heaps ever made and the pool of parked ones, under GLOBAL.
struct HeapRegistry {
    all: *mut Heap,
    pool: *mut Heap,
    count: usize,
}

static HEAPS: GlobalCell<HeapRegistry> =
    GlobalCell::new(HeapRegistry { all: ptr::null_mut(), pool: ptr::null_mut(), count: 0 });

impl Heap {
    /// Makes the queue head of `bin` visible to the fast path and moves the
    /// pin to it.
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
        if bin_size(bin) > crate::size_class::DIRECT_MAX {
            return;
        }
        // Direct entries i with bin_of(16 * i) == bin.
        let lo = if bin == 0 { 0 } else { bin_size(bin - 1) / MIN_ALIGN + 1 };
        let hi = bin_size(bin) / MIN_ALIGN;
        for slot in &mut self.pages_direct[lo..=hi] {
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

#[cold]
#[inline(never)]
fn thread_heap_slow() -> *mut Heap {
    crate::init::ensure();
    let adopted = {
        let _g = GlobalGuard::lock();
        // SAFETY: GLOBAL is held.
        let reg = unsafe { HEAPS.get() };
        let heap = reg.pool;
        if !heap.is_null() {
            // SAFETY: pooled heaps are valid; pool links are under GLOBAL.
            unsafe {
                reg.pool = (*heap).pool_next;
                (*heap).pool_next = ptr::null_mut();
                (*heap).owned = true;
            }
        }
        heap
    };
    let heap = if adopted.is_null() { new_heap() } else { adopted };
    if heap.is_null() {
        return heap;
    }
    tls::set_current(heap);
    crate::init::register_thread(heap);
    heap
}

pub(crate) fn new_heap() -> *mut Heap {
    let size = (core::mem::size_of::<Heap>() + os::OS_PAGE_SIZE - 1) & !(os::OS_PAGE_SIZE - 1);
    let heap = os::map(size) as *mut Heap;
    if heap.is_null() {
        return heap;
    }
    // SAFETY: `heap` is a fresh mapping large enough for a Heap; EMPTY_HEAP
    // is a valid template (pointers to the shared empty page, empty queues).
    unsafe {
        ptr::copy_nonoverlapping(EMPTY_HEAP.get(), heap, 1);
        (*heap).owned = true;
    }
    let _g = GlobalGuard::lock();
    // SAFETY: GLOBAL is held.
    let reg = unsafe { HEAPS.get() };
    // SAFETY: `heap` is valid; registry links are under GLOBAL.
    unsafe { (*heap).registry_next = reg.all };
    reg.all = heap;
    reg.count += 1;
    heap
}

/// Parks the calling thread's heap at thread exit: collects what other
/// threads freed, returns empty pages and segments, and puts the heap in
/// the pool for the next new thread.
///
/// # Safety
/// `heap` must be the calling thread's heap.
pub unsafe fn abandon(heap: *mut Heap) {
    // Not forced: the heap's pages and dirty slices stay for the next thread
    // that adopts it (thread churn then costs no purge and no page faults);
    // malloc_trim purges parked heaps.
    // SAFETY: the caller guarantees `heap` is ours.
    unsafe { collect(&mut *heap, false) };
    tls::set_current(EMPTY_HEAP.get());
    let _g = GlobalGuard::lock();
    // SAFETY: GLOBAL is held; `heap` is valid.
    let reg = unsafe { HEAPS.get() };
    // SAFETY: as above.
    unsafe {
        (*heap).owned = false;
        (*heap).pool_next = reg.pool;
    }
    reg.pool = heap;
}

/// Collects every parked heap (malloc_trim). Heaps are taken out of the
/// pool while they are worked on, so no new thread adopts one meanwhile.
pub fn collect_parked() {
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
    while !list.is_null() {
        // SAFETY: the heaps taken from the pool are valid and now
        // exclusively ours until they are put back.
        unsafe {
            let next = (*list).pool_next;
            collect(&mut *list, true);
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
/// # Safety
/// `heap` must be the calling thread's (real) heap.
#[inline]
pub unsafe fn alloc_bin(heap: &mut Heap, bin: usize) -> *mut u8 {
    let mut page = heap.bins[bin].first;
    // SAFETY: queue pages are live pages of this heap.
    unsafe {
        if page.is_null() || (*page).free.is_null() {
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
    let block = page.free;
    // SAFETY: the free list holds free blocks of this page.
    unsafe {
        let next = page::next_of(block, page.key);
        if !next.is_null() && !page::same_segment(next, page) {
            corrupted_list(block);
        }
        page.free = next;
        (*block).mark = 0;
    }
    page.used += 1;
    block as *mut u8
}

#[cold]
#[inline(never)]
pub fn corrupted_list(block: *mut page::Block) -> ! {
    crate::diag::print(format_args!(
        "ptrs: malloc(): corrupted free list detected: {:#x}\n",
        block as usize
    ));
    // SAFETY: abort has no preconditions. A corrupted free list cannot be
    // used safely, so this aborts whatever the abort option says.
    unsafe { libc::abort() }
}

/// Finds (or makes) a page of class `bin` with a free block and puts it
/// first in its queue. Null when out of memory.
///
/// # Safety
/// `heap` must be the calling thread's (real) heap.
#[cold]
#[inline(never)]
pub unsafe fn refill(heap: &mut Heap, bin: usize) -> *mut Page {
    heap.counters.page_refills += 1;
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
            if p.free.is_null() {
                heap.counters.remote_collected += page::collect_remote(p, false) as u64;
            }
            if p.free.is_null() {
                page::extend(p);
            }
            if !p.free.is_null() {
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
        heap.push_page_back(p.bin as usize, page);
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
pub fn alloc_span(heap: &mut Heap, count: usize) -> *mut Page {
    let heap_ptr = heap as *mut Heap;
    let mut seg = heap.segments;
    while !seg.is_null() {
        // SAFETY: segments on the heap's list are live and owned by it.
        unsafe {
            if let Some(index) = segment::find_span(&*seg, count) {
                return segment::claim_span(&mut *seg, index, count, heap_ptr);
            }
            seg = (*seg).next;
        }
    }
    let seg = segment::acquire(heap_ptr);
    if seg.is_null() {
        return ptr::null_mut();
    }
    // SAFETY: `seg` is a fresh segment now owned by this heap.
    unsafe {
        (*seg).next = heap.segments;
        if !heap.segments.is_null() {
            (*heap.segments).prev = seg;
        }
        heap.segments = seg;
        let index = segment::find_span(&*seg, count).unwrap_or(1);
        segment::claim_span(&mut *seg, index, count, heap_ptr)
    }
}

/// A large block: a span of `count` slices holding one block. Remote frees
/// of it notify the owner. Null when out of memory.
///
/// # Safety
/// `heap` must be the calling thread's (real) heap.
pub unsafe fn alloc_large(heap: &mut Heap, count: usize) -> *mut u8 {
    // SAFETY: `heap` is ours.
    unsafe {
        if !heap.notify.load(Ordering::Relaxed).is_null() {
            process_notify(heap);
        }
        maybe_purge(heap);
    }
    let page = alloc_span(heap, count);
    if page.is_null() {
        return ptr::null_mut();
    }
    heap.counters.large_allocs += 1;
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

// ---------------------------------------------------------------------------
// Slow paths of free.

/// A local free left the page empty, or the page was on the full list.
///
/// # Safety
/// `page` must be a live page of `heap`, the calling thread's heap.
#[cold]
#[inline(never)]
pub unsafe fn free_local_slow(heap: &mut Heap, page: *mut Page) {
    // free must preserve errno; purging could change it.
    let saved = os::errno();
    // SAFETY: the caller guarantees the page is ours.
    unsafe { free_local_slow_inner(heap, page) };
    os::set_errno(saved);
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
            retire(heap, page, false);
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

/// Returns a page's slices to its segment and schedules a purge.
///
/// # Safety
/// `page` must be a page of `heap` on no queue, with no block in use.
unsafe fn free_page(heap: &mut Heap, page: *mut Page) {
    // SAFETY: `page` is a live page of this heap (caller).
    if unsafe { (*page).flags } & FLAG_LARGE != 0 {
        heap.counters.large_frees += 1;
    } else {
        heap.counters.pages_freed += 1;
    }
    let seg = Segment::of_unchecked(page as usize);
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
        if (*seg).is_empty() && has_other_empty_segment(heap, seg) {
            unlink_segment(heap, seg);
            segment::release(seg);
            return;
        }
    }
    let delay = options::purge_delay_ms();
    if delay == 0 {
        // SAFETY: as above.
        heap.counters.purged_bytes += segment::purge_free_slices(unsafe { &mut *seg }) as u64;
        // SAFETY: as above.
        if unsafe { (*seg).is_empty() } {
            purge(heap, true);
        }
    } else if heap.purge_deadline == 0 {
        heap.purge_deadline = os::now_ms() + delay;
    } else {
        maybe_purge(heap);
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
                Ok(_) => return,
                Err(cur) => head = cur,
            }
        }
    }
}

/// Takes back every page other threads notified about.
///
/// # Safety
/// `heap` must be owned by the calling thread (or exclusively held).
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

/// Takes a segment off the heap's list.
///
/// # Safety
/// `seg` must be on `heap.segments`.
unsafe fn unlink_segment(heap: &mut Heap, seg: *mut Segment) {
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

fn maybe_purge(heap: &mut Heap) {
    if heap.purge_deadline != 0 && os::now_ms() >= heap.purge_deadline {
        purge(heap, false);
    }
}

/// Returns the memory of free slices of the heap's segments to the OS
/// (`all`: every free slice now; otherwise those free since the last tick)
/// and gives back segments left empty and purged. Re-arms the deadline
/// while slices wait for their turn.
pub fn purge(heap: &mut Heap, all: bool) {
    heap.purge_deadline = 0;
    crate::huge::trim_cache(all);
    let mut pending = false;
    let mut seg = heap.segments;
    while !seg.is_null() {
        // SAFETY: the heap's segments are live and owned by it.
        unsafe {
            let next = (*seg).next;
            let s = &mut *seg;
            heap.counters.purged_bytes += if all {
                segment::purge_free_slices(s)
            } else {
                segment::purge_aged_slices(s)
            } as u64;
            if s.is_empty() && s.dirty_slices == s.used_slices {
                unlink_segment(heap, seg);
                segment::release(seg);
            } else if s.purge_candidates != 0 {
                pending = true;
            }
            seg = next;
        }
    }
    if pending {
        heap.purge_deadline = os::now_ms() + options::purge_delay_ms().max(1);
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
        process_notify(heap);
        // Full pages that got remote frees without a notification pending.
        let mut page = heap.full.first;
        while !page.is_null() {
            let next = (*page).next;
            let p = &mut *page;
            let tf = p.thread_free.load(Ordering::Acquire);
            if tf & TF_NOTIFIED == 0
                && tf & !TF_FLAGS != 0
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
        purge(heap, true);
    } else {
        maybe_purge(heap);
    }
}
