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
//! a carved block, and is not the block freed last into its page (the
//! heads of its lists; see `is_list_head`). A freed block carries a free
//! mark in its second word: a free by another thread tests it (confirmed by
//! walking the page's lists), and an allocation tests it again on the block
//! it takes, so a block freed twice is never handed out twice.

use core::ptr;
use core::sync::atomic::{AtomicUsize, Ordering};

use crate::diag;
use crate::os;
use crate::heap::{self, Heap};
use crate::huge;
use crate::page::{self, Block, Page, FLAG_HUGE, FLAG_LARGE};
use crate::segment::{Segment, SegmentKind};
use crate::segment_map;
use crate::size_class::{MIN_ALIGN, SIZED_FREE_SLACK};
use crate::tls;

/// The header of the segment holding `addr`, for the fast paths: the
/// segment map's answer for the address with its bits above the user range
/// cleared. `None` sends the caller to its slow path (which also handles
/// null).
///
/// There is no test of its own for null, misaligned or non-user addresses:
/// every caller makes the block-start test next on the full address
/// (`Page::is_block_start`), which maps `addr - start` one-to-one onto a
/// block index and accepts only the multiples of the block size below the
/// page's capacity. A misaligned address is none of those, and neither is
/// one with high bits set, whose offset is at least 2^47 - 4 MiB. Dropping
/// the separate test saved 3 instructions per free (callgrind).
#[inline(always)]
fn mapped_segment(addr: usize) -> Option<*mut Segment> {
    let granule = segment_map::granule_if_mapped(addr)?;
    Some(Segment::of_unchecked(granule))
}

/// Frees `p` (null is ignored).
#[inline(always)]
pub fn free(p: *mut u8) {
    free_as(p, "free")
}

/// [`free`] for an entry point that reports a heap error in `p` under its
/// own name `func` (`"operator delete"`, `"ptrs_pool_realloc"`): a
/// constant, so that inlined it costs nothing over `free`.
#[inline(always)]
pub fn free_as(p: *mut u8, func: &str) {
    let addr = p as usize;
    let Some(seg) = mapped_segment(addr) else {
        return free_slow(p, func);
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
        if !(*page).is_block_start(addr) {
            return free_slow(p, func);
        }
        // Another thread's block (and, under memcheck, every block): the
        // remote path makes the double-free test itself.
        if (*page).heap != heap {
            return free_remote(block, page, func);
        }
        #[cfg(not(feature = "unchecked-free"))]
        if is_list_head(&*page, block) {
            return free_slow(p, func);
        }
        free_local(&mut *heap, &mut *page, block, func);
    }
}

/// Frees `p` (null is ignored) after checking the size and alignment the
/// caller says it was allocated with, for C23 `free_sized` /
/// `free_aligned_sized` and C++'s sized and aligned `operator delete`.
/// `size` is in bytes; `align` is 0 for "no alignment given", else the
/// alignment in bytes. A mismatch is reported as [`size_matches`] does, as
/// `func`, and the block is left alone (after the abort, unless
/// `PTRS_ABORT_ON_ERROR=0`).
///
/// The fast path is `free`'s, plus two compares against the block size of
/// the page it loads anyway: it accepts a subset of what `size_matches`
/// accepts, and everything else goes to the slow path, which decides with
/// `size_matches` itself. With `align` a constant 0 (inlined into the
/// sized-only callers) the alignment test disappears. Idea: jemalloc's `sdallocx` and mimalloc's
/// `mi_free_size` use the size to skip work; here it is checked instead.
#[inline(always)]
pub fn free_checked(p: *mut u8, size: usize, align: usize, func: &str) {
    let addr = p as usize;
    let Some(seg) = mapped_segment(addr) else {
        return free_checked_slow(p, size, align, func);
    };
    let heap = tls::current();
    // SAFETY: as in `free`: a live segment header is at `seg`.
    unsafe {
        let page = (*seg).page_of(addr);
        let block = p as *mut Block;
        #[cfg(not(feature = "unchecked-free"))]
        if !(*page).is_block_start(addr) {
            return free_checked_slow(p, size, align, func);
        }
        // What `size_matches` accepts for a small or large block; a huge
        // block, which it gives more slack, may be sent to the slow path
        // by this tighter test, never accepted wrongly. `bs - size` cannot
        // wrap once `size <= bs`, nor `size + SIZED_FREE_SLACK` then.
        let fits = if align == 0 {
            // The sizes that fit the page's class, from a table (see
            // `SIZED_FREE_FIT`): a sized free of a small block touches only
            // the descriptor's first cache line. A page in no class (a
            // large block, a pool's bump page) takes the slow path.
            let fit = crate::size_class::SIZED_FREE_FIT[(*page).bin as usize];
            size.wrapping_sub(fit.lo as usize) < fit.count as usize
        } else {
            // A pool's bump page has blocks of any size (its block size,
            // 16, is only their grain): the slow path reads the block's
            // header. size 0: the aligned deletes without a size.
            let bs = if (*page).flags & page::FLAG_BUMP == 0 { (*page).block_size } else { 0 };
            size <= bs && addr & (align - 1) == 0 && (size == 0 || bs - size <= size.max(align) + SIZED_FREE_SLACK)
        };
        if !fits {
            return free_checked_slow(p, size, align, func);
        }
        if (*page).heap != heap {
            return free_remote(block, page, func);
        }
        #[cfg(not(feature = "unchecked-free"))]
        if is_list_head(&*page, block) {
            return free_checked_slow(p, size, align, func);
        }
        free_local(&mut *heap, &mut *page, block, func);
    }
}

#[cold]
#[inline(never)]
fn free_checked_slow(p: *mut u8, size: usize, align: usize, func: &str) {
    if !p.is_null() && size_matches(p, size, align, func) {
        free_slow(p, func);
    }
}

/// The page of `p` if `p` is a carved block start of a page in a ptrs
/// segment whose free mark is clear (a live block, unless the program
/// wrote over it): `free`'s fast-path validation plus the mark, for
/// realloc's fast paths. Null sends realloc to its full path, which also
/// reports invalid pointers and freed blocks.
///
/// A large block's test is the one `block_info` and `is_freed` make
/// (a live page of a heap, the block's start, no free mark), so an
/// in-place realloc of a large block no longer pays for them: 200
/// instructions per call before, against glibc's 92 and mimalloc's 79
/// (callgrind, a 200 000-byte block resized by 16 bytes up and down).
#[inline(always)]
pub fn live_block_page(p: *mut u8) -> *const Page {
    let addr = p as usize;
    let Some(seg) = mapped_segment(addr) else { return ptr::null() };
    // SAFETY: a live segment header is at `seg`; see `free`. The block's
    // second word is read only once the page says `p` is one of its carved
    // block starts.
    unsafe {
        let page = (*seg).page_of(addr);
        if (*page).is_block_start(addr) && (*(p as *mut Block)).mark != (*page).key { page } else { ptr::null() }
    }
}

/// The sized-free rule for a block at `p` of `usable` bytes named with
/// `size` and `align` (0: none): the size fits, twice the larger of size
/// and alignment plus `slack` reaches `usable`, and `p` has the alignment.
/// An aligned block may be larger than twice its size, but not than twice
/// its alignment: a class that is a multiple of the alignment is found
/// below the next power of two of the larger of the two (a span, over
/// 64 KiB, is rounded up to a slice: less than twice its size). With an
/// alignment, size 0 is C++'s aligned delete without a size: only the
/// alignment is checked.
pub fn sized_rule(p: *mut u8, usable: usize, size: usize, align: usize, slack: usize) -> bool {
    let least = if align.is_power_of_two() { size.max(align) } else { size };
    let tight = (align != 0 && size == 0) || usable <= least.saturating_mul(2).saturating_add(slack);
    let aligned = align == 0 || !align.is_power_of_two() || (p as usize) % align == 0;
    size <= usable && tight && aligned
}

/// Whether realloc can leave a live block of `pg` where it is with `size`
/// bytes: a small block whose size class still fits `size` without
/// wasting more than half of it (or is the smallest class), as
/// `alloc::realloc_generic` decides, or a large block (not a huge one,
/// nor a pool's bump page) whose new size still needs all its slices.
///
/// # Safety
/// `pg` must be the live page of the block.
#[inline(always)]
pub unsafe fn fits_in_place(pg: &Page, size: usize) -> bool {
    size <= pg.block_size
        && if pg.bin != page::NO_BIN {
            // Shrinking below half moves to a smaller class, if there is
            // one.
            size >= pg.block_size / 2 || pg.block_size == MIN_ALIGN
        } else {
            // A shrink that frees a slice or more takes the full path,
            // which gives the slices up (`heap::shrink_large_in_place`),
            // and so does one below half of a one-slice block (an aligned
            // one), which moves to a size class so that a sized free with
            // the new size matches it.
            pg.flags & (FLAG_LARGE | FLAG_HUGE | page::FLAG_BUMP) == FLAG_LARGE
                && !pg.heap.is_null()
                && pg.block_size - size < crate::segment::SLICE_SIZE
                && size >= pg.block_size / 2
        }
}

/// A free from a thread that does not own the page: one compare-and-swap
/// on the page's remote list (two when the owner must be told about a full
/// page). Huge blocks and free slices (no heap) go to the slow path.
///
/// # Safety
/// `block` must be a carved block start of `page`.
#[inline(never)]
#[unsafe(link_section = ".text.hot.ptrs")]
unsafe fn free_remote(block: *mut Block, page: *mut Page, func: &str) {
    // Under memcheck no thread owns a heap, so every free arrives here:
    // memcheck mode takes it (see `abi::malloc::malloc_slow`).
    if crate::valgrind::active() {
        return crate::valgrind::free(block as *mut u8, func);
    }
    // SAFETY: the caller checked the block against its live page.
    unsafe {
        let owner = (*page).heap;
        if owner.is_null() || (*block).mark == (*page).key {
            return free_slow(block as *mut u8, func);
        }
        if crate::profile::note_free(owner, page, block as *mut u8) {
            return; // a sampled block, freed by the profiler
        }
        if !(*owner).pool.is_null() {
            return crate::pool::free_block(page, block, func);
        }
        // A live thread's block, freed by a thread with a heap of its own:
        // kept for this thread's next allocations (`foreign.rs`).
        // Only while threads outnumber the CPUs (`foreign::oversubscribed`):
        // otherwise one load and one compare here.
        if crate::foreign::oversubscribed() {
            let me = tls::current();
            if (*owner).owned && heap::is_real(me) && crate::foreign::keep(me, page, block) {
                return;
            }
        }
        let pushed = page::push_remote(&*page, block);
        if pushed != 0 {
            heap::remote_pushed(owner, page, pushed);
        }
    }
}

/// [`free_local`] for a heap the caller holds exclusively without being
/// its thread (the profiler's heap under the profiler's lock).
///
/// # Safety
/// `page` must be a live page of `heap`, which no other thread uses now,
/// and `block` one of its blocks in use.
pub(crate) unsafe fn free_into_held_heap(heap: &mut Heap, page: &mut Page, block: *mut Block) {
    // SAFETY: as the caller guarantees.
    unsafe { free_local(heap, page, block, "free") }
}

/// free's double-free test on the owner's fast path: whether `block` is
/// the first block of the page's local free list or of its remote list,
/// which is where a block freed a moment ago (by this thread, or by
/// another one) sits. Both heads are in the page descriptor, so the test
/// reads nothing of the block itself: a free of a block whose memory is no
/// longer in the cache (a long-lived block, freed at random) does not wait
/// for that memory, as reading the block's free mark did (the churn
/// workload: 1.26x mimalloc's time against 1.12x without that read,
/// medians of 15 interleaved runs). A block freed twice with other frees
/// of its page in between is caught later, and always before it could be
/// handed out twice: every block on a free list carries the free mark,
/// which the allocation that takes it off checks
/// ([`heap::try_pop_block`]), and a page whose blocks are all free by
/// count has the marks of its blocks checked before its memory is given
/// back ([`heap::check_empty_page`]). (Idea: glibc's fastbins test only
/// the top of the bin, "double free or corruption (fasttop)"; the rest is
/// caught when the chunk is taken.)
///
/// The remote list's head is compared without its flag bits. Comparing the
/// word with them in place saved one instruction, but a page taken off the
/// full list while a notification is on its way keeps its flags and takes
/// the fast path: an owner's second free of a block another thread had
/// just freed there was then caught only at the next allocation (fresh
/// reviewer).
///
/// Only the low 32 bits are compared (the word's list length lies above
/// bit 47): the head is a block of this page or null, and a block of the
/// page shares every bit from 22 up with it (same segment), so equal low
/// bits mean the same block. Null's low bits equal no block's, since an
/// address whose low 32 bits are 0 is the base of a segment, where its
/// header lies. Masking the full pointer took a 64-bit constant, one
/// more instruction per free.
#[inline(always)]
fn is_list_head(page: &Page, block: *mut Block) -> bool {
    block == page.free
        || block as usize as u32 == page.thread_free.load(Ordering::Relaxed) as u32 & !(page::TF_FLAGS as u32)
}

/// Pushes a block on its page's local free list.
///
/// # Safety
/// `page` must be owned by `heap`, the calling thread's heap, and `block`
/// one of its blocks in use.
#[inline(always)]
unsafe fn free_local(heap: &mut Heap, page: &mut Page, block: *mut Block, func: &str) {
    // One (the page is about to empty) or negative (IN_FULL set): the slow
    // path pushes the block under the heap's slow-path lock, so that pages
    // on the full list change only under that lock (another thread may be
    // taking back the fully freed ones of a dormant heap).
    if (page.used as i16) <= 1 {
        // SAFETY: as below.
        return unsafe { heap::free_local_slow(heap, page, block, func) };
    }
    // The order of these lines is chosen for the instructions they become
    // (x86-64, counted with callgrind): the mark is stored first, so that
    // the key need not be loaded again after the link's store (which the
    // compiler must assume may alias the page); `used` is read again after
    // the block's stores for the same reason, which makes its decrement one
    // instruction on memory instead of a load, a decrement and a store.
    let key = page.key;
    // SAFETY: the caller guarantees the block is a live block of our page.
    unsafe {
        (*block).mark = key;
        page::set_next(block, page.free, key);
    }
    page.free = block;
    page.used -= 1;
}

/// Everything that is not a local free of a block off its page's list heads.
#[cold]
#[inline(never)]
#[unsafe(link_section = ".text.hot.ptrs")]
pub fn free_slow(p: *mut u8, func: &str) {
    if p.is_null() {
        return;
    }
    // Memcheck mode: every free the fast path does not finish arrives
    // here or in `free_remote` (see `abi::malloc::malloc_slow`).
    if crate::valgrind::active() {
        return crate::valgrind::free(p, func);
    }
    free_slow_engine(p, func);
}

/// The engine part of [`free_slow`] (memcheck mode calls it directly).
#[cold]
#[inline(never)]
#[unsafe(link_section = ".text.hot.ptrs")]
pub fn free_slow_engine(p: *mut u8, func: &str) {
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
        // SAFETY: as above; a pool's huge block (pool.rs). One that a walk
        // of its pool keeps mapped is freed when the walk ends.
        if unsafe { !(*info.segment).heap.is_null() && !crate::pool::forget_huge(info.segment, func) } {
            return;
        }
        remember_huge_free(addr);
        // SAFETY: `info.segment` is the live huge segment of `p`.
        unsafe { huge::free(info.segment) };
        // The decay tick, as on every other slow path (see `malloc_generic`).
        crate::retain::maybe_tick();
        return;
    }
    let page = info.page;
    let block = p as *mut Block;
    let heap = tls::current();
    // SAFETY: block_info checked that `p` is the start of a carved block of
    // a live page, so the page and the block's first words are readable.
    unsafe {
        let local = (*page).heap == heap;
        if is_freed(&info, p) {
            diag::heap_error(func, "double free detected", addr);
            return;
        }
        if !local && crate::profile::note_free((*page).heap, page, p) {
            return; // a sampled block, freed by the profiler
        }
        if local {
            free_local(&mut *heap, &mut *page, block, func);
        } else if heap == heap::SHARED_MARK.get() && (*page).heap == heap::shared_heap_if_made() {
            // A user of the shared heap frees into it: a local free under
            // its lock (memcheck mode sends every free here), so the block
            // goes where the next allocation looks first, as for an owner.
            let shared = (*page).heap;
            let _l = heap::SlowLock::lock(shared);
            free_local(&mut *shared, &mut *page, block, func);
        } else if !(*(*page).heap).pool.is_null() {
            crate::pool::free_block(page, block, func);
        } else {
            // Read before the push (see `heap::remote_pushed`).
            let owner = (*page).heap;
            let pushed = page::push_remote(&*page, block);
            if pushed != 0 {
                heap::remote_pushed(owner, page, pushed);
            }
        }
    }
}

/// Whether the block `p`, described by `info`, is already free: the test
/// free makes before freeing a block, also made by realloc (which would
/// otherwise copy from a freed block, or hand it back when it fits).
///
/// The owner confirms a mark by finding the block on the page's lists.
/// Another thread cannot walk the owner's local list, where a small block
/// the owner freed sits: for it the mark alone decides (`pop` hands out
/// every small block with 0 there, so a block in use has the key only if
/// the program stored this page's secret random key in it), rather than
/// pushing a block that is already free onto the remote list, after which
/// it would be handed out twice. A large block is not cleared when handed
/// out (it may hold a stale mark) and never sits on a local list: its
/// remote list decides. A pool's bump block carries a freed bit in its
/// header; a pool's huge block freed during a walk of the pool, a flag.
///
/// # Safety
/// `info` must be what `block_info(p)` just returned.
pub unsafe fn is_freed(info: &BlockInfo, p: *mut u8) -> bool {
    // SAFETY: `info` describes `p`: its page (or huge segment) is live and
    // `p` is a carved block start, so its first words are readable.
    unsafe {
        let page = info.page;
        if info.huge {
            return (*page).flags & page::FLAG_FREED_IN_VISIT != 0;
        }
        if (*page).flags & page::FLAG_BUMP != 0 {
            return crate::pool::bump_freed(&*page, p as usize);
        }
        let block = p as *mut Block;
        let local = (*page).heap == tls::current();
        let small = (*page).flags & FLAG_LARGE == 0;
        (*block).mark == (*page).key && ((!local && small) || page::list_contains(&*page, block, local))
    }
}

/// Start addresses of the last huge blocks freed, so that a second free
/// of one (its mapping now cached, reused or unmapped) is reported as a
/// double free. A ring, written with relaxed atomics: a diagnostic aid,
/// never used to decide what memory to touch.
static FREED_HUGE: [AtomicUsize; 16] = [const { AtomicUsize::new(0) }; 16];
static FREED_HUGE_NEXT: AtomicUsize = AtomicUsize::new(0);

/// Notes that the huge block at `addr` is being unmapped, so that a later
/// free of it is reported as a double free rather than an invalid pointer.
pub(crate) fn remember_huge_free(addr: usize) {
    let i = FREED_HUGE_NEXT.fetch_add(1, Ordering::Relaxed) % FREED_HUGE.len();
    FREED_HUGE[i].store(addr, Ordering::Relaxed);
}

/// For a pointer that is not a live block: true if it is the start of a
/// block already freed, as far as ptrs can tell without reading memory
/// that may be unmapped: one of the last huge blocks freed, or the start
/// of a free span of slices in a live segment (a large block, or the first
/// block of a small page, whose span went back to its segment).
fn was_freed(addr: usize) -> bool {
    if FREED_HUGE.iter().any(|a| a.load(Ordering::Relaxed) == addr) {
        return true;
    }
    let slice = crate::segment::SLICE_SIZE;
    if !addr.is_multiple_of(slice) || !segment_map::in_range(addr) {
        return false;
    }
    let Some(seg) = Segment::of(addr) else { return false };
    // SAFETY: the segment map says a header is mapped at `seg`; a racy read
    // of its slice bitmap only changes the wording of a report.
    unsafe {
        if !(*seg).is_valid() || (*seg).kind == SegmentKind::Huge {
            return false;
        }
        let index = (addr - (*seg).base()) / slice;
        index != 0 && index < 64 && (*seg).used_slices & (1u64 << index) == 0
    }
}

/// Reports a pointer ptrs does not recognise as one of its blocks: as a
/// double free if it is the start of a block freed already (see
/// [`was_freed`]: a large block whose span went back to its segment, a
/// huge block just unmapped), else as an invalid pointer. free, realloc,
/// free_sized and the pools report through it, so a freed large block gets
/// the same words from each.
#[cold]
pub fn report_invalid(func: &str, p: *mut u8) {
    let problem = if was_freed(p as usize) { "double free detected" } else { "invalid pointer" };
    diag::heap_error(func, problem, p as usize);
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
#[unsafe(link_section = ".text.hot.ptrs")]
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
        let usable = if (*page).flags & page::FLAG_BUMP != 0 {
            crate::pool::bump_usable(&*page, addr)?
        } else {
            (*page).block_size
        };
        Some(BlockInfo {
            segment: seg,
            page,
            usable,
            huge: false,
            large_or_huge: (*page).flags & FLAG_LARGE != 0,
            flags: (*page).flags,
        })
    }
}

/// The usable size of the block at `p`: 0 for null and for a block already
/// freed, and a reported error (then 0) for a pointer ptrs does not know.
// The pointer is validated (segment map, cookie, block start) before any
// read, so any value is accepted: the function is safe to call.
#[allow(clippy::not_unsafe_ptr_arg_deref)]
pub fn usable_size(p: *mut u8) -> usize {
    if p.is_null() {
        return 0;
    }
    // SAFETY: block_info validates the pointer before reading headers.
    match unsafe { block_info(p) } {
        // A block already freed has no usable bytes (glibc's answer for a
        // free chunk).
        // SAFETY: `info` was just returned by block_info for `p`.
        Some(info) => if unsafe { is_freed(&info, p) } { 0 } else { info.usable },
        // A large or huge block freed already, whose span went back to its
        // segment or whose mapping is gone: 0 as well.
        None if was_freed(p as usize) => 0,
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
/// and be more than half of it less 16 bytes (malloc never hands out a
/// block more than that much larger, and realloc keeps a block in place
/// only while it stays at least half used); for an aligned block, the
/// larger of the size and the alignment must be.
/// Reports and returns false on a mismatch, and on a pointer ptrs does not
/// know.
#[allow(clippy::not_unsafe_ptr_arg_deref)] // validated first, as usable_size
pub fn size_matches(p: *mut u8, size: usize, align: usize, func: &str) -> bool {
    // SAFETY: block_info validates the pointer before reading headers.
    let Some(info) = (unsafe { block_info(p) }) else {
        report_invalid(func, p);
        return false;
    };
    // A huge block may come from a cached mapping up to twice its size.
    let slack = if info.huge { crate::segment::HEADER_END + 2 * crate::os::OS_PAGE_SIZE } else { SIZED_FREE_SLACK };
    if sized_rule(p, info.usable, size, align, slack) {
        return true;
    }
    // A pool's bump block that realloc shrank in place keeps its extent:
    // any size that fits it, with the alignment (the rule without a bound
    // below, `pool::bump_shrink`).
    if info.flags & page::FLAG_BUMP != 0
        && sized_rule(p, info.usable, size, align, usize::MAX)
        // SAFETY: `info` describes the live block `p` (block_info), a
        // block of the bump page `info.page`.
        && unsafe { crate::pool::bump_shrunk(&*info.page, p as usize) }
    {
        return true;
    }
    // `PTRS_SIZED_FREE_CHECK=0`: a valid block named with the wrong size
    // is freed as `free` would free it, as glibc does. The mismatch is
    // undefined behaviour that legacy C++ commits (`delete` of a derived
    // object through a base without a virtual destructor, `delete` of a
    // `new[]` array of a trivial type), and g++ calls the sized delete
    // from C++14 on.
    if !crate::options::sized_free_check() {
        return true;
    }
    diag::heap_error(func, "size or alignment does not match the block", p as usize);
    false
}
