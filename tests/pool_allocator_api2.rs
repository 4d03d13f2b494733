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

/// Zero-size values: allocator-api2's `Box` and `Vec` make dangling
/// pointers for them and still call `deallocate` with size 0, which must
/// leave them alone (it used to free them: "ptrs: free(): invalid pointer:
/// 0x8", abort; fresh tester). A zero-size `allocate` gives no block.
#[test]
fn zero_size_in_pool() {
    use allocator_api2::alloc::Allocator;
    use allocator_api2::boxed::Box;
    use core::alloc::Layout;
    #[derive(Debug, PartialEq)]
    struct Zst;
    #[repr(align(4096))]
    struct ZstAligned;
    for bump in [false, true] {
        let pool = Pool::with_options(b"rust-zst", 0, bump).unwrap();
        let b = Box::new_in(Zst, &pool);
        assert_eq!(*b, Zst);
        drop(b);
        let a = Box::new_in(ZstAligned, &pool);
        assert_eq!(&*a as *const ZstAligned as usize % 4096, 0);
        drop(a);
        let empty: Vec<u32, &Pool> = Vec::new_in(&pool);
        drop(empty.into_boxed_slice());
        let mut v: Vec<u64, &Pool> = Vec::with_capacity_in(100, &pool);
        v.push(7);
        v.clear();
        v.shrink_to_fit(); // shrinks to a zero-size layout
        drop(v);
        let units: Vec<(), &Pool> = (0..1000).map(|_| ()).fold(Vec::new_in(&pool), |mut v, u| {
            v.push(u);
            v
        });
        assert_eq!(units.len(), 1000);
        drop(units);
        let layout = Layout::from_size_align(0, 64).unwrap();
        let p = pool.allocate(layout).unwrap();
        assert_eq!(p.len(), 0);
        assert_eq!(p.cast::<u8>().as_ptr() as usize % 64, 0);
        // SAFETY: `p` came from this pool's `allocate` with `layout`.
        unsafe { pool.deallocate(p.cast(), layout) };
        assert_eq!(pool.stats().blocks, 0);
    }
}
