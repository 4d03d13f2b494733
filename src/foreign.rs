//! The foreign-block cache: small blocks that this thread freed into the
//! pages of other threads' heaps, kept for this thread's own next
//! allocations of the same class.
//!
//! Without it every such free goes onto the owner's remote list, and the
//! owner takes the block back only when it next runs short on that page.
//! In a program whose threads hand objects to each other and outnumber
//! the cores (a server with a thread pool), most threads are descheduled
//! at any moment: the running thread frees mostly other threads' blocks,
//! gets few of its own back, and carves fresh memory for nearly every
//! allocation, while the blocks it freed wait on the remote lists of
//! threads that are not running. `bench/larson 64` (64 threads swapping
//! objects through one table, 2 cores) reached 240 to 425 MiB of peak RSS
//! that way for 9 MiB of live objects (glibc 55 MiB, tcmalloc 49 MiB,
//! jemalloc 37 to 41 MiB; mimalloc, which returns blocks to their owner as
//! ptrs did, 250 MiB).
//!
//! So, while the threads with heaps outnumber the CPUs four to one
//! ([`oversubscribed`]), a thread with a heap of its own keeps up to
//! [`CAP`] blocks per class (classes up to 2 KiB, at most [`MAX_BYTES`]
//! in all) that it freed into other live threads' pages, and its
//! allocation slow path takes from them before it refills a page: the
//! block is reused by the thread that has it in its cache. `larson 64`:
//! peak RSS 314 -> 99 MiB (medians of 5; 180 to 335 before, 50 to 139
//! now), time unchanged (1.24 -> 1.21 s); `larson 16`: 96 -> 54 MiB,
//! 0.60 -> 0.65 s. With fewer threads it stays off (see
//! [`OVERSUBSCRIBED`]). The idea is tcmalloc's per-thread cache and jemalloc's
//! tcache, which take any block of their arena back, whichever thread
//! allocated it. A kept block stays counted in use by its page (so the
//! page and its segment stay), carries the free mark of its page (so a
//! second free of it is caught as any other double free: by a thread that
//! does not own the page, from the mark alone), and has the mark tested
//! again and cleared when it is handed out, so a block freed twice is
//! never handed out twice unnoticed.
//!
//! When a class is full the older half goes to the owners' remote lists
//! (the free that ptrs made before); once per purge delay, the classes
//! the thread took nothing from ([`tick`]: a kept block keeps its page in
//! use); all of it when the byte bound is reached, at thread exit,
//! `ptrs_thread_idle`, `malloc_trim` and `ptrs_purge` (from any thread; a
//! busy thread answers at its next slow path), and from the heap of a
//! thread that has made no allocation slow path for a purge delay (the
//! dormant-heap scan, the background purger). Statistics count kept
//! blocks free (`active` still counts their pages).
//!
//! Every operation runs under the heap's slow-path lock (the owner's free
//! only tries it, and frees the usual way when it is busy), so the threads
//! that give a dormant heap's memory back and the statistics snapshots,
//! which hold that lock, see the cache whole.

use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use crate::diag;
use crate::heap::{self, Heap, SlowLock};
use crate::page::{self, Block, Page, FLAG_BUMP, FLAG_LARGE};
use crate::segment::Segment;
use crate::size_class::bin_size;

/// Classes whose blocks are kept: bins 0 to 39, blocks of 16 B to 2 KiB.
pub const FOREIGN_BINS: usize = 40;

/// Most blocks kept per class.
pub const CAP: usize = 32;

/// Most bytes kept per heap, all classes together.
pub const MAX_BYTES: usize = 256 << 10;

/// Blocks are kept only while the threads with heaps outnumber the CPUs
/// the process may run on by this factor: then most owners are not
/// running, and their blocks would wait on their remote lists. With fewer
/// threads the owners take their blocks back soon enough, and keeping
/// costs time: the allocations served from the cache take the slow path
/// (`bench/larson 2` on 2 CPUs: 0.51 s against 0.32 s, medians of 5;
/// `larson 4`: 0.45 s against 0.31 s, for 12 % less peak RSS).
const OVERSUBSCRIBED: usize = 4;

/// CPUs the process may run on (its affinity mask when the process
/// started keeping blocks, else 1); 0 until read.
static CPUS: AtomicUsize = AtomicUsize::new(0);

/// Whether the threads with heaps outnumber the CPUs by [`OVERSUBSCRIBED`]:
/// blocks are kept only then (the caller of [`keep`] asks first).
#[inline]
pub fn oversubscribed() -> bool {
    let owned = heap::OWNED_HEAPS.load(Ordering::Relaxed);
    // Cheap test first: no machine has fewer than one CPU.
    if owned <= OVERSUBSCRIBED {
        return false;
    }
    let mut cpus = CPUS.load(Ordering::Relaxed);
    if cpus == 0 {
        cpus = crate::os::cpu_count();
        CPUS.store(cpus, Ordering::Relaxed);
    }
    owned > OVERSUBSCRIBED * cpus
}

/// Raised by `malloc_trim` and `ptrs_purge` ([`request_give_back`]): a
/// cache that has not answered the current value gives everything back at
/// its owner's next free into another heap or slow path. The trim itself
/// empties the caches of heaps whose lock it gets, and skips the others
/// (their owners are in a slow path).
static GIVE_BACK_EPOCH: AtomicU64 = AtomicU64::new(0);

/// Asks every cache to give its blocks back (see [`GIVE_BACK_EPOCH`]).
pub fn request_give_back() {
    GIVE_BACK_EPOCH.fetch_add(1, Ordering::Relaxed);
}

/// How many blocks a thread keeps between two reads of the clock for
/// [`tick`], when it makes no slow path (a thread that only frees).
const KEEPS_PER_TICK: u32 = 256;

/// Set when a heap's cache went from empty to not empty: the dormant-heap
/// scan (`heap::collect_dormant_heaps`) then looks at the caches of heaps
/// whose owner has made no slow path for a purge delay.
pub static PENDING: AtomicBool = AtomicBool::new(false);

/// A heap's kept blocks. All zero is the empty cache (a fresh heap's
/// mapping is zero there, and `heap::new_heap` leaves it so).
#[repr(C)]
pub struct ForeignCache {
    /// Bytes of the blocks kept (class sizes). Written under the lock;
    /// atomic only so that the dormant-heap scan may read it without.
    bytes: AtomicUsize,
    /// Blocks kept, per class.
    count: [u8; FOREIGN_BINS],
    /// Bit `bin`: a block of class `bin` was taken since the last sweep
    /// (see [`tick`]).
    taken: u64,
    /// When the last sweep was (coarse ms).
    swept_at: u64,
    /// The [`GIVE_BACK_EPOCH`] this cache has answered.
    epoch: u64,
    /// Blocks kept since the clock was last read (see [`keep`]).
    kept_since_tick: u32,
    /// Per class, the blocks kept, most recently freed last.
    blocks: [[*mut Block; CAP]; FOREIGN_BINS],
}

impl ForeignCache {
    pub const EMPTY: Self = Self {
        bytes: AtomicUsize::new(0),
        count: [0; FOREIGN_BINS],
        taken: 0,
        swept_at: 0,
        epoch: 0,
        kept_since_tick: 0,
        blocks: [[core::ptr::null_mut(); CAP]; FOREIGN_BINS],
    };

    /// Whether a block of class `bin` is kept (owner, or under the lock).
    #[inline(always)]
    pub fn has(&self, bin: usize) -> bool {
        bin < FOREIGN_BINS && self.count[bin] != 0
    }

    /// Whether no block is kept (a racy read is fine: a hint for scans).
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.bytes.load(Ordering::Relaxed) == 0
    }

    /// Calls `f(bin, blocks)` for every class with kept blocks (under the
    /// heap's lock: statistics).
    pub fn for_each_class(&self, mut f: impl FnMut(usize, usize)) {
        for (bin, &n) in self.count.iter().enumerate() {
            if n != 0 {
                f(bin, n as usize);
            }
        }
    }
}

/// The page of `block`, a kept block, after the test of its free mark:
/// the mark is gone if the owner freed the block a second time and took
/// it again, and handing it out or pushing it would hand it out twice:
/// reported as `func` (one line) and abort.
#[inline(always)]
fn marked_page(block: *mut Block, func: &str) -> *mut Page {
    let addr = block as usize;
    // SAFETY: kept blocks are counted in use by their page, so the page
    // and its segment stay live while the block is kept, and the block's
    // first words are ours to read.
    unsafe {
        let page = (*Segment::of_unchecked(addr)).page_of(addr);
        if (*block).mark != (*page).key {
            diag::heap_error_fatal(func, "double free or write after free detected", addr);
        }
        page
    }
}

/// Keeps `block`, which the calling thread frees into `page` of another
/// live thread's heap, in the cache of `me`, the calling thread's real
/// heap (the caller checked [`oversubscribed`]). False when it is not
/// kept (a class above 2 KiB, a pool's or a large page, `me`'s lock
/// busy): the caller frees it the usual way.
///
/// # Safety
/// `me` must be the calling thread's real heap; `block` a carved block of
/// `page`, a live small page of another heap, in use and not free (the
/// caller tested its mark).
pub unsafe fn keep(me: *mut Heap, page: *mut Page, block: *mut Block) -> bool {
    // SAFETY: as the caller guarantees.
    unsafe {
        let bin = (*page).bin as usize;
        if bin >= FOREIGN_BINS || (*page).flags & (FLAG_LARGE | FLAG_BUMP) != 0 {
            return false;
        }
        let Some(_l) = SlowLock::try_lock(me) else { return false };
        let c = &mut (*me).foreign;
        c.kept_since_tick += 1;
        if c.kept_since_tick >= KEEPS_PER_TICK || c.epoch != GIVE_BACK_EPOCH.load(Ordering::Relaxed) {
            tick(&mut *me, crate::os::now_ms());
        }
        let c = &mut (*me).foreign;
        let size = bin_size(bin);
        if c.count[bin] as usize == CAP {
            give_back_oldest(c, bin, CAP / 2);
        }
        if c.bytes.load(Ordering::Relaxed) + size > MAX_BYTES {
            give_back_all(c);
        }
        if c.bytes.load(Ordering::Relaxed) == 0 {
            // The cache fills: the sweeps' clock and the give-back epoch
            // start now (`tick` leaves an empty cache alone).
            c.epoch = GIVE_BACK_EPOCH.load(Ordering::Relaxed);
            c.taken = 0;
            c.swept_at = crate::os::now_ms();
            c.kept_since_tick = 0;
            PENDING.store(true, Ordering::Relaxed);
        }
        (*block).mark = (*page).key;
        let n = c.count[bin] as usize;
        c.blocks[bin][n] = block;
        c.count[bin] = n as u8 + 1;
        c.bytes.store(c.bytes.load(Ordering::Relaxed) + size, Ordering::Relaxed);
        true
    }
}

/// Takes a kept block of class `bin` for an allocation, or null if none
/// is kept. A kept block whose free mark is gone was handed out again
/// after a second free by its owner: reported (one line) and abort.
///
/// # Safety
/// `heap` must be the calling thread's heap, its slow-path lock held.
pub unsafe fn take(heap: &mut Heap, bin: usize) -> *mut u8 {
    let c = &mut heap.foreign;
    if !c.has(bin) {
        return core::ptr::null_mut();
    }
    let n = c.count[bin] as usize - 1;
    let block = c.blocks[bin][n];
    c.count[bin] = n as u8;
    c.taken |= 1 << bin;
    c.bytes.store(c.bytes.load(Ordering::Relaxed) - bin_size(bin), Ordering::Relaxed);
    marked_page(block, "malloc");
    // SAFETY: the block is kept (in use by its live page's count); its
    // first words are ours to write.
    unsafe { (*block).mark = 0 };
    block as *mut u8
}

/// The owner's periodic look at its cache (its refills and large
/// allocations, and every [`KEEPS_PER_TICK`] blocks kept), with the time
/// it read: gives everything back after a `malloc_trim` or `ptrs_purge`
/// ([`GIVE_BACK_EPOCH`]), and, once per purge delay, the classes it took
/// no block from since the last look. A kept block keeps its page, and
/// so its segment, in use: a thread that frees another thread's blocks
/// and never allocates their classes again (a consumer) held 427 MB
/// resident for 9 KB in use (a tester: a producer's 400 000 blocks freed
/// at random by 15 consumers; 55 MB without the cache).
///
/// # Safety
/// `heap` must be exclusively held (its owner under its slow-path lock).
pub unsafe fn tick(heap: &mut Heap, now: u64) {
    let c = &mut heap.foreign;
    // Nothing kept: nothing written either, so that the cache's pages of a
    // heap that never keeps a block stay untouched (refills call this);
    // `keep` starts the clock when the cache fills.
    if c.is_empty() {
        return;
    }
    c.kept_since_tick = 0;
    let epoch = GIVE_BACK_EPOCH.load(Ordering::Relaxed);
    if c.epoch != epoch {
        c.epoch = epoch;
        // SAFETY: as the caller guarantees.
        unsafe { give_back_all(c) };
    } else if now >= c.swept_at + crate::options::purge_delay_ms() {
        for bin in 0..FOREIGN_BINS {
            let n = c.count[bin] as usize;
            if n != 0 && c.taken & (1 << bin) == 0 {
                // SAFETY: as the caller guarantees.
                unsafe { give_back_oldest(c, bin, n) };
            }
        }
    } else {
        return;
    }
    c.taken = 0;
    c.swept_at = now;
}

/// Gives every kept block back to its page's owner.
///
/// # Safety
/// The heap of `c` must be exclusively held (its owner, or its slow-path
/// lock).
pub unsafe fn give_back_all(c: &mut ForeignCache) {
    if c.bytes.load(Ordering::Relaxed) == 0 {
        return;
    }
    for bin in 0..FOREIGN_BINS {
        let n = c.count[bin] as usize;
        if n != 0 {
            // SAFETY: as the caller guarantees.
            unsafe { give_back_oldest(c, bin, n) };
        }
    }
}

/// Gives the `n` oldest kept blocks of class `bin` back to their pages'
/// owners (onto the remote lists, as a free by a thread that does not own
/// the page does).
///
/// # Safety
/// As [`give_back_all`]; `n` at most the blocks kept in `bin`.
unsafe fn give_back_oldest(c: &mut ForeignCache, bin: usize, n: usize) {
    let count = c.count[bin] as usize;
    for i in 0..n {
        let block = c.blocks[bin][i];
        let page = marked_page(block, "free");
        // SAFETY: the block is kept: its page is live and counts it in use.
        unsafe {
            // Read before the push (see `heap::remote_pushed`).
            let owner = (*page).heap;
            let pushed = page::push_remote_marked(&*page, block);
            if pushed != 0 {
                heap::remote_pushed(owner, page, pushed);
            }
        }
    }
    c.blocks[bin].copy_within(n..count, 0);
    c.count[bin] = (count - n) as u8;
    c.bytes.store(c.bytes.load(Ordering::Relaxed) - n * bin_size(bin), Ordering::Relaxed);
}
