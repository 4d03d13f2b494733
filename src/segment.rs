//! Segments: 4 MiB regions aligned to their size, so the segment holding
//! any block is found by masking the block's address (ptmalloc finds its
//! heaps the same way).
//!
//! ```text
//!  base (4 MiB aligned)
//!  +-------+-----------------+------ ... ------+----------+---------------+
//!  | guard | Segment header  |  (unused)       | slice 1  | ... slice 63  |
//!  | 4 KiB | + 64 Page descr |                 | 64 KiB   |               |
//!  +-------+-----------------+------ ... ------+----------+---------------+
//!  |<------------------ slice 0: metadata ----->|
//! ```
//!
//! The guard page is mapped without access, so a buffer overflow running off
//! the end of the segment below cannot rewrite this header. Slices 1..63 are
//! handed to pages: one slice for small classes, eight for medium ones, and
//! up to [`LARGE_MAX_SLICES`] for a single large block. A segment belongs to
//! one heap, which alone allocates and frees its slices, so slice
//! bookkeeping needs no lock. Fully free segments go back to a small global
//! cache (purged) or to the OS.
//!
//! Huge blocks get a segment of their own (see `huge.rs`) that uses only the
//! header and `pages[0]`.

use core::ptr;
use core::sync::atomic::{AtomicUsize, Ordering};

use crate::heap::Heap;
use crate::os;
use crate::page::{Page, FLAG_TAIL_CLEAN, FLAG_ZERO};
use crate::segment_map;
use crate::sync::{GlobalCell, GlobalGuard};

pub const SEGMENT_SHIFT: u32 = 22;
pub const SEGMENT_SIZE: usize = 1 << SEGMENT_SHIFT; // 4 MiB
pub const SEGMENT_MASK: usize = SEGMENT_SIZE - 1;
pub const SLICE_SHIFT: u32 = 16;
pub const SLICE_SIZE: usize = 1 << SLICE_SHIFT; // 64 KiB
pub const SLICE_COUNT: usize = SEGMENT_SIZE / SLICE_SIZE; // 64
/// The largest span a large block may use (31 slices, 1984 KiB); bigger
/// ones are huge. Slice 0 holds the header, so a segment has 63 slices for
/// pages: two spans of 31 share one, while a span of 32 (2 MiB, the limit
/// before) left the other 31 to smaller pages and mapped a segment per
/// block of 1984 KiB to 2 MiB (a tester: 64 such blocks under a 256 MiB
/// `PTRS_HEAP_LIMIT` against 128 of 1984 KiB).
pub const LARGE_MAX_SLICES: usize = 31;
pub const LARGE_MAX: usize = LARGE_MAX_SLICES * SLICE_SIZE;
/// Bytes at the segment base mapped without access.
pub const GUARD_SIZE: usize = os::OS_PAGE_SIZE;
/// Where the data of a huge segment may start: past the guard and header.
pub const HEADER_END: usize =
    (GUARD_SIZE + core::mem::size_of::<Segment>() + os::OS_PAGE_SIZE - 1) & !(os::OS_PAGE_SIZE - 1);

const _: () = assert!(HEADER_END <= SLICE_SIZE);

#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum SegmentKind {
    Small = 1,
    Huge = 2,
}

/// A segment's header. Lives at `base + GUARD_SIZE`.
#[repr(C)]
pub struct Segment {
    /// `self ^ SEGMENT_COOKIE`: a cheap check that a header is real.
    pub cookie: usize,
    pub kind: SegmentKind,
    /// Owning heap (small segments).
    pub heap: *mut Heap,
    /// Bit i set: slice i belongs to a page (bit 0, the metadata, always).
    pub used_slices: u64,
    /// Bit i set: slice i may hold non-zero bytes (touched since last purge).
    pub dirty_slices: u64,
    /// Free dirty slices seen at the last purge tick: purged at the next
    /// tick if still free, so a slice is purged after being free for one
    /// to two purge delays.
    pub purge_candidates: u64,
    /// The owning heap's segment list.
    pub next: *mut Segment,
    pub prev: *mut Segment,
    /// The global registry of segments (under GLOBAL).
    pub reg_next: *mut Segment,
    pub reg_prev: *mut Segment,
    /// Bytes mapped, from `base()`.
    pub mapped_size: usize,
    /// When the segment became empty (coarse ms; `retain.rs`'s lists).
    pub freed_at: u64,
    /// A huge segment: bytes from `base()` below which its memory may hold
    /// data its blocks wrote; above, it is zero (never written since the
    /// mapping was made, or mapped anew by a growth). Kept while the
    /// mapping is cached, so that a `calloc` served from the cache zeroes
    /// only that part (`huge::zero_for_calloc`). 0 for other kinds.
    pub written_end: usize,
    /// One descriptor per slice.
    pub pages: [Page; SLICE_COUNT],
}

const SEGMENT_COOKIE: usize = 0x5054_5253_5345_474d;
const HEADER_SLICE: u64 = 1;
const ALL_SLICES: u64 = u64::MAX;

impl Segment {
    /// The header of the segment containing `p`, without any check.
    #[inline(always)]
    pub fn of_unchecked(p: usize) -> *mut Segment {
        ((p & !SEGMENT_MASK) + GUARD_SIZE) as *mut Segment
    }

    /// The header of the segment containing `p`, if ptrs has one there.
    #[inline]
    pub fn of(p: usize) -> Option<*mut Segment> {
        if segment_map::has_segment(p) {
            Some(Self::of_unchecked(p))
        } else if segment_map::has_segment_below(p) {
            Some(Self::of_unchecked(p - SEGMENT_SIZE))
        } else {
            None
        }
    }

    #[inline(always)]
    pub fn base(&self) -> usize {
        self as *const Self as usize - GUARD_SIZE
    }

    pub fn is_valid(&self) -> bool {
        self.cookie == self as *const Self as usize ^ SEGMENT_COOKIE
    }

    /// The page descriptor of the span containing `p` (inside this segment).
    #[inline(always)]
    pub fn page_of(&self, p: usize) -> *mut Page {
        let slice = ((p - self.base()) >> SLICE_SHIFT) & (SLICE_COUNT - 1);
        // SAFETY: `slice` < SLICE_COUNT (masked); every descriptor's `head`
        // points at a descriptor of this segment.
        unsafe { (*self.pages.as_ptr().add(slice)).head }
    }

    /// Address of slice `index`.
    #[inline]
    pub fn slice_addr(&self, index: usize) -> *mut u8 {
        (self.base() + (index << SLICE_SHIFT)) as *mut u8
    }

    pub fn is_empty(&self) -> bool {
        self.used_slices == HEADER_SLICE
    }

    /// Slices that belong to no page and may still be resident (touched
    /// since they were last purged).
    pub fn free_dirty_slices(&self) -> u64 {
        self.dirty_slices & !self.used_slices
    }
}

fn run_mask(count: usize) -> u64 {
    if count >= 64 { ALL_SLICES } else { (1u64 << count) - 1 }
}

/// The first run of `count` clear bits in `used` (bit 0 is always set).
fn find_free_run(used: u64, count: usize) -> Option<usize> {
    let mask = run_mask(count);
    let mut i = 1;
    while i + count <= SLICE_COUNT {
        let window = (used >> i) & mask;
        if window == 0 {
            return Some(i);
        }
        // Skip past the highest used slice in the window.
        i += (u64::BITS - window.leading_zeros()) as usize;
    }
    None
}

/// Process-wide segment state, under GLOBAL.
struct Registry {
    /// Every live small segment, for statistics.
    all: *mut Segment,
}

/// The highest number of bytes mapped at once for segments, huge blocks and
/// cached huge mappings together (`ptrs_stats.peak_mapped`). Adding the
/// two kinds' own peaks reported a peak that never happened (a tester: 100
/// MB of small blocks freed and trimmed, then 100 MB of huge blocks, gave
/// 210 MB).
static PEAK_MAPPED_ALL: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(0);

/// Bytes mapped for segments, huge blocks and cached huge mappings
/// together, in one counter, so that the heap limit ([`charge_limit`]),
/// `ptrs_stats.mapped` and its peak read one consistent figure: the sum of
/// the kinds' counters, read one after another, could add a segment not
/// yet unmapped to a huge block mapped in its place (a fresh reviewer saw
/// `mapped` 2.3 MiB above a limit that was held). It grows after a mapping
/// is made (under its charge) and shrinks after one is unmapped.
static ALL_MAPPED: AtomicUsize = AtomicUsize::new(0);

/// Adds `delta` bytes to [`ALL_MAPPED`] (after mapping; after unmapping
/// when negative), and a new total into [`PEAK_MAPPED_ALL`].
pub fn all_mapped_delta(delta: isize) {
    if delta >= 0 {
        let now = ALL_MAPPED.fetch_add(delta as usize, Ordering::Relaxed) + delta as usize;
        PEAK_MAPPED_ALL.fetch_max(now, Ordering::Relaxed);
    } else {
        ALL_MAPPED.fetch_sub((-delta) as usize, Ordering::Relaxed);
    }
}

/// See [`ALL_MAPPED`].
pub fn all_mapped() -> usize {
    ALL_MAPPED.load(Ordering::Relaxed)
}

/// See [`PEAK_MAPPED_ALL`].
pub fn peak_mapped_all() -> usize {
    PEAK_MAPPED_ALL.load(core::sync::atomic::Ordering::Relaxed)
}

/// Bytes that threads have charged to the heap limit ([`charge_limit`])
/// and are mapping, not yet in [`ALL_MAPPED`].
static LIMIT_PENDING: AtomicUsize = AtomicUsize::new(0);

/// `size` bytes charged to the heap-limit option ([`charge_limit`]) while
/// the caller maps them; dropping it, once the mapping is in
/// [`ALL_MAPPED`] (or failed), ends the charge.
pub struct LimitCharge(usize);

impl Drop for LimitCharge {
    fn drop(&mut self) {
        if self.0 != 0 {
            LIMIT_PENDING.fetch_sub(self.0, Ordering::SeqCst);
        }
    }
}

/// Charges `size` more bytes to the heap-limit option before the caller
/// maps them: `None` if they would take what ptrs maps past the limit.
/// The caller keeps the charge until the new mapping is counted.
///
/// Threads that map at once each see the others' charges: a thread adds its
/// size to the pending bytes first and reads [`ALL_MAPPED`] after, and
/// a mapper counts its mapping before it drops its charge, so of two
/// concurrent charges the later sees the earlier, either pending or mapped
/// (at worst twice, which refuses early, never late). A plain test of the
/// counters let 8 threads map 52 MB of huge blocks under a 32 MiB limit
/// (fresh tester; tst-heap-limit-threads).
pub fn charge_limit(size: usize) -> Option<LimitCharge> {
    let limit = crate::options::heap_limit();
    if limit == 0 {
        return Some(LimitCharge(0));
    }
    if size > limit {
        return None;
    }
    let pending = LIMIT_PENDING.fetch_add(size, Ordering::SeqCst).saturating_add(size);
    let charge = LimitCharge(size);
    if all_mapped().saturating_add(pending) > limit {
        return None; // `charge` drops: the pending bytes go back
    }
    Some(charge)
}

static REGISTRY: GlobalCell<Registry> = GlobalCell::new(Registry { all: ptr::null_mut() });

/// Initialises a header at `base + GUARD_SIZE` for a freshly mapped region
/// and registers it.
///
/// # Safety
/// `[base, base + mapped_size)` must be fresh read-write memory owned by the
/// caller, `base` 4 MiB aligned.
#[unsafe(link_section = ".text.hot.ptrs")]
pub unsafe fn init_header(base: *mut u8, mapped_size: usize, kind: SegmentKind) -> *mut Segment {
    // Huge segments are not registered: they can move (mremap), and their
    // statistics are kept by `huge.rs`.
    // SAFETY: the caller hands us the region; the guard page is ours.
    unsafe { os::protect_none(base, GUARD_SIZE) };
    let seg = Segment::of_unchecked(base as usize);
    // SAFETY: the header lies inside the fresh mapping (HEADER_END is within
    // slice 0) and fresh memory is zero, a valid state for every field
    // except the ones set here.
    unsafe {
        (*seg).cookie = seg as usize ^ SEGMENT_COOKIE;
        (*seg).kind = kind;
        (*seg).used_slices = HEADER_SLICE;
        (*seg).dirty_slices = HEADER_SLICE;
        (*seg).mapped_size = mapped_size;
        for page in (*seg).pages.iter_mut() {
            let page = page as *mut Page;
            page.write(Page::empty());
            (*page).head = page;
        }
    }
    if kind == SegmentKind::Huge {
        segment_map::set_segment(base as usize, true);
        return seg;
    }
    let _g = GlobalGuard::lock();
    // SAFETY: GLOBAL is held.
    let reg = unsafe { REGISTRY.get() };
    // SAFETY: `seg` is initialised; registry links are only touched under GLOBAL.
    unsafe {
        (*seg).reg_next = reg.all;
        (*seg).reg_prev = ptr::null_mut();
        if !reg.all.is_null() {
            (*reg.all).reg_prev = seg;
        }
    }
    reg.all = seg;
    all_mapped_delta(mapped_size as isize);
    segment_map::set_segment(base as usize, true);
    seg
}

/// Unregisters a small segment and unmaps it.
///
/// # Safety
/// Nothing may reference the segment any more.
#[unsafe(link_section = ".text.hot.ptrs")]
pub unsafe fn destroy(seg: *mut Segment) {
    // SAFETY: the caller guarantees `seg` is a registered, unreferenced segment.
    let (base, size) = unsafe { ((*seg).base(), (*seg).mapped_size) };
    {
        let _g = GlobalGuard::lock();
        // SAFETY: GLOBAL is held.
        let reg = unsafe { REGISTRY.get() };
        // SAFETY: registry links are consistent under GLOBAL.
        unsafe { unlink_registry(reg, seg) };
        segment_map::set_segment(base, false);
        // SAFETY: the header is still mapped; clearing the cookie makes a
        // stale pointer fail validation should the address be reused.
        unsafe { (*seg).cookie = 0 };
    }
    // SAFETY: the segment is ours and unreferenced.
    unsafe { os::unmap(base as *mut u8, size) };
    // Counted until unmapped: the heap limit (`charge_limit`) must never
    // see less than is mapped.
    all_mapped_delta(-(size as isize));
}

/// # Safety
/// GLOBAL must be held and `seg` registered.
unsafe fn unlink_registry(reg: &mut Registry, seg: *mut Segment) {
    // SAFETY: links are consistent under GLOBAL.
    unsafe {
        let (prev, next) = ((*seg).reg_prev, (*seg).reg_next);
        if prev.is_null() {
            reg.all = next;
        } else {
            (*prev).reg_next = next;
        }
        if !next.is_null() {
            (*next).reg_prev = prev;
        }
    }
}

/// A small segment for `heap`: an empty one kept by the retention policy
/// (resident ones first), else a new mapping. Null when out of memory.
pub fn acquire(heap: *mut Heap) -> *mut Segment {
    let cached = crate::retain::take_empty();
    let seg = if cached.is_null() {
        // Held until `init_header` has counted the mapping.
        let Some(_charge) = charge_limit(SEGMENT_SIZE) else {
            return ptr::null_mut();
        };
        let base = os::map_aligned(SEGMENT_SIZE, SEGMENT_SIZE);
        if base.is_null() {
            return ptr::null_mut();
        }
        if !segment_map::prepare(base as usize, base as usize + SEGMENT_SIZE) {
            // SAFETY: the fresh mapping, not handed out.
            unsafe { os::unmap(base, SEGMENT_SIZE) };
            return ptr::null_mut();
        }
        // SAFETY: `base` is a fresh 4 MiB aligned mapping of SEGMENT_SIZE.
        unsafe { init_header(base, SEGMENT_SIZE, SegmentKind::Small) }
    } else {
        cached
    };
    // SAFETY: `seg` is a valid, unowned small segment.
    unsafe {
        (*seg).heap = heap;
        (*seg).next = ptr::null_mut();
        (*seg).prev = ptr::null_mut();
        // Its free slices start their purge delay now (`freed_at` held the
        // time it emptied; left so, the next tick would purge at once the
        // resident slices the new owner is about to use).
        (*seg).freed_at = os::now_ms();
        (*seg).purge_candidates = 0;
    }
    seg
}

/// Gives an empty small segment back to the retention policy.
///
/// # Safety
/// `seg` must be empty and no longer on any heap's list.
#[unsafe(link_section = ".text.hot.ptrs")]
pub unsafe fn release(seg: *mut Segment) {
    // SAFETY: the caller guarantees the segment is empty and unlinked.
    unsafe {
        debug_assert!((*seg).is_empty());
        crate::retain::put_empty(seg);
    }
}

/// Marks `count` slices starting at `index` as a page of `heap` and returns
/// its (head) descriptor, with `start`, `slice_count`, `heap` and the zero
/// flag set. Other fields are left for the caller.
///
/// # Safety
/// The slices must be free, in a segment owned by `heap`'s thread.
#[unsafe(link_section = ".text.hot.ptrs")]
pub unsafe fn claim_span(seg: &mut Segment, index: usize, count: usize, heap: *mut Heap) -> *mut Page {
    let mask = run_mask(count) << index;
    let was_dirty = seg.dirty_slices & mask != 0;
    seg.used_slices |= mask;
    seg.dirty_slices |= mask;
    let start = seg.slice_addr(index);
    let head = &raw mut seg.pages[index];
    for i in 1..count {
        seg.pages[index + i].head_offset = i as u8;
        seg.pages[index + i].head = head;
    }
    let page = &mut seg.pages[index];
    *page = Page::new_keyed(page);
    page.head = head;
    page.slice_count = count as u8;
    page.start = start;
    page.heap = heap;
    if !was_dirty {
        page.flags |= FLAG_ZERO | FLAG_TAIL_CLEAN;
    }
    page
}

/// The address just past the span headed by `page` (its last slice's end,
/// which may lie past its last whole block).
///
/// # Safety
/// `page` must head a span of a live segment.
pub unsafe fn span_end(page: *const Page) -> usize {
    let seg = Segment::of_unchecked(page as usize);
    // SAFETY: `page` points into the descriptors of its live segment.
    unsafe {
        let index = page.offset_from((*seg).pages.as_ptr()) as usize;
        (*seg).slice_addr(index + (*page).slice_count as usize) as usize
    }
}

/// Returns the span headed by `page` to its segment's free slices.
///
/// # Safety
/// The page must belong to `seg`, be owned by the calling thread's heap,
/// and hold no live block; nothing may reference it afterwards.
pub unsafe fn free_span(seg: &mut Segment, page: *mut Page) {
    // SAFETY: `page` points into `seg.pages`.
    let index = unsafe { page.offset_from(seg.pages.as_ptr()) } as usize;
    // SAFETY: as above.
    let count = unsafe { (*page).slice_count } as usize;
    free_slices(seg, index, count);
}

/// Makes the `count` slices from `index` free slices of `seg`: each gets
/// an empty descriptor of its own, and their bits leave `used_slices`.
fn free_slices(seg: &mut Segment, index: usize, count: usize) {
    for i in index..index + count {
        let descr = &raw mut seg.pages[i];
        // SAFETY: `descr` is a descriptor of this segment.
        unsafe {
            descr.write(Page::empty());
            (*descr).head = descr;
        }
    }
    seg.used_slices &= !(run_mask(count) << index);
    seg.freed_at = os::now_ms();
}

/// Grows the span headed by `page` (a large block's) to `new_count`
/// slices if the slices after it are free; true if it did. The new slices
/// keep their contents (the caller copies nothing).
///
/// # Safety
/// `page` must head a span of `seg`, which the calling thread's heap owns,
/// with its slow-path lock held.
pub unsafe fn grow_span(seg: &mut Segment, page: *mut Page, new_count: usize) -> bool {
    // SAFETY: `page` points into `seg.pages`.
    let index = unsafe { page.offset_from(seg.pages.as_ptr()) } as usize;
    // SAFETY: as above.
    let count = unsafe { (*page).slice_count } as usize;
    if new_count <= count || index + new_count > SLICE_COUNT {
        return false;
    }
    let extra = run_mask(new_count - count) << (index + count);
    if seg.used_slices & extra != 0 {
        return false;
    }
    seg.used_slices |= extra;
    seg.dirty_slices |= extra;
    seg.purge_candidates &= !extra;
    for i in count..new_count {
        seg.pages[index + i].head_offset = i as u8;
        seg.pages[index + i].head = page;
    }
    // SAFETY: as above.
    unsafe { (*page).slice_count = new_count as u8 };
    true
}

/// Shrinks the span headed by `page` (a large block's) to `new_count`
/// slices, 1 <= `new_count` < its count: the slices after them become free
/// slices of the segment (still dirty: the decay purges them in turn, or
/// the next span reuses them resident).
///
/// # Safety
/// `page` must head a span of `seg`, which the calling thread's heap owns,
/// with its slow-path lock held; nothing may use the memory of the freed
/// slices afterwards.
pub unsafe fn shrink_span(seg: &mut Segment, page: *mut Page, new_count: usize) {
    // SAFETY: `page` points into `seg.pages`.
    let index = unsafe { page.offset_from(seg.pages.as_ptr()) } as usize;
    // SAFETY: as above.
    let count = unsafe { (*page).slice_count } as usize;
    debug_assert!(new_count >= 1 && new_count < count);
    free_slices(seg, index + new_count, count - new_count);
    // SAFETY: as above.
    unsafe { (*page).slice_count = new_count as u8 };
}

/// Finds `count` free slices in `seg`. Owner only.
pub fn find_span(seg: &Segment, count: usize) -> Option<usize> {
    find_free_run(seg.used_slices, count)
}

/// A place for a span: its first slice, how many of its slices are still
/// resident (dirty), and the length of the free run it is cut from.
#[derive(Clone, Copy)]
pub struct SpanFit {
    pub index: usize,
    pub dirty: u32,
    pub run: u32,
}

impl SpanFit {
    /// Whether `self` is a better place than `other`: more resident
    /// slices (reuse before refault), then a shorter free run (best fit:
    /// long runs stay whole for long spans).
    pub fn better_than(&self, other: &SpanFit) -> bool {
        self.dirty > other.dirty || (self.dirty == other.dirty && self.run < other.run)
    }
    /// Nothing can be better: all resident, and the run fits exactly.
    pub fn perfect(&self, count: usize) -> bool {
        self.dirty as usize == count && self.run as usize == count
    }
}

/// Finds the best place for `count` free slices in `seg` (see
/// [`SpanFit::better_than`]): at either end of each free run long enough,
/// never in its middle, which would cut it in two. Owner only.
pub fn find_span_fit(seg: &Segment, count: usize) -> Option<SpanFit> {
    span_fit(seg.used_slices, seg.dirty_slices, count)
}

/// The place for `count` free slices of `seg` whose first slice is a
/// multiple of `step` slices (a power of two above 1: the span is then
/// aligned to `step` slices, since segments are aligned to their size),
/// with the most resident slices. Owner only.
pub fn find_aligned_span(seg: &Segment, count: usize, step: usize) -> Option<SpanFit> {
    let used = seg.used_slices | HEADER_SLICE;
    let dirty = seg.dirty_slices & !used;
    let mask = run_mask(count);
    let mut best: Option<SpanFit> = None;
    let mut i = step;
    while i + count <= SLICE_COUNT {
        if (used >> i) & mask == 0 {
            let fit = SpanFit { index: i, dirty: ((dirty >> i) & mask).count_ones(), run: count as u32 };
            if best.is_none_or(|b| fit.dirty > b.dirty) {
                best = Some(fit);
            }
            if fit.dirty as usize == count {
                break;
            }
        }
        i += step;
    }
    best
}

/// [`find_span_fit`] on a segment's `used` and `dirty` slice bits.
fn span_fit(used: u64, dirty: u64, count: usize) -> Option<SpanFit> {
    let used = used | HEADER_SLICE;
    let dirty = dirty & !used;
    let mask = run_mask(count);
    let mut best: Option<SpanFit> = None;
    let mut i = 1;
    while i < SLICE_COUNT {
        i += (!(used >> i)).trailing_zeros() as usize; // used slices first
        if i >= SLICE_COUNT {
            break;
        }
        let len = ((used >> i).trailing_zeros() as usize).min(SLICE_COUNT - i);
        if len >= count {
            for start in [i, i + len - count] {
                let fit = SpanFit { index: start, dirty: ((dirty >> start) & mask).count_ones(), run: len as u32 };
                if best.is_none_or(|b| fit.better_than(&b)) {
                    best = Some(fit);
                }
            }
        }
        i += len;
    }
    best
}

/// Releases the memory of every free, dirty slice of `seg` to the OS.
/// Returns the bytes purged.
pub fn purge_free_slices(seg: &mut Segment) -> usize {
    seg.purge_candidates = 0;
    purge_slices(seg, seg.free_dirty_slices())
}

/// One purge tick: releases the slices that were free at the last tick and
/// still are (all free slices if none was freed during the last `delay`
/// ms), and remembers the ones free now, except for the runs of them (or
/// the first slices of runs, see `runs_within`) that fit in `keep` (bytes,
/// decreased by what is kept): those stay
/// resident, and stay candidates for a later tick. In an empty segment
/// only `demand` (bytes, at most `keep`) of `keep` may be used; what is
/// kept comes off both. Returns the bytes purged and whether candidates
/// other than the kept ones are left.
pub fn purge_aged_slices(seg: &mut Segment, now: u64, delay: u64, keep: &mut usize, demand: &mut usize) -> (usize, bool) {
    let free_dirty = seg.free_dirty_slices();
    let all_aged = now >= seg.freed_at.saturating_add(delay);
    let aged = if all_aged { free_dirty } else { seg.purge_candidates & free_dirty };
    let mut budget = if seg.is_empty() { (*demand).min(*keep) } else { *keep };
    let before = budget;
    let kept = runs_within(aged, &mut budget);
    let used = before - budget;
    *keep -= used;
    *demand = demand.saturating_sub(used);
    let purged = purge_slices(seg, aged & !kept);
    seg.purge_candidates = if all_aged { kept } else { seg.free_dirty_slices() };
    (purged, seg.purge_candidates & !kept != 0)
}

/// The runs of `slices` that fit, first to last, in `budget` bytes, which
/// is decreased by their size; then, with what is left of the budget, the
/// first slices of the runs that did not fit (a large block freed into a
/// longer free run is reused from the run's start: `find_span_fit` takes
/// the run with the most resident slices).
fn runs_within(slices: u64, budget: &mut usize) -> u64 {
    let mut rest = slices;
    let mut within = 0;
    while rest != 0 {
        let start = rest.trailing_zeros() as usize;
        let run = (!(rest >> start)).trailing_zeros() as usize;
        let mask = run_mask(run) << start;
        let size = run << SLICE_SHIFT;
        if size <= *budget {
            *budget -= size;
            within |= mask;
        }
        rest &= !mask;
    }
    let mut rest = slices & !within;
    while rest != 0 && *budget >= SLICE_SIZE {
        let start = rest.trailing_zeros() as usize;
        let run = (!(rest >> start)).trailing_zeros() as usize;
        let part = run.min(*budget >> SLICE_SHIFT);
        *budget -= part << SLICE_SHIFT;
        within |= run_mask(part) << start;
        rest &= !(run_mask(run) << start);
    }
    within
}

/// Bytes of the segment's slices that belong to pages (the header's
/// excluded).
pub fn active_bytes(seg: &Segment) -> usize {
    ((seg.used_slices & !HEADER_SLICE).count_ones() as usize) << SLICE_SHIFT
}

fn purge_slices(seg: &mut Segment, slices: u64) -> usize {
    let mut purgeable = slices;
    let mut purged = 0;
    while purgeable != 0 {
        let start = purgeable.trailing_zeros() as usize;
        let run = (!(purgeable >> start)).trailing_zeros() as usize;
        let size = run << SLICE_SHIFT;
        // SAFETY: the slices are inside the segment and hold no live block.
        unsafe { os::purge(seg.slice_addr(start), size) };
        purged += size;
        let mask = run_mask(run) << start;
        purgeable &= !mask;
        seg.dirty_slices &= !mask;
    }
    purged
}

/// Statistics over every registered segment, gathered under GLOBAL.
#[derive(Default, Clone, Copy)]
pub struct SegmentTotals {
    pub segments: usize,
    pub cached: usize,
}

/// Visits every live segment (and the totals) under GLOBAL. The visitor
/// must not allocate or lock.
pub fn for_each_segment(mut visit: impl FnMut(&Segment)) -> SegmentTotals {
    let _g = GlobalGuard::lock();
    // SAFETY: GLOBAL is held.
    let reg = unsafe { REGISTRY.get() };
    let mut totals = SegmentTotals {
        segments: 0,
        cached: crate::retain::cached_segments(),
    };
    let mut seg = reg.all;
    while !seg.is_null() {
        // SAFETY: registered segments stay mapped while GLOBAL is held.
        unsafe {
            visit(&*seg);
            seg = (*seg).reg_next;
        }
        totals.segments += 1;
    }
    totals
}


#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_runs_are_found_first_fit() {
        assert_eq!(find_free_run(1, 1), Some(1));
        assert_eq!(find_free_run(0b111, 1), Some(3));
        assert_eq!(find_free_run(0b1011, 2), Some(4));
        assert_eq!(find_free_run(0b1011, 1), Some(2));
        assert_eq!(find_free_run(1, 63), Some(1));
        assert_eq!(find_free_run(0b11, 63), None);
        assert_eq!(find_free_run(u64::MAX, 1), None);
        let used = 1 | (1 << 10) | (1 << 20);
        assert_eq!(find_free_run(used, 10), Some(21));
        assert_eq!(find_free_run(used, 9), Some(1));
        assert_eq!(find_free_run(!(1u64 << 63), 1), Some(63));
    }

    #[test]
    fn spans_go_where_memory_is_resident_then_best_fit() {
        let at = |used: u64, dirty: u64, count: usize| span_fit(used, dirty, count).map(|f| (f.index, f.dirty, f.run));
        // Nothing free.
        assert_eq!(at(u64::MAX, 0, 1), None);
        assert_eq!(at(0b11, 0, 63), None);
        // All clean: the shortest run that fits, at its start.
        let used = 1 | (1 << 10) | (1 << 14); // runs 1..10 (9), 11..14 (3), 15..64 (49)
        assert_eq!(at(used, 0, 2), Some((11, 0, 3)));
        assert_eq!(at(used, 0, 4), Some((1, 0, 9)));
        assert_eq!(at(used, 0, 10), Some((15, 0, 49)));
        // Resident slices win over a tighter run: the end of the long run
        // is dirty, so the span goes there (not into its middle).
        let dirty = 0b11u64 << 62;
        assert_eq!(at(used, dirty, 2), Some((62, 2, 49)));
        // Partly resident: the most resident of the runs' two ends.
        let dirty = 1u64 << 3;
        assert_eq!(at(used, dirty, 4), Some((1, 1, 9)));
        // Dirty bits of used slices do not count.
        assert_eq!(at(used, 1 << 10, 1), Some((11, 0, 3)));
        // The whole segment free.
        assert_eq!(at(1, 0, 63), Some((1, 0, 63)));
        assert_eq!(at(0, ALL_SLICES, 63), Some((1, 63, 63)));
    }

    #[test]
    fn kept_runs_are_whole_first_then_prefixes_within_the_budget() {
        let k = SLICE_SIZE;
        // Runs 1..3 (2 slices), 5 (1), 8..12 (4).
        let free = (0b11u64 << 1) | (1 << 5) | (0b1111 << 8);
        let mut budget = 3 * k;
        // The first run fits (2), the second fits in what is left (1), the
        // third (4) does not, and no part of it is kept.
        assert_eq!(runs_within(free, &mut budget), (0b11 << 1) | (1 << 5));
        assert_eq!(budget, 0);
        let mut budget = k;
        // A run larger than the budget is skipped, a later one that fits
        // is kept.
        assert_eq!(runs_within(free, &mut budget), 1 << 5);
        assert_eq!(budget, 0);
        let mut budget = 5 * k;
        // Runs 1..3 and 5 fit whole (3); of the next, the first 2 slices.
        assert_eq!(runs_within(free, &mut budget), (0b11 << 1) | (1 << 5) | (0b11 << 8));
        assert_eq!(budget, 0);
        let mut budget = 2 * k + k / 2;
        // Run 1..3 fits whole; the half slice left keeps nothing more.
        assert_eq!(runs_within(free, &mut budget), 0b11 << 1);
        assert_eq!(budget, k / 2);
        let mut budget = 100 * k;
        assert_eq!(runs_within(free, &mut budget), free);
        assert_eq!(budget, 93 * k);
        let mut budget = k - 1;
        assert_eq!(runs_within(free, &mut budget), 0);
        assert_eq!(budget, k - 1);
        let mut budget = 64 * k;
        assert_eq!(runs_within(!HEADER_SLICE, &mut budget), !HEADER_SLICE);
        assert_eq!(budget, k);
    }

    #[test]
    fn header_fits_in_the_metadata_slice() {
        assert!(HEADER_END <= SLICE_SIZE);
        assert!(core::mem::size_of::<Segment>() < 16 * 1024);
    }
}

/// Recomputes the address-dependent fields of a huge segment's header (its
/// cookie, the descriptors' `head` links) after it moved or was cached.
///
/// # Safety
/// `seg` must be a huge segment's header at its new address.
#[unsafe(link_section = ".text.hot.ptrs")]
pub unsafe fn revalidate(seg: *mut Segment) {
    // SAFETY: the caller guarantees `seg` is a valid header.
    unsafe {
        (*seg).cookie = seg as usize ^ SEGMENT_COOKIE;
        for page in (*seg).pages.iter_mut() {
            page.head = page;
        }
    }
}
