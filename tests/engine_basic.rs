//! Basic engine behaviour through the Rust API: size classes, usable sizes,
//! alignment, ownership, calloc, aligned allocation, realloc across the
//! small / large / huge boundaries, and pointer validation.
//!
//! The harness allocates with glibc (the `override` feature is off), so
//! engine blocks live beside the harness's own allocations.

mod common;

use common::{fill, pattern, verify, KIB, MIB};
use ptrs::alloc::{calloc, malloc, malloc_aligned, realloc};
use ptrs::check::check_thread_heap;
use ptrs::free::{block_info, free, owns, usable_size};
use ptrs::segment::{LARGE_MAX, SEGMENT_SIZE, SLICE_SIZE};
use ptrs::size_class::{bin_of, bin_size, BIN_COUNT, MIN_ALIGN, SMALL_MAX};

fn assert_block(p: *mut u8, size: usize) -> usize {
    assert!(!p.is_null(), "malloc({size}) returned null");
    assert_eq!(p as usize % MIN_ALIGN, 0, "malloc({size}) = {p:?} misaligned");
    assert!(owns(p), "owns(malloc({size}))");
    let usable = usable_size(p);
    assert!(usable >= size, "usable_size {usable} < request {size}");
    let info = unsafe { block_info(p) }.expect("block_info of a live block");
    assert_eq!(info.usable, usable);
    assert!(owns(unsafe { p.add(usable.max(1) - 1) }), "owns(last byte)");
    usable
}

#[test]
fn every_size_class_boundary() {
    let mut sizes = vec![0usize, 1];
    for b in 0..BIN_COUNT {
        let s = bin_size(b);
        sizes.extend([s - 1, s, s + 1]);
    }
    sizes.extend([LARGE_MAX - 1, LARGE_MAX, LARGE_MAX + 1, SEGMENT_SIZE, SEGMENT_SIZE + 1]);
    let mut live = Vec::new();
    for (id, &size) in sizes.iter().enumerate() {
        let p = malloc(size);
        let usable = assert_block(p, size);
        if size <= SMALL_MAX {
            assert_eq!(usable, bin_size(bin_of(size)), "usable size of malloc({size})");
            let info = unsafe { block_info(p) }.unwrap();
            assert!(!info.large_or_huge && !info.huge);
        } else if size <= LARGE_MAX {
            let info = unsafe { block_info(p) }.unwrap();
            assert!(info.large_or_huge && !info.huge, "malloc({size}) should be large");
            assert_eq!(usable, size.div_ceil(SLICE_SIZE) * SLICE_SIZE);
        } else {
            let info = unsafe { block_info(p) }.unwrap();
            assert!(info.huge, "malloc({size}) should be huge");
        }
        // The whole usable size is writable.
        fill(p, usable, id as u64);
        live.push((p, usable, id));
    }
    assert!(check_thread_heap());
    // No two live blocks overlap.
    let mut ranges: Vec<(usize, usize)> = live.iter().map(|&(p, u, _)| (p as usize, p as usize + u)).collect();
    ranges.sort();
    for w in ranges.windows(2) {
        assert!(w[0].1 <= w[1].0, "blocks overlap: {:#x?} and {:#x?}", w[0], w[1]);
    }
    for &(p, usable, id) in &live {
        verify(p, usable, usable, id as u64, "boundary block");
        free(p);
    }
    assert!(check_thread_heap());
}

#[test]
fn many_blocks_of_each_class_fill_pages() {
    // Several pages per class, so queues hold more than one page and some go
    // to the full list; then free in an interleaved order.
    for b in (0..BIN_COUNT).step_by(3) {
        let size = bin_size(b);
        let n = (3 * (if size <= 8 * KIB { 64 * KIB } else { 512 * KIB }) / size).min(600);
        let blocks: Vec<*mut u8> = (0..n).map(|_| malloc(size)).collect();
        for (i, &p) in blocks.iter().enumerate() {
            assert_block(p, size);
            fill(p, size.min(64), i as u64);
        }
        assert!(check_thread_heap(), "after allocating {n} blocks of {size}");
        for (i, &p) in blocks.iter().enumerate().step_by(2) {
            verify(p, size.min(64), size.min(64), i as u64, "class block");
            free(p);
        }
        assert!(check_thread_heap(), "after freeing half of the blocks of {size}");
        for (i, &p) in blocks.iter().enumerate().skip(1).step_by(2) {
            verify(p, size.min(64), size.min(64), i as u64, "class block");
            free(p);
        }
        assert!(check_thread_heap(), "after freeing all blocks of {size}");
    }
}

#[test]
fn owns_and_block_info_reject_foreign_pointers() {
    let stack = 0u64;
    let std_box = Box::new([0u8; 64]);
    let std_vec = vec![0u8; 3 * MIB];
    for (what, p) in [
        ("null", std::ptr::null::<u8>()),
        ("stack", &stack as *const u64 as *const u8),
        ("glibc box", std_box.as_ptr()),
        ("glibc big vec", std_vec.as_ptr()),
        ("static", VERSION_PTR.as_ptr()),
        ("max", usize::MAX as *const u8),
        ("high bit", (1usize << 63) as *const u8),
    ] {
        assert!(!owns(p), "owns({what})");
        assert!(unsafe { block_info(p as *mut u8) }.is_none(), "block_info({what})");
    }
    assert_eq!(usable_size(std::ptr::null_mut()), 0);
}

static VERSION_PTR: [u8; 16] = [0; 16];

#[test]
fn block_info_rejects_interior_and_misaligned_pointers() {
    for size in [16usize, 48, 100, 1000, 5000, 70_000, 300 * KIB, LARGE_MAX, 3 * MIB, 9 * MIB] {
        let p = malloc(size);
        let usable = assert_block(p, size);
        assert!(unsafe { block_info(p) }.is_some());
        for off in [1usize, 8, 15] {
            assert!(unsafe { block_info(p.add(off)) }.is_none(), "misaligned +{off} of a {size}-byte block");
        }
        for off in [16usize, 32, 4096, 65536, MIB] {
            if off < usable {
                assert!(
                    unsafe { block_info(p.add(off)) }.is_none(),
                    "interior +{off} of a {size}-byte block (usable {usable})"
                );
                assert!(owns(unsafe { p.add(off) }), "owns interior +{off}");
            }
        }
        // The segment's metadata slice is not a block.
        if !unsafe { block_info(p) }.unwrap().huge {
            let base = p as usize & !(SEGMENT_SIZE - 1);
            for off in [0usize, 4096, 8192, SLICE_SIZE - 16] {
                assert!(unsafe { block_info((base + off) as *mut u8) }.is_none(), "metadata +{off}");
            }
        }
        free(p);
    }
    // A block not yet carved from a fresh page is not a block start either:
    // allocate one block of a rarely used class and probe far into its page.
    let p = malloc(4000);
    let info = unsafe { block_info(p) }.unwrap();
    let page = unsafe { &*info.page };
    let index = (p as usize - page.start as usize) / page.block_size;
    for i in index + 1..page.reserved as usize {
        let q = unsafe { page.start.add(i * page.block_size) };
        assert_eq!(
            unsafe { block_info(q) }.is_some(),
            i < page.capacity as usize,
            "block {i} of a page with capacity {}",
            page.capacity
        );
    }
    free(p);
    assert!(check_thread_heap());
}

#[test]
fn calloc_returns_zeroed_memory_even_when_reusing() {
    let sizes = [1usize, 16, 100, 1024, 4000, 20_000, SMALL_MAX, SMALL_MAX + 1, 200 * KIB, MIB, LARGE_MAX, 3 * MIB, 8 * MIB];
    for round in 0..3 {
        for &size in &sizes {
            // Dirty a block of that size, free it, and calloc the same size:
            // the block (or span) is likely reused.
            let d = malloc(size);
            let du = assert_block(d, size);
            unsafe { std::ptr::write_bytes(d, 0xA5, du) };
            free(d);
            let p = calloc(1, size);
            let usable = assert_block(p, size);
            let s = unsafe { std::slice::from_raw_parts(p, size) };
            assert!(s.iter().all(|&b| b == 0), "calloc({size}) not zero (round {round})");
            unsafe { std::ptr::write_bytes(p, 0x5A, usable) };
            let q = calloc(size.max(1), 1);
            let s = unsafe { std::slice::from_raw_parts(q, size) };
            assert!(s.iter().all(|&b| b == 0), "calloc({size}, 1) not zero");
            free(p);
            free(q);
        }
    }
    assert!(calloc(usize::MAX, 2).is_null());
    assert!(calloc(1 << 40, 1 << 40).is_null());
    assert!(check_thread_heap());
}

#[test]
fn aligned_allocation_from_32_bytes_to_8_mib() {
    let mut align = 32usize;
    let mut id = 0u64;
    while align <= 8 * MIB {
        let mut sizes = vec![1usize, 16, align / 2, align - 16, align, align + 1, 3 * align / 2, 100_000];
        if align <= MIB {
            sizes.push(3 * align);
        }
        let mut live = Vec::new();
        for &size in &sizes {
            let p = malloc_aligned(align, size);
            assert!(!p.is_null(), "malloc_aligned({align}, {size})");
            assert_eq!(p as usize % align, 0, "malloc_aligned({align}, {size}) = {p:?}");
            let usable = assert_block(p, size);
            fill(p, size.min(usable), id);
            live.push((p, size, id));
            id += 1;
        }
        assert!(check_thread_heap(), "after aligned allocations of {align}");
        for (p, size, id) in live {
            verify(p, size, size, id, "aligned block");
            free(p);
        }
        align *= 2;
    }
    // Alignments at or below 16 are plain malloc.
    for a in [1usize, 2, 4, 8, 16] {
        let p = malloc_aligned(a, 24);
        assert_block(p, 24);
        free(p);
    }
    assert!(check_thread_heap());
}

#[test]
fn aligned_allocations_mixed_with_plain_ones() {
    // Many aligned small blocks interleaved with plain ones (same classes).
    let mut live = Vec::new();
    for i in 0..2000usize {
        let align = 32usize << (i % 8);
        let p = malloc_aligned(align, 1 + (i * 37) % 3000);
        assert_eq!(p as usize % align, 0);
        live.push(p);
        live.push(malloc(1 + (i * 53) % 3000));
    }
    assert!(check_thread_heap());
    for p in live {
        free(p);
    }
    assert!(check_thread_heap());
}

#[test]
fn realloc_preserves_contents_across_small_large_huge() {
    let steps = [
        1usize, 10, 100, 129, 1000, 5000, 20_000, SMALL_MAX, SMALL_MAX + 1, 100 * KIB, 500 * KIB, LARGE_MAX,
        LARGE_MAX + 1, 3 * MIB, 40 * MIB, 100 * MIB, 5 * MIB, MIB, 200 * KIB, 60 * KIB, 2000, 100, 17, 1,
    ];
    let mut size = 24usize;
    let mut p = malloc(size);
    fill(p, size, 7);
    for &next in &steps {
        let q = realloc(p, next);
        assert!(!q.is_null(), "realloc({size} -> {next})");
        let usable = assert_block(q, next);
        verify(q, size, size.min(next), 7, &format!("realloc {size} -> {next}"));
        // Refill the whole new block so the next step checks all of it.
        fill(q, usable.min(next), 7);
        p = q;
        size = next;
        assert!(check_thread_heap(), "after realloc to {next}");
    }
    free(p);
    assert!(check_thread_heap());
}

#[test]
fn huge_realloc_growth_and_shrink() {
    let mut p = malloc(3 * MIB);
    fill(p, 3 * MIB, 11);
    let mut size = 3 * MIB;
    for next in [40 * MIB, 100 * MIB, 64 * MIB, 4 * MIB + 1, 130 * MIB, 3 * MIB] {
        let q = realloc(p, next);
        assert!(!q.is_null(), "realloc({size} -> {next})");
        let info = unsafe { block_info(q) }.expect("huge block");
        assert!(info.huge);
        assert!(info.usable >= next);
        verify(q, size, size.min(next), 11, &format!("huge realloc {size} -> {next}"));
        fill(q, next, 11);
        // The tail of a grown huge block is ours too.
        assert!(owns(unsafe { q.add(next - 1) }));
        p = q;
        size = next;
    }
    free(p);
    assert!(check_thread_heap());
}

#[test]
fn realloc_in_many_small_steps() {
    // Byte-by-byte growth (as a string builder would) and back down.
    let mut p = malloc(1);
    unsafe { *p = pattern(3, 0) };
    let mut size = 1;
    while size < 200_000 {
        let next = size + 1 + size / 7;
        p = realloc(p, next);
        assert!(!p.is_null());
        verify(p, size, size, 3, "step growth");
        fill(p, next, 3);
        size = next;
    }
    let filled = size;
    while size > 1 {
        let next = size / 3 + 1;
        p = realloc(p, next);
        verify(p, filled, next, 3, "step shrink");
        size = next;
        if next == 1 {
            break;
        }
    }
    free(p);
    assert!(check_thread_heap());
}

#[test]
fn freed_blocks_are_reused_and_heap_stays_valid() {
    // LIFO reuse of a small block on the local free list.
    let a = malloc(40);
    free(a);
    let b = malloc(40);
    assert_eq!(a, b, "the block just freed is the next one handed out");
    free(b);
    // Large spans come back to their segment.
    let l = malloc(300 * KIB);
    free(l);
    let l2 = malloc(300 * KIB);
    assert_block(l2, 300 * KIB);
    free(l2);
    assert!(check_thread_heap());
}

/// Set in the environment of the child process that
/// `double_free_is_detected_without_corruption` starts.
const MISUSE_CHILD: &str = "ENGINE_TEST_MISUSE_CHILD";

#[test]
fn double_free_is_detected_without_corruption() {
    // The misuse runs in a child process (this test binary again, running
    // only `misuse_child`): turning abort-on-error off is process-wide,
    // and other tests of this binary run at the same time in other threads.
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "misuse_child", "--nocapture", "--test-threads=1"])
        .env(MISUSE_CHILD, "1")
        .output()
        .expect("run the misuse child");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "misuse child failed: {:?}\n{stdout}\n{stderr}", out.status);
    // The child prints the addresses it misused; each misuse must have been
    // reported with the right message, in order, and nothing else reported.
    let addr = |name: &str| -> String {
        let tag = format!("misuse {name} ");
        // (The harness prints "test misuse_child ... " before the first.)
        let line = stdout.lines().find(|l| l.contains(&tag)).unwrap_or_else(|| panic!("no {name}: {stdout}"));
        line[line.find(&tag).unwrap() + tag.len()..].trim().to_string()
    };
    let want = [
        format!("ptrs: free(): double free detected: {}", addr("small")),
        format!("ptrs: free(): double free detected: {}", addr("large")),
        format!("ptrs: free(): invalid pointer: {}", addr("interior")),
        format!("ptrs: free(): invalid pointer: {}", addr("local")),
        format!("ptrs: realloc(): invalid pointer: {}", addr("local")),
    ];
    let got: Vec<&str> = stderr.lines().filter(|l| l.starts_with("ptrs: ")).collect();
    assert_eq!(got, want, "reports of the misuse child (stderr:\n{stderr})");
}

/// The body of `double_free_is_detected_without_corruption`, in a child
/// process; does nothing in a normal test run.
#[test]
fn misuse_child() {
    if std::env::var_os(MISUSE_CHILD).is_none() {
        return;
    }
    // With abort-on-error off, the engine reports the error and leaves the
    // block alone; the heap must stay consistent.
    ptrs::init::ensure();
    ptrs::options::set_abort_on_error(false);
    let keep = malloc(64);
    let p = malloc(64);
    free(p);
    println!("misuse small {p:?}");
    free(p); // reported: double free
    let x = malloc(64);
    let y = malloc(64);
    assert_ne!(x, y, "a double free must not hand the same block out twice");
    // A large block, freed twice.
    let l = malloc(200 * KIB);
    free(l);
    println!("misuse large {l:?}");
    free(l);
    // Interior and foreign pointers are reported and ignored.
    let interior = unsafe { keep.add(16) };
    println!("misuse interior {interior:?}");
    free(interior);
    let mut local = [0u8; 32];
    println!("misuse local {:?}", local.as_mut_ptr());
    free(local.as_mut_ptr());
    assert!(realloc(local.as_mut_ptr(), 100).is_null());
    assert!(check_thread_heap());
    free(x);
    free(y);
    free(keep);
    assert!(check_thread_heap());
}

#[test]
fn huge_mappings_are_reused_safely() {
    // Freed huge mappings may be cached and reused (grown, shrunk, moved):
    // each reuse must describe its block correctly to free and block_info.
    let sizes = [3 * MIB, 9 * MIB, 5 * MIB, 3 * MIB + 1, 20 * MIB, 2 * MIB + 1, 7 * MIB, 3 * MIB];
    let mut keep = Vec::new();
    for round in 0..4 {
        for (i, &size) in sizes.iter().enumerate() {
            let id = (round * 100 + i) as u64;
            let p = malloc(size);
            let usable = assert_block(p, size);
            let info = unsafe { block_info(p) }.unwrap();
            assert!(info.huge);
            assert!(owns(unsafe { p.add(usable - 1) }));
            fill(p, size, id);
            if i % 3 == 0 {
                keep.push((p, size, id));
            } else {
                verify(p, size, size, id, "huge reuse");
                free(p);
            }
        }
        for (p, size, id) in keep.drain(..) {
            verify(p, size, size, id, "kept huge block");
            let q = realloc(p, size + 3 * MIB);
            verify(q, size, size, id, "kept huge block after growth");
            free(q);
        }
    }
    assert!(check_thread_heap());
}

#[test]
fn checker_detects_corruption() {
    use ptrs::check::{check_heap, check_page};
    use ptrs::page::{self, Page};
    // A page of our own heap: nobody else touches it during the test.
    let a = malloc(3000);
    let b = malloc(3000);
    let c = malloc(3000);
    free(b);
    free(a);
    assert!(check_thread_heap());
    let info = unsafe { block_info(a) }.unwrap();
    let pg: *mut Page = info.page;
    let heap = unsafe { (*pg).heap };
    let key = unsafe { (*pg).key };
    let page_ok = move || check_page(unsafe { &*pg });
    let heap_ok = move || check_heap(unsafe { &*heap });
    assert!(page_ok());
    // The failures below are expected: keep their lines off stderr.
    let report = ptrs::check::set_report(false);
    let aw = a as *mut usize;
    let bw = b as *mut usize;
    unsafe {
        // A wrong free mark.
        let saved = *aw.add(1);
        *aw.add(1) = 0x1234_5678;
        assert!(!page_ok(), "bad mark not detected");
        *aw.add(1) = saved;
        assert!(page_ok());
        // A cycle on the free list.
        let saved = *bw;
        page::set_next(b as *mut page::Block, a as *mut page::Block, key);
        assert!(!page_ok(), "cycle not detected");
        *bw = saved;
        assert!(page_ok());
        // A link to a misaligned address and to an interior address.
        let saved = *aw;
        page::set_next(a as *mut page::Block, b.add(8) as *mut page::Block, key);
        assert!(!page_ok(), "misaligned link not detected");
        page::set_next(a as *mut page::Block, b.add(16) as *mut page::Block, key);
        assert!(!page_ok(), "interior link not detected");
        *aw = saved;
        assert!(page_ok());
        // A wrong used count.
        (*pg).used += 1;
        assert!(!page_ok(), "used count off by one not detected");
        (*pg).used -= 1;
        // Capacity above reserved.
        let saved = (*pg).capacity;
        (*pg).capacity = (*pg).reserved + 1;
        assert!(!page_ok(), "capacity > reserved not detected");
        (*pg).capacity = saved;
        assert!(page_ok());
        // A broken queue link.
        let saved = (*pg).prev;
        (*pg).prev = pg;
        assert!(!heap_ok(), "bad prev link not detected");
        (*pg).prev = saved;
        // A stale pages_direct entry.
        let saved = (*heap).pages_direct[3];
        (*heap).pages_direct[3] = pg;
        if saved != pg {
            assert!(!heap_ok(), "stale pages_direct entry not detected");
        }
        (*heap).pages_direct[3] = saved;
        // A free slice marked used in the segment bitmap.
        let seg = info.segment;
        let free_slices = !(*seg).used_slices;
        if free_slices != 0 {
            let bit = 1u64 << free_slices.trailing_zeros();
            (*seg).used_slices |= bit;
            assert!(!heap_ok(), "bitmap/descriptor mismatch not detected");
            (*seg).used_slices &= !bit;
        }
        ptrs::check::set_report(report);
        assert!(heap_ok());
    }
    free(c);
    assert!(check_thread_heap());
}
