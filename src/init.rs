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
use core::ptr;

use crate::page;
use crate::sync::{GlobalCell, GLOBAL};

const UNINIT: u8 = 0;
const RUNNING: u8 = 1;
const DONE: u8 = 2;

// Hand-written rather than `spin::Once` (or `once_cell`): the thread that
// initialises must mark the state DONE half-way, before the steps that may
// call malloc re-entrantly on the same thread (pthread_atfork, atexit);
// a Once would only publish completion when its closure returns, and the
// re-entrant malloc would then wait forever on its own initialisation.
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
#[unsafe(link_section = ".text.hot.ptrs")]
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
    // Read now, not at the first huge block: a program that installs a
    // seccomp filter after start-up (one that allows what glibc's malloc
    // needs and kills on anything else) was killed by the `openat` of
    // /proc/sys/vm/overcommit_memory and the `sysinfo` that the first
    // huge block made (a tester). No allocation.
    os::overcommit_cap();
    STATE.store(DONE, Ordering::Release);

    // These may allocate, which now works re-entrantly.
    // SAFETY: the handlers are valid `extern "C"` functions for the
    // process's lifetime.
    unsafe { libc::pthread_atfork(Some(fork_prepare), Some(fork_parent), Some(fork_child)) };
    crate::purger::start_if_wanted();
    if crate::options::show_stats() {
        arm_exit_stats();
    }
    crate::profile::start_from_environment();
    // One exit handler for every option that acts at exit, registered
    // whether or not one is on now, so that `ptrs_option_set` can turn
    // them on later. Registered with no DSO handle: a handler registered
    // with `atexit` from a shared library belongs to that library and
    // runs when the loader finalises it, which may come before the other
    // libraries' destructors (a preloaded libptrs is finalised first), so
    // the leak report named as leaked the blocks those destructors free
    // (tester). Registered here, at the latest in libptrs.so's
    // constructor, it precedes the loader's own finaliser, which
    // `__libc_start_main` registers after the libraries' constructors have
    // run: it runs after every library destructor. Not with libptrs.a,
    // whose constructor is the program's own and runs after that
    // registration: there it runs before them (a reviewer; documented).
    // libptrs.so is linked `-z nodelete`, so the handler's code stays
    // mapped even if a program dlopens and dlcloses it.
    // SAFETY: `exit_hook` is a valid function for the process's lifetime.
    unsafe { __cxa_atexit(exit_hook, ptr::null_mut(), ptr::null_mut()) };
    crate::diag::verbose(format_args!("ptrs {} initialised", crate::VERSION));
}

unsafe extern "C" {
    fn __cxa_atexit(f: extern "C" fn(*mut libc::c_void), arg: *mut libc::c_void, dso: *mut libc::c_void) -> i32;
}

/// At `exit`: the heap profile and leak report, then the statistics table,
/// each if its option is on now.
#[unsafe(link_section = ".text.hot.ptrs")]
extern "C" fn exit_hook(_: *mut libc::c_void) {
    crate::profile::at_exit();
    print_exit_stats();
}

/// Called after `ptrs_option_set` changed an option: sets up what the
/// options that act at exit need (as their variables would at start-up).
pub fn option_set_at_run_time() {
    if crate::options::show_stats() {
        arm_exit_stats();
    }
    crate::profile::arm_leak_report_at_run_time();
}

/// Where the statistics table at exit goes (see `os::ExitStderr`).
static STATS_OUT: os::ExitStderr = os::ExitStderr::new();

static STATS_PRINTED: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// Set once the statistics table has its copy of stderr and its process.
static STATS_ARMED: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// Prepares the statistics table at exit (`PTRS_SHOW_STATS`): stderr as
/// it is now (`os::ExitStderr`) and the process it is printed by. Once
/// per process.
fn arm_exit_stats() {
    if STATS_ARMED.swap(true, Ordering::AcqRel) {
        return;
    }
    STATS_OUT.remember();
    // SAFETY: getpid has no preconditions.
    STATS_PID.store(unsafe { libc::syscall(libc::SYS_getpid) } as i32, Ordering::Relaxed);
}

/// Prints the statistics table on the private copy of stderr, once per
/// process, if `PTRS_SHOW_STATS` is on. Called by the exit hook and by
/// ptrs's `_exit` (programs such as dash leave through `_exit`, which runs
/// no exit handlers).
#[inline]
pub fn print_exit_stats() {
    if !crate::options::show_stats() || STATS_PRINTED.swap(true, Ordering::AcqRel) {
        return;
    }
    print_stats_now();
}

/// The process that read the options (`_exit` in a forked or vforked child
/// must not print: a vforked child shares the parent's memory, so gathering
/// statistics there would change the parent's heaps and flag).
static STATS_PID: core::sync::atomic::AtomicI32 = core::sync::atomic::AtomicI32::new(0);

/// `_exit`'s variant of [`print_exit_stats`]: only in the process that
/// started with the options, never in a child.
pub fn print_exit_stats_from_exit() {
    // SAFETY: getpid has no preconditions; the raw call caches nothing.
    let pid = unsafe { libc::syscall(libc::SYS_getpid) } as i32;
    if pid == STATS_PID.load(Ordering::Relaxed) {
        print_exit_stats();
    }
}

#[cold]
#[inline(never)]
fn print_stats_now() {
    let fd = STATS_OUT.fd();
    crate::stats::print(&mut |s: &[u8]| os::write_fd(fd, s));
}

/// Runs when the library is loaded (after libc's own constructors), so
/// options such as PTRS_SHOW_STATS take effect even in a program that never
/// allocates. Allocation still works before it (the loader and earlier
/// constructors may allocate): initialisation is also lazy.
#[unsafe(link_section = ".text.hot.ptrs")]
extern "C" fn init_at_load() {
    ensure();
    CONSTRUCTED.store(true, Ordering::Release);
}

/// Set by [`init_at_load`]: the C library has finished its own start-up.
static CONSTRUCTED: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// Whether the C library's table of loaded objects may be used
/// (`_dl_find_object`, `dl_iterate_phdr`, libgcc's unwinder): always in a
/// dynamically linked program, whose loader builds it before any code of
/// the program runs; in a fully static one only from the constructors on,
/// since its C library builds the table while it starts, allocating as it
/// goes (`_dl_non_dynamic_init`), and a lookup from inside those
/// allocations crashed (a tester: the heap profiler at rate 1 killed
/// every `-static` program at start-up). A static program has no
/// interpreter (`AT_BASE` 0).
pub fn loader_ready() -> bool {
    // SAFETY: getauxval has no preconditions; the auxiliary vector is set
    // up before the first instruction of a static program's C library
    // that could allocate.
    CONSTRUCTED.load(Ordering::Acquire) || unsafe { libc::getauxval(libc::AT_BASE) } != 0
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
#[unsafe(link_section = ".text.hot.ptrs")]
extern "C" fn thread_exit(value: *mut libc::c_void) {
    let heap = value as *mut Heap;
    if heap.is_null() || heap != crate::tls::current() || !heap::is_real(heap) {
        return;
    }
    let _q = crate::valgrind::Quiet::new(); // memcheck mode: engine code
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
    crate::pool::fork_prepare(); // pool locks come before the others
    crate::profile::fork_prepare(); // the profiler's lock comes before GLOBAL
    heap::fork_prepare();
    GLOBAL.lock();
    // SAFETY: GLOBAL is held.
    unsafe { *FORK_SIGMASK.get() = saved };
    // The prepare handlers that run after this one (registered before it)
    // may allocate: GLOBAL is then a nested hold for this thread.
    crate::sync::FORK_HOLDER.store(crate::sync::thread_token(), Ordering::Relaxed);
    crate::huge::fork_prepare(); // taken only if free (see there)
}

extern "C" fn fork_parent() {
    // SAFETY: GLOBAL is still held from fork_prepare; the mask was saved there.
    let saved = unsafe { *FORK_SIGMASK.get() };
    crate::huge::fork_parent();
    crate::sync::FORK_HOLDER.store(0, Ordering::Relaxed);
    GLOBAL.unlock();
    heap::fork_parent();
    crate::profile::fork_done(false);
    crate::pool::fork_done(false);
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
    crate::huge::fork_child();
    crate::sync::FORK_HOLDER.store(0, Ordering::Relaxed);
    GLOBAL.reset();
    heap::after_fork_child();
    crate::purger::after_fork_child();
    crate::pool::fork_done(true);
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
