//! ptrs as a Rust program's global allocator, without LD_PRELOAD.
//!
//! Run with the `override` feature off (it would also export the C names
//! `malloc`, `free`, ... from the program):
//!
//! ```sh
//! cargo run --release --no-default-features --example global_alloc
//! ```
//!
//! In another crate, depend on ptrs with
//! `ptrs = { path = "...", default-features = false }` and add the two
//! lines below marked "the set-up".

use std::collections::{BTreeMap, HashMap};
use std::thread;

// The set-up: every Box, Vec, String, HashMap... of the program now comes
// from ptrs.
#[global_allocator]
static GLOBAL: ptrs::Ptrs = ptrs::Ptrs;

/// FNV-1a, to fold results into one checksum.
fn fnv(mut h: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        h = (h ^ b as u64).wrapping_mul(0x100_0000_01b3);
    }
    h
}

fn main() {
    // Four threads build collections of their own and hand them back: the
    // blocks are freed by the main thread (cross-thread frees).
    let workers: Vec<_> = (0..4u64)
        .map(|t| {
            thread::spawn(move || {
                let mut words: HashMap<String, u64> = HashMap::new();
                let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ t;
                for _ in 0..50_000 {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    *words.entry(format!("w{}", x % 5_000)).or_insert(0) += 1;
                }
                let mut sorted: BTreeMap<String, u64> = words.into_iter().collect();
                sorted.insert(format!("thread-{t}"), t);
                sorted
            })
        })
        .collect();

    let mut checksum = 0xcbf2_9ce4_8422_2325u64;
    let mut entries = 0;
    for w in workers {
        let map = w.join().expect("worker thread");
        entries += map.len();
        for (k, v) in &map {
            checksum = fnv(checksum, k.as_bytes());
            checksum = fnv(checksum, &v.to_le_bytes());
        }
    }

    // A large buffer (a mapping of its own) and a small vector: both are
    // ptrs blocks.
    let big: Vec<u8> = vec![7; 8 << 20];
    let small: Vec<u32> = (0..100).collect();
    checksum = fnv(checksum, &big[..16]);
    checksum = fnv(checksum, &small.iter().sum::<u32>().to_le_bytes());

    println!("{entries} entries, checksum {checksum:016x}");
    println!(
        "Vec buffers owned by ptrs: small {}, big {}",
        ptrs::free::owns(small.as_ptr().cast()),
        ptrs::free::owns(big.as_ptr())
    );
    let on_stack = 0u8;
    println!("stack variable owned by ptrs: {}", ptrs::free::owns(&on_stack));
}
