//! Cross-thread behaviour: remote frees, parked heaps of exited threads,
//! thread churn, and what the statistics say about them.
//!
//! The tests compare process-wide statistics, so they run one at a time
//! (a lock), and each works on its own threads.

mod common;

use std::sync::mpsc;
use std::sync::{Arc, Barrier, Mutex, MutexGuard};
use std::thread;

use common::*;
use ptrs::alloc::{malloc, realloc};
use ptrs::check::{check_parked_heaps, check_thread_heap};
use ptrs::free::{block_info, free, usable_size};
use ptrs::heap::collect_parked;
use ptrs::stats::gather;

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Statistics settle: parked heaps collect what was freed into them.
fn settled_allocated() -> usize {
    collect_parked(true);
    gather().allocated
}

#[derive(Clone, Copy)]
struct Sent {
    p: usize,
    len: usize,
    id: u64,
}

#[test]
fn producer_consumer_all_frees_remote() {
    let _s = serial();
    let base = settled_allocated();
    const BLOCKS: usize = 60_000;
    let (tx, rx) = mpsc::sync_channel::<Vec<Sent>>(64);
    let done = Arc::new(Barrier::new(2));
    let producer = {
        let done = Arc::clone(&done);
        thread::spawn(move || {
            let mut rng = Rng::new(7);
            let mut total = 0usize;
            let mut batch = Vec::with_capacity(100);
            for i in 0..BLOCKS {
                // Mostly small blocks (pages fill, go to the full list and
                // come back on notification), some large ones.
                let len = if i % 500 == 0 { rng.range(70 * KIB, 600 * KIB) } else { rng.range(1, 300) };
                let p = malloc(len);
                assert!(!p.is_null());
                fill(p, len, i as u64);
                total += usable_size(p);
                batch.push(Sent { p: p as usize, len, id: i as u64 });
                if batch.len() == 100 {
                    tx.send(std::mem::replace(&mut batch, Vec::with_capacity(100))).unwrap();
                }
                if i % 5000 == 0 {
                    assert!(check_thread_heap(), "producer heap after {i} blocks");
                }
            }
            tx.send(batch).unwrap();
            drop(tx);
            // Wait for the consumer to free everything, then allocate again:
            // the slow paths collect the remote frees.
            done.wait();
            let before = gather().allocated;
            let mut again = Vec::new();
            for i in 0..BLOCKS / 2 {
                let p = malloc(1 + i % 300);
                assert!(!p.is_null());
                again.push(p);
            }
            for p in again {
                free(p);
            }
            assert!(check_thread_heap(), "producer heap after collecting");
            (total, before, gather().allocated)
        })
    };
    let consumer = {
        let done = Arc::clone(&done);
        thread::spawn(move || {
            let mut n = 0;
            for batch in rx {
                for s in batch {
                    verify(s.p as *const u8, s.len, s.len, s.id, "consumer");
                    free(s.p as *mut u8);
                    n += 1;
                }
            }
            assert!(check_thread_heap(), "consumer heap");
            done.wait();
            n
        })
    };
    let freed = consumer.join().unwrap();
    let (total, before_collect, after_collect) = producer.join().unwrap();
    assert_eq!(freed, BLOCKS);
    assert!(total > BLOCKS, "produced {total} bytes");
    // Remote frees count as allocated until the owner collects them; the
    // producer's later allocations must have collected (most of) them.
    assert!(
        after_collect < before_collect.max(base + total / 2),
        "allocated did not go down after the producer collected: {before_collect} -> {after_collect} (base {base}, produced {total})"
    );
    let settled = settled_allocated();
    assert!(
        settled <= base + 64 * KIB,
        "allocated {settled} after collect_parked, was {base} before the test (produced {total})"
    );
    assert!(check_parked_heaps().is_some());
    assert!(check_thread_heap());
}

#[test]
fn remote_frees_into_a_parked_heap_are_collected() {
    let _s = serial();
    let base = settled_allocated();
    // The owner allocates and exits; its heap is parked with every block live.
    let blocks: Vec<Sent> = thread::spawn(|| {
        let mut v = Vec::new();
        for i in 0..20_000u64 {
            let len = 1 + (i as usize * 7919) % 2000;
            let p = malloc(len);
            fill(p, len, i);
            v.push(Sent { p: p as usize, len, id: i });
        }
        assert!(check_thread_heap());
        v
    })
    .join()
    .unwrap();
    let held: usize = blocks.iter().map(|s| usable_size(s.p as *mut u8)).sum();
    let during = gather().allocated;
    assert!(during >= base + held, "allocated {during} < base {base} + held {held}");
    // Another thread frees them all: remote frees into a parked heap.
    thread::spawn(move || {
        for s in blocks {
            verify(s.p as *const u8, s.len, s.len, s.id, "freed after its owner exited");
            free(s.p as *mut u8);
        }
    })
    .join()
    .unwrap();
    assert!(check_parked_heaps().is_some());
    let settled = settled_allocated();
    assert!(settled <= base + 64 * KIB, "allocated {settled} after collecting, base {base}, held {held}");
    assert!(check_parked_heaps().is_some());
}

#[test]
fn block_freed_after_its_owner_exited() {
    let _s = serial();
    let sizes = [24usize, 1000, 9000, 70 * KIB, 700 * KIB, 2 * MIB, 5 * MIB];
    let blocks: Vec<Sent> = thread::spawn(move || {
        sizes
            .iter()
            .enumerate()
            .map(|(i, &len)| {
                let p = malloc(len);
                fill(p, len, 100 + i as u64);
                Sent { p: p as usize, len, id: 100 + i as u64 }
            })
            .collect()
    })
    .join()
    .unwrap();
    // The owner has exited (its heap is parked): free from this thread,
    // realloc one first.
    for (i, s) in blocks.iter().enumerate() {
        let p = s.p as *mut u8;
        assert!(unsafe { block_info(p) }.is_some(), "block {i} of a parked heap");
        verify(p, s.len, s.len, s.id, "owner exited");
        if i == 1 {
            let q = realloc(p, 50_000);
            verify(q, s.len, s.len, s.id, "realloc of a parked heap's block");
            free(q);
        } else {
            free(p);
        }
    }
    assert!(check_thread_heap());
    assert!(check_parked_heaps().is_some());
    collect_parked(true);
    assert!(check_parked_heaps().is_some());
}

fn churn_thread(i: usize, keep: &Mutex<Vec<usize>>) {
    let mut v = Vec::new();
    for j in 0..50 {
        let len = 1 + (i * 131 + j * 17) % 4000;
        let p = malloc(len);
        unsafe { *p = j as u8 };
        v.push(p);
    }
    if i % 10 == 0 {
        v.push(malloc(100 * KIB + i));
    }
    // Leave a couple of blocks for the next thread to free (remote frees
    // into a heap that is parked by then).
    let mut k = keep.lock().unwrap();
    for p in k.drain(..) {
        free(p as *mut u8);
    }
    k.push(v.pop().unwrap() as usize);
    k.push(v.pop().unwrap() as usize);
    drop(k);
    for p in v {
        free(p);
    }
}

#[test]
fn thread_churn_does_not_grow_mapped_memory() {
    let _s = serial();
    let keep = Arc::new(Mutex::new(Vec::new()));
    let run = |from: usize, to: usize| {
        for i in from..to {
            let keep = Arc::clone(&keep);
            thread::spawn(move || churn_thread(i, &keep)).join().unwrap();
        }
    };
    run(0, 200);
    collect_parked(true);
    let after_200 = gather();
    run(200, 2000);
    collect_parked(true);
    let after_2000 = gather();
    assert!(
        after_2000.mapped <= after_200.mapped + 8 * MIB,
        "mapped grew with thread count: {} after 200 threads, {} after 2000",
        after_200.mapped,
        after_2000.mapped
    );
    assert!(
        after_2000.heaps <= after_200.heaps + 2,
        "heaps are not reused: {} after 200 threads, {} after 2000",
        after_200.heaps,
        after_2000.heaps
    );
    for p in keep.lock().unwrap().drain(..) {
        free(p as *mut u8);
    }
    assert!(check_parked_heaps().is_some());
    assert!(check_thread_heap());
}

#[test]
fn concurrent_churn_with_cross_frees() {
    // Several threads at once, each started and stopped repeatedly, freeing
    // each other's blocks through a shared pool.
    let _s = serial();
    let pool = Arc::new(Mutex::new(Vec::<Sent>::new()));
    for round in 0..20u64 {
        let hs: Vec<_> = (0..4u64)
            .map(|t| {
                let pool = Arc::clone(&pool);
                thread::spawn(move || {
                    let mut rng = Rng::new(round * 16 + t);
                    for i in 0..2000u64 {
                        if rng.chance(550) {
                            let len = skewed_size(&mut rng).min(300 * KIB);
                            let p = malloc(len);
                            let id = (round << 32) | (t << 24) | i;
                            fill(p, len, id);
                            pool.lock().unwrap().push(Sent { p: p as usize, len, id });
                        } else {
                            let s = {
                                let mut g = pool.lock().unwrap();
                                if g.is_empty() {
                                    continue;
                                }
                                let k = rng.below(g.len());
                                g.swap_remove(k)
                            };
                            verify(s.p as *const u8, s.len, s.len, s.id, "cross free");
                            free(s.p as *mut u8);
                        }
                    }
                    assert!(check_thread_heap());
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
    }
    for s in pool.lock().unwrap().drain(..) {
        verify(s.p as *const u8, s.len, s.len, s.id, "final cross free");
        free(s.p as *mut u8);
    }
    collect_parked(true);
    assert!(check_parked_heaps().is_some());
    assert!(check_thread_heap());
}

#[test]
fn allocated_statistics_count_exact_block_sizes() {
    let _s = serial();
    collect_parked(true);
    thread::spawn(|| {
        for size in [24usize, 700, 5000, 40_000, 300 * KIB, 5 * MIB] {
            let before = gather().allocated;
            let p = malloc(size);
            let usable = usable_size(p);
            let during = gather().allocated;
            assert_eq!(during - before, usable, "allocated grew by {} for one block of {usable}", during - before);
            free(p);
            let after = gather().allocated;
            assert_eq!(after, before, "allocated after malloc({size}) and free");
        }
        assert!(check_thread_heap());
    })
    .join()
    .unwrap();
}
