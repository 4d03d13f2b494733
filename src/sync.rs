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
//!
//! [`OwnedLock`] is for state that a signal handler may reach but can also
//! go around (the cache of freed huge mappings): it records its holder, so
//! a handler on the holding thread sees that and does without, and it is
//! held without blocking signals.

use core::cell::UnsafeCell;
use core::mem::MaybeUninit;

use spin::mutex::SpinMutex;
use spin::relax::Yield;

/// The global lock: the `spin` crate's test-and-test-and-set [`SpinMutex`]
/// with its [`Yield`] relax strategy (each failed look at a held lock calls
/// `std::thread::yield_now`, which is `sched_yield(2)` on Linux and never
/// allocates), so a waiter gives the core to the holder, which matters on
/// machines with fewer cores than threads.
///
/// Only the lock/unlock/reset operations are used, never the guard: the
/// fork handlers take the lock in one function (`fork_prepare`) and release
/// it in another (`fork_parent`), and [`GlobalGuard`] must restore the
/// signal mask after the lock is released, so the guard is forgotten and
/// the lock released with `force_unlock`.
pub struct RawLock {
    inner: SpinMutex<(), Yield>,
}

impl RawLock {
    pub const fn new() -> Self {
        Self { inner: SpinMutex::new(()) }
    }

    /// Takes the lock, yielding the CPU while another thread holds it.
    pub fn lock(&self) {
        core::mem::forget(self.inner.lock());
    }

    /// Takes the lock if it is free; true if taken.
    pub fn try_lock(&self) -> bool {
        self.inner.try_lock().map(core::mem::forget).is_some()
    }

    /// Releases the lock, which the calling thread holds.
    pub fn unlock(&self) {
        // SAFETY: callers only unlock a lock they took with `lock` or
        // `try_lock` (whose guard was forgotten there).
        unsafe { self.inner.force_unlock() };
    }

    /// Makes the lock free again, whoever held it. Only for the child of
    /// `fork()`, where the holder no longer exists.
    pub fn reset(&self) {
        // SAFETY: in the fork child only this thread exists; the holder the
        // lock records (the forking thread, in fork_prepare) is this one.
        unsafe { self.inner.force_unlock() };
    }
}

/// The process-wide lock. Lock order: glibc's stdio list lock (only in the
/// fork handler) before `GLOBAL`; nothing is acquired after `GLOBAL`.
pub static GLOBAL: RawLock = RawLock::new();

/// The thread (`pthread_self`) that holds [`GLOBAL`] across `fork`, from
/// the end of ptrs's prepare handler to the start of its parent or child
/// handler; 0 otherwise. Prepare handlers registered before ptrs's run
/// after it (glibc runs them in reverse order of registration), on that
/// thread, with every ptrs lock it takes across the fork held: their
/// allocations take [`GLOBAL`] as a nested hold (a library whose handler
/// allocated a large block hung in `fork`, tester; glibc takes its own
/// malloc locks after all prepare handlers, which a preloaded allocator
/// cannot).
pub static FORK_HOLDER: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(0);

/// The calling thread's token (`pthread_self`, never 0), which the locks
/// that record their holder store: the heaps' slow-path locks, the parked
/// heaps' owner, [`OwnedLock`], [`FORK_HOLDER`].
#[inline]
pub fn thread_token() -> usize {
    // SAFETY: pthread_self has no preconditions and does not allocate.
    unsafe { libc::pthread_self() as usize }
}

/// True on the thread that holds [`GLOBAL`] across `fork` (see
/// [`FORK_HOLDER`]): a load and a compare, on slow paths only.
#[inline]
pub fn holds_global_across_fork() -> bool {
    let holder = FORK_HOLDER.load(core::sync::atomic::Ordering::Relaxed);
    holder != 0 && holder == thread_token()
}

/// Holds [`GLOBAL`] with all signals blocked; restores both on drop. On
/// the thread that holds it across `fork` (see [`FORK_HOLDER`]) it is a
/// nested hold that changes neither.
pub struct GlobalGuard {
    /// Restores the mask after GLOBAL is released (fields drop after
    /// `drop`); nested (changes nothing) on the fork holder's thread.
    signals: SignalsBlocked,
}

impl GlobalGuard {
    pub fn lock() -> Self {
        // On the fork holder's thread signals are blocked already (ptrs's
        // prepare handler) and GLOBAL is this thread's: a nested hold.
        let signals = SignalsBlocked::new();
        if !signals.nested {
            GLOBAL.lock();
        }
        Self { signals }
    }
}

impl Drop for GlobalGuard {
    fn drop(&mut self) {
        if !self.signals.nested {
            GLOBAL.unlock();
        }
    }
}

/// Every signal blocked on the calling thread until dropped (the mask
/// before is restored): for [`GlobalGuard`], and for the slow paths that
/// hold the heap lock of another live thread (or the parked heaps' lock),
/// where a signal handler that forked would wait in
/// ptrs's fork prepare handler for glibc's stdio list lock, while a
/// second thread forking at the same time held that lock and waited for
/// its own heap's lock, held by the first (a tester's two threads forking
/// from SIGALRM handlers hung 5 runs of 5, through the sweeps of
/// `malloc_trim` and of dormant heaps). Two system calls (the sweeps are
/// rare: trims, statistics, once per purge delay). On the thread that
/// holds GLOBAL across `fork` (signals blocked already) it changes
/// nothing.
pub struct SignalsBlocked {
    saved: MaybeUninit<libc::sigset_t>,
    nested: bool,
}

impl SignalsBlocked {
    pub fn new() -> Self {
        if holds_global_across_fork() {
            return Self { saved: MaybeUninit::uninit(), nested: true };
        }
        let mut saved = MaybeUninit::<libc::sigset_t>::uninit();
        let mut all = MaybeUninit::<libc::sigset_t>::uninit();
        // SAFETY: sigfillset initialises `all`; pthread_sigmask writes the
        // previous mask into `saved`, which is then initialised.
        unsafe {
            libc::sigfillset(all.as_mut_ptr());
            libc::pthread_sigmask(libc::SIG_BLOCK, all.as_ptr(), saved.as_mut_ptr());
        }
        Self { saved, nested: false }
    }
}

impl Drop for SignalsBlocked {
    fn drop(&mut self) {
        if !self.nested {
            // SAFETY: `saved` was initialised by pthread_sigmask in `new`.
            unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, self.saved.as_ptr(), core::ptr::null_mut()) };
        }
    }
}

/// A lock whose word is its holder's token (`pthread_self`), 0 when free,
/// for state that a signal handler may reach on the very thread that holds
/// it: such a handler finds its own token there and goes around the state
/// (`lock` answers `None`) instead of waiting for itself, so the holder
/// need not block signals as [`GlobalGuard`] does (two system calls per
/// hold). Taking and recording the holder are one compare-and-swap, so no
/// signal can fall between them. Hand-written because the `spin` crate's
/// locks do not record their holder.
pub struct OwnedLock {
    word: core::sync::atomic::AtomicUsize,
}

/// Holds an [`OwnedLock`]; releases it on drop.
pub struct OwnedGuard<'a> {
    lock: &'a OwnedLock,
}

impl OwnedLock {
    pub const fn new() -> Self {
        Self { word: core::sync::atomic::AtomicUsize::new(0) }
    }

    /// Takes the lock, yielding the CPU while another thread holds it;
    /// `None` if the calling thread holds it already (a signal handler that
    /// interrupted it, or a fork handler after `fork_prepare` took it).
    pub fn lock(&self) -> Option<OwnedGuard<'_>> {
        use core::sync::atomic::Ordering;
        let me = thread_token();
        let mut spins = 0u32;
        loop {
            match self.word.compare_exchange_weak(0, me, Ordering::Acquire, Ordering::Relaxed) {
                Ok(_) => return Some(OwnedGuard { lock: self }),
                Err(cur) if cur == me => return None,
                Err(_) => {
                    spins += 1;
                    if spins < 64 {
                        core::hint::spin_loop();
                    } else {
                        std::thread::yield_now();
                    }
                }
            }
        }
    }

    /// Takes the lock, waiting a bounded time (64 spins, then `yields`
    /// `sched_yield`s) while another thread holds it; `None` if the calling
    /// thread holds it or the wait ran out. For callers that may hold locks
    /// a holder interrupted by a signal handler could wait for.
    pub fn lock_bounded(&self, yields: u32) -> Option<OwnedGuard<'_>> {
        use core::sync::atomic::Ordering;
        let me = thread_token();
        let mut tries = 0u32;
        loop {
            match self.word.compare_exchange_weak(0, me, Ordering::Acquire, Ordering::Relaxed) {
                Ok(_) => return Some(OwnedGuard { lock: self }),
                Err(cur) if cur == me => return None,
                Err(_) if tries >= 64 + yields => return None,
                Err(_) => {
                    tries += 1;
                    if tries <= 64 {
                        core::hint::spin_loop();
                    } else {
                        std::thread::yield_now();
                    }
                }
            }
        }
    }

    /// Takes the lock if nobody holds it; never waits.
    pub fn try_lock(&self) -> Option<OwnedGuard<'_>> {
        use core::sync::atomic::Ordering;
        let me = thread_token();
        self.word.compare_exchange(0, me, Ordering::Acquire, Ordering::Relaxed).ok().map(|_| OwnedGuard { lock: self })
    }

    /// The holder's token (`pthread_self`), 0 when free.
    pub fn holder(&self) -> usize {
        self.word.load(core::sync::atomic::Ordering::Relaxed)
    }

    /// Makes the lock free. Only for the fork handlers, after a `lock` or
    /// `try_lock` whose guard was forgotten, or in the child for a holder
    /// that does not exist there.
    pub fn force_unlock(&self) {
        self.word.store(0, core::sync::atomic::Ordering::Release);
    }
}

impl Drop for OwnedGuard<'_> {
    fn drop(&mut self) {
        self.lock.word.store(0, core::sync::atomic::Ordering::Release);
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
