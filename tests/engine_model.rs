//! A shadow-model property test: random operations against the engine,
//! checked against a model of the live blocks (the idea of rlsf's
//! `ShadowAllocator`).
//!
//! Checked after every operation: blocks never overlap (by usable size),
//! are aligned as asked, have a usable size at least the request that
//! stays the same until freed, keep their contents (a pattern derived from
//! an id, verified before every free and realloc), and calloc returns
//! zeroes. The heap walker (`ptrs::check`) runs every few hundred
//! operations. The model lives in the harness's glibc heap.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use common::*;
use ptrs::alloc::{calloc, malloc, malloc_aligned, realloc};
use ptrs::check::{check_parked_heaps, check_thread_heap};
use ptrs::free::{block_info, free, owns, usable_size};

#[derive(Clone, Copy, Debug)]
struct Live {
    p: usize,
    req: usize,
    usable: usize,
    id: u64,
}

/// Live block ranges by start address, to catch overlaps.
#[derive(Default)]
struct Ranges(BTreeMap<usize, usize>);

impl Ranges {
    fn insert(&mut self, start: usize, len: usize, what: &str) {
        let end = start + len.max(1);
        if let Some((&s, &e)) = self.0.range(..=start).next_back() {
            assert!(e <= start, "{what}: new block [{start:#x}, {end:#x}) overlaps live [{s:#x}, {e:#x})");
        }
        if let Some((&s, &e)) = self.0.range(start..).next() {
            assert!(s >= end, "{what}: new block [{start:#x}, {end:#x}) overlaps live [{s:#x}, {e:#x})");
        }
        self.0.insert(start, end);
    }

    fn remove(&mut self, start: usize) {
        assert!(self.0.remove(&start).is_some(), "block {start:#x} missing from the model");
    }
}

/// Checks a block just handed out and fills it.
fn adopt(p: *mut u8, req: usize, align: usize, zero: bool, id: u64, what: &str) -> Live {
    assert!(!p.is_null(), "{what}({req}) returned null");
    assert_eq!(p as usize % align.max(16), 0, "{what}({req}, align {align}) = {p:?}");
    assert!(owns(p), "{what}: owns({p:?})");
    let usable = usable_size(p);
    assert!(usable >= req, "{what}({req}): usable size {usable}");
    if zero {
        assert!(is_zero(p, req), "{what}({req}): calloc memory not zero");
    }
    fill(p, req, id);
    Live { p: p as usize, req, usable, id }
}

/// Checks a live block before it is freed or reallocated.
fn check_live(b: &Live, what: &str) {
    let p = b.p as *mut u8;
    assert_eq!(usable_size(p), b.usable, "{what}: usable size of {p:?} changed");
    verify(p, b.req, b.req, b.id, what);
}

/// Limits on the model's live set.
const MAX_LIVE: usize = 3000;
const MAX_LIVE_BYTES: usize = 256 * MIB;

enum Op {
    Malloc,
    Calloc,
    Aligned,
    Realloc,
    Free,
}

fn pick_op(rng: &mut Rng, live: usize, bytes: usize) -> Op {
    if live == 0 {
        return Op::Malloc;
    }
    if live >= MAX_LIVE || bytes >= MAX_LIVE_BYTES {
        return if rng.chance(200) { Op::Realloc } else { Op::Free };
    }
    match rng.below(100) {
        0..=34 => Op::Malloc,
        35..=42 => Op::Calloc,
        43..=49 => Op::Aligned,
        50..=64 => Op::Realloc,
        _ => Op::Free,
    }
}

fn random_align(rng: &mut Rng) -> usize {
    let r = rng.below(1000);
    if r < 990 {
        32 << rng.below(12) // 32 .. 64 KiB
    } else {
        (128 * KIB) << rng.below(6) // 128 KiB .. 4 MiB
    }
}

/// Runs `ops` random operations on the calling thread.
fn run_model(seed: u64, ops: usize, check_every: usize) {
    let mut rng = Rng::new(seed);
    let mut live: Vec<Live> = Vec::new();
    let mut ranges = Ranges::default();
    let mut bytes = 0usize;
    let mut next_id = seed << 32;
    for op in 0..ops {
        next_id += 1;
        let id = next_id;
        match pick_op(&mut rng, live.len(), bytes) {
            Op::Malloc => {
                let size = skewed_size(&mut rng);
                let b = adopt(malloc(size), size, 16, false, id, "malloc");
                ranges.insert(b.p, b.usable, "malloc");
                bytes += b.usable;
                live.push(b);
            }
            Op::Calloc => {
                let size = skewed_size(&mut rng);
                let (n, each) = if size > 8 && rng.chance(500) { (size / 8, 8) } else { (1, size) };
                let b = adopt(calloc(n, each), n * each, 16, true, id, "calloc");
                ranges.insert(b.p, b.usable, "calloc");
                bytes += b.usable;
                live.push(b);
            }
            Op::Aligned => {
                let align = random_align(&mut rng);
                let size = if rng.chance(500) { rng.range(1, align * 2) } else { skewed_size(&mut rng) };
                let b = adopt(malloc_aligned(align, size), size, align, false, id, "malloc_aligned");
                ranges.insert(b.p, b.usable, "malloc_aligned");
                bytes += b.usable;
                live.push(b);
            }
            Op::Realloc => {
                let i = rng.below(live.len());
                let old = live[i];
                check_live(&old, "before realloc");
                let size = if rng.chance(300) {
                    // Near the current size: in-place shrink/grow paths.
                    let delta = rng.range(0, old.req / 2 + 16);
                    if rng.chance(500) { old.req + delta } else { old.req.saturating_sub(delta).max(1) }
                } else {
                    skewed_size(&mut rng).max(1)
                };
                // Remove first: the new block may overlap the old one's range.
                ranges.remove(old.p);
                let q = realloc(old.p as *mut u8, size);
                assert!(!q.is_null(), "realloc({:#x}, {size})", old.p);
                verify(q, old.req, old.req.min(size), old.id, "after realloc");
                let b = adopt(q, size, 16, false, id, "realloc");
                ranges.insert(b.p, b.usable, "realloc");
                bytes = bytes - old.usable + b.usable;
                live[i] = b;
            }
            Op::Free => {
                let i = rng.below(live.len());
                let b = live.swap_remove(i);
                check_live(&b, "before free");
                ranges.remove(b.p);
                bytes -= b.usable;
                free(b.p as *mut u8);
            }
        }
        if op % check_every == 0 {
            assert!(check_thread_heap(), "heap check failed after op {op} (seed {seed})");
        }
    }
    assert!(check_thread_heap(), "heap check failed at the end (seed {seed})");
    for b in live.drain(..) {
        check_live(&b, "final free");
        free(b.p as *mut u8);
    }
    assert!(check_thread_heap(), "heap check failed after freeing everything (seed {seed})");
}

#[test]
fn shadow_model_single_thread() {
    run_model(0x5eed_0001, 200_000, 500);
}

#[test]
fn shadow_model_small_blocks_only() {
    // Many small blocks: pages fill up, go to the full list and come back.
    let mut rng = Rng::new(42);
    let mut live: Vec<Live> = Vec::new();
    let mut ranges = Ranges::default();
    for op in 0..100_000u64 {
        let grow = live.len() < 5000 && (live.len() < 100 || rng.chance(if (op / 20_000) % 2 == 0 { 700 } else { 300 }));
        if grow {
            let hi = if rng.chance(900) { 256 } else { 4096 };
            let size = rng.range(1, hi);
            let b = adopt(malloc(size), size, 16, false, op, "malloc");
            ranges.insert(b.p, b.usable, "malloc");
            live.push(b);
        } else {
            let b = live.swap_remove(rng.below(live.len()));
            check_live(&b, "before free");
            ranges.remove(b.p);
            free(b.p as *mut u8);
        }
        if op % 1000 == 0 {
            assert!(check_thread_heap(), "after op {op}");
        }
    }
    for b in live {
        check_live(&b, "final free");
        free(b.p as *mut u8);
    }
    assert!(check_thread_heap());
}

/// A block handed to another thread.
#[derive(Clone, Copy)]
struct Shared {
    b: Live,
}

/// True if the block at `p` lies on a page owned by another thread's heap
/// (a free of it now is a remote free).
fn is_remote(p: usize) -> bool {
    // SAFETY: block_info validates `p`; `p` is a live block of this test.
    let info = unsafe { block_info(p as *mut u8) }.expect("a live block");
    // SAFETY: block_info returned a live page of a live segment.
    let owner = unsafe { (*info.page).heap };
    !owner.is_null() && owner != ptrs::tls::current()
}

#[test]
fn shadow_model_four_threads_with_remote_frees() {
    const THREADS: u64 = 4;
    const OPS: usize = 40_000;
    let ranges = Arc::new(Mutex::new(Ranges::default()));
    let shared: Arc<Mutex<Vec<Shared>>> = Arc::new(Mutex::new(Vec::new()));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let ranges = Arc::clone(&ranges);
            let shared = Arc::clone(&shared);
            std::thread::spawn(move || {
                let seed = 0xabcd_0000 + t;
                let mut rng = Rng::new(seed);
                let mut live: Vec<Live> = Vec::new();
                let mut next_id = (t + 1) << 40;
                let mut remote_freed = 0usize;
                for op in 0..OPS {
                    next_id += 1;
                    let id = next_id;
                    let r = rng.below(100);
                    if live.is_empty() || (r < 40 && live.len() < 1500) {
                        let size = skewed_size(&mut rng);
                        let (p, align, zero) = match rng.below(10) {
                            0 => (calloc(1, size), 16, true),
                            1 => {
                                let a = 32usize << rng.below(8);
                                (malloc_aligned(a, size), a, false)
                            }
                            _ => (malloc(size), 16, false),
                        };
                        let b = adopt(p, size, align, zero, id, "malloc");
                        ranges.lock().unwrap().insert(b.p, b.usable, "threaded malloc");
                        live.push(b);
                    } else if r < 55 {
                        // Hand a block to whichever thread takes it.
                        let b = live.swap_remove(rng.below(live.len()));
                        shared.lock().unwrap().push(Shared { b });
                    } else if r < 75 {
                        // Take a block (usually another thread's) and free or
                        // realloc it: a remote free.
                        let taken = {
                            let mut s = shared.lock().unwrap();
                            if s.is_empty() {
                                None
                            } else {
                                let i = rng.below(s.len());
                                Some(s.swap_remove(i))
                            }
                        };
                        if let Some(Shared { b }) = taken {
                            check_live(&b, "before remote free");
                            ranges.lock().unwrap().remove(b.p);
                            // A remote free is one by a thread whose heap
                            // does not own the block's page (the engine's
                            // own test): blocks this thread took back from
                            // the hand-off list are local frees.
                            let remote = is_remote(b.p);
                            if rng.chance(250) {
                                let size = skewed_size(&mut rng).max(1);
                                let q = realloc(b.p as *mut u8, size);
                                assert!(!q.is_null());
                                verify(q, b.req, b.req.min(size), b.id, "after remote realloc");
                                let nb = adopt(q, size, 16, false, id, "remote realloc");
                                ranges.lock().unwrap().insert(nb.p, nb.usable, "remote realloc");
                                live.push(nb);
                            } else {
                                free(b.p as *mut u8);
                            }
                            remote_freed += remote as usize;
                        }
                    } else if r < 85 {
                        let i = rng.below(live.len());
                        let old = live[i];
                        check_live(&old, "before realloc");
                        let size = skewed_size(&mut rng).max(1);
                        ranges.lock().unwrap().remove(old.p);
                        let q = realloc(old.p as *mut u8, size);
                        assert!(!q.is_null());
                        verify(q, old.req, old.req.min(size), old.id, "after realloc");
                        let b = adopt(q, size, 16, false, id, "realloc");
                        ranges.lock().unwrap().insert(b.p, b.usable, "threaded realloc");
                        live[i] = b;
                    } else {
                        let b = live.swap_remove(rng.below(live.len()));
                        check_live(&b, "before free");
                        ranges.lock().unwrap().remove(b.p);
                        free(b.p as *mut u8);
                    }
                    if op % 2000 == 0 {
                        assert!(check_thread_heap(), "thread {t}: heap check failed after op {op}");
                    }
                }
                assert!(check_thread_heap(), "thread {t}: heap check failed at the end");
                for b in live {
                    check_live(&b, "final free");
                    ranges.lock().unwrap().remove(b.p);
                    free(b.p as *mut u8);
                }
                assert!(check_thread_heap(), "thread {t}: heap check failed after freeing its blocks");
                remote_freed
            })
        })
        .collect();
    let mut remote = 0;
    for h in handles {
        remote += h.join().expect("model thread panicked");
    }
    assert!(remote > 1000, "only {remote} blocks changed threads");
    // Blocks still in the hand-off list belong to exited threads' heaps.
    let left: Vec<Shared> = std::mem::take(&mut *shared.lock().unwrap());
    for Shared { b } in left {
        check_live(&b, "free after the owner exited");
        assert!(unsafe { block_info(b.p as *mut u8) }.is_some());
        ranges.lock().unwrap().remove(b.p);
        free(b.p as *mut u8);
    }
    assert!(ranges.lock().unwrap().0.is_empty());
    assert!(check_thread_heap());
    assert!(check_parked_heaps().is_some(), "a parked heap failed its check");
}
