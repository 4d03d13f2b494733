//! Engine entry points for allocation: `malloc`, `calloc`, aligned
//! allocation and `realloc`, in Rust terms (null on failure; the C layer in
//! `abi/` sets errno).
//!
//! Sizes up to 64 KiB come from size classes, up to the large threshold
//! (2 MiB by default) from spans of slices, and above it from huge mappings.

use core::ptr;

use crate::free;
use crate::heap::{self, with_thread_heap};
use crate::huge;
use crate::options;
use crate::page::{self, FLAG_ZERO};
use crate::segment::{LARGE_MAX, SLICE_COUNT, SLICE_SIZE};
use crate::size_class::{bin_for_aligned, bin_of, DIRECT_MAX, MIN_ALIGN, SMALL_MAX};
use crate::tls;

/// Requests above this are refused at once (ENOMEM), as glibc refuses
/// anything above PTRDIFF_MAX.
pub const MAX_REQUEST: usize = isize::MAX as usize - (SLICE_SIZE * 2);

/// Allocates `size` bytes, 16-byte aligned. Null when out of memory.
#[inline(always)]
pub fn malloc(size: usize) -> *mut u8 {
    let p = try_pop_counted(size);
    if !p.is_null() {
        return p;
    }
    malloc_miss(size)
}

/// What malloc does when [`try_pop_counted`] misses: the heap profiler's
/// hook when the heap's sampling countdown ran out or the profiler (or
/// mtrace) is on, else [`malloc_generic`]. Null when out of memory.
#[inline(never)]
#[unsafe(link_section = ".text.hot.ptrs")]
pub fn malloc_miss(size: usize) -> *mut u8 {
    if crate::profile::armed() || crate::profile::countdown_expired() {
        return crate::profile::malloc_slow_hook(size);
    }
    malloc_generic(size)
}

/// C `malloc`'s fast path: [`try_pop`] that, while the profiler (or
/// mtrace) is armed, also counts the bytes it serves down on the heap's
/// sampling countdown (`Heap::sample_left`) and misses (null) when the
/// countdown goes negative (tcmalloc's `bytes_until_sample`). Off, the
/// profiler costs the fast path one test of a byte of the heap
/// (`Heap::sampling`, next to the countdown) and one branch; on, one more
/// `sub` to memory and branch.
///
/// The countdown was first subtracted whether the profiler was on or
/// off (the same two instructions as the test of the byte). That
/// read-modify-write of the heap on every malloc cost about 6 % of the
/// time of a loop of `pow` and malloc/free of Pareto-distributed sizes
/// (medians of 7: 0.360 s, against 0.340 s testing a global byte, 0.333 s
/// with no countdown at all; in a second run 0.347 s for the global byte,
/// 0.343 s for the heap's) and 3 to 5 % of mixedlarge's (0.465 s against
/// 0.449 s and 0.440 s). The static heaps without pages are never
/// written: the countdown moves only after a page with a free block was
/// found.
#[inline(always)]
pub fn try_pop_counted(size: usize) -> *mut u8 {
    if size <= DIRECT_MAX {
        let heap = tls::current();
        // SAFETY: the thread's heap (real or a static one without pages) is
        // always valid, and its direct table always points at a valid page;
        // a page with a free block belongs to a real heap that this thread
        // owns, so the countdown's load and store are the owner's.
        unsafe {
            let page = (*heap).pages_direct[(size + MIN_ALIGN - 1) / MIN_ALIGN];
            // The head and its mark are loaded before the countdown, which
            // the compiler must assume writes any memory.
            let block = (*page).free;
            // One test for "a free block": the head carries the free mark.
            // At the end of the list the head is the page descriptor
            // (`page::list_end`), whose second word never equals a key
            // (`page::KEY_TAG`), so that test also finds the end, one
            // compare and branch cheaper than testing for it first
            // (callgrind). A head without the mark that is a block (freed
            // twice, or written after its free) goes to the slow path too,
            // which pops the same page and reports it.
            let key = (*page).key;
            if (*block).mark == key && count_down(heap, size) {
                // Null when the next link is corrupted, reported likewise.
                return heap::try_pop_marked(&mut *page, block, key);
            }
        }
    }
    ptr::null_mut()
}

/// While the heap is sampling (`Heap::sampling`), subtracts `size` from
/// its sampling countdown; false when that went negative. On x86-64 one
/// `cmp` of the byte with 0 and one branch, then (sampling) one `sub` to
/// memory and one branch: LLVM loads the byte into a register before it
/// tests it, and does not fold a relaxed atomic load and store into one
/// instruction; a plain field would race with `profile`'s reset.
///
/// # Safety
/// `heap` must be the calling thread's own (real) heap.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn count_down(heap: *mut heap::Heap, size: usize) -> bool {
    // SAFETY: `heap` is valid (caller). The byte's load is a relaxed
    // atomic load; the `sub`'s load and store of the aligned word are each
    // atomic, so it is exactly the relaxed `load` + `store` of the
    // portable version below, which is how the other threads'
    // `AtomicIsize::store` (profile's reset) sees it.
    unsafe {
        core::arch::asm!(
            "cmp byte ptr [{heap} + {flag}], 0",
            "je 2f",
            "sub qword ptr [{heap} + {offset}], {size}",
            "js {negative}",
            "2:",
            heap = in(reg) heap,
            size = in(reg) size,
            flag = const core::mem::offset_of!(heap::Heap, sampling),
            offset = const core::mem::offset_of!(heap::Heap, sample_left),
            negative = label { return false; },
            options(nostack),
        );
    }
    true
}

/// See the x86-64 version.
///
/// # Safety
/// `heap` must be the calling thread's own (real) heap.
#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
unsafe fn count_down(heap: *mut heap::Heap, size: usize) -> bool {
    use core::sync::atomic::Ordering::Relaxed;
    // SAFETY: `heap` is valid (caller).
    let (sampling, left) = unsafe { (&(*heap).sampling, &(*heap).sample_left) };
    if !sampling.load(Relaxed) {
        return true;
    }
    let v = left.load(Relaxed).wrapping_sub(size as isize);
    left.store(v, Relaxed);
    v >= 0
}

/// The fast path without the profiler's test.
#[inline(always)]
pub fn try_pop(size: usize) -> *mut u8 {
    if size <= DIRECT_MAX {
        let heap = tls::current();
        // SAFETY: the thread's heap (real or the static empty one) is always
        // valid, and its direct table always points at a valid page.
        unsafe {
            let page = (*heap).pages_direct[(size + MIN_ALIGN - 1) / MIN_ALIGN];
            if !crate::page::at_end(page, (*page).free) {
                return heap::pop(&mut *page);
            }
        }
    }
    ptr::null_mut()
}

/// Everything the fast path does not cover.
#[inline(never)]
#[unsafe(link_section = ".text.hot.ptrs")]
pub fn malloc_generic(size: usize) -> *mut u8 {
    if size > SMALL_MAX && size > large_limit() {
        if size > MAX_REQUEST {
            return ptr::null_mut();
        }
        crate::init::ensure();
        // The decay tick runs on every slow path; a program that makes
        // only huge allocations for a while must reach it too (a tester:
        // the heaps of exited threads kept 60 to 780 MiB resident).
        crate::retain::maybe_tick();
        return huge::alloc(size, MIN_ALIGN);
    }
    with_thread_heap(ptr::null_mut(), |heap| {
        if size <= SMALL_MAX {
            // SAFETY: `heap` is the calling thread's heap (or the shared
            // heap under its lock).
            unsafe { heap::alloc_bin(heap, bin_of(size)) }
        } else {
            // SAFETY: as above.
            unsafe { heap::alloc_large(heap, size.div_ceil(SLICE_SIZE)) }
        }
    })
}

/// The largest request served from a span inside a segment.
#[inline]
fn large_limit() -> usize {
    options::large_threshold().min(LARGE_MAX)
}

/// Allocates `count * size` zeroed bytes. Null on overflow or when out of
/// memory.
pub fn calloc(count: usize, size: usize) -> *mut u8 {
    let Some(total) = count.checked_mul(size) else { return ptr::null_mut() };
    let p = malloc(total);
    if p.is_null() {
        return p;
    }
    // Large and huge blocks on never-touched (or purged) memory are zero
    // already: skip the memset, which would also make them resident. (The
    // flag is set when the span or mapping is claimed for this block.)
    // SAFETY: `p` was just returned by malloc, so it is a live block.
    let info = if total > SMALL_MAX { unsafe { free::block_info(p) } } else { None };
    match info {
        Some(b) if b.large_or_huge && b.flags & FLAG_ZERO != 0 => {}
        // A huge block from a cached mapping: only what earlier blocks of
        // the mapping wrote, purged rather than written.
        // SAFETY: `b.segment` is the live huge segment of `p`, which holds
        // at least `total` bytes.
        Some(b) if b.huge => unsafe { huge::zero_for_calloc(b.segment, p, total) },
        // SAFETY: the block holds at least `total` writable bytes.
        _ => unsafe { ptr::write_bytes(p, 0, total) },
    }
    p
}

/// Allocates `size` bytes aligned to `align` (a power of two). Null when out
/// of memory.
pub fn malloc_aligned(align: usize, size: usize) -> *mut u8 {
    if align > MIN_ALIGN && crate::profile::armed() {
        return crate::profile::malloc_hook(size, align);
    }
    malloc_aligned_unhooked(align, size)
}

/// [`malloc_aligned`] without the profiler's test.
#[unsafe(link_section = ".text.hot.ptrs")]
pub fn malloc_aligned_unhooked(align: usize, size: usize) -> *mut u8 {
    debug_assert!(align.is_power_of_two());
    if align <= MIN_ALIGN {
        return malloc(size);
    }
    if size > MAX_REQUEST || align > MAX_REQUEST / 2 {
        return ptr::null_mut();
    }
    if align <= SLICE_SIZE {
        if let Some(bin) = bin_for_aligned(size, align) {
            // SAFETY: `heap` is the calling thread's heap (or the shared
            // heap under its lock).
            return with_thread_heap(ptr::null_mut(), |heap| unsafe { heap::alloc_bin(heap, bin) });
        }
        if size <= large_limit() {
            // Spans start on slice boundaries, which satisfies `align`.
            // SAFETY: as above.
            return with_thread_heap(ptr::null_mut(), |heap| unsafe {
                heap::alloc_large(heap, size.div_ceil(SLICE_SIZE))
            });
        }
    } else if size <= large_limit() {
        // A span that starts at a multiple of the alignment within its
        // segment (segments are aligned to their size), when one fits
        // there after the header slice.
        let count = size.div_ceil(SLICE_SIZE).max(1);
        let step = align / SLICE_SIZE;
        if step + count <= SLICE_COUNT {
            // SAFETY: `heap` is the calling thread's heap (or the shared
            // heap under its lock); `step + count` fits a segment.
            return with_thread_heap(ptr::null_mut(), |heap| unsafe { heap::alloc_large_aligned(heap, count, step) });
        }
    }
    crate::retain::maybe_tick();
    huge::alloc(size, align)
}

/// Resizes the block at `p` (non-null, live) to `size` bytes (non-zero),
/// in place when it can. Null when out of memory or `p` is invalid (the
/// block is then untouched).
#[unsafe(link_section = ".text.hot.ptrs")]
pub fn realloc(p: *mut u8, size: usize) -> *mut u8 {
    realloc_as(p, size, "realloc")
}

/// [`realloc`] for an entry point that reports an invalid or freed `p`
/// under its own name `func` (`"ptrs_pool_realloc"`).
#[inline(always)]
pub fn realloc_as(p: *mut u8, size: usize, func: &str) -> *mut u8 {
    let page = free::live_block_page(p);
    if page.is_null() {
        return realloc_generic(p, size, func);
    }
    // SAFETY: the live page of `p` (live_block_page validated it).
    let pg = unsafe { &*page };
    // SAFETY: as above.
    if unsafe { free::fits_in_place(pg, size) } {
        // (A page in no size class is a large one here: fits_in_place
        // passes no other kind.)
        if pg.bin == page::NO_BIN {
            // A large block: as `kept` does.
            if crate::profile::ever_started() {
                kept_large_profiled(p, size, page as *mut page::Page);
            }
        // A sampled small block lives in the profiler's heap (reported
        // only when every allocation is recorded: see `exact_sizes`).
        } else if crate::profile::exact_sizes() && crate::profile::is_profiler_heap(pg.heap) {
            crate::profile::note_resized(p, size);
        }
        return p;
    }
    // A small block of the calling thread's own heap (so neither a pool's
    // nor the profiler's block: no thread owns their heaps) that grows, or
    // shrinks below half: a new block, the bytes copied, the old block
    // freed, without realloc_generic's second validation of `p`. A
    // tester's malloc(16) grown to 32, 64, 128 and 256, then freed, cost
    // 1234 instructions a round (callgrind), mimalloc's 925, glibc's 919;
    // another's realloc between 100 and 3000 bytes took 0.37 s for 20 M
    // calls (glibc 0.23) while the shrink still took the full path.
    if pg.bin != page::NO_BIN && pg.heap == tls::current() {
        let keep = pg.block_size.min(size);
        let q = malloc(size);
        if !q.is_null() {
            // SAFETY: both blocks are live and distinct; `p` holds
            // `block_size` bytes and `q` at least `size`.
            unsafe { ptr::copy_nonoverlapping(p, q, keep) };
            free::free(p);
            return q;
        }
    }
    realloc_generic(p, size, func)
}

/// realloc's result `p` (described by `info`) when it keeps the block
/// where it is with `size` bytes, once the heap profiler has run: a large
/// or huge block is sampled again for its new size
/// (`note_resized_large`), a small block of the profiler's heap tells its
/// new size.
#[inline(always)]
fn kept(p: *mut u8, size: usize, info: &free::BlockInfo) -> *mut u8 {
    if crate::profile::ever_started() {
        if info.large_or_huge {
            let page = if info.huge { ptr::null_mut() } else { info.page };
            crate::profile::note_resized_large(p, p, size, page, info.usable);
        // SAFETY: the live page of `p` (block_info validated it).
        } else if crate::profile::is_profiler_heap(unsafe { (*info.page).heap }) {
            crate::profile::note_resized(p, size);
        }
    }
    p
}

/// realloc's fast path keeping the large block `p` of `page` with `size`
/// bytes once the profiler has run: `kept`'s hook, out of line so that
/// realloc itself stays a leaf without a frame.
#[cold]
#[inline(never)]
fn kept_large_profiled(p: *mut u8, size: usize, page: *mut page::Page) {
    // SAFETY: the live large page of `p` (live_block_page validated
    // it); its block size is the block's usable size.
    let usable = unsafe { (*page).block_size };
    crate::profile::note_resized_large(p, p, size, page, usable);
}

#[inline(never)]
#[unsafe(link_section = ".text.hot.ptrs")]
fn realloc_generic(p: *mut u8, size: usize, func: &str) -> *mut u8 {
    // SAFETY: `p` is checked by block_info before anything is read.
    let Some(info) = (unsafe { free::block_info(p) }) else {
        free::report_invalid(func, p);
        return ptr::null_mut();
    };
    // SAFETY: `info` was just returned by block_info for `p`.
    if unsafe { free::is_freed(&info, p) } {
        crate::diag::heap_error(func, "double free detected", p as usize);
        return ptr::null_mut();
    }
    if size > MAX_REQUEST {
        return ptr::null_mut();
    }
    // A pool's block stays in its pool (pool.rs).
    // SAFETY: `info` describes the live block `p`.
    let pool = unsafe { crate::pool::owner_of(&info, p) };
    if !pool.is_null() {
        // SAFETY: as above; `pool` is the live pool that holds `p`.
        return unsafe { crate::pool::realloc_block(pool, p, size, &info) };
    }
    let usable = info.usable;
    if info.huge {
        if size > large_limit() {
            // mremap's first try in place fails with ENOMEM when the
            // next pages are taken; realloc's success must not show it.
            let saved = crate::os::errno();
            // SAFETY: `info.segment` is the live huge segment of `p`.
            let q = unsafe { huge::resize(info.segment, size) };
            crate::os::set_errno(saved);
            if !q.is_null() {
                crate::profile::note_resized_huge(p, q, size, usable);
                return q;
            }
            if size <= usable {
                return kept(p, size, &info);
            }
        }
    } else if size <= usable && info.large_or_huge && size > crate::size_class::SMALL_MAX && usable - size >= SLICE_SIZE {
        // A large block that stays large gives up its slices past the new
        // size (another thread's block is left as it is, unless below
        // half).
        let heap = tls::current();
        let shrunk = heap::is_real(heap)
            // SAFETY: `heap` is the calling thread's real heap (checked just
            // before); `info.page` is the live large page of `p`, and a page
            // of another heap is refused inside.
            && unsafe { heap::shrink_large_in_place(&mut *heap, info.page, size.div_ceil(SLICE_SIZE)) };
        if shrunk || size >= usable / 2 {
            return kept(p, size, &info);
        }
    } else if size <= usable && size >= usable / 2 {
        // Shrinking by less than half keeps the block where it is.
        return kept(p, size, &info);
    } else if size <= usable && info.large_or_huge && usable - size < SLICE_SIZE && size >= usable / 2 {
        // (Below half of a one-slice block, an aligned one, the block
        // moves to a size class: kept, its sized free with the new size
        // would not match it.)
        return kept(p, size, &info);
    } else if size > usable && info.large_or_huge && size <= large_limit() {
        let heap = tls::current();
        let grown = heap::is_real(heap)
            // SAFETY: `heap` is the calling thread's real heap (checked just
            // before); `info.page` is the live large page of `p`, and a page
            // of another heap is refused inside.
            && unsafe { heap::grow_large_in_place(&mut *heap, info.page, size.div_ceil(SLICE_SIZE)) };
        if grown {
            return kept(p, size, &info);
        }
    }
    let q = malloc(size);
    if q.is_null() {
        return q;
    }
    // SAFETY: both blocks are live and distinct; `p` holds `usable` bytes
    // and `q` at least `size`.
    unsafe { ptr::copy_nonoverlapping(p, q, usable.min(size)) };
    free::free(p);
    q
}
