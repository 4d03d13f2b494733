//! Statistics gathered on demand: the fast paths keep no counters. Page
//! descriptors already hold how many blocks are in use, so totals come from
//! walking every segment under the global lock; slow-path event counts are
//! per-heap fields summed here. Values read from other threads' pages are a
//! snapshot, exact when those threads are quiet.

use core::fmt::Write;

use crate::diag::LineBuf;
use crate::heap::{self, HeapCounters};
use crate::huge;
use crate::os;
use crate::page::{FLAG_LARGE, NO_BIN};
use crate::segment::{self, SegmentKind, SEGMENT_SIZE};
use crate::size_class::{bin_size, BIN_COUNT};

#[derive(Clone, Copy)]
pub struct ClassStats {
    pub blocks_used: usize,
    pub blocks_capacity: usize,
    pub pages: usize,
}

#[derive(Clone, Copy)]
pub struct Totals {
    /// Bytes in blocks handed out (block sizes, not request sizes).
    pub allocated: usize,
    /// Bytes of pages and huge blocks in use (allocated plus free blocks
    /// inside those pages).
    pub active: usize,
    /// Bytes mapped from the OS for segments and huge blocks.
    pub mapped: usize,
    /// Peak of `mapped`.
    pub peak_mapped: usize,
    /// Bytes of empty segments kept for reuse (purged).
    pub retained: usize,
    /// Resident set size of the process.
    pub resident: usize,
    pub small_allocated: usize,
    pub large_allocated: usize,
    pub large_count: usize,
    pub huge_count: usize,
    pub huge_allocated: usize,
    pub huge_mapped: usize,
    /// Peaks of `huge_count` and `huge_mapped` (glibc's "max mmap regions"
    /// and "max mmap bytes").
    pub huge_peak_count: usize,
    pub huge_peak_mapped: usize,
    pub segments: usize,
    pub heaps: usize,
    pub counters: HeapCounters,
    pub classes: [ClassStats; BIN_COUNT],
}

/// Takes a snapshot of ptrs's state.
pub fn gather() -> Totals {
    // Blocks other threads freed into the heaps of exited threads are not
    // in use: take them back first, so the figures are exact.
    // Memcheck mode: collecting reads links inside freed blocks.
    let _q = crate::valgrind::Quiet::new();
    heap::collect_parked(false);
    // Pages other threads freed entirely are taken back; blocks they freed
    // into pages that still hold live blocks (their owners take them back
    // at their next allocation of that class) are counted free, page by
    // page, under the heap locks `hold` keeps until the walk is done.
    let hold = heap::hold_for_statistics();
    let mut t = Totals {
        allocated: 0,
        active: 0,
        mapped: 0,
        peak_mapped: 0,
        retained: 0,
        resident: 0,
        small_allocated: 0,
        large_allocated: 0,
        large_count: 0,
        huge_count: 0,
        huge_allocated: 0,
        huge_mapped: 0,
        huge_peak_count: 0,
        huge_peak_mapped: 0,
        segments: 0,
        heaps: 0,
        counters: HeapCounters::default(),
        classes: [ClassStats { blocks_used: 0, blocks_capacity: 0, pages: 0 }; BIN_COUNT],
    };
    let seg_totals = segment::for_each_segment(|seg| {
        if seg.kind != SegmentKind::Small {
            return;
        }
        for page in seg.pages.iter() {
            if page.block_size == 0 || page.slice_count == 0 || page.heap.is_null() {
                continue;
            }
            // A snapshot of a counter its owner may be updating, less the
            // blocks other threads freed there (small pages only).
            let mut used = page.used_count() as usize;
            if page.flags & FLAG_LARGE == 0 && page.bin != NO_BIN {
                used = used.saturating_sub(hold.pending(page) as usize);
            }
            if used != 0 {
                t.active += page.span_size();
            }
            if page.flags & FLAG_LARGE != 0 {
                t.large_allocated += used * page.block_size;
                t.large_count += used;
            } else if page.bin != NO_BIN {
                let c = &mut t.classes[page.bin as usize];
                c.blocks_used += used;
                c.blocks_capacity += page.capacity as usize;
                c.pages += 1;
                t.small_allocated += used * page.block_size;
            }
        }
    });
    // Blocks that threads keep from other threads' pages for their own
    // next allocations (`foreign.rs`) are free, though their pages count
    // them in use.
    hold.foreign_kept(|bin, n| {
        let c = &mut t.classes[bin];
        let n = n.min(c.blocks_used);
        c.blocks_used -= n;
        t.small_allocated -= n * bin_size(bin);
    });
    // The heaps' owners wait in their slow paths while the hold lasts.
    drop(hold);
    let (huge_count, huge_mapped, huge_usable, huge_peak) = huge::totals();
    t.heaps = heap::for_each_heap(|h| {
        let c = &h.counters;
        t.counters.page_refills += c.page_refills;
        t.counters.pages_allocated += c.pages_allocated;
        t.counters.pages_freed += c.pages_freed;
        t.counters.remote_collected += c.remote_collected;
        t.counters.notifications += c.notifications;
        t.counters.purged_bytes += c.purged_bytes;
        t.counters.large_allocs += c.large_allocs;
        t.counters.large_frees += c.large_frees;
    });
    t.huge_count = huge_count;
    t.huge_allocated = huge_usable;
    t.huge_mapped = huge_mapped;
    t.huge_peak_count = huge::peak_count();
    t.huge_peak_mapped = huge_peak;
    t.segments = seg_totals.segments;
    let huge_cached = huge::cached_bytes();
    t.retained = seg_totals.cached * SEGMENT_SIZE + huge_cached;
    t.mapped = segment::all_mapped();
    t.peak_mapped = segment::peak_mapped_all().max(t.mapped);
    // Pools' bump blocks (arena and bump chunks), counted by their pools.
    t.small_allocated += crate::pool::bump_live_total();
    t.allocated = t.small_allocated + t.large_allocated + huge_usable;
    t.active += huge_usable;
    t.resident = os::resident_bytes();
    t
}

/// A cheap pair that grows or shrinks whenever memory goes back to the OS:
/// bytes purged so far (all heaps) and bytes mapped now. `malloc_trim`
/// compares it before and after, without walking every page as `gather`
/// does or reading /proc.
pub fn release_marker() -> (u64, usize) {
    let mut purged = 0;
    heap::for_each_heap(|h| purged += h.counters.purged_bytes);
    (purged, segment::all_mapped())
}

/// Writes the statistics table, one line per call of `out`.
pub fn print(out: &mut dyn FnMut(&[u8])) {
    let t = gather();
    let mut line = LineBuf::new();
    macro_rules! emit {
        ($($arg:tt)*) => {{
            line.clear();
            let _ = write!(line, $($arg)*);
            out(line.as_bytes());
        }};
    }
    emit!("ptrs {} statistics\n", crate::VERSION);
    emit!("{:>10} {:>12} {:>12} {:>12} {:>8}\n", "class", "blocks used", "bytes used", "capacity", "pages");
    for (bin, c) in t.classes.iter().enumerate() {
        if c.pages == 0 {
            continue;
        }
        emit!(
            "{:>10} {:>12} {:>12} {:>12} {:>8}\n",
            bin_size(bin),
            c.blocks_used,
            c.blocks_used * bin_size(bin),
            c.blocks_capacity,
            c.pages
        );
    }
    emit!("{:>10} {:>12} {:>12}\n", "large", t.large_count, t.large_allocated);
    emit!("{:>10} {:>12} {:>12}\n", "huge", t.huge_count, t.huge_allocated);
    emit!("allocated: {} bytes\n", t.allocated);
    emit!("active:    {} bytes\n", t.active);
    emit!("resident:  {} bytes\n", t.resident);
    emit!("mapped:    {} bytes (peak {})\n", t.mapped, t.peak_mapped);
    emit!("retained:  {} bytes\n", t.retained);
    emit!("segments: {}, heaps: {}\n", t.segments, t.heaps);
    let c = &t.counters;
    emit!(
        "events: page refills {}, pages allocated {}, pages freed {}, large blocks allocated {}, freed {}\n",
        c.page_refills,
        c.pages_allocated,
        c.pages_freed,
        c.large_allocs,
        c.large_frees
    );
    emit!(
        "events: remote frees collected {}, notifications {}, purged {} bytes\n",
        c.remote_collected,
        c.notifications,
        c.purged_bytes
    );
    // Live memory pools (pool.rs), by name. Printed under the pool
    // registry lock: nothing here allocates.
    let mut header = false;
    crate::pool::for_each_live(|name, s| {
        if !header {
            header = true;
            out(b"pools:\n");
        }
        line.clear();
        // The name as given, but one line: a control byte (a newline in a
        // name broke the table: tester) or a byte that is not UTF-8 shows
        // as '?'.
        line.push(b"  ");
        let mut width = 0;
        for ch in name.utf8_chunks() {
            for c in ch.valid().chars() {
                let c = if c.is_control() { '?' } else { c };
                let _ = write!(line, "{c}");
                width += 1;
            }
            if !ch.invalid().is_empty() {
                line.push(b"?");
                width += 1;
            }
        }
        for _ in width..24 {
            line.push(b" ");
        }
        line.push(b" ");
        let _ = write!(
            line,
            "allocated {} (peak {}), blocks {}, active {}\n",
            s.allocated, s.peak_allocated, s.blocks, s.active
        );
        out(line.as_bytes());
    });
    // glibc's own summary, in glibc's words and layout, for scripts and
    // tests that read malloc_stats's output (glibc's
    // tst-malloc-stats-cancellation looks for "max mmap bytes"). ptrs has
    // no arenas, so only glibc's "Total" part: system bytes = mapped,
    // in use bytes = allocated, mmap regions = huge blocks.
    emit!("Total (incl. mmap):\n");
    emit!("system bytes     = {:>10}\n", t.mapped);
    emit!("in use bytes     = {:>10}\n", t.allocated);
    emit!("max mmap regions = {:>10}\n", t.huge_peak_count);
    emit!("max mmap bytes   = {:>10}\n", t.huge_peak_mapped);
}
