//! Process bootstrap, thread exit and fork, as glibc's `ptmalloc_init`,
//! `arena_get`/thread-exit and `__malloc_fork_*` do.
//!
//! Initialisation is lazy: the first allocation of the first thread finds
//! the empty heap, whose slow path calls [`ensure`]. The state machine
//! `UNINIT -> RUNNING -> DONE` runs the part that must not allocate
//! (options, keys, the thread-exit key) and then, already `DONE`, registers
//! the fork handlers and the exit hook, which may call malloc re-entrantly.
//!
//! Fork: the prepare handler takes glibc's stdio list lock *before* ptrs's
//! global lock, the order glibc's own `fork` uses afterwards, so a thread
//! that holds the stdio lock and allocates cannot deadlock with the forking
//! thread (jemalloc and tcmalloc take their locks in the other order). The
//! child re-creates both locks unlocked.

use core::sync::atomic::{AtomicU32, AtomicU8, Ordering};

use crate::heap::{self, Heap};
use crate::os;
use crate::page;
use crate::sync::{GlobalCell, GLOBAL};

const UNINIT: u8 = 0;
const RUNNING: u8 = 1;
const DONE: u8 = 2;

static STATE: AtomicU8 = AtomicU8::new(UNINIT);
static THREAD_KEY: AtomicU32 = AtomicU32::new(0);

unsafe extern "C" {
    fn _IO_list_lock();
    fn _IO_list_unlock();
    fn _IO_list_resetlock();
}

/// Initialises the process state if nobody has yet.
#[inline]
pub fn ensure() {
    if STATE.load(Ordering::Acquire) != DONE {
        init_slow();
    }
}

#[cold]
#[inline(never)]
fn init_slow() {
    match STATE.compare_exchange(UNINIT, RUNNING, Ordering::Acquire, Ordering::Acquire) {
        Ok(_) => {}
        Err(_) => {
            // Another thread is initialising; the steps it runs before DONE
            // never allocate, so it cannot be waiting on us.
            while STATE.load(Ordering::Acquire) != DONE {
                // SAFETY: sched_yield has no preconditions.
                unsafe { libc::sched_yield() };
            }
            return;
        }
    }
    crate::options::read_environment();
    page::set_key(os::random_u64() as usize);
    let mut key: libc::pthread_key_t = 0;
    // SAFETY: `key` is a valid out-parameter; glibc's pthread_key_create
    // does not allocate.
    if unsafe { libc::pthread_key_create(&mut key, Some(thread_exit)) } == 0 {
        THREAD_KEY.store(key + 1, Ordering::Release);
    }
    STATE.store(DONE, Ordering::Release);

    // These may allocate, which now works re-entrantly.
    // SAFETY: the handlers are valid `extern "C"` functions for the
    // process's lifetime.
    unsafe { libc::pthread_atfork(Some(fork_prepare), Some(fork_parent), Some(fork_child)) };
    if crate::options::show_stats() {
        // A private copy of stderr: programs such as GNU coreutils close
        // fd 2 in their own exit handlers, before this one runs.
        // SAFETY: fcntl on fd 2 has no memory-safety preconditions.
        let fd = unsafe { libc::fcntl(2, libc::F_DUPFD_CLOEXEC, 10) };
        STATS_FD.store(if fd >= 0 { fd } else { 2 }, Ordering::Relaxed);
        // SAFETY: `print_stats_at_exit` is a valid function for the process's lifetime.
        unsafe { libc::atexit(print_stats_at_exit) };
    }
    crate::profile::start_from_environment();
    crate::diag::verbose(format_args!("ptrs {} initialised", crate::VERSION));
}

static STATS_FD: core::sync::atomic::AtomicI32 = core::sync::atomic::AtomicI32::new(2);

extern "C" fn print_stats_at_exit() {
    let fd = STATS_FD.load(Ordering::Relaxed);
    crate::stats::print(&mut |s: &[u8]| os::write_fd(fd, s));
}

/// Runs when the library is loaded (after libc's own constructors), so
/// options such as PTRS_SHOW_STATS take effect even in a program that never
/// allocates. Allocation still works before it (the loader and earlier
/// constructors may allocate): initialisation is also lazy.
extern "C" fn init_at_load() {
    ensure();
}

#[used]
#[unsafe(link_section = ".init_array")]
static INIT_AT_LOAD: extern "C" fn() = init_at_load;

/// Arranges for `heap` to be parked when the calling thread exits.
pub fn register_thread(heap: *mut Heap) {
    let key = THREAD_KEY.load(Ordering::Acquire);
    if key == 0 {
        return;
    }
    // SAFETY: the key was created by pthread_key_create. For keys below 32
    // glibc stores the value in the thread descriptor without allocating;
    // if it does allocate, the heap is already installed, so that works.
    unsafe { libc::pthread_setspecific(key - 1, heap.cast()) };
}

/// The thread-exit destructor: parks the thread's heap.
extern "C" fn thread_exit(value: *mut libc::c_void) {
    let heap = value as *mut Heap;
    if heap.is_null() || heap != crate::tls::current() {
        return;
    }
    // SAFETY: `heap` is the calling thread's heap (checked above).
    unsafe { heap::abandon(heap) };
}

/// The signal mask of the forking thread, saved in `fork_prepare` while
/// GLOBAL is held.
static FORK_SIGMASK: GlobalCell<core::mem::MaybeUninit<libc::sigset_t>> =
    GlobalCell::new(core::mem::MaybeUninit::uninit());

extern "C" fn fork_prepare() {
    let mut all = core::mem::MaybeUninit::<libc::sigset_t>::uninit();
    let mut saved = core::mem::MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: the stdio list lock is recursive and glibc's fork takes it
    // next anyway; the sigset out-parameters are valid.
    unsafe {
        _IO_list_lock();
        libc::sigfillset(all.as_mut_ptr());
        libc::pthread_sigmask(libc::SIG_BLOCK, all.as_ptr(), saved.as_mut_ptr());
    }
    crate::profile::fork_prepare(); // the profiler's lock comes before GLOBAL
    GLOBAL.lock();
    // SAFETY: GLOBAL is held.
    unsafe { *FORK_SIGMASK.get() = saved };
}

extern "C" fn fork_parent() {
    // SAFETY: GLOBAL is still held from fork_prepare; the mask was saved there.
    let saved = unsafe { *FORK_SIGMASK.get() };
    GLOBAL.unlock();
    crate::profile::fork_done(false);
    // SAFETY: `saved` was initialised in fork_prepare; the stdio lock was
    // taken there by this thread.
    unsafe {
        libc::pthread_sigmask(libc::SIG_SETMASK, saved.as_ptr(), core::ptr::null_mut());
        _IO_list_unlock();
    }
}

extern "C" fn fork_child() {
    // SAFETY: the child has one thread, this one; GLOBAL was held across fork.
    let saved = unsafe { *FORK_SIGMASK.get() };
    GLOBAL.reset();
    crate::profile::fork_done(true);
    // The heaps of the parent's other threads belong to threads that do not
    // exist here. They stay marked as owned, so that nobody adopts state
    // that may have been mid-update at the fork; their memory is lost to
    // the child, which usually execs soon.
    // SAFETY: `saved` was initialised in fork_prepare. Resetting the stdio
    // list lock is what glibc does itself in a multi-threaded parent's
    // child; in a single-threaded one it releases the hold taken in
    // fork_prepare.
    unsafe {
        _IO_list_resetlock();
        libc::pthread_sigmask(libc::SIG_SETMASK, saved.as_ptr(), core::ptr::null_mut());
    }
}
