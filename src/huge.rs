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

use core::sync::atomic::{AtomicUsize, Ordering};

use crate::os::{self, OS_PAGE_SIZE};
use crate::page::{FLAG_HUGE, FLAG_ZERO};
use crate::segment::{self, Segment, SegmentKind, GUARD_SIZE, HEADER_END, SEGMENT_SIZE};
use crate::segment_map;

static HUGE_COUNT: AtomicUsize = AtomicUsize::new(0);
static HUGE_MAPPED: AtomicUsize = AtomicUsize::new(0);
static HUGE_USABLE: AtomicUsize = AtomicUsize::new(0);
static HUGE_PEAK_MAPPED: AtomicUsize = AtomicUsize::new(0);

/// Live huge blocks, bytes mapped for them, their usable bytes, peak mapped.
pub fn totals() -> (usize, usize, usize, usize) {
    (
        HUGE_COUNT.load(Ordering::Relaxed),
        HUGE_MAPPED.load(Ordering::Relaxed),
        HUGE_USABLE.load(Ordering::Relaxed),
        HUGE_PEAK_MAPPED.load(Ordering::Relaxed),
    )
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
    let offset = block_offset(align);
    let Some(data) = page_round(size.max(1)) else { return core::ptr::null_mut() };
    let Some(total) = data.checked_add(offset) else { return core::ptr::null_mut() };
    if total > isize::MAX as usize {
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
    // SAFETY: `base` is a fresh mapping of `total` bytes, 4 MiB aligned.
    let seg = unsafe { segment::init_header(base, total, SegmentKind::Huge) };
    let start = base as usize + offset;
    // SAFETY: `seg` was just initialised; pages[0] describes the block.
    unsafe {
        let page = &mut (*seg).pages[0];
        page.flags = FLAG_HUGE | FLAG_ZERO;
        page.block_size = data;
        page.start = start as *mut u8;
        page.reserved = 1;
        page.capacity = 1;
        page.used = 1;
    }
    if offset == SEGMENT_SIZE {
        segment_map::set_segment_below(start, true);
    }
    segment_map::set_huge_tail(base as usize + SEGMENT_SIZE, base as usize + total, true);
    HUGE_COUNT.fetch_add(1, Ordering::Relaxed);
    account(total as isize, data as isize);
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
        r
    };
    segment_map::set_segment(base, false);
    if start - base == SEGMENT_SIZE {
        segment_map::set_segment_below(start, false);
    }
    segment_map::set_huge_tail(base + SEGMENT_SIZE, base + total, false);
    HUGE_COUNT.fetch_sub(1, Ordering::Relaxed);
    account(-(total as isize), -(data as isize));
    // SAFETY: the whole mapping is ours and unreferenced now.
    unsafe { os::unmap(base as *mut u8, total) };
}

/// Resizes a huge block in place or by moving its pages. Returns the block's
/// new address, or null if it could not (the block is then unchanged).
///
/// # Safety
/// `seg` must be a live huge segment owned by the caller's block.
pub unsafe fn resize(seg: *mut Segment, new_size: usize) -> *mut u8 {
    // SAFETY: the caller guarantees `seg` is a live huge segment.
    let (base, total, data, start) = unsafe {
        let s = &*seg;
        (s.base(), s.mapped_size, s.pages[0].block_size, s.pages[0].start as usize)
    };
    let offset = start - base;
    let Some(new_data) = page_round(new_size.max(1)) else { return core::ptr::null_mut() };
    let Some(new_total) = new_data.checked_add(offset) else { return core::ptr::null_mut() };
    if new_total > isize::MAX as usize {
        return core::ptr::null_mut();
    }
    if new_total == total {
        return start as *mut u8;
    }
    // The guard page is a separate mapping: resize the part after it.
    let rw = (base + GUARD_SIZE) as *mut u8;
    // SAFETY: [rw, base + total) is the huge block's read-write mapping.
    if unsafe { os::remap_in_place(rw, total - GUARD_SIZE, new_total - GUARD_SIZE) } {
        segment_map::set_huge_tail(base + SEGMENT_SIZE, base + total, false);
        segment_map::set_huge_tail(base + SEGMENT_SIZE, base + new_total, true);
        // SAFETY: the header is still at the same place.
        unsafe {
            (*seg).mapped_size = new_total;
            (*seg).pages[0].block_size = new_data;
        }
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
    // SAFETY: `target` is our fresh reservation of new_total bytes; the
    // source is the block's read-write mapping.
    let moved = unsafe {
        os::remap_to(rw, total - GUARD_SIZE, target.add(GUARD_SIZE), new_total - GUARD_SIZE)
    };
    if !moved {
        // SAFETY: the reservation is ours and unused.
        unsafe { os::unmap(target, new_total) };
        return core::ptr::null_mut();
    }
    // SAFETY: the old guard page is ours and nothing refers to it now.
    unsafe { os::unmap(base as *mut u8, GUARD_SIZE) };
    segment_map::set_segment(base, false);
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
    segment_map::set_huge_tail(base + SEGMENT_SIZE, base + total, false);
    segment_map::set_huge_tail(target as usize + SEGMENT_SIZE, target as usize + new_total, true);
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
