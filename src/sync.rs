//! The one lock ptrs uses, and the rules for holding it.
//!
//! There is a single global lock, [`GLOBAL`], for the rare operations that
//! touch process-wide state: the segment registry and cache, the heap
//! registry and the pool of abandoned heaps. Malloc and free of small blocks
//! never take it.
//!
//! Rules:
//! - Nothing is called while it is held that could call malloc or take
//!   another lock (no stdio, no pthread calls that allocate).
//! - Signals are blocked while it is held ([`GlobalGuard`]), so a signal
//!   handler that forks or allocates can never find it held by its own
//!   thread.
//! - `fork()` takes it in the prepare handler after glibc's stdio list lock
//!   (see `init.rs`), and the child re-creates it unlocked.

use core::cell::UnsafeCell;
use core::mem::MaybeUninit;
use core::sync::atomic::{AtomicBool, Ordering};

/// A test-and-test-and-set spin lock that yields the CPU when contended.
pub struct RawLock {
    locked: AtomicBool,
}

impl RawLock {
    pub const fn new() -> Self {
        Self { locked: AtomicBool::new(false) }
    }

    pub fn lock(&self) {
        let mut spins = 0u32;
        loop {
            if !self.locked.load(Ordering::Relaxed)
                && self
                    .locked
                    .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
            {
                return;
            }
            spins += 1;
            if spins < 64 {
                core::hint::spin_loop();
            } else {
                // SAFETY: sched_yield has no preconditions.
                unsafe { libc::sched_yield() };
            }
        }
    }

    pub fn try_lock(&self) -> bool {
        self.locked.compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed).is_ok()
    }

    pub fn unlock(&self) {
        self.locked.store(false, Ordering::Release);
    }

    /// Makes the lock free again, whoever held it. Only for the child of
    /// `fork()`, where the holder no longer exists.
    pub fn reset(&self) {
        self.locked.store(false, Ordering::Release);
    }
}

/// The process-wide lock. Lock order: glibc's stdio list lock (only in the
/// fork handler) before `GLOBAL`; nothing is acquired after `GLOBAL`.
pub static GLOBAL: RawLock = RawLock::new();

/// Holds [`GLOBAL`] with all signals blocked; restores both on drop.
pub struct GlobalGuard {
    saved: MaybeUninit<libc::sigset_t>,
}

impl GlobalGuard {
    pub fn lock() -> Self {
        let mut saved = MaybeUninit::<libc::sigset_t>::uninit();
        let mut all = MaybeUninit::<libc::sigset_t>::uninit();
        // SAFETY: sigfillset initialises `all`; pthread_sigmask writes the
        // previous mask into `saved`, which is then initialised.
        unsafe {
            libc::sigfillset(all.as_mut_ptr());
            libc::pthread_sigmask(libc::SIG_BLOCK, all.as_ptr(), saved.as_mut_ptr());
        }
        GLOBAL.lock();
        Self { saved }
    }
}

impl Drop for GlobalGuard {
    fn drop(&mut self) {
        GLOBAL.unlock();
        // SAFETY: `saved` was initialised by pthread_sigmask in `lock`.
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, self.saved.as_ptr(), core::ptr::null_mut()) };
    }
}

/// Interior mutability for statics that are only touched under [`GLOBAL`]
/// or before any thread could race (process start).
pub struct GlobalCell<T>(UnsafeCell<T>);

// SAFETY: every access goes through `get`, whose callers hold GLOBAL.
unsafe impl<T> Sync for GlobalCell<T> {}

impl<T> GlobalCell<T> {
    pub const fn new(v: T) -> Self {
        Self(UnsafeCell::new(v))
    }

    /// # Safety
    /// The caller holds [`GLOBAL`] (or no other thread can exist yet).
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn get(&self) -> &mut T {
        // SAFETY: exclusive access is guaranteed by the caller holding GLOBAL.
        unsafe { &mut *self.0.get() }
    }
}
