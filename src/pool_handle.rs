//! `ptrs::Pool`: a memory pool (see `pool.rs`) from Rust. Created with
//! [`Pool::new`] or [`Pool::with_options`], destroyed (every block at
//! once) when dropped. With feature `pool-allocator-api2` it implements
//! the `allocator-api2` crate's `Allocator` trait, the stable stand-in for
//! the standard library's unstable one, so
//! `allocator_api2::vec::Vec::new_in(&pool)` and hashbrown's maps
//! allocate in the pool.
//!
//! Thread rules: a `Pool` may move to another thread (`Send`) but is not
//! shared (`!Sync`): one thread allocates at a time, as for a C pool
//! without `PTRS_POOL_SHARED`.

use core::alloc::Layout;
use core::ptr::NonNull;

use crate::pool;

/// A memory pool; dropping it frees every block allocated from it.
pub struct Pool {
    raw: NonNull<pool::Pool>,
}

// SAFETY: a pool may be used by one thread at a time, from any thread;
// `Pool` is not `Sync`, so only its owner allocates.
unsafe impl Send for Pool {}

/// What [`Pool::stats`] reports (bytes and blocks).
pub use pool::Stats as PoolStats;

impl Pool {
    /// A pool without name, limit or flags. `None` when out of memory.
    pub fn new() -> Option<Pool> {
        Self::with_options(b"", 0, false)
    }

    /// A pool named `name` (shown in statistics, up to 39 bytes), holding
    /// at most `limit` bytes of blocks (0: no limit), in bump mode if
    /// `bump` (frees of blocks up to 16 KiB only update the statistics).
    /// `None` when out of memory.
    pub fn with_options(name: &[u8], limit: usize, bump: bool) -> Option<Pool> {
        let opts = pool::Options { name, limit, flags: if bump { pool::BUMP } else { 0 }, parent: core::ptr::null_mut() };
        pool::create(&opts).ok().and_then(NonNull::new).map(|raw| Pool { raw })
    }

    /// Allocates a block for `layout` (any size and power-of-two alignment).
    /// Null when out of memory or beyond the pool's limit.
    pub fn alloc(&self, layout: Layout) -> *mut u8 {
        let raw = self.raw.as_ptr();
        // Under memcheck, as `ptrs_pool_malloc` there (memcheck mode: the
        // block announced, a redzone after it), since `free` is memcheck
        // mode's then.
        if crate::valgrind::active() {
            let align = layout.align().max(16);
            // SAFETY: as below.
            return crate::valgrind::alloc_from(layout.size(), false, |total| unsafe {
                pool::alloc_slow(raw, total, align)
            });
        }
        // SAFETY: the pool is live while `self` is, and only this thread
        // allocates from it (`Pool` is not `Sync`).
        unsafe {
            if layout.align() <= 16 {
                pool::alloc(raw, layout.size())
            } else {
                pool::alloc_slow(raw, layout.size(), layout.align())
            }
        }
    }

    /// Frees a block of this pool before the pool is dropped (optional).
    ///
    /// # Safety
    /// `p` must be a live block allocated from this pool.
    pub unsafe fn free(&self, p: *mut u8) {
        crate::free::free(p);
    }

    /// Frees every block, keeping the pool. Needs `&mut self`, so no
    /// collection borrowing the pool is alive.
    pub fn reset(&mut self) {
        // SAFETY: live, and exclusively borrowed.
        unsafe { pool::reset(self.raw.as_ptr()) };
    }

    /// The pool's figures.
    pub fn stats(&self) -> PoolStats {
        // SAFETY: live.
        unsafe { pool::stats(self.raw.as_ptr()) }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        // SAFETY: live; no borrow of the pool outlives it.
        unsafe { pool::destroy(self.raw.as_ptr()) };
    }
}

#[cfg(feature = "pool-allocator-api2")]
// SAFETY: blocks stay valid until deallocated or the pool is dropped,
// which the borrow of `&Pool` held by every collection prevents while
// they live; any block may be freed with `free`.
unsafe impl allocator_api2::alloc::Allocator for Pool {
    /// A zero-size layout gets a dangling, aligned pointer and no block,
    /// as from allocator-api2's `Global`: its `Box` and `Vec` make such
    /// pointers themselves for zero-size values and still deallocate them
    /// (`deallocate` with size 0), which must then be a no-op.
    fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, allocator_api2::alloc::AllocError> {
        if layout.size() == 0 {
            // An address equal to the alignment: non-null, aligned, never a
            // block (ptrs maps nothing in the first 4 MiB).
            let dangling = NonNull::new(layout.align() as *mut u8).ok_or(allocator_api2::alloc::AllocError)?;
            return Ok(NonNull::slice_from_raw_parts(dangling, 0));
        }
        let p = NonNull::new(self.alloc(layout)).ok_or(allocator_api2::alloc::AllocError)?;
        Ok(NonNull::slice_from_raw_parts(p, layout.size()))
    }

    unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
        if layout.size() == 0 {
            return; // a dangling pointer (see `allocate`)
        }
        crate::free::free(ptr.as_ptr());
    }
}
