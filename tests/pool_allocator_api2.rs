//! `ptrs::Pool` as an `allocator-api2` allocator: Vec and hashbrown's
//! HashMap in a pool, contents verified, statistics follow, drop frees all.
use allocator_api2::vec::Vec;
use ptrs::Pool;

#[test]
fn vec_in_pool() {
    let pool = Pool::with_options(b"rust-vec", 0, false).unwrap();
    let mut v: Vec<u64, &Pool> = Vec::new_in(&pool);
    for i in 0..100_000u64 {
        v.push(i * 3);
    }
    assert!(pool.stats().allocated >= 100_000 * 8);
    assert_eq!(pool.stats().blocks, 1);
    assert!(v.iter().enumerate().all(|(i, &x)| x == i as u64 * 3));
    drop(v);
    assert_eq!(pool.stats().blocks, 0);
    assert_eq!(pool.stats().allocated, 0);
}

#[test]
fn hashmap_in_pool_both_modes() {
    for bump in [false, true] {
        let pool = Pool::with_options(b"rust-map", 0, bump).unwrap();
        let mut m = hashbrown::HashMap::new_in(&pool);
        for i in 0..20_000u32 {
            m.insert(i, i.wrapping_mul(2654435761));
        }
        for i in 0..20_000u32 {
            assert_eq!(m.get(&i), Some(&i.wrapping_mul(2654435761)));
        }
        assert!(pool.stats().allocated > 0);
        drop(m);
        assert_eq!(pool.stats().blocks, 0);
    }
}

#[test]
fn limit_and_reset() {
    let mut pool = Pool::with_options(b"rust-limit", 4096, false).unwrap();
    {
        let mut v: Vec<u8, &Pool> = Vec::new_in(&pool);
        assert!(v.try_reserve_exact(1 << 20).is_err());
        v.try_reserve_exact(1000).unwrap();
    }
    let l = core::alloc::Layout::from_size_align(100, 64).unwrap();
    let p = pool.alloc(l);
    assert!(!p.is_null() && p as usize % 64 == 0);
    pool.reset();
    assert_eq!(pool.stats().blocks, 0);
}
