//! Invariant walkers for tests and debugging (in the spirit of mimalloc's
//! `mi_page_is_valid` and talc's `scan_for_errors`).
//!
//! Each function walks engine structures and returns `true` when every
//! invariant holds. On the first violation it prints one line,
//! `ptrs: check: <what>: ...`, with `diag::print` (unless [`set_report`]
//! turned that off for the thread) and returns `false`. Nothing
//! here allocates or locks (except [`check_parked_heaps`], which holds
//! GLOBAL), so the walkers may run from any context, but they are slow:
//! keep them out of hot paths.
//!
//! What is checked, beyond the module docs of `page`, `heap` and `segment`:
//!
//! - a page's local free list holds distinct carved blocks of the page,
//!   each with the free mark or (freshly carved by `page::extend`) a zero
//!   second word; its remote list (a snapshot) holds distinct carved blocks
//!   with the free mark, none of them on the local list;
//! - `used + |free| == capacity` (remote frees still count as used),
//!   `capacity <= reserved == span / block_size`;
//! - a heap's queues are well linked, hold pages of their class, their
//!   first page is the pinned one and the one `pages_direct` shows; pages on
//!   the full list carry `IN_FULL` and ask for notification;
//! - a heap's segments are valid, owned by it, and their slice bitmap
//!   matches the page descriptors; every small page of the segments is on
//!   exactly one queue or the full list.
//!
//! The walked heap must be the calling thread's, or quiet (parked and not
//! being collected): other threads may still push remote frees meanwhile,
//! which the walkers tolerate.

use core::sync::atomic::Ordering;

use crate::diag;
use crate::heap::{self, Heap, PageQueue, EMPTY_HEAP};
use crate::page::{
    self, Page, FLAG_HUGE, FLAG_LARGE, FLAG_PINNED, IN_FULL, NO_BIN,
    TF_WANT_NOTIFY,
};
use crate::segment::{Segment, SegmentKind, SLICE_COUNT};
use crate::size_class::{bin_of, bin_size, bin_slices, div_params, BIN_COUNT, DIRECT_COUNT, MIN_ALIGN};
use crate::tls;

/// Bound on queue and segment-list walks (a cycle fails the check).
const MAX_LIST: usize = 1 << 22;

std::thread_local! {
    /// Whether failures are printed (per thread: tests that corrupt state
    /// on purpose turn it off).
    static REPORT: core::cell::Cell<bool> = const { core::cell::Cell::new(true) };
}

/// Turns the failure lines of the calling thread's checks on or off (on by
/// default). Returns the previous setting.
pub fn set_report(on: bool) -> bool {
    REPORT.with(|r| r.replace(on))
}

fn report(args: core::fmt::Arguments<'_>) {
    if REPORT.with(|r| r.get()) {
        diag::print(format_args!("ptrs: check: {}\n", args));
    }
}

macro_rules! fail {
    ($($arg:tt)*) => {{
        report(format_args!($($arg)*));
        return false;
    }};
}

/// The shared page that empty `pages_direct` entries point to.
fn empty_page() -> *mut Page {
    // SAFETY: EMPTY_HEAP is never written; its direct table holds the
    // address of the static empty page in every entry.
    unsafe { (*EMPTY_HEAP.get()).pages_direct[0] }
}

/// Checks one live page of a heap (small or large); see the module docs.
/// The page's heap must be the calling thread's or quiet.
pub fn check_page(page: &Page) -> bool {
    let addr = page as *const Page as usize;
    if !crate::segment_map::has_segment(addr) {
        fail!("page {:#x}: not in a ptrs segment", addr);
    }
    if page.slice_count == 0 || page.head_offset != 0 {
        fail!("page {:#x}: not a span head (slices {}, head offset {})", addr, page.slice_count, page.head_offset);
    }
    if page.heap.is_null() {
        fail!("page {:#x}: no owning heap", addr);
    }
    if page.flags & FLAG_HUGE != 0 {
        fail!("page {:#x}: huge flag on a segment page", addr);
    }
    let seg = Segment::of_unchecked(addr);
    // SAFETY: page descriptors live in their segment's header, which is
    // mapped while the page is live.
    let seg = unsafe { &*seg };
    let index = (addr - seg.pages.as_ptr() as usize) / core::mem::size_of::<Page>();
    if index == 0 || index + page.slice_count as usize > SLICE_COUNT {
        fail!("page {:#x}: slice index {} count {} out of range", addr, index, page.slice_count);
    }
    if page.start != seg.slice_addr(index) {
        fail!("page {:#x}: start {:#x} is not its slice {:#x}", addr, page.start as usize, seg.slice_addr(index) as usize);
    }
    if page.head != page as *const Page as *mut Page {
        fail!("page {:#x}: head link {:#x} is not itself", addr, page.head as usize);
    }
    if page.key != Page::new_keyed(page).key {
        fail!("page {:#x}: key {:#x} is not the one derived for it", addr, page.key);
    }
    if (page.div_inverse, page.div_shift) != div_params(page.block_size) {
        fail!("page {:#x}: block-start parameters do not match block size {}", addr, page.block_size);
    }
    let pinned = (page.flags & FLAG_PINNED != 0) as u32;
    let raw_used = (page.used & !IN_FULL) as u32;
    if raw_used < pinned {
        fail!("page {:#x}: pinned with used {}", addr, page.used);
    }
    let used = raw_used - pinned;
    let tf = page.thread_free.load(Ordering::Acquire);

    if page.flags & FLAG_LARGE != 0 {
        if page.bin != NO_BIN || page.block_size != page.span_size() {
            fail!(
                "large page {:#x}: bin {} magic {} block size {} span {}",
                addr, page.bin, page.div_inverse, page.block_size, page.span_size(),
            );
        }
        if page.reserved != 1 || page.capacity != 1 || used != 1 || page.used & IN_FULL != 0 || pinned != 0 {
            fail!(
                "large page {:#x}: reserved {} capacity {} used {:#x} flags {:#x}",
                addr, page.reserved, page.capacity, page.used, page.flags
            );
        }
        if !page::at_end(page, page.free) {
            fail!("large page {:#x}: local free list not empty", addr);
        }
        if tf & TF_WANT_NOTIFY == 0 {
            fail!("large page {:#x}: remote frees would not notify (thread_free {:#x})", addr, tf);
        }
        let remote = page::remote_head(tf);
        if !remote.is_null() {
            // SAFETY: a block on the remote list was published by the
            // Release CAS of push_remote and acquired above.
            let next = unsafe { page::next_of(remote, page.key) };
            if remote as usize != page.start as usize || !page::at_end(page, next) {
                fail!("large page {:#x}: remote list {:#x} -> {:#x}", addr, remote as usize, next as usize);
            }
        }
        return true;
    }

    // A small page.
    if page.bin as usize >= BIN_COUNT {
        fail!("page {:#x}: bin {} out of range", addr, page.bin);
    }
    let bin = page.bin as usize;
    if page.block_size != bin_size(bin) {
        fail!("page {:#x}: block size {} does not match bin {}", addr, page.block_size, bin);
    }
    if page.slice_count as usize != bin_slices(bin) {
        fail!("page {:#x}: {} slices for bin {} (expected {})", addr, page.slice_count, bin, bin_slices(bin));
    }
    let span = page.span_size();
    if page.reserved as usize * page.block_size > span || page.reserved as usize != span / page.block_size {
        fail!("page {:#x}: reserved {} blocks of {} in a span of {}", addr, page.reserved, page.block_size, span);
    }
    if page.capacity > page.reserved {
        fail!("page {:#x}: capacity {} > reserved {}", addr, page.capacity, page.reserved);
    }
    if page.reserved as usize > page::MAX_PAGE_BLOCKS {
        fail!("page {:#x}: reserved {} > {}", addr, page.reserved, page::MAX_PAGE_BLOCKS);
    }
    if used > page.capacity {
        fail!("page {:#x}: used {} > capacity {}", addr, used, page.capacity);
    }

    let mut seen = page::BlockSet::new();
    let mark = page.key;

    // The local free list.
    let mut local = 0u32;
    let mut cur = page.free;
    while !page::at_end(page, cur) {
        if local >= page.capacity {
            fail!("page {:#x}: local free list longer than capacity {} (cycle?)", addr, page.capacity);
        }
        let b = cur as usize;
        if !page::same_segment(cur, page) || b & (MIN_ALIGN - 1) != 0 || !page.is_block_start(b) {
            fail!("page {:#x}: local free list entry {:#x} (#{}) is not a carved block", addr, b, local);
        }
        if !seen.insert(page, cur) {
            fail!("page {:#x}: block {:#x} twice on the local free list", addr, b);
        }
        // SAFETY: `cur` is a carved block of this page (checked above), on
        // the local free list, so its first two words are readable.
        let (m, next) = unsafe { ((*cur).mark, page::next_of(cur, page.key)) };
        if m != mark && m != 0 {
            fail!("page {:#x}: free block {:#x} has mark {:#x}", addr, b, m);
        }
        local += 1;
        cur = next;
    }

    // A snapshot of the remote list: later pushes go on top of it, and only
    // the owner (the caller, or nobody) takes blocks off it.
    let mut remote = 0u32;
    let mut cur = page::remote_head(tf);
    while !page::at_end(page, cur) {
        if remote >= used {
            fail!("page {:#x}: remote list longer than used {} (cycle?)", addr, used);
        }
        let b = cur as usize;
        if !page::same_segment(cur, page) || b & (MIN_ALIGN - 1) != 0 || !page.is_block_start(b) {
            fail!("page {:#x}: remote list entry {:#x} (#{}) is not a carved block", addr, b, remote);
        }
        if !seen.insert(page, cur) {
            fail!("page {:#x}: block {:#x} twice on the free lists", addr, b);
        }
        // SAFETY: the block was published by the Release CAS of push_remote
        // and acquired by the load of `thread_free` above.
        let (m, next) = unsafe { ((*cur).mark, page::next_of(cur, page.key)) };
        if m != mark {
            fail!("page {:#x}: remotely freed block {:#x} has mark {:#x}", addr, b, m);
        }
        remote += 1;
        cur = next;
    }

    // The length pushed with the list, which the owner takes off `used`.
    if remote != page::remote_len(tf) {
        fail!("page {:#x}: remote list of {} blocks, its word says {}", addr, remote, page::remote_len(tf));
    }
    if used + local != page.capacity {
        fail!(
            "page {:#x}: used {} + free {} != capacity {} (remote {}, bin {})",
            addr, used, local, page.capacity, remote, bin
        );
    }
    true
}

/// Walks one queue: links, class and flags of its pages. Returns the number
/// of pages, or `None` after reporting a failure.
fn check_queue(heap: &Heap, q: &PageQueue, bin: Option<usize>) -> Option<usize> {
    let heap_ptr = heap as *const Heap as *mut Heap;
    let mut prev: *mut Page = core::ptr::null_mut();
    let mut cur = q.first;
    let mut n = 0usize;
    while !cur.is_null() {
        if n >= MAX_LIST {
            report(format_args!("queue {:?} of heap {:#x} too long (cycle?)", bin, heap_ptr as usize));
            return None;
        }
        // SAFETY: pages on a heap's queues are live pages of that heap.
        let p = unsafe { &*cur };
        let ok = (|| {
            if p.prev != prev {
                fail!("page {:#x}: prev {:#x}, expected {:#x}", cur as usize, p.prev as usize, prev as usize);
            }
            if p.heap != heap_ptr {
                fail!("page {:#x}: on a queue of heap {:#x} but owned by {:#x}", cur as usize, heap_ptr as usize, p.heap as usize);
            }
            if p.flags & (FLAG_LARGE | FLAG_HUGE) != 0 {
                fail!("page {:#x}: large or huge page on a queue", cur as usize);
            }
            match bin {
                Some(b) => {
                    if p.bin as usize != b {
                        fail!("page {:#x}: bin {} on queue {}", cur as usize, p.bin, b);
                    }
                    if p.is_in_full() {
                        fail!("page {:#x}: IN_FULL on queue {}", cur as usize, b);
                    }
                    let first = prev.is_null();
                    if first != (p.flags & FLAG_PINNED != 0) {
                        fail!("page {:#x}: pinned {} but first {} on queue {}", cur as usize, !first, first, b);
                    }
                }
                None => {
                    if !p.is_in_full() {
                        fail!("page {:#x}: on the full list without IN_FULL", cur as usize);
                    }
                    if p.flags & FLAG_PINNED != 0 {
                        fail!("page {:#x}: pinned page on the full list", cur as usize);
                    }
                    let tf = p.thread_free.load(Ordering::Acquire);
                    if tf & TF_WANT_NOTIFY == 0 {
                        fail!("page {:#x}: full page not asking for notification (thread_free {:#x})", cur as usize, tf);
                    }
                }
            }
            check_page(p)
        })();
        if !ok {
            return None;
        }
        prev = cur;
        cur = p.next;
        n += 1;
    }
    if q.last != prev {
        report(format_args!(
            "queue {:?} of heap {:#x}: last {:#x}, expected {:#x}",
            bin, heap_ptr as usize, q.last as usize, prev as usize
        ));
        return None;
    }
    Some(n)
}

/// Checks a segment owned by `heap` (which may be null for a cached one):
/// its slice bitmap against the page descriptors, and every live page.
/// Returns the number of small pages in it, or `None` after a failure.
fn check_segment(seg: &Segment, heap: *mut Heap) -> Option<usize> {
    let sa = seg as *const Segment as usize;
    let ok = (|| {
        if !seg.is_valid() {
            fail!("segment {:#x}: bad cookie", sa);
        }
        if seg.kind != SegmentKind::Small {
            fail!("segment {:#x}: not a small segment on a heap", sa);
        }
        if seg.heap != heap {
            fail!("segment {:#x}: owned by {:#x}, expected {:#x}", sa, seg.heap as usize, heap as usize);
        }
        if seg.used_slices & 1 == 0 {
            fail!("segment {:#x}: metadata slice not marked used", sa);
        }
        if seg.used_slices & !seg.dirty_slices != 0 {
            fail!("segment {:#x}: used slices {:#x} not all dirty {:#x}", sa, seg.used_slices, seg.dirty_slices);
        }
        true
    })();
    if !ok {
        return None;
    }
    let mut small = 0usize;
    let mut i = 1usize;
    while i < SLICE_COUNT {
        let p = &seg.pages[i];
        let pa = p as *const Page as usize;
        let used = seg.used_slices & (1u64 << i) != 0;
        let ok = (|| {
            if p.head != pa as *mut Page && (!used || p.slice_count != 0) {
                fail!("segment {:#x}: slice {} head link {:#x} is not itself", sa, i, p.head as usize);
            }
            if !used {
                if p.block_size != 0 || p.slice_count != 0 || !p.heap.is_null() || p.head_offset != 0 {
                    fail!(
                        "segment {:#x}: free slice {} has block size {} slices {} heap {:#x} offset {}",
                        sa, i, p.block_size, p.slice_count, p.heap as usize, p.head_offset
                    );
                }
                return true;
            }
            let count = p.slice_count as usize;
            if count == 0 || p.head_offset != 0 || i + count > SLICE_COUNT {
                fail!("segment {:#x}: used slice {} is not a span head (slices {}, offset {})", sa, i, count, p.head_offset);
            }
            if p.heap != heap || p.block_size == 0 {
                fail!("segment {:#x}: span at slice {}: heap {:#x} block size {}", sa, i, p.heap as usize, p.block_size);
            }
            for j in 1..count {
                let f = &seg.pages[i + j];
                if seg.used_slices & (1u64 << (i + j)) == 0
                    || f.head_offset as usize != j
                    || f.slice_count != 0
                    || f.head != pa as *mut Page
                {
                    fail!(
                        "segment {:#x}: slice {} of the span at {}: used {} offset {} slices {}",
                        sa, i + j, i, seg.used_slices >> (i + j) & 1, f.head_offset, f.slice_count
                    );
                }
            }
            if !check_page(p) {
                fail!("segment {:#x}: page at slice {} ({:#x}) failed", sa, i, pa);
            }
            true
        })();
        if !ok {
            return None;
        }
        if used {
            if p.flags & FLAG_LARGE == 0 {
                small += 1;
            }
            i += p.slice_count as usize;
        } else {
            i += 1;
        }
    }
    Some(small)
}

/// Checks a heap: its queues, full list, direct table and segments (see the
/// module docs). The static empty heap is trivially valid. `heap` must be
/// the calling thread's heap or a quiet one.
pub fn check_heap(heap: &Heap) -> bool {
    let heap_ptr = heap as *const Heap as *mut Heap;
    if !heap::is_real(heap_ptr) {
        return true;
    }
    let empty = empty_page();
    let ha = heap_ptr as usize;
    let mut queued = 0usize;
    for b in 0..BIN_COUNT {
        let q = &heap.bins[b];
        let Some(n) = check_queue(heap, q, Some(b)) else {
            fail!("heap {:#x}: queue {} (block size {}) failed", ha, b, bin_size(b));
        };
        queued += n;
        if heap.pinned[b] != q.first {
            fail!("heap {:#x}: bin {}: pinned {:#x} but first {:#x}", ha, b, heap.pinned[b] as usize, q.first as usize);
        }
    }
    for (i, &slot) in heap.pages_direct.iter().enumerate().take(DIRECT_COUNT) {
        let b = bin_of(i * MIN_ALIGN);
        let first = heap.bins[b].first;
        let expected = if first.is_null() { empty } else { first };
        if slot != expected {
            fail!(
                "heap {:#x}: pages_direct[{}] = {:#x}, expected {:#x} (bin {})",
                ha, i, slot as usize, expected as usize, b
            );
        }
    }
    let Some(full) = check_queue(heap, &heap.full, None) else {
        fail!("heap {:#x}: full list failed", ha);
    };
    queued += full;

    let mut small = 0usize;
    let mut prev: *mut Segment = core::ptr::null_mut();
    let mut seg = heap.segments;
    let mut n = 0usize;
    while !seg.is_null() {
        if n >= MAX_LIST {
            fail!("heap {:#x}: segment list too long (cycle?)", ha);
        }
        // SAFETY: a heap's segments stay mapped while they are on its list;
        // the cookie is checked before anything else is trusted.
        let s = unsafe { &*seg };
        if !s.is_valid() {
            fail!("heap {:#x}: segment {:#x} has a bad cookie", ha, seg as usize);
        }
        if s.prev != prev {
            fail!("heap {:#x}: segment {:#x}: prev {:#x}, expected {:#x}", ha, seg as usize, s.prev as usize, prev as usize);
        }
        let Some(k) = check_segment(s, heap_ptr) else {
            fail!("heap {:#x}: segment {:#x} failed", ha, seg as usize);
        };
        small += k;
        prev = seg;
        seg = s.next;
        n += 1;
    }
    if small != queued {
        fail!(
            "heap {:#x}: {} small pages in its segments but {} on its queues and full list",
            ha, small, queued
        );
    }
    true
}

/// Checks the calling thread's heap.
pub fn check_thread_heap() -> bool {
    let heap = tls::current();
    // Under the heap's slow-path lock: another thread's decay tick may take
    // fully freed pages off the queues of a heap whose owner made no slow
    // path for a purge delay (`heap::collect_dormant_heaps`, under that
    // lock), and a check that counted the queues before such a take and
    // the segments after it reported pages missing (the engine model test
    // in CI: "113 small pages in its segments but 115 on its queues").
    // SAFETY: a real heap is never unmapped; the lock is re-entrant.
    let _lock = heap::is_real(heap).then(|| unsafe { heap::SlowLock::lock(heap) });
    // SAFETY: the thread's heap pointer is always valid (the static empty
    // heap or the thread's own heap).
    check_heap(unsafe { &*heap })
}

/// Checks every parked heap (those of exited threads), holding GLOBAL so
/// that none is adopted meanwhile. Must not run concurrently with
/// `heap::collect_parked`. Returns the number of heaps checked, or `None`
/// after a failure.
pub fn check_parked_heaps() -> Option<usize> {
    let mut ok = true;
    let mut n = 0usize;
    heap::for_each_heap(|h| {
        if ok && !h.owned {
            n += 1;
            ok = check_heap(h);
        }
    });
    if ok { Some(n) } else { None }
}
