//! Engine entry points for freeing and for questions about a pointer.
//!
//! `free` finds the segment by masking the address, checks in the segment
//! map that ptrs really has a segment there (so foreign pointers are caught
//! before any header is read), finds the page by slice index, and then:
//! - the calling thread owns the page: pushes the block on the page's local
//!   free list (no atomic operation);
//! - another thread owns it: one compare-and-swap on the page's remote list;
//! - it is a huge block: unmaps it.
//!
//! Checks on every free: the pointer lies in a ptrs segment, is the start of
//! a handed-out block, and (via the free mark in the block's second word,
//! confirmed by walking the page's lists) is not already free.

use crate::diag;
use crate::os;
use crate::heap::{self, Heap};
use crate::huge;
use crate::page::{self, Block, Page, FLAG_HUGE, FLAG_LARGE};
use crate::segment::{Segment, SegmentKind};
use crate::segment_map;
use crate::size_class::MIN_ALIGN;
use crate::tls;

/// The header of the segment holding `addr`, for the fast paths: one test
/// for "misaligned or not a user address", then the segment map. `None`
/// sends the caller to its slow path (which also handles null).
#[inline(always)]
fn mapped_segment(addr: usize) -> Option<*mut Segment> {
    if addr & (segment_map::NON_USER_BITS | (MIN_ALIGN - 1)) != 0
        // SAFETY: the first test guarantees `addr` is a user address.
        || !unsafe { segment_map::has_segment_unchecked(addr) }
    {
        return None;
    }
    Some(Segment::of_unchecked(addr))
}

/// Frees `p` (null is ignored).
#[inline(always)]
pub fn free(p: *mut u8) {
    let addr = p as usize;
    let Some(seg) = mapped_segment(addr) else {
        return free_slow(p, "free");
    };
    let heap = tls::current();
    // SAFETY: the segment map says a live segment header is at `seg`; its
    // page table covers every slice of the segment.
    unsafe {
        let page = (*seg).page_of(addr);
        let block = p as *mut Block;
        // The hardening checks: a block start of a carved block, and not
        // already free. Feature `unchecked-free` drops them, only to
        // measure what they cost.
        #[cfg(not(feature = "unchecked-free"))]
        if !(*page).is_block_start(addr) || (*block).mark == (*page).key {
            return free_slow(p, "free");
        }
        if (*page).heap != heap {
            return free_remote(page, block);
        }
        free_local(&mut *heap, &mut *page, block);
    }
}

/// If `p` is a live small block (validated as `free` does) whose size class
/// still fits `size` bytes without wasting more than half of it, returns
/// true: realloc can return `p` unchanged. False sends realloc to its full
/// path, which also reports invalid pointers.
#[inline(always)]
pub fn small_block_fits(p: *mut u8, size: usize) -> bool {
    let addr = p as usize;
    let Some(seg) = mapped_segment(addr) else { return false };
    // SAFETY: a live segment header is at `seg`; see `free`.
    unsafe {
        let page = &*(*seg).page_of(addr);
        let block = p as *mut Block;
        page.bin != page::NO_BIN
            && page.is_block_start(addr)
            && (*block).mark != page.key
            && size <= page.block_size
            && size >= page.block_size / 2
    }
}

/// A free from a thread that does not own the page: one compare-and-swap
/// on the page's remote list (two when the owner must be told about a full
/// page). Huge blocks and free slices (no heap) go to the slow path.
///
/// # Safety
/// `block` must be a carved block start of `page` whose mark is clear.
#[inline(never)]
unsafe fn free_remote(page: *mut Page, block: *mut Block) {
    // SAFETY: the caller checked the block against its live page.
    unsafe {
        let owner = (*page).heap;
        if owner.is_null() {
            return free_slow(block as *mut u8, "free");
        }
        crate::profile::note_free(owner, block as *mut u8);
        if page::push_remote(&*page, block) {
            heap::push_notify(owner, page);
        }
    }
}

/// Pushes a block on its page's local free list.
///
/// # Safety
/// `page` must be owned by `heap`, the calling thread's heap, and `block`
/// one of its blocks in use.
#[inline(always)]
unsafe fn free_local(heap: &mut Heap, page: &mut Page, block: *mut Block) {
    // SAFETY: the caller guarantees the block is a live block of our page.
    unsafe {
        page::set_next(block, page.free, page.key);
        (*block).mark = page.key;
    }
    page.free = block;
    page.used = page.used.wrapping_sub(1);
    // Zero (page now empty) or negative (IN_FULL set): one test for both.
    if (page.used as i32) <= 0 {
        // SAFETY: as above.
        unsafe { heap::free_local_slow(heap, page) };
    }
}

/// Everything that is not a local free of a block whose mark is clear.
#[cold]
#[inline(never)]
pub fn free_slow(p: *mut u8, func: &str) {
    if p.is_null() {
        return;
    }
    // free must preserve errno; unmapping a huge block could change it.
    let saved = os::errno();
    free_slow_inner(p, func);
    os::set_errno(saved);
}

fn free_slow_inner(p: *mut u8, func: &str) {
    let addr = p as usize;
    // SAFETY: block_info validates the pointer before reading any header.
    let Some(info) = (unsafe { block_info(p) }) else {
        report_invalid(func, p);
        return;
    };
    if info.huge {
        crate::profile::note_free_huge(p);
        // SAFETY: `info.segment` is the live huge segment of `p`.
        unsafe { huge::free(info.segment) };
        return;
    }
    let page = info.page;
    let block = p as *mut Block;
    let heap = tls::current();
    // SAFETY: block_info checked that `p` is the start of a carved block of
    // a live page, so the page and the block's first words are readable.
    unsafe {
        let local = (*page).heap == heap;
        if (*block).mark == (*page).key && page::list_contains(&*page, block, local) {
            diag::heap_error(func, "double free detected", addr);
            return;
        }
        if !local {
            crate::profile::note_free((*page).heap, p);
        }
        if local {
            free_local(&mut *heap, &mut *page, block);
        } else if page::push_remote(&*page, block) {
            heap::push_notify((*page).heap, page);
        }
    }
}

/// Reports a pointer ptrs does not recognise as one of its live blocks.
#[cold]
pub fn report_invalid(func: &str, p: *mut u8) {
    diag::heap_error(func, "invalid pointer", p as usize);
}

/// What ptrs knows about one of its blocks.
#[derive(Clone, Copy)]
pub struct BlockInfo {
    pub segment: *mut Segment,
    pub page: *mut Page,
    /// Bytes the program may use.
    pub usable: usize,
    pub huge: bool,
    pub large_or_huge: bool,
    pub flags: u8,
}

/// Validates `p` as the start of a block ptrs handed out (live, or on a
/// free list: the double-free check is the caller's) and describes it.
/// `None` for anything else, without reading memory that might not be
/// mapped.
///
/// # Safety
/// None beyond what the checks establish; marked unsafe because it reads
/// headers of segments that another thread could be unmapping if the
/// program frees and queries the same block concurrently.
pub unsafe fn block_info(p: *mut u8) -> Option<BlockInfo> {
    let addr = p as usize;
    if addr & (MIN_ALIGN - 1) != 0 || !segment_map::in_range(addr) {
        return None;
    }
    let seg = Segment::of(addr)?;
    // SAFETY: the segment map says a header is mapped at `seg`.
    unsafe {
        if !(*seg).is_valid() {
            return None;
        }
        if (*seg).kind == SegmentKind::Huge {
            let page = &raw mut (*seg).pages[0];
            if (*page).start as usize != addr || (*page).flags & FLAG_HUGE == 0 {
                return None;
            }
            return Some(BlockInfo {
                segment: seg,
                page,
                usable: (*page).block_size,
                huge: true,
                large_or_huge: true,
                flags: (*page).flags,
            });
        }
        if addr - (*seg).base() < crate::segment::SLICE_SIZE {
            return None; // the metadata slice
        }
        let page = (*seg).page_of(addr);
        if (*page).block_size == 0 || (*page).heap.is_null() || !(*page).is_block_start(addr) {
            return None;
        }
        Some(BlockInfo {
            segment: seg,
            page,
            usable: (*page).block_size,
            huge: false,
            large_or_huge: (*page).flags & FLAG_LARGE != 0,
            flags: (*page).flags,
        })
    }
}

/// The usable size of the block at `p`: 0 for null, and a reported error
/// (then 0) for a pointer ptrs does not know.
// The pointer is validated (segment map, cookie, block start) before any
// read, so any value is accepted: the function is safe to call.
#[allow(clippy::not_unsafe_ptr_arg_deref)]
pub fn usable_size(p: *mut u8) -> usize {
    if p.is_null() {
        return 0;
    }
    // SAFETY: block_info validates the pointer before reading headers.
    match unsafe { block_info(p) } {
        Some(info) => info.usable,
        None => {
            report_invalid("malloc_usable_size", p);
            0
        }
    }
}

/// True if `p` points anywhere inside memory ptrs manages.
pub fn owns(p: *const u8) -> bool {
    let addr = p as usize;
    if p.is_null() || !segment_map::in_range(addr) {
        return false;
    }
    if segment_map::in_huge_tail(addr) {
        return true;
    }
    let Some(seg) = Segment::of(addr) else { return false };
    // SAFETY: the segment map says a header is mapped at `seg`.
    unsafe { (*seg).is_valid() && addr - (*seg).base() < (*seg).mapped_size }
}

/// Checks the size (and alignment) a program passes to `free_sized` or
/// `free_aligned_sized` against the block: the size must fit in the block
/// and, for unaligned blocks, be more than half of it less 16 bytes (malloc
/// never hands out a block more than that much larger, and realloc keeps a
/// block in place only while it stays at least half used). Reports and
/// returns false on a mismatch, and on a pointer ptrs does not know.
#[allow(clippy::not_unsafe_ptr_arg_deref)] // validated first, as usable_size
pub fn size_matches(p: *mut u8, size: usize, align: usize, func: &str) -> bool {
    // SAFETY: block_info validates the pointer before reading headers.
    let Some(info) = (unsafe { block_info(p) }) else {
        report_invalid(func, p);
        return false;
    };
    let fits = size <= info.usable;
    // A huge block may come from a cached mapping up to twice its size.
    let slack = if info.huge { crate::segment::HEADER_END + 2 * crate::os::OS_PAGE_SIZE } else { 2 * MIN_ALIGN };
    let tight = align != 0 || info.usable <= size.saturating_mul(2).saturating_add(slack);
    let aligned = align == 0 || !align.is_power_of_two() || (p as usize) % align == 0;
    if fits && tight && aligned {
        return true;
    }
    diag::heap_error(func, "size or alignment does not match the block", p as usize);
    false
}
