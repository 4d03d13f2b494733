//! The opt-in background purger (`PTRS_BACKGROUND_PURGE=1`): one thread
//! that, every purge delay, gives back the memory that has stayed unused
//! for one to two delays in every heap (free slices and empty segments of
//! live threads' heaps, less the share of its active bytes that a heap in
//! use keeps (`retain::kept_free_bytes`); parked heaps, whole; the
//! empty-segment and huge caches),
//! for programs whose threads all go quiet and so never reach a slow path
//! that would do it (`retain.rs` has the policy; this is only a clock).
//! jemalloc's `background_thread` is the same idea.
//!
//! Started only when asked, after initialisation (it is created from the
//! part of `init` that may allocate, or, in a forked child, by the child's
//! first allocation slow path, outside every ptrs lock). It takes each
//! heap's slow-path lock with `try_lock` only, so an owner in its slow path
//! is never waited on, and it owns no heap of its own.

use core::sync::atomic::{AtomicU8, Ordering};

use crate::{heap, options, retain};

const STOPPED: u8 = 0;
const STARTING: u8 = 1;
const RUNNING: u8 = 2;

static STATE: AtomicU8 = AtomicU8::new(STOPPED);

/// Starts the purger if the option asks for it and it is not running.
/// Must be called with no ptrs lock held (pthread_create allocates).
#[inline]
pub fn start_if_wanted() {
    if options::background_purge() && STATE.load(Ordering::Relaxed) == STOPPED {
        start();
    }
}

/// [`start_if_wanted`] once the option asks for the purger: out of line,
/// so that the check every process makes at start-up stays in the hot
/// text (`lib.rs`) and the thread's creation does not.
#[cold]
#[inline(never)]
fn start() {
    if STATE.compare_exchange(STOPPED, STARTING, Ordering::AcqRel, Ordering::Relaxed).is_err() {
        return;
    }
    let mut tid: libc::pthread_t = 0;
    // The thread starts with every signal blocked (it inherits the mask of
    // its creator, set here around the call): a signal meant for the
    // program, such as the SIGCHLD that a thread waits for in sigsuspend
    // with it blocked elsewhere, must never be delivered to the purger (a
    // tester: GNU timeout hung 2 times in 40).
    let mut all = core::mem::MaybeUninit::<libc::sigset_t>::uninit();
    let mut saved = core::mem::MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: `run` is a valid thread function for the process's lifetime;
    // default attributes; `tid` and the sigsets are valid out-parameters,
    // and the saved mask is restored before returning.
    let r = unsafe {
        libc::sigfillset(all.as_mut_ptr());
        libc::pthread_sigmask(libc::SIG_SETMASK, all.as_ptr(), saved.as_mut_ptr());
        let r = libc::pthread_create(&mut tid, core::ptr::null(), run, core::ptr::null_mut());
        libc::pthread_sigmask(libc::SIG_SETMASK, saved.as_ptr(), core::ptr::null_mut());
        r
    };
    if r == 0 {
        // SAFETY: `tid` is the thread just created; nobody joins it.
        unsafe { libc::pthread_detach(tid) };
        STATE.store(RUNNING, Ordering::Release);
    } else {
        STATE.store(STOPPED, Ordering::Release);
    }
}

/// Whether the purger must be (re)started: one load, for slow paths.
#[inline]
pub fn wanted() -> bool {
    STATE.load(Ordering::Relaxed) == STOPPED && options::background_purge()
}

/// In a forked child: the parent's purger thread does not exist here; the
/// child's first allocation slow path starts a new one.
pub fn after_fork_child() {
    STATE.store(STOPPED, Ordering::Relaxed);
}

extern "C" fn run(_: *mut libc::c_void) -> *mut libc::c_void {
    // Nobody else knows this thread's id, so nothing cancels or joins it.
    loop {
        let delay = options::purge_delay_ms().max(1);
        let ts = libc::timespec { tv_sec: (delay / 1000) as libc::time_t, tv_nsec: ((delay % 1000) * 1_000_000) as libc::c_long };
        // SAFETY: `ts` is a valid timespec; a raw nanosleep allocates nothing.
        unsafe { libc::syscall(libc::SYS_nanosleep, &ts as *const libc::timespec, core::ptr::null_mut::<libc::timespec>()) };
        if !options::background_purge() {
            STATE.store(STOPPED, Ordering::Release);
            return core::ptr::null_mut();
        }
        heap::purge_other_heaps(false);
        // Also collects the heaps of exited threads when their turn has come.
        retain::tick(false);
    }
}
