//! ptrs as the Rust global allocator of this test binary (the harness
//! included): standard collections, over-aligned types, threads.

use std::alloc::{alloc, alloc_zeroed, dealloc, realloc, Layout};
use std::collections::{BTreeMap, HashMap};
use std::sync::mpsc;
use std::thread;

use ptrs::check::check_thread_heap;
use ptrs::free::owns;

#[global_allocator]
static A: ptrs::Ptrs = ptrs::Ptrs;

#[test]
fn collections_use_ptrs() {
    let mut v: Vec<u64> = Vec::new();
    for i in 0..1_000_000u64 {
        v.push(i * 3);
    }
    assert!(owns(v.as_ptr() as *const u8));
    assert_eq!(v.iter().sum::<u64>(), 3 * (999_999 * 1_000_000 / 2));
    v.truncate(10);
    v.shrink_to_fit();
    assert_eq!(v, (0..10).map(|i| i * 3).collect::<Vec<_>>());

    let mut s = String::new();
    for i in 0..20_000 {
        s.push_str(&i.to_string());
        s.push(',');
    }
    assert!(owns(s.as_ptr()));
    assert!(s.starts_with("0,1,2,3,"));
    assert!(s.ends_with("19999,"));

    let mut h: HashMap<String, Vec<u32>> = HashMap::new();
    for i in 0..100_000u32 {
        h.entry(format!("key{}", i % 5000)).or_default().push(i);
    }
    assert_eq!(h.len(), 5000);
    assert_eq!(h["key42"].len(), 20);
    assert!(h["key42"].iter().all(|&x| x % 5000 == 42));
    h.retain(|k, _| k.len() % 2 == 0);

    let mut b: BTreeMap<u64, Box<[u8]>> = BTreeMap::new();
    for i in 0..20_000u64 {
        b.insert(i.wrapping_mul(0x9E37_79B9_7F4A_7C15), vec![i as u8; (i % 300) as usize].into_boxed_slice());
    }
    for (k, val) in &b {
        let i = k.wrapping_mul(0xF1DE_83E1_9937_733D); // inverse of the multiplier mod 2^64
        assert_eq!(val.len(), (i % 300) as usize);
        assert!(val.iter().all(|&x| x == i as u8));
    }
    drop(b);
    drop(h);
    assert!(check_thread_heap());
}

#[test]
fn big_boxes() {
    let b: Box<[u8; 1 << 20]> = vec![7u8; 1 << 20].into_boxed_slice().try_into().unwrap();
    assert!(owns(b.as_ptr()));
    assert!(owns(&b[(1 << 20) - 1]));
    assert!(b.iter().all(|&x| x == 7));
    let z: Box<[u64]> = vec![0u64; 1 << 22].into_boxed_slice(); // 32 MiB, zeroed (huge)
    assert!(owns(z.as_ptr() as *const u8));
    assert!(z.iter().step_by(511).all(|&x| x == 0));
    let local = 5u8;
    assert!(!owns(&local));
    drop(z);
    drop(b);
    assert!(check_thread_heap());
}

#[repr(align(4096))]
struct Page4k([u8; 4096]);

#[repr(align(64))]
#[derive(Clone, Copy)]
struct Line([u8; 24]);

#[test]
fn over_aligned_types() {
    let boxes: Vec<Box<Page4k>> = (0..100).map(|i| Box::new(Page4k([i as u8; 4096]))).collect();
    for (i, b) in boxes.iter().enumerate() {
        let p = &**b as *const Page4k as usize;
        assert_eq!(p % 4096, 0);
        assert!(owns(p as *const u8));
        assert!(b.0.iter().all(|&x| x == i as u8));
    }
    let mut lines: Vec<Line> = Vec::new();
    for i in 0..10_000 {
        lines.push(Line([i as u8; 24]));
        assert_eq!(lines.as_ptr() as usize % 64, 0);
    }
    assert!(lines.iter().enumerate().all(|(i, l)| l.0[23] == i as u8));
    // Direct layouts with large alignments, zeroed and reallocated.
    for align in [32usize, 256, 4096, 65536, 1 << 21, 1 << 22] {
        for size in [1usize, 100, 5000, 70_000, 3 << 20] {
            let layout = Layout::from_size_align(size, align).unwrap();
            unsafe {
                let p = alloc_zeroed(layout);
                assert!(!p.is_null());
                assert_eq!(p as usize % align, 0, "align {align} size {size}");
                assert!(std::slice::from_raw_parts(p, size).iter().all(|&x| x == 0));
                std::ptr::write_bytes(p, 0x3C, size);
                let q = realloc(p, layout, size * 2 + 1);
                assert_eq!(q as usize % align, 0, "realloc keeps align {align}");
                assert!(std::slice::from_raw_parts(q, size).iter().all(|&x| x == 0x3C));
                dealloc(q, Layout::from_size_align(size * 2 + 1, align).unwrap());
                let r = alloc(layout);
                assert_eq!(r as usize % align, 0);
                dealloc(r, layout);
            }
        }
    }
    drop(boxes);
    assert!(check_thread_heap());
}

#[test]
fn threads_share_and_free_each_others_memory() {
    let (tx, rx) = mpsc::channel::<Vec<String>>();
    let producers: Vec<_> = (0..4)
        .map(|t| {
            let tx = tx.clone();
            thread::spawn(move || {
                for round in 0..200 {
                    let batch: Vec<String> = (0..100).map(|i| format!("t{t} r{round} i{i} {}", "x".repeat(i % 50))).collect();
                    tx.send(batch).unwrap();
                }
                assert!(check_thread_heap());
            })
        })
        .collect();
    drop(tx);
    let consumer = thread::spawn(move || {
        let mut n = 0;
        for batch in rx {
            for s in batch {
                assert!(s.starts_with('t'));
                n += 1;
            }
        }
        n
    });
    for p in producers {
        p.join().unwrap();
    }
    assert_eq!(consumer.join().unwrap(), 4 * 200 * 100);
    // Many short-lived threads.
    for i in 0..200 {
        let v = thread::spawn(move || vec![i; 1000]).join().unwrap();
        assert_eq!(v.len(), 1000);
        assert!(owns(v.as_ptr() as *const u8));
    }
    assert!(check_thread_heap());
}
