//! Memory pools: a heap per connection or request, freed in one call.
//!
//! The idea is APR's pools and nginx's `ngx_pool_t` (everything a request
//! allocates is released when the request ends) and mimalloc's first-class
//! heaps (`mi_heap_new` / `mi_heap_destroy`); the mechanism is ptrs's own.
//!
//! A pool is a [`Heap`] owned by no thread, with a back pointer
//! (`Heap::pool`) so that any block can name its pool from its page:
//!
//! - **Allocation** pops from the pool heap's `pages_direct` table exactly
//!   as `malloc` pops from a thread heap (`heap::pop`), and refills through
//!   the same slow paths (`heap::alloc_bin`, `heap::alloc_large`). Without
//!   [`SHARED`] the caller guarantees one allocating thread at a time (the
//!   pool may move between threads); with it, every allocation takes the
//!   pool heap's slow-path lock.
//! - **Free** of a pool block (`free::free_remote` calls [`free_block`]),
//!   by any thread, the allocating one included: one compare-and-swap on
//!   the page's remote list, collected by the pool at its next refill. So
//!   nothing but the allocating thread ever touches a page's free list,
//!   and the fast path need not know which thread that is (the pool may
//!   move between threads at any time, see `Pool::direct_bound`).
//!   `realloc` keeps a block in its pool (`alloc::realloc_generic` calls
//!   [`realloc_block`]).
//! - **Destroy / reset** walk the pool's segments, not its blocks: every
//!   page descriptor in use is cleared (so a later `free` of a block finds
//!   no page there and is reported as an invalid pointer) and the segments
//!   go to the retention policy (`segment::release`, which purges them
//!   later), except one that a reset pool, or a destroyed one kept in a
//!   small cache for the next `create`, keeps for reuse. No system call:
//!   time is proportional to pages.
//! - **Bump mode** ([`BUMP`]): requests up to [`BUMP_MAX`] bytes are carved
//!   sequentially from chunks (spans flagged [`FLAG_BUMP`]), each block
//!   after a 16-byte header (usable size, a check word). `free` of such a
//!   block only marks it (header bit and free mark) and updates the
//!   statistics; its memory returns on reset or destroy.
//!
//! Stale pointers: after destroy a block's page descriptor is cleared, so
//! `free` reports it as an invalid pointer, until the segment is reused
//! (by this pool again after a reset, or by another heap): a stale pointer
//! that then lands on the start of a new live block cannot be told apart
//! from it, as with any use after free in any allocator. Memcheck mode
//! (`valgrind.rs`) reports every use after destroy.
//!
//! Locks: the pool registry lock (live pools, parent/child links, the cache
//! of destroyed pools) is a spin lock taken without blocking signals; the
//! huge-block list of a pool has its own spin lock; nothing is allocated
//! while either is held.

use core::ffi::c_void;
use core::ptr;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::free::{self, BlockInfo};
use crate::heap::{self, Heap, PageQueue, SlowLock, EMPTY_HEAP};
use crate::huge;
use crate::options;
use crate::os;
use crate::page::{self, Block, Page, FLAG_BUMP, FLAG_FREED_IN_VISIT, FLAG_LARGE, NO_BIN};
use crate::segment::{self, Segment, LARGE_MAX, SLICE_SHIFT, SLICE_SIZE};
use crate::size_class::{bin_for_aligned, bin_of, bin_size, BIN_COUNT, DIRECT_MAX, MIN_ALIGN, SMALL_MAX};
use crate::sync::RawLock;

/// Several threads may allocate from the pool at the same time.
pub const SHARED: u32 = 1;
/// Bump allocation: `free` of a bump block only marks it.
pub const BUMP: u32 = 2;
const KNOWN_FLAGS: u32 = SHARED | BUMP;
/// `Pool::mode` bits beyond the flags: a limit is set; memcheck mode (or
/// a destroyed pool): no fast path.
const MODE_LIMIT: u32 = 256;
const MODE_SLOW: u32 = 512;

/// The largest request a bump pool carves from its chunks (bytes); larger
/// ones are ordinary blocks of the pool heap, returned when freed.
pub const BUMP_MAX: usize = 16 << 10;
/// Bytes of the header before each bump block.
const HDR: usize = 16;
/// Bytes at the start of a bump chunk of a pool heap (its salt).
const BUMP_CHUNK_HDR: usize = 16;
/// Header word 0: set when the block was freed.
const HDR_FREED: usize = 1 << 63;
/// In a bump block's first header word: realloc shrank the block in place
/// below half of it (`bump_shrink`), so a sized free may name any size
/// that fits.
const HDR_SHRUNK: usize = 1 << 62;
const HDR_FLAGS: usize = HDR_FREED | HDR_SHRUNK;
const BUMP_MAGIC: usize = 0x7074_7273_6275_6d70;
/// Bump chunks grow from one slice to this many.
const BUMP_CHUNK_MAX_SLICES: usize = 8;
const POOL_MAGIC: usize = 0x7074_7273_706f_6f6c;
/// Bytes of a pool's name kept (with the NUL).
pub const NAME_LEN: usize = 40;
/// Destroyed pools kept (each with at most one empty segment) for the next
/// `create`; beyond that, their segments go to the retention policy and
/// their memory back to the OS.
const CACHE_MAX: usize = 8;
/// A destroyed pool keeps a segment for the cache only if it has at most
/// this many dirty slices (so the cache holds at most `CACHE_MAX` x 2.5 MiB
/// resident); a dirtier one goes to the retention policy, which purges it
/// after one to two purge delays unless a heap reuses it first. Destroy
/// never purges (`madvise`) itself: that would cost time proportional to
/// the bytes the pool touched (about 0.25 ms for 4 MiB), not to its pages.
const KEEP_DIRTY_SLICES: u32 = 40;

/// Which segment `release_pages` keeps for the pool.
#[derive(Clone, Copy, PartialEq)]
enum Keep {
    /// None: every segment goes to the retention policy.
    None,
    /// One, for a destroyed pool in the cache: the first with at most
    /// `KEEP_DIRTY_SLICES` dirty slices, if any.
    Light,
    /// The first one, for a reset pool, which will likely fill it again.
    First,
}
/// Bytes of an arena chunk (a power of two dividing a slice).
const CHUNK: usize = 1024;
/// Arena chunks a pool takes (the first holds the pool itself) before it
/// gets a heap of its own.
const CHUNK_BUDGET: usize = 4;
/// Chunks per arena span (one slice); chunk 0 holds the span's header.
const SPAN_CHUNKS: u32 = (SLICE_SIZE / CHUNK) as u32;

/// A cleanup registered with `ptrs_pool_cleanup_add` (a block of the
/// process heap, freed when it has run).
struct Cleanup {
    func: extern "C" fn(*mut c_void),
    arg: *mut c_void,
    next: *mut Cleanup,
}

/// The header of a chunk of the chunk arena (see [`arena_chunk`]): a
/// pool's first bytes of bump space. At the start of every chunk, so the
/// chunk, and its pool, is found from a block address by masking.
#[repr(C)]
struct Chunk {
    /// The pool holding the chunk; null while the chunk is free.
    pool: *mut Pool,
    /// The pool's next chunk (its list, newest first).
    next: *mut Chunk,
    /// Mixed into the check word of every block header carved from the
    /// chunk; new each time the chunk is handed out, so a stale pointer
    /// into a reused chunk does not pass the check. Never 0 while in use.
    salt: usize,
    /// The end of the carved part, once the pool has moved past the chunk.
    end: usize,
}

/// A pool. Lives at the start of its first arena chunk (`chunk` first, so
/// that chunk's header is the pool's own).
#[repr(C)]
pub struct Pool {
    chunk: Chunk,
    /// The pool's heap (its pages, segments and size-class queues), mapped
    /// when the pool first outgrows its arena chunks; until then the empty
    /// heap, whose direct table makes the fast path miss.
    pub heap: *mut Heap,
    /// Arena chunks, newest first (the last one is `chunk`).
    chunks: *mut Chunk,
    chunk_count: usize,
    /// The bump region (`bump_cur..bump_end`) is the newest arena chunk.
    in_arena: bool,
    /// The check-word key of the current bump region (page key ^ salt ^
    /// `BUMP_MAGIC`): a block's check word is its address ^ this.
    bump_key: usize,
    /// `self ^ POOL_MAGIC` while live, 0 once destroyed.
    magic: usize,
    flags: u32,
    /// `flags`, plus `MODE_LIMIT` when a limit is set and `MODE_SLOW`
    /// under memcheck: `BUMP` alone lets `alloc_fast` carve.
    mode: u32,
    /// `alloc_fast`'s malloc-like path serves requests below this many
    /// bytes: `DIRECT_MAX + 1` when `mode` is 0, else 0 (never). One
    /// compare with memory tests the mode and the size at once.
    direct_bound: usize,
    /// `alloc_fast`'s bump path serves requests of 1 to this many bytes:
    /// `BUMP_MAX` when `mode` is `BUMP` alone, else 0 (never).
    bump_bound: usize,
    /// Most bytes of blocks (usable sizes) the pool may hold; 0: no limit.
    /// In bump mode (`PTRS_POOL_BUMP`) a freed bump block is held until a
    /// reset or destroy, so it counts too.
    limit: usize,
    /// NUL-terminated.
    name: [u8; NAME_LEN],
    parent: *mut Pool,
    /// Child pools, newest first, linked through `sib_next`/`sib_prev`.
    children: *mut Pool,
    sib_next: *mut Pool,
    sib_prev: *mut Pool,
    /// Most recent first.
    cleanups: *mut Cleanup,
    /// The registry's list of live pools, or of cached destroyed ones.
    reg_next: *mut Pool,
    reg_prev: *mut Pool,
    /// Written by the allocating thread (or under the heap lock, SHARED);
    /// read by freeing threads (for `peak`).
    alloc_bytes: AtomicUsize,
    /// Blocks carved (bump and arena chunks) and huge blocks made: the
    /// blocks that no page's `used` counts. Live blocks of the pool's
    /// pages are counted from the pages by `stats`, so the fast path of a
    /// default-mode pool counts nothing but bytes.
    alloc_blocks: usize,
    /// The most bytes live so far, recorded when live bytes are about to
    /// go down (every free, by whichever thread, see `count_freed`) rather
    /// than at every allocation: live bytes only grow between frees, so
    /// the maximum is reached just before one, or now (`stats` takes the
    /// larger of this and the live bytes). With concurrent frees it may
    /// miss what others freed meanwhile, but never exceeds the true peak
    /// (see `count_freed`).
    peak: AtomicUsize,
    /// Written by any thread that frees a block of the pool.
    freed_bytes: AtomicUsize,
    /// Of the blocks `alloc_blocks` counts, those freed.
    freed_blocks: AtomicUsize,
    /// Bump-mode pools with a limit: bytes of freed bump blocks (which
    /// only a reset or destroy makes reusable), counted against the limit
    /// with the live bytes (see [`held_bytes`]).
    bump_freed: AtomicUsize,
    /// Bytes of bump blocks carved (arena-chunk and bump-chunk blocks,
    /// which no page's count covers), and of those freed: the process
    /// statistics add the difference of every live pool
    /// ([`bump_live_total`]). The first is written by the allocating
    /// thread only (or under a shared pool's lock), the second by any
    /// thread that frees such a block.
    bump_carved: AtomicUsize,
    bump_released: AtomicUsize,
    /// Huge blocks, linked through their segments' `next`/`prev`.
    huge: *mut Segment,
    huge_lock: AtomicBool,
    /// Walks of the huge list in progress (`visit`), under `huge_lock`:
    /// while there is one, a huge block freed by any thread stays on the
    /// list and mapped, marked `FLAG_FREED_IN_VISIT`, so that the walk can
    /// follow its link; the last walk to end frees such blocks.
    huge_visits: u32,
    /// Set when the last allocation was refused by `limit` (not for want
    /// of memory): the C API then does not call the out-of-memory handler.
    /// Atomic only because a shared pool's allocators read it after
    /// leaving the lock; a race there only mislabels one failure.
    limit_refused: AtomicBool,
    /// Bump chunks, newest first, linked through their pages' `next`.
    bump_chunks: *mut Page,
    bump_cur: usize,
    bump_end: usize,
    bump_count: usize,
}

const _: () = assert!(core::mem::size_of::<Pool>() + 128 <= CHUNK);

/// Live pools and the cache of destroyed ones, under `REG_LOCK`.
struct Registry {
    live: *mut Pool,
    live_count: usize,
    cache: *mut Pool,
    cache_count: usize,
}

struct RegCell(core::cell::UnsafeCell<Registry>);
// SAFETY: only accessed with REG_LOCK held (see `Reg`).
unsafe impl Sync for RegCell {}

static REG_LOCK: RawLock = RawLock::new();
static REG: RegCell = RegCell(core::cell::UnsafeCell::new(Registry {
    live: ptr::null_mut(),
    live_count: 0,
    cache: ptr::null_mut(),
    cache_count: 0,
}));

/// The registry lock held; released when dropped.
struct Reg;

impl Reg {
    fn lock() -> Self {
        REG_LOCK.lock();
        Reg
    }
    #[allow(clippy::mut_from_ref)]
    fn get(&self) -> &mut Registry {
        // SAFETY: `self` proves REG_LOCK is held.
        unsafe { &mut *REG.0.get() }
    }
}

impl Drop for Reg {
    fn drop(&mut self) {
        REG_LOCK.unlock();
    }
}

/// Before `fork` (every signal blocked, before the profiler's and ptrs's
/// global locks): holds the registry lock, the slow-path lock of every
/// live pool's heap, the arena lock and the arena heap's slow-path lock
/// across fork, in the order the pool paths take them, so that the child
/// finds no pool, registry or arena half-updated by a thread it does not
/// have, and none of their locks held forever (a reviewer's child hung in
/// `ptrs_pool_malloc` behind a slow-path lock that another parent thread
/// held). Time: proportional to the live pools.
pub fn fork_prepare() {
    core::mem::forget(Reg::lock());
    // SAFETY: REG_LOCK is held (just taken, released by `fork_done`).
    let first = unsafe { (*REG.0.get()).live };
    let mut pool = first;
    while !pool.is_null() {
        // SAFETY: live pools are valid, linked under the registry lock;
        // pool heaps are never unmapped while their pool lives.
        unsafe {
            let heap = (*pool).heap;
            if !heap::is_empty_heap(heap) {
                heap::lock_across_fork(heap);
            }
            pool = (*pool).reg_next;
        }
    }
    // Then every pool's huge-block list lock, taken after the heap locks as
    // `stats` takes them; no holder of one waits for any other lock. (A
    // tester's child hung in `ptrs_pool_stats_get` behind the lock that
    // the parent's freeing thread held in the free of a huge block.)
    pool = first;
    while !pool.is_null() {
        // SAFETY: as above.
        unsafe {
            lock_huge(&*pool);
            pool = (*pool).reg_next;
        }
    }
    core::mem::forget(ArenaGuard::lock());
    let arena = arena_heap();
    if !arena.is_null() {
        // SAFETY: the arena heap is never unmapped.
        unsafe { heap::lock_across_fork(arena) };
    }
}

/// After `fork`, in the parent (`child` false) or the child: releases what
/// [`fork_prepare`] took. In the parent a pool heap that another thread
/// gave a heap between the two (`ensure_heap`, which takes no lock) was not
/// taken and is left alone; in the child every live pool's heap lock is
/// cleared, as its holder can only be this thread or one that does not
/// exist there. Every live pool's huge-block list lock, taken by
/// `fork_prepare`, is released in both.
pub fn fork_done(child: bool) {
    let arena = arena_heap();
    if !arena.is_null() {
        // SAFETY: taken by `fork_prepare`.
        unsafe { heap::unlock_after_fork(arena) };
    }
    ARENA_LOCK.unlock();
    // SAFETY: REG_LOCK is held since `fork_prepare`.
    let mut pool = unsafe { (*REG.0.get()).live };
    while !pool.is_null() {
        // SAFETY: as in `fork_prepare`.
        unsafe {
            let heap = (*pool).heap;
            if !heap::is_empty_heap(heap) && (child || heap::slow_lock_held_here(heap)) {
                heap::unlock_after_fork(heap);
            }
            (*pool).huge_lock.store(false, Ordering::Release);
            pool = (*pool).reg_next;
        }
    }
    REG_LOCK.unlock();
}

// ---------------------------------------------------------------------------
// The chunk arena.
//
// A small pool costs one chunk of `CHUNK` bytes: the pool struct and its
// first bump space. Chunks are carved from one-slice spans of a dedicated
// heap owned by no thread (the arena heap), flagged `FLAG_BUMP` with
// 16-byte granules, so `free::block_info` takes a chunk's block for a bump
// block and `bump_usable` checks its header; the pool is found from the
// chunk header (the block address masked to `CHUNK`). The idea is nginx's
// small pool blocks and APR's first 8 KiB node, kept as ordinary ptrs
// blocks. A pool that outgrows `CHUNK_BUDGET` chunks maps its own heap.

/// The header of an arena span, in its chunk 0 (whose `pool` word is 0, so
/// no block is ever found there).
#[repr(C)]
struct SpanHdr {
    no_pool: usize,
    page: *mut Page,
    /// Freed chunks of this span.
    free: *mut Chunk,
    /// Chunks handed out.
    used: u32,
    /// The next never-used chunk index.
    fresh: u32,
    /// Spans with a free chunk (`Arena::avail`).
    next: *mut SpanHdr,
    prev: *mut SpanHdr,
}

struct Arena {
    heap: *mut Heap,
    avail: *mut SpanHdr,
    avail_count: usize,
    salt: usize,
}

struct ArenaCell(core::cell::UnsafeCell<Arena>);
// SAFETY: only accessed with ARENA_LOCK held.
unsafe impl Sync for ArenaCell {}

static ARENA_LOCK: RawLock = RawLock::new();
static ARENA: ArenaCell = ArenaCell(core::cell::UnsafeCell::new(Arena {
    heap: ptr::null_mut(),
    avail: ptr::null_mut(),
    avail_count: 0,
    salt: 0,
}));
/// The arena heap, once made (read without the lock by `free`).
static ARENA_HEAP: core::sync::atomic::AtomicPtr<Heap> = core::sync::atomic::AtomicPtr::new(ptr::null_mut());
/// The arena heap's `pool` (never dereferenced: `free` routes blocks of a
/// heap with a non-null `pool` here, and `pool_of_block` reads the chunk).
static ARENA_MARK: u8 = 0;

#[inline]
fn arena_heap() -> *mut Heap {
    ARENA_HEAP.load(Ordering::Acquire)
}

/// The arena, locked; released when dropped.
struct ArenaGuard;

impl ArenaGuard {
    fn lock() -> Self {
        ARENA_LOCK.lock();
        ArenaGuard
    }
    #[allow(clippy::mut_from_ref)]
    fn get(&self) -> &mut Arena {
        // SAFETY: `self` proves ARENA_LOCK is held.
        unsafe { &mut *ARENA.0.get() }
    }
}

impl Drop for ArenaGuard {
    fn drop(&mut self) {
        ARENA_LOCK.unlock();
    }
}

fn avail_unlink(a: &mut Arena, s: *mut SpanHdr) {
    // SAFETY: `s` is on the avail list (arena lock held by the caller).
    unsafe {
        let (prev, next) = ((*s).prev, (*s).next);
        if prev.is_null() {
            a.avail = next;
        } else {
            (*prev).next = next;
        }
        if !next.is_null() {
            (*next).prev = prev;
        }
        (*s).next = ptr::null_mut();
        (*s).prev = ptr::null_mut();
    }
    a.avail_count -= 1;
}

fn avail_push(a: &mut Arena, s: *mut SpanHdr) {
    // SAFETY: `s` is a live span header not on the list (arena lock held).
    unsafe {
        (*s).prev = ptr::null_mut();
        (*s).next = a.avail;
        if !a.avail.is_null() {
            (*a.avail).prev = s;
        }
    }
    a.avail = s;
    a.avail_count += 1;
}

/// A chunk for `pool` (its header written, salt new), or null when out of
/// memory. Time: constant (one span claimed every 63 chunks).
fn arena_chunk(pool: *mut Pool) -> *mut Chunk {
    let g = ArenaGuard::lock();
    let a = g.get();
    if a.heap.is_null() {
        let size = (core::mem::size_of::<Heap>() + os::OS_PAGE_SIZE - 1) & !(os::OS_PAGE_SIZE - 1);
        let h = os::map(size) as *mut Heap;
        if h.is_null() {
            return ptr::null_mut();
        }
        // SAFETY: a fresh mapping large enough for a Heap, initialised from
        // the template; published once complete.
        unsafe {
            ptr::copy_nonoverlapping(EMPTY_HEAP.get(), h, 1);
            (*h).owned = true;
            (*h).pool = (&raw const ARENA_MARK) as *mut Pool;
        }
        a.heap = h;
        ARENA_HEAP.store(h, Ordering::Release);
    }
    if a.avail.is_null() {
        // SAFETY: the arena heap is ours under the arena lock; its slow
        // lock guards its segments against a purging thread.
        let page = unsafe {
            let _l = SlowLock::lock(a.heap);
            heap::alloc_span(&mut *a.heap, 1)
        };
        if page.is_null() {
            return ptr::null_mut();
        }
        // SAFETY: a claimed span of the arena heap, ours.
        unsafe {
            let pg = &mut *page;
            pg.bin = NO_BIN;
            pg.flags |= FLAG_BUMP;
            pg.set_block_size(MIN_ALIGN);
            pg.reserved = (SLICE_SIZE / MIN_ALIGN) as u32;
            pg.capacity = pg.reserved;
            pg.used = 1;
            let s = pg.start as *mut SpanHdr;
            s.write(SpanHdr {
                no_pool: 0,
                page,
                free: ptr::null_mut(),
                used: 0,
                fresh: 1,
                next: ptr::null_mut(),
                prev: ptr::null_mut(),
            });
            avail_push(a, s);
        }
    }
    let s = a.avail;
    a.salt = a.salt.wrapping_add(0x9e37_79b9_7f4a_7c15);
    if a.salt == 0 {
        a.salt = 0x9e37_79b9_7f4a_7c15;
    }
    // SAFETY: `s` is a live span with a free chunk (it is on the list).
    unsafe {
        let sp = &mut *s;
        let c = if sp.free.is_null() {
            let c = (s as usize + sp.fresh as usize * CHUNK) as *mut Chunk;
            sp.fresh += 1;
            c
        } else {
            let c = sp.free;
            sp.free = (*c).next;
            c
        };
        sp.used += 1;
        if sp.used == SPAN_CHUNKS - 1 {
            avail_unlink(a, s);
        }
        c.write(Chunk { pool, next: ptr::null_mut(), salt: a.salt, end: 0 });
        c
    }
}

/// Gives a chunk back to the arena. A span left with no chunk in use goes
/// back to the arena heap's segment (its memory purged; an empty segment
/// to the retention policy) unless it is the only one with room. Time:
/// constant.
///
/// # Safety
/// `c` must be a chunk from `arena_chunk` that nothing uses any more.
unsafe fn arena_free(c: *mut Chunk) {
    let g = ArenaGuard::lock();
    let a = g.get();
    // SAFETY: as the caller guarantees; the span header is at the start of
    // the chunk's slice.
    unsafe {
        let s = (c as usize & !(SLICE_SIZE - 1)) as *mut SpanHdr;
        let sp = &mut *s;
        (*c).pool = ptr::null_mut();
        (*c).salt = 0;
        (*c).next = sp.free;
        sp.free = c;
        if sp.used == SPAN_CHUNKS - 1 {
            avail_push(a, s);
        }
        sp.used -= 1;
        if sp.used == 0 && a.avail_count > 1 {
            avail_unlink(a, s);
            let page = sp.page;
            let heap = &mut *a.heap;
            let _l = SlowLock::lock(heap);
            let seg = Segment::of_unchecked(page as usize);
            segment::free_span(&mut *seg, page);
            heap::note_span_freed(heap, seg);
            segment::purge_free_slices(&mut *seg);
            if (*seg).is_empty() {
                heap::unlink_segment(heap, seg);
                segment::release(seg);
            }
        }
    }
}

/// The pool whose chunk holds `addr`, if `page` is an arena span; the
/// chunk's salt with it.
#[inline]
fn arena_chunk_of(page: &Page, addr: usize) -> Option<(*mut Pool, usize, usize)> {
    if page.heap != arena_heap() {
        return None;
    }
    let c = (addr & !(CHUNK - 1)) as *const Chunk;
    // SAFETY: `addr` lies in a live arena span (the caller's page), so the
    // chunk header at its CHUNK boundary is mapped.
    unsafe { Some(((*c).pool, (*c).salt, c as usize + CHUNK)) }
}

/// Options of [`create`].
pub struct Options<'a> {
    pub name: &'a [u8],
    pub limit: usize,
    pub flags: u32,
    pub parent: *mut Pool,
}

/// Why [`create`] failed.
pub enum CreateError {
    /// Unknown flags or a parent that is not a live pool (EINVAL).
    Invalid,
    /// Out of memory (ENOMEM).
    NoMemory,
}

/// True if `pool` is a live pool.
///
/// # Safety
/// `pool` must be null or point to readable memory of at least a `Pool`
/// (a pool handed out by `create`, live or destroyed while cached).
pub unsafe fn is_live(pool: *const Pool) -> bool {
    // SAFETY: the caller guarantees the memory is readable.
    !pool.is_null() && unsafe { (*pool).magic } == pool as usize ^ POOL_MAGIC
}

/// Whether a whole `Pool` at `p` would lie in ptrs's pool arena, the
/// memory pools are made in (so reading it is safe, whatever it holds):
/// the segment map and the page's heap are read, nothing at `p`. A parent
/// given to `ptrs_pool_create` is checked so before its magic is read: an
/// address of unmapped memory crashed there (a fresh tester), where the
/// header promises EINVAL.
fn in_pool_arena(p: *const Pool) -> bool {
    let addr = p as usize;
    let base = addr & !(segment::SEGMENT_SIZE - 1);
    match crate::segment_map::granule_if_mapped(addr) {
        // The map's answer is a live header for any address (its index
        // wraps): it must be the segment holding `addr`.
        Some(g) if g == base && addr - base + core::mem::size_of::<Pool>() <= segment::SEGMENT_SIZE => {
            // SAFETY: a live segment header is at `base` (the map says so),
            // and its page table covers every slice of the segment.
            unsafe { (*Segment::of_unchecked(g).cast_const()).page_of(addr).as_ref() }
                .is_some_and(|page| page.heap == arena_heap())
        }
        _ => false,
    }
}

fn empty_page() -> *mut Page {
    // SAFETY: EMPTY_HEAP is never written; its direct table points at the
    // static empty page.
    unsafe { (*EMPTY_HEAP.get()).pages_direct[0] }
}

/// Resets a heap's queues and tables to "no pages" (keeping its lock,
/// counters and `pool`), with `segments` as its only segments.
fn clear_heap(heap: &mut Heap, segments: *mut Segment) {
    heap.pages_direct = [empty_page(); crate::size_class::DIRECT_COUNT];
    heap.bins = [PageQueue { first: ptr::null_mut(), last: ptr::null_mut() }; BIN_COUNT];
    heap.pinned = [ptr::null_mut(); BIN_COUNT];
    heap.full = PageQueue { first: ptr::null_mut(), last: ptr::null_mut() };
    heap.notify.store(ptr::null_mut(), Ordering::Relaxed);
    heap.segments = segments;
    heap.span_hints = [ptr::null_mut(); heap::SPAN_HINTS];
    heap.no_fit_count = usize::MAX;
    heap.no_fit_stop = ptr::null_mut();
    heap.span_cursor = ptr::null_mut();
    heap.purge_deadline = 0;
}

/// Makes a pool. Time: constant (a cached pool, or one mapping).
pub fn create(opts: &Options<'_>) -> Result<*mut Pool, CreateError> {
    if opts.flags & !KNOWN_FLAGS != 0 {
        return Err(CreateError::Invalid);
    }
    crate::init::ensure();
    let cached = {
        let r = Reg::lock();
        let reg = r.get();
        // SAFETY: under the registry lock; `parent` is checked before use.
        if !opts.parent.is_null() && !(in_pool_arena(opts.parent) && unsafe { is_live(opts.parent) }) {
            return Err(CreateError::Invalid);
        }
        let pool = reg.cache;
        if !pool.is_null() {
            // SAFETY: cached pools are valid, linked under the lock.
            reg.cache = unsafe { (*pool).reg_next };
            reg.cache_count -= 1;
        }
        pool
    };
    let pool = if cached.is_null() {
        let c = arena_chunk(ptr::null_mut());
        if c.is_null() {
            return Err(CreateError::NoMemory);
        }
        let pool = c as *mut Pool;
        // SAFETY: the chunk is ours and large enough for a Pool (checked at
        // compile time); every field is written here or below.
        unsafe {
            (*pool).chunk.pool = pool;
            (*pool).heap = EMPTY_HEAP.get();
            (*pool).reg_next = ptr::null_mut();
            (*pool).reg_prev = ptr::null_mut();
            (*pool).parent = ptr::null_mut();
            (*pool).magic = 0;
            (&raw mut (*pool).freed_bytes).write(AtomicUsize::new(0));
            (&raw mut (*pool).freed_blocks).write(AtomicUsize::new(0));
            (&raw mut (*pool).bump_freed).write(AtomicUsize::new(0));
            (&raw mut (*pool).bump_carved).write(AtomicUsize::new(0));
            (&raw mut (*pool).bump_released).write(AtomicUsize::new(0));
            (&raw mut (*pool).huge_lock).write(AtomicBool::new(false));
            (&raw mut (*pool).huge_visits).write(0);
            (&raw mut (*pool).limit_refused).write(AtomicBool::new(false));
            (&raw mut (*pool).alloc_bytes).write(AtomicUsize::new(0));
            (&raw mut (*pool).peak).write(AtomicUsize::new(0));
        }
        pool
    } else {
        cached
    };
    // A shared pool's lock is its heap's: such a pool gets its heap now.
    // SAFETY: `pool` is ours alone until published below.
    if opts.flags & SHARED != 0 && !unsafe { ensure_heap(&mut *pool) } {
        // SAFETY: as above; nothing else refers to the chunk.
        unsafe { discard(pool) };
        return Err(CreateError::NoMemory);
    }
    // SAFETY: `pool` is ours alone until published below.
    unsafe {
        let p = &mut *pool;
        p.flags = opts.flags;
        p.limit = opts.limit;
        // Memcheck mode: every allocation takes the ABI's slow path, which
        // tells memcheck about the block.
        let slow = if crate::valgrind::active() { MODE_SLOW } else { 0 };
        p.mode = opts.flags | if opts.limit != 0 { MODE_LIMIT } else { 0 } | slow;
        let n = opts.name.len().min(NAME_LEN - 1);
        p.name = [0; NAME_LEN];
        p.name[..n].copy_from_slice(&opts.name[..n]);
        p.children = ptr::null_mut();
        p.cleanups = ptr::null_mut();
        p.sib_next = ptr::null_mut();
        p.sib_prev = ptr::null_mut();
        p.alloc_bytes.store(0, Ordering::Relaxed);
        p.alloc_blocks = 0;
        p.peak.store(0, Ordering::Relaxed);
        p.freed_bytes.store(0, Ordering::Relaxed);
        p.freed_blocks.store(0, Ordering::Relaxed);
        p.bump_freed.store(0, Ordering::Relaxed);
        p.bump_carved.store(0, Ordering::Relaxed);
        p.bump_released.store(0, Ordering::Relaxed);
        p.huge = ptr::null_mut();
        p.bump_chunks = ptr::null_mut();
        p.bump_count = 0;
        p.direct_bound = if p.mode == 0 { DIRECT_MAX + 1 } else { 0 };
        p.bump_bound = if p.mode == BUMP { BUMP_MAX } else { 0 };
        start_arena(p);
        p.magic = pool as usize ^ POOL_MAGIC;
    }
    let r = Reg::lock();
    let reg = r.get();
    // SAFETY: under the registry lock; the parent was live above and a
    // parent is only destroyed under this lock... but it may have been
    // destroyed in between: check again.
    unsafe {
        let parent = opts.parent;
        if !parent.is_null() && !is_live(parent) {
            (*pool).magic = 0;
            (*pool).reg_next = reg.cache;
            reg.cache = pool;
            reg.cache_count += 1;
            return Err(CreateError::Invalid);
        }
        (*pool).parent = parent;
        if !parent.is_null() {
            (*pool).sib_next = (*parent).children;
            if !(*parent).children.is_null() {
                (*(*parent).children).sib_prev = pool;
            }
            (*parent).children = pool;
        }
        (*pool).reg_prev = ptr::null_mut();
        (*pool).reg_next = reg.live;
        if !reg.live.is_null() {
            (*reg.live).reg_prev = pool;
        }
        reg.live = pool;
        reg.live_count += 1;
    }
    Ok(pool)
}

/// Destroys a live pool: its children (newest first), then its cleanups
/// (last added first), then every block at once.
///
/// # Safety
/// `pool` must be live; no other thread may use it or free its blocks
/// during the call, nor use them afterwards.
pub unsafe fn destroy(pool: *mut Pool) {
    // SAFETY: the caller guarantees `pool` is live and ours.
    unsafe {
        // Children (newest first), then cleanups (last added first), while
        // the pool is live; then, under the same registry lock that saw
        // none left, the pool is unlinked: one lock round trip for a pool
        // without children or cleanups.
        let keep = loop {
            let r = Reg::lock();
            let child = (*pool).children;
            if !child.is_null() {
                drop(r);
                destroy_tree(child);
                continue;
            }
            if !(*pool).cleanups.is_null() {
                drop(r);
                run_cleanups(pool);
                continue;
            }
            let reg = r.get();
            let p = &mut *pool;
            p.magic = 0;
            // No fast path for a destroyed pool: a later allocation from it
            // (while it is cached) reaches the check and is reported.
            p.mode = MODE_SLOW;
            p.direct_bound = 0;
            p.bump_bound = 0;
            if !p.parent.is_null() {
                unlink_child(p.parent, pool);
                p.parent = ptr::null_mut();
            }
            if p.reg_prev.is_null() {
                reg.live = p.reg_next;
            } else {
                (*p.reg_prev).reg_next = p.reg_next;
            }
            if !p.reg_next.is_null() {
                (*p.reg_next).reg_prev = p.reg_prev;
            }
            reg.live_count -= 1;
            break reg.cache_count < CACHE_MAX;
        };
        // Memcheck mode: its blocks are freed for memcheck now, after its
        // children (each through this same path) and its cleanups, which
        // may still read them.
        crate::valgrind::pool_release(pool);
        release_pages(pool, if keep { Keep::Light } else { Keep::None });
        release_chunks(&mut *pool);
        let r = Reg::lock();
        let reg = r.get();
        if reg.cache_count < CACHE_MAX {
            (*pool).reg_next = reg.cache;
            reg.cache = pool;
            reg.cache_count += 1;
            return;
        }
        drop(r);
        if !(*(*pool).heap).segments.is_null() {
            release_pages(pool, Keep::None);
        }
        discard(pool);
    }
}

/// Destroys `top` and every pool below it, in [`destroy`]'s order (each
/// pool's children newest first, then its cleanups), without a level of
/// recursion per level of nesting: it walks down to a pool without
/// children, destroys that one, and goes back up to its parent. A chain
/// of nested pools of any depth needs no more stack than one pool (a
/// recursive walk overflowed a 256 KiB thread stack at about 5 500
/// levels, and the main thread's 8 MiB at about 170 000: tester). Only
/// children that a cleanup creates while its pool is destroyed are
/// destroyed one level deeper.
///
/// # Safety
/// As [`destroy`], for `top` and all its descendants.
unsafe fn destroy_tree(top: *mut Pool) {
    let mut cur = top;
    loop {
        // SAFETY: `cur` is `top` or one of its descendants, all live; the
        // links are read under the registry lock that guards them.
        let (child, parent) = unsafe {
            let _r = Reg::lock();
            ((*cur).children, (*cur).parent)
        };
        if !child.is_null() {
            cur = child;
            continue;
        }
        // SAFETY: `cur` is live and has no children now.
        unsafe { destroy(cur) };
        if cur == top {
            return;
        }
        // Its parent is an ancestor below or at `top`, still live.
        cur = parent;
    }
}

/// Makes the bump region the pool's first chunk, after the pool struct,
/// with a new salt (stale pointers from a previous life do not pass the
/// header check).
fn start_arena(p: &mut Pool) {
    let first = &raw mut p.chunk;
    let a = ARENA_LOCK_SALT.fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed) | 1;
    p.chunk.salt = a;
    p.chunk.next = ptr::null_mut();
    p.chunk.end = 0;
    p.chunks = first;
    p.chunk_count = 1;
    p.in_arena = true;
    p.bump_cur = first as usize + ((core::mem::size_of::<Pool>() + MIN_ALIGN - 1) & !(MIN_ALIGN - 1));
    p.bump_end = first as usize + CHUNK;
    p.bump_key = chunk_key(first as usize, a) ^ BUMP_MAGIC;
}

static ARENA_LOCK_SALT: AtomicUsize = AtomicUsize::new(0x2545_f491_4f6c_dd1d);

/// The check-word key of blocks in the arena chunk at `c` with `salt`.
fn chunk_key(c: usize, salt: usize) -> usize {
    let seg = Segment::of_unchecked(c);
    // SAFETY: `c` lies in a live arena span, whose descriptor is mapped.
    unsafe { (*(*seg).page_of(c)).key ^ salt }
}

/// Frees a pool struct that is no longer live or cached: its heap's
/// mapping (holding no segment any more) and its chunk.
///
/// # Safety
/// `pool` must be unreachable from the registry and hold no pages.
unsafe fn discard(pool: *mut Pool) {
    // SAFETY: as the caller guarantees.
    unsafe {
        release_chunks(&mut *pool);
        let h = (*pool).heap;
        if !heap::is_empty_heap(h) {
            os::unmap(h as *mut u8, heap_map_size());
        }
        arena_free(&raw mut (*pool).chunk);
    }
}

fn heap_map_size() -> usize {
    (core::mem::size_of::<Heap>() + os::OS_PAGE_SIZE - 1) & !(os::OS_PAGE_SIZE - 1)
}

/// Maps the pool's own heap if it has none yet. False when out of memory.
///
/// # Safety
/// The pool must be used by the calling thread alone (or locked).
unsafe fn ensure_heap(p: &mut Pool) -> bool {
    if !heap::is_empty_heap(p.heap) {
        return true;
    }
    let h = os::map(heap_map_size()) as *mut Heap;
    if h.is_null() {
        return false;
    }
    // SAFETY: a fresh mapping large enough for a Heap, from the template.
    unsafe {
        ptr::copy_nonoverlapping(EMPTY_HEAP.get(), h, 1);
        (*h).owned = true;
        (*h).pool = p;
    }
    p.heap = h;
    true
}

/// Gives back the pool's arena chunks but the first (which holds the pool)
/// and makes that one the bump region again. Time: proportional to chunks.
///
/// # Safety
/// No block of the chunks may be in use any more.
unsafe fn release_chunks(p: &mut Pool) {
    let first = &raw mut p.chunk;
    let mut c = p.chunks;
    while !c.is_null() && c != first {
        // SAFETY: the pool's chunks, ours (caller).
        unsafe {
            let next = (*c).next;
            arena_free(c);
            c = next;
        }
    }
    start_arena(p);
}

/// Empties a live pool as `destroy` does, keeping the pool (and one of its
/// segments).
///
/// # Safety
/// As `destroy`, except that the pool stays usable.
pub unsafe fn reset(pool: *mut Pool) {
    // SAFETY: the caller guarantees `pool` is live and ours.
    unsafe {
        run_children_and_cleanups(pool);
        crate::valgrind::pool_release(pool); // as in `destroy`
        release_pages(pool, Keep::First);
        let p = &mut *pool;
        release_chunks(p);
        p.alloc_bytes.store(0, Ordering::Relaxed);
        p.alloc_blocks = 0;
        p.peak.store(0, Ordering::Relaxed);
        p.freed_bytes.store(0, Ordering::Relaxed);
        p.freed_blocks.store(0, Ordering::Relaxed);
        p.bump_freed.store(0, Ordering::Relaxed);
        p.bump_carved.store(0, Ordering::Relaxed);
        p.bump_released.store(0, Ordering::Relaxed);
    }
}

/// # Safety
/// `parent` must hold `child` on its children list; registry lock held.
unsafe fn unlink_child(parent: *mut Pool, child: *mut Pool) {
    // SAFETY: as the caller guarantees.
    unsafe {
        let c = &mut *child;
        if c.sib_prev.is_null() {
            (*parent).children = c.sib_next;
        } else {
            (*c.sib_prev).sib_next = c.sib_next;
        }
        if !c.sib_next.is_null() {
            (*c.sib_next).sib_prev = c.sib_prev;
        }
        c.sib_next = ptr::null_mut();
        c.sib_prev = ptr::null_mut();
    }
}

/// # Safety
/// `pool` must be live and ours.
unsafe fn run_children_and_cleanups(pool: *mut Pool) {
    // SAFETY: as the caller guarantees; children are live pools.
    unsafe {
        loop {
            let child = {
                let _r = Reg::lock();
                (*pool).children
            };
            if child.is_null() {
                break;
            }
            destroy_tree(child);
        }
        run_cleanups(pool);
    }
}

/// Runs and frees the pool's cleanups, last added first.
///
/// # Safety
/// `pool` must be live and ours.
unsafe fn run_cleanups(pool: *mut Pool) {
    // SAFETY: as the caller guarantees; each cleanup is a block of ours.
    unsafe {
        loop {
            let c = (*pool).cleanups;
            if c.is_null() {
                break;
            }
            (*pool).cleanups = (*c).next;
            // The record is the engine's memory, which memcheck may see as
            // freed (it is not a block the program allocated): read before
            // the program's code runs with errors reported.
            let (func, arg) = ((*c).func, (*c).arg);
            {
                // The program's code: memcheck reports its errors even
                // inside the engine's quiet destroy or reset.
                let _loud = crate::valgrind::Loud::new();
                func(arg);
            }
            free::free(c as *mut u8);
        }
    }
}

/// Gives back every block of the pool: huge blocks are unmapped (or
/// cached), every page descriptor of its segments is cleared, and the
/// segments go to the retention policy, but the one `keep` picks.
///
/// # Safety
/// `pool` must be ours; no block of it may be in use any more.
unsafe fn release_pages(pool: *mut Pool, keep: Keep) {
    // SAFETY: as the caller guarantees.
    unsafe {
        let p = &mut *pool;
        p.bump_chunks = ptr::null_mut();
        p.bump_count = 0;
        if heap::is_empty_heap(p.heap) {
            return;
        }
        let _l = SlowLock::lock(p.heap);
        let mut h = p.huge;
        p.huge = ptr::null_mut();
        while !h.is_null() {
            let next = (*h).next;
            (*h).heap = ptr::null_mut();
            (*h).next = ptr::null_mut();
            (*h).prev = ptr::null_mut();
            huge::free(h);
            h = next;
        }
        let now = os::now_ms();
        let mut seg = (*p.heap).segments;
        let mut kept: *mut Segment = ptr::null_mut();
        while !seg.is_null() {
            let next = (*seg).next;
            let s = &mut *seg;
            let mut used = s.used_slices & !1;
            while used != 0 {
                let i = used.trailing_zeros() as usize;
                used &= used - 1;
                let descr = &raw mut s.pages[i];
                descr.write(Page::empty());
                (*descr).head = descr;
            }
            s.used_slices = 1;
            s.freed_at = now;
            s.purge_candidates = 0;
            s.next = ptr::null_mut();
            s.prev = ptr::null_mut();
            let light = (s.dirty_slices & !1).count_ones() <= KEEP_DIRTY_SLICES;
            if kept.is_null() && (keep == Keep::First || (keep == Keep::Light && light)) {
                kept = seg;
            } else {
                segment::release(seg);
            }
            seg = next;
        }
        clear_heap(&mut *p.heap, kept);
    }
}

// ---------------------------------------------------------------------------
// Allocation.

/// Bytes of live blocks now.
#[inline(always)]
fn live_bytes(p: &Pool) -> usize {
    p.alloc_bytes.load(Ordering::Relaxed).wrapping_sub(p.freed_bytes.load(Ordering::Relaxed))
}

/// What the pool's limit is compared with: the live bytes, plus the freed
/// bump blocks, whose memory the pool holds until a reset or destroy (a
/// bump pool that allocated and freed 200 MiB under a 1 MiB limit held
/// all of it: tester).
fn held_bytes(p: &Pool) -> usize {
    live_bytes(p).saturating_add(p.bump_freed.load(Ordering::Relaxed))
}

/// Counts `usable` bytes allocated from a page of the pool heap (whose
/// `used` counts the block).
#[inline(always)]
fn account(p: &mut Pool, usable: usize) {
    // A load and a store, not a read-modify-write: only this thread (or
    // the holder of a shared pool's lock) writes it.
    p.alloc_bytes.store(p.alloc_bytes.load(Ordering::Relaxed).wrapping_add(usable), Ordering::Relaxed);
}

/// Counts a block of `usable` bytes that no page's `used` counts: carved
/// from a bump region, or huge.
#[inline(always)]
fn account_carved(p: &mut Pool, usable: usize) {
    account(p, usable);
    p.alloc_blocks += 1;
}

/// Records `live` (the bytes live just before a free) in the pool's peak.
#[inline(always)]
fn note_peak(p: &Pool, live: usize) {
    // A free never makes live bytes negative: the block was counted
    // allocated before the free could see it (`isize` guards the rest).
    if live > p.peak.load(Ordering::Relaxed) && (live as isize) >= 0 {
        p.peak.fetch_max(live, Ordering::Relaxed);
    }
}

/// Counts `bytes` freed by any thread, recording the peak first.
///
/// The allocated bytes are read before the freed ones are counted (the
/// count's release keeps the read before it), so the live bytes noted
/// are at most those live just before this free: frees by other threads
/// between the two can only lower the figure. Read after, as they were, a
/// freeing thread that was preempted between the two subtracted an old
/// count of freed bytes from a new count of allocated ones, and the peak
/// came out 10 to 100 times the truth (a tester: 3 threads freeing one
/// thread's blocks, 1.1 MB at most live, peak 120 MB).
#[inline(always)]
fn count_freed(p: &Pool, bytes: usize) {
    let allocated = p.alloc_bytes.load(Ordering::Relaxed);
    let before = p.freed_bytes.fetch_add(bytes, Ordering::AcqRel);
    note_peak(p, allocated.wrapping_sub(before));
}

/// `count_freed` for a block counted by `account_carved`.
#[inline(always)]
fn count_freed_carved(p: &Pool, bytes: usize) {
    count_freed(p, bytes);
    p.freed_blocks.fetch_add(1, Ordering::Relaxed);
}

/// Allocates `size` bytes (16-byte aligned) from a live pool. Null when
/// out of memory or over the pool's limit.
///
/// # Safety
/// `pool` must be live; without `SHARED`, no other thread may allocate from
/// it at the same time.
#[inline(always)]
pub unsafe fn alloc(pool: *mut Pool, size: usize) -> *mut u8 {
    // SAFETY: as the caller guarantees.
    let b = unsafe { alloc_fast(pool, size) };
    if !b.is_null() {
        return b;
    }
    // SAFETY: as above.
    unsafe { alloc_slow(pool, size, MIN_ALIGN) }
}

/// The fast paths of `alloc`: a block popped from the pool heap's direct
/// table as malloc pops one (default mode), or carved from the current
/// bump region (bump mode). Null: take `alloc_slow` (or, in the C API, its
/// memcheck-aware wrapper).
///
/// No thread identity is checked: the caller is the only thread allocating
/// from the pool now, and no other path writes a pool page's free list or
/// its count of blocks in use (every free of a pool block is a remote free,
/// see `free_block`), so a pool handed to another thread (with the
/// synchronisation that hands it) needs nothing more here.
///
/// # Safety
/// As `alloc`.
#[inline(always)]
pub unsafe fn alloc_fast(pool: *mut Pool, size: usize) -> *mut u8 {
    // SAFETY: as the caller guarantees.
    let p = unsafe { &mut *pool };
    if size < p.direct_bound {
        // SAFETY: the heap is the empty heap or the pool's, used by this
        // thread alone (caller); the direct table always points at a valid
        // page; `direct_bound` is at most `DIRECT_MAX + 1`, so the index is
        // at most `DIRECT_MAX / MIN_ALIGN`, inside the table.
        unsafe {
            let page = *(*p.heap).pages_direct.get_unchecked((size + MIN_ALIGN - 1) / MIN_ALIGN);
            let block = (*page).free;
            // The list ends at the page descriptor (`page::list_end`).
            if block as usize != page as usize {
                // Null when the list is corrupted: the slow path reports it.
                let b = heap::try_pop_block(&mut *page, block);
                if !b.is_null() {
                    account(p, (*page).block_size);
                }
                return b;
            }
        }
    } else {
        // Bump mode: carve from the current region (an arena chunk or a
        // bump chunk of the pool heap) when it has room. `size - 1` below
        // `bump_bound` tests the mode, the size and rounds it in one go (0
        // goes to the slow path).
        let m = size.wrapping_sub(1);
        if m < p.bump_bound {
            let usable = (m | (MIN_ALIGN - 1)) + 1;
            if p.bump_cur + HDR + usable <= p.bump_end {
                // SAFETY: the region is the pool's and has room.
                let b = unsafe { bump_carve(p, usable) };
                account_carved(p, usable);
                return b;
            }
        }
    }
    ptr::null_mut()
}

/// Allocates with any alignment (a power of two), taking the lock of a
/// shared pool.
///
/// # Safety
/// As `alloc`.
#[inline(never)]
pub unsafe fn alloc_slow(pool: *mut Pool, size: usize, align: usize) -> *mut u8 {
    // SAFETY: as the caller guarantees.
    unsafe {
        let p = &mut *pool;
        if size < p.direct_bound && align <= MIN_ALIGN {
            let b = collect_direct(p, size);
            if !b.is_null() {
                return b;
            }
        }
        let _l = if p.flags & SHARED != 0 { Some(SlowLock::lock(p.heap)) } else { None };
        alloc_inner(p, size, align)
    }
}

/// The fast path's miss in default mode, when its page's free list ran
/// out: every free of a pool block is remote (see `free_block`), so the
/// blocks freed since are on the page's remote list. Takes them back and
/// pops one, without the heap's refill (its lock and queue walk). Null:
/// none came back (or the page is the empty page), refill.
///
/// Without the heap's slow-path lock, which `heap::refill` takes to collect:
/// the page is the head of its queue, whose lists other threads leave to
/// the allocating thread (`heap::collect_freed_queued_pages` skips queue
/// heads). The one other reader of a head's remote list,
/// `heap::purge_pending_blocks` (malloc_trim, under that lock), purges the
/// inside of blocks of two OS pages and more only, never of the classes
/// served here (asserted below), so a block taken back here is never
/// purged while in use.
///
/// # Safety
/// As `alloc`, and `size` below `p.direct_bound`.
unsafe fn collect_direct(p: &mut Pool, size: usize) -> *mut u8 {
    // SAFETY: as the caller guarantees; the static empty page's list and
    // count are always 0, so it is never written.
    unsafe {
        let page = &mut *(*p.heap).pages_direct[(size + MIN_ALIGN - 1) / MIN_ALIGN];
        if page::at_end(page, page.free) && page.thread_free.load(Ordering::Relaxed) & page::TF_LIST != 0 {
            // Not added to the heap's `remote_collected`: that counter is
            // written under the slow-path lock, which this path does not
            // take.
            page::collect_remote(page, false);
            if !page::at_end(page, page.free) {
                let b = heap::pop(page);
                account(p, page.block_size);
                return b;
            }
        }
    }
    ptr::null_mut()
}

const _: () = assert!(DIRECT_MAX < 2 * os::OS_PAGE_SIZE);

fn large_limit() -> usize {
    options::large_threshold().min(LARGE_MAX)
}

#[inline(always)]
fn round16(n: usize) -> usize {
    (n + MIN_ALIGN - 1) & !(MIN_ALIGN - 1)
}

/// # Safety
/// `p` must be live and used by the calling thread alone (or locked).
unsafe fn alloc_inner(p: &mut Pool, size: usize, align: usize) -> *mut u8 {
    p.limit_refused.store(false, Ordering::Relaxed);
    if size > crate::alloc::MAX_REQUEST || align > crate::alloc::MAX_REQUEST / 2 {
        // Beyond any limit too: a pool with one refuses it as its limit,
        // without the out-of-memory handler (ptrs.h), as it refuses any
        // other request above it.
        if p.limit != 0 && size > p.limit {
            p.limit_refused.store(true, Ordering::Relaxed);
        }
        return ptr::null_mut();
    }
    if p.in_arena && align <= MIN_ALIGN && size <= CHUNK / 2 {
        let usable = round16(size.max(MIN_ALIGN));
        if p.limit != 0 && held_bytes(p).saturating_add(usable) > p.limit {
            p.limit_refused.store(true, Ordering::Relaxed);
            return ptr::null_mut();
        }
        // SAFETY: the pool is ours (caller).
        if p.bump_cur + HDR + usable <= p.bump_end || unsafe { next_arena_chunk(p) } {
            // SAFETY: as above; the region has room.
            let b = unsafe { bump_carve(p, usable) };
            account_carved(p, usable);
            return b;
        }
    }
    // Past the arena chunks: the pool's own heap.
    // SAFETY: the pool is ours (caller).
    if !unsafe { ensure_heap(p) } {
        return ptr::null_mut();
    }
    let bump = p.flags & BUMP != 0 && size <= BUMP_MAX && align <= MIN_ALIGN;
    let aligned_bin = if align > MIN_ALIGN && align <= SLICE_SIZE { bin_for_aligned(size, align) } else { None };
    enum Kind {
        Bump,
        Bin(usize),
        Large(usize),
        Huge,
    }
    let (kind, usable) = if bump {
        (Kind::Bump, round16(size.max(MIN_ALIGN)))
    } else if let Some(bin) = aligned_bin {
        (Kind::Bin(bin), bin_size(bin))
    } else if align <= MIN_ALIGN && size <= SMALL_MAX {
        let bin = bin_of(size);
        (Kind::Bin(bin), bin_size(bin))
    } else if align <= SLICE_SIZE && size <= large_limit() {
        let slices = size.max(1).div_ceil(SLICE_SIZE);
        (Kind::Large(slices), slices << SLICE_SHIFT)
    } else {
        (Kind::Huge, (size.max(1) + os::OS_PAGE_SIZE - 1) & !(os::OS_PAGE_SIZE - 1))
    };
    if p.limit != 0 && held_bytes(p).saturating_add(usable) > p.limit {
        p.limit_refused.store(true, Ordering::Relaxed);
        return ptr::null_mut();
    }
    // SAFETY: the pool heap is used by this thread alone (caller).
    let (block, usable) = unsafe {
        match kind {
            Kind::Bump => (bump_alloc(p, usable), usable),
            Kind::Bin(bin) => (heap::alloc_bin(&mut *p.heap, bin), usable),
            Kind::Large(slices) => (heap::alloc_large(&mut *p.heap, slices), usable),
            Kind::Huge => {
                let b = huge_alloc(p, size, align.max(MIN_ALIGN));
                let u = if b.is_null() { 0 } else { free::block_info(b).map_or(usable, |i| i.usable) };
                (b, u)
            }
        }
    };
    if !block.is_null() {
        match kind {
            Kind::Bump | Kind::Huge => account_carved(p, usable),
            Kind::Bin(_) | Kind::Large(_) => account(p, usable),
        }
    }
    block
}

/// A huge block of the pool: mapped as any huge block, its segment tagged
/// with the pool heap and put on the pool's list.
///
/// # Safety
/// As `alloc_inner`.
unsafe fn huge_alloc(p: &mut Pool, size: usize, align: usize) -> *mut u8 {
    let b = huge::alloc(size, align);
    if b.is_null() {
        return b;
    }
    // SAFETY: `b` was just returned by huge::alloc: a live huge block.
    let Some(info) = (unsafe { free::block_info(b) }) else { return b };
    let seg = info.segment;
    lock_huge(p);
    // SAFETY: the segment is ours (just mapped); the list is under huge_lock.
    unsafe {
        (*seg).heap = p.heap;
        (*seg).prev = ptr::null_mut();
        (*seg).next = p.huge;
        if !p.huge.is_null() {
            (*p.huge).prev = seg;
        }
    }
    p.huge = seg;
    p.huge_lock.store(false, Ordering::Release);
    b
}

fn lock_huge(p: &Pool) {
    while p.huge_lock.compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed).is_err() {
        core::hint::spin_loop();
    }
}

/// Called by `free` before it unmaps a huge block whose segment names a
/// heap: takes the block off its pool's list and counts it freed. False
/// when the caller must not unmap it: a `visit` of the pool is walking the
/// list (the block stays listed and mapped, marked freed, and the walk's
/// end frees it), or the block was already freed that way (a double free,
/// reported for `func`).
///
/// # Safety
/// `seg` must be a live huge segment of a pool, about to be freed.
pub unsafe fn forget_huge(seg: *mut Segment, func: &str) -> bool {
    // SAFETY: a tagged huge segment names a live pool's heap (the tag is
    // cleared before the pool lets the segment go); its list and flags are
    // under the pool's huge lock.
    unsafe {
        let pool = (*(*seg).heap).pool;
        let p = &mut *pool;
        lock_huge(p);
        let flags = &raw mut (*seg).pages[0].flags;
        if *flags & FLAG_FREED_IN_VISIT != 0 {
            p.huge_lock.store(false, Ordering::Release);
            crate::diag::heap_error(func, "double free detected", (*seg).pages[0].start as usize);
            return false;
        }
        let size = (*seg).pages[0].block_size;
        if p.huge_visits != 0 {
            *flags |= FLAG_FREED_IN_VISIT;
            p.huge_lock.store(false, Ordering::Release);
            count_freed_carved(p, size);
            return false;
        }
        unlink_huge(p, seg);
        p.huge_lock.store(false, Ordering::Release);
        count_freed_carved(p, size);
        true
    }
}

/// Takes `seg` off the pool's huge list and untags it.
///
/// # Safety
/// `seg` is on `p`'s huge list; the caller holds the huge lock.
unsafe fn unlink_huge(p: &mut Pool, seg: *mut Segment) {
    // SAFETY: as the caller guarantees.
    unsafe {
        let (prev, next) = ((*seg).prev, (*seg).next);
        if prev.is_null() {
            p.huge = next;
        } else {
            (*prev).next = next;
        }
        if !next.is_null() {
            (*next).prev = prev;
        }
        (*seg).heap = ptr::null_mut();
        (*seg).next = ptr::null_mut();
        (*seg).prev = ptr::null_mut();
    }
}

/// Carves `usable` bytes (a multiple of 16) and a header from the current
/// bump chunk, starting a new chunk when it has no room.
///
/// # Safety
/// As `alloc_inner`.
unsafe fn bump_alloc(p: &mut Pool, usable: usize) -> *mut u8 {
    let total = HDR + usable;
    // SAFETY: as the caller guarantees.
    if (p.in_arena || p.bump_cur + total > p.bump_end) && !unsafe { new_chunk(p, total) } {
        return ptr::null_mut();
    }
    // SAFETY: the region has room (above).
    unsafe { bump_carve(p, usable) }
}

/// Sets the carved part of the pool's current bump chunk (a page of its
/// heap) as the page's capacity, when the pool moves past it.
///
/// # Safety
/// The pool is ours (or locked) and its current bump region is the chunk
/// `bump_chunks`.
unsafe fn close_chunk(p: &mut Pool) {
    let page = p.bump_chunks;
    // SAFETY: `page` is the descriptor of the pool's current chunk.
    unsafe { (*page).capacity = ((p.bump_cur - (*page).start as usize) / MIN_ALIGN) as u32 };
}

/// Carves `usable` bytes and a header at `bump_cur`.
///
/// # Safety
/// The bump region must have room for them; it belongs to this pool, and
/// nobody else writes it.
#[inline]
unsafe fn bump_carve(p: &mut Pool, usable: usize) -> *mut u8 {
    // A load and a store, as `account`: only this thread writes it.
    p.bump_carved.store(p.bump_carved.load(Ordering::Relaxed).wrapping_add(usable), Ordering::Relaxed);
    let h = p.bump_cur;
    let b = h + HDR;
    // SAFETY: as the caller guarantees.
    unsafe {
        *(h as *mut usize) = usable;
        *((h + 8) as *mut usize) = b ^ p.bump_key;
        (*(b as *mut Block)).mark = 0;
    }
    p.bump_cur = h + HDR + usable;
    b as *mut u8
}

/// Closes the current arena chunk and takes another if the pool has not
/// used its budget; else the pool leaves the arena. True if the bump
/// region is a fresh chunk.
///
/// # Safety
/// The pool is ours (or locked).
#[cold]
unsafe fn next_arena_chunk(p: &mut Pool) -> bool {
    // SAFETY: the newest chunk is the pool's.
    unsafe { (*p.chunks).end = p.bump_cur };
    // A pool that already has a heap (it outgrew the arena before, and was
    // reset or cached) goes there at once: no arena lock round trips.
    if p.chunk_count < CHUNK_BUDGET && heap::is_empty_heap(p.heap) {
        let c = arena_chunk(p);
        if !c.is_null() {
            // SAFETY: a fresh chunk of ours.
            unsafe { (*c).next = p.chunks };
            p.chunks = c;
            p.chunk_count += 1;
            p.bump_cur = c as usize + core::mem::size_of::<Chunk>();
            p.bump_end = c as usize + CHUNK;
            // SAFETY: as above.
            p.bump_key = chunk_key(c as usize, unsafe { (*c).salt }) ^ BUMP_MAGIC;
            return true;
        }
    }
    p.in_arena = false;
    p.bump_cur = 0;
    p.bump_end = 0;
    false
}

/// Starts a bump chunk of at least `total` bytes. False when out of memory.
///
/// # Safety
/// As `alloc_inner`.
#[cold]
unsafe fn new_chunk(p: &mut Pool, total: usize) -> bool {
    let want = (1usize << p.bump_count.min(3)).min(BUMP_CHUNK_MAX_SLICES);
    let slices = want.max((total + BUMP_CHUNK_HDR).div_ceil(SLICE_SIZE));
    // SAFETY: the pool heap is ours (caller); its lock guards its segments
    // against a purging thread.
    unsafe {
        let _l = SlowLock::lock(p.heap);
        let page = heap::alloc_span(&mut *p.heap, slices);
        if page.is_null() {
            return false;
        }
        if p.in_arena {
            (*p.chunks).end = p.bump_cur;
            p.in_arena = false;
        } else if !p.bump_chunks.is_null() {
            close_chunk(p);
        }
        let pg = &mut *page;
        pg.bin = NO_BIN;
        pg.flags |= FLAG_BUMP;
        pg.set_block_size(MIN_ALIGN);
        pg.reserved = ((slices << SLICE_SHIFT) / MIN_ALIGN) as u32;
        // The whole chunk counts as carved while it is the current one (so
        // the fast path need not update it); `close_chunk` sets the carved
        // part. An address past `bump_cur` has no valid header there: the
        // chunk's key is new, so a stale header does not pass the check.
        pg.capacity = pg.reserved;
        pg.used = 1;
        pg.next = p.bump_chunks;
        p.bump_chunks = page;
        // The chunk's first 16 bytes hold its salt, mixed into the check
        // word of its blocks: the page key is the same each time these
        // slices head a page, the salt is not.
        let salt = ARENA_LOCK_SALT.fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed) | 1;
        *(pg.start as *mut usize) = salt;
        p.bump_cur = pg.start as usize + BUMP_CHUNK_HDR;
        p.bump_end = pg.start as usize + (slices << SLICE_SHIFT);
        p.bump_key = pg.key ^ salt ^ BUMP_MAGIC;
        p.bump_count += 1;
    }
    true
}

/// The usable size of the bump block at `addr` in `page` (a bump chunk),
/// from its header; `None` if no bump block starts there.
///
/// # Safety
/// `page` must be a live bump chunk and `addr` a 16-aligned address inside
/// its carved part.
pub unsafe fn bump_usable(page: &Page, addr: usize) -> Option<usize> {
    // SAFETY: as the caller guarantees.
    unsafe { bump_block(page, addr) }.map(|(usable, _)| usable)
}

/// True if `addr` is a bump block of `page` (validated as `bump_usable`
/// does) that was freed.
///
/// # Safety
/// As `bump_usable`.
pub unsafe fn bump_freed(page: &Page, addr: usize) -> bool {
    // SAFETY: as the caller guarantees; a validated block's header is the
    // two words before it.
    unsafe { bump_block(page, addr).is_some() && *((addr - HDR) as *const usize) & HDR_FREED != 0 }
}

/// `bump_usable`, with the pool (live or not, never null) holding the
/// block.
///
/// # Safety
/// As `bump_usable`.
#[inline(always)]
unsafe fn bump_block(page: &Page, addr: usize) -> Option<(usize, *mut Pool)> {
    if addr < page.start as usize + BUMP_CHUNK_HDR + HDR {
        return None;
    }
    let (key, end, pool) = match arena_chunk_of(page, addr) {
        Some((pool, salt, end)) => {
            if pool.is_null() || addr < (addr & !(CHUNK - 1)) + core::mem::size_of::<Chunk>() + HDR {
                return None;
            }
            (page.key ^ salt, end, pool)
        }
        // SAFETY: a bump chunk starts with its salt (`new_chunk`); a live
        // page's heap is a heap, a pool heap's `pool` its pool.
        None => unsafe {
            (
                page.key ^ *(page.start as *const usize),
                page.start as usize + page.capacity as usize * MIN_ALIGN,
                (*page.heap).pool,
            )
        },
    };
    // SAFETY: the header lies inside the chunk's carved part (caller).
    let (w0, w1) = unsafe { (*((addr - HDR) as *const usize), *((addr - 8) as *const usize)) };
    if w1 != addr ^ key ^ BUMP_MAGIC {
        return None;
    }
    let usable = w0 & !HDR_FLAGS;
    if usable > end - addr {
        return None;
    }
    Some((usable, pool))
}

/// Notes that realloc keeps the live bump block at `addr` of `page`
/// (`usable` bytes) for `size` bytes: below what a sized free of the
/// block accepts (`free::sized_rule`), its header says it was shrunk, and
/// a sized free then checks only that the size fits
/// (`free::size_matches`). The block keeps its extent: its memory returns
/// with the pool in any case, and a block shrunk and grown again stays
/// where it is. Before, `free_sized` with the size realloc had been given
/// aborted as a mismatch (a fresh tester). Splitting the rest off as a
/// freed block instead made every shrink-and-grow cycle of one block
/// carve a new one: 160 MB of pool for one 16 000-byte block after
/// 10 000 cycles (another tester).
///
/// # Safety
/// `addr` must be a live bump block of `page` with `usable` bytes, whose
/// pool the calling thread may allocate from; `size <= usable`.
unsafe fn bump_shrink(page: &Page, addr: usize, size: usize, usable: usize) {
    // Still within the rule a sized free applies: nothing to note.
    if crate::free::sized_rule(addr as *mut u8, usable, size, 0, crate::size_class::SIZED_FREE_SLACK) {
        return;
    }
    // SAFETY: `addr` is a live bump block of `page` (caller), whose header
    // is the two words before it.
    unsafe {
        if bump_block(page, addr).is_some() {
            *((addr - HDR) as *mut usize) |= HDR_SHRUNK;
        }
    }
}

/// True if `addr` is a live bump block of `page` (validated as
/// `bump_usable` does) that realloc shrank below half (`bump_shrink`).
///
/// # Safety
/// As `bump_usable`.
pub unsafe fn bump_shrunk(page: &Page, addr: usize) -> bool {
    // SAFETY: as the caller guarantees; a validated block's header is the
    // two words before it.
    unsafe { bump_block(page, addr).is_some() && *((addr - HDR) as *const usize) & HDR_SHRUNK != 0 }
}

/// `free` of a block of a pool page, from any thread: a bump block is
/// marked freed; any other goes on its page's remote list, which the pool
/// collects at its next refill (also when the allocating thread frees it:
/// see `alloc_fast`). Counts the block freed.
///
/// # Safety
/// `page` must be a live page of a pool heap and `block` a block start of
/// it whose free mark is clear (checked by the caller).
pub unsafe fn free_block(page: *mut Page, block: *mut Block, func: &str) {
    // SAFETY: as the caller guarantees; a pool heap's `pool` is its pool.
    unsafe {
        let owner = (*page).heap;
        if (*page).flags & FLAG_BUMP != 0 {
            let addr = block as usize;
            let Some((usable, pool)) = bump_block(&*page, addr) else {
                free::report_invalid(func, block as *mut u8);
                return;
            };
            let pool = &*pool;
            let hdr = (addr - HDR) as *mut usize;
            if *hdr & HDR_FREED != 0 {
                crate::diag::heap_error(func, "double free detected", addr);
                return;
            }
            *hdr |= HDR_FREED;
            (*block).mark = (*page).key;
            count_freed_carved(pool, usable);
            pool.bump_released.fetch_add(usable, Ordering::Relaxed);
            // Bump mode only: a default pool's chunk blocks (its first
            // small blocks, at most about 4 KiB) give their room back.
            if pool.limit != 0 && pool.flags & BUMP != 0 {
                pool.bump_freed.fetch_add(usable, Ordering::Relaxed);
            }
            return;
        }
        // Not a bump page, so not the arena's: the page heap's pool.
        let pool = &*(*owner).pool;
        count_freed(pool, (*page).block_size);
        let pushed = page::push_remote(&*page, block);
        if pushed != 0 {
            heap::remote_pushed(owner, page, pushed);
        }
    }
}

/// The pool (live or not, or null) of the block at `addr` in `page`: its
/// arena chunk's, or its page heap's.
///
/// # Safety
/// `page` must be a live page holding `addr`.
#[inline]
unsafe fn pool_of_page(page: &Page, addr: usize) -> *mut Pool {
    match arena_chunk_of(page, addr) {
        Some((pool, _, _)) => pool,
        // SAFETY: a live page's heap is a heap (caller).
        None => unsafe { (*page.heap).pool },
    }
}

/// The live pool holding the block `info` describes (at `p`), or null.
///
/// # Safety
/// `info` must come from `free::block_info` for a live block.
pub unsafe fn owner_of(info: &BlockInfo, p: *const u8) -> *mut Pool {
    // SAFETY: `info` describes a live block: its segment and page headers
    // are mapped; a non-null heap pointer names a heap (never unmapped
    // while it holds blocks).
    unsafe {
        let heap = if info.huge { (*info.segment).heap } else { (*info.page).heap };
        if heap.is_null() {
            return ptr::null_mut();
        }
        let pool = if info.huge { (*heap).pool } else { pool_of_page(&*info.page, p as usize) };
        if !pool.is_null() && is_live(pool) { pool } else { ptr::null_mut() }
    }
}

/// `realloc` of a pool block (plain `realloc` or `ptrs_pool_realloc`): in
/// place when it still fits, else a new block of the same pool, the
/// contents copied and the old block freed. Null when out of memory or
/// over the limit (the block is then untouched).
///
/// # Safety
/// `pool` must be the live pool holding `p`, described by `info`, with the
/// same thread rules as `alloc`.
pub unsafe fn realloc_block(pool: *mut Pool, p: *mut u8, size: usize, info: &BlockInfo) -> *mut u8 {
    let usable = info.usable;
    let bump = info.flags & FLAG_BUMP != 0;
    if size <= usable && (bump || (!info.huge && size >= usable / 2)) {
        if bump {
            // SAFETY: `p` is a live bump block of `info.page` (caller).
            unsafe { bump_shrink(&*info.page, p as usize, size, usable) };
        }
        return p;
    }
    // SAFETY: as the caller guarantees.
    let q = unsafe { alloc(pool, size) };
    if q.is_null() {
        return q;
    }
    // SAFETY: both blocks are live and distinct.
    unsafe { ptr::copy_nonoverlapping(p, q, usable.min(size)) };
    free::free(p);
    q
}

/// Whether the last allocation from `pool` that failed was refused by the
/// pool's limit rather than for want of memory.
///
/// # Safety
/// `pool` must be live.
pub unsafe fn refused_by_limit(pool: *const Pool) -> bool {
    // SAFETY: as the caller guarantees.
    unsafe { (*pool).limit_refused.load(Ordering::Relaxed) }
}

/// Registers `func(arg)` to run when the pool is destroyed or reset. False
/// when out of memory.
///
/// # Safety
/// `pool` must be live and used by the calling thread alone (or shared).
pub unsafe fn cleanup_add(pool: *mut Pool, func: extern "C" fn(*mut c_void), arg: *mut c_void) -> bool {
    let c = crate::alloc::malloc(core::mem::size_of::<Cleanup>()) as *mut Cleanup;
    if c.is_null() {
        return false;
    }
    // SAFETY: `c` is a fresh block large enough for a Cleanup; the pool
    // is live (caller); a shared pool's list is guarded by its heap lock.
    unsafe {
        let p = &mut *pool;
        let _l = if heap::is_empty_heap(p.heap) { None } else { Some(SlowLock::lock(p.heap)) };
        c.write(Cleanup { func, arg, next: p.cleanups });
        p.cleanups = c;
    }
    true
}

/// A pool's figures (bytes and blocks).
#[derive(Clone, Copy, Default)]
pub struct Stats {
    pub allocated: usize,
    pub peak_allocated: usize,
    pub blocks: usize,
    pub active: usize,
}

/// The figures of a live pool: exact when no thread is allocating from or
/// freeing into it. Time: proportional to its segments (the descriptors of
/// their slices in use are read, under the pool heap's slow-path lock) and
/// huge blocks.
///
/// # Safety
/// `pool` must be live.
pub unsafe fn stats(pool: *mut Pool) -> Stats {
    // SAFETY: as the caller guarantees.
    unsafe {
        let p = &*pool;
        let _l = if heap::is_empty_heap(p.heap) { None } else { Some(SlowLock::lock(p.heap)) };
        let mut active = p.chunk_count * CHUNK;
        // Blocks of the pool's pages: counted by the pages, not by the
        // allocation fast path (see `alloc_blocks`). A page's `used`
        // includes the blocks freed onto its remote list and not yet taken
        // back, which the list's word counts (`page::remote_len`).
        let mut page_blocks = 0usize;
        let mut seg = (*p.heap).segments;
        while !seg.is_null() {
            let mut used = (*seg).used_slices & !1;
            active += used.count_ones() as usize * SLICE_SIZE;
            while used != 0 {
                let i = used.trailing_zeros() as usize;
                used &= used - 1;
                let page = &(*seg).pages[i];
                if ptr::eq(page.head, page) && page.heap == p.heap && page.flags & FLAG_BUMP == 0 {
                    page_blocks += page.used_count().saturating_sub(page::remote_len(page.thread_free.load(Ordering::Acquire))) as usize;
                }
            }
            seg = (*seg).next;
        }
        lock_huge(p);
        let mut h = p.huge;
        while !h.is_null() {
            active += (*h).pages[0].block_size;
            h = (*h).next;
        }
        p.huge_lock.store(false, Ordering::Release);
        let allocated = live_bytes(p);
        Stats {
            allocated,
            peak_allocated: p.peak.load(Ordering::Relaxed).max(allocated),
            blocks: p.alloc_blocks.wrapping_sub(p.freed_blocks.load(Ordering::Relaxed)).wrapping_add(page_blocks),
            active,
        }
    }
}

/// Calls `visit(block, usable)` for every live block of the pool, stopping
/// at the first non-zero answer, which it returns (0 otherwise). The
/// visitor must not allocate from the pool or destroy it; it may free the
/// block it is given. Time: proportional to the pool's blocks.
///
/// # Safety
/// `pool` must be live; no other thread may allocate from it meanwhile.
pub unsafe fn visit(pool: *mut Pool, visit: &mut dyn FnMut(*mut u8, usize) -> i32) -> i32 {
    // SAFETY: as the caller guarantees: the pool's segments, pages and
    // huge list are stable during the walk.
    unsafe {
        let p = &mut *pool;
        let mut c = p.chunks;
        let first = &raw mut p.chunk;
        while !c.is_null() {
            let next = (*c).next;
            let start = if c == first {
                c as usize + ((core::mem::size_of::<Pool>() + MIN_ALIGN - 1) & !(MIN_ALIGN - 1))
            } else {
                c as usize + core::mem::size_of::<Chunk>()
            };
            let end = if p.in_arena && c == p.chunks { p.bump_cur } else { (*c).end };
            let r = visit_bump(start, end, visit);
            if r != 0 {
                return r;
            }
            c = next;
        }
        // The visitor may free what it is given, which may free its page
        // and leave its segment empty: segments stay with the heap until
        // the walk ends (`Heap::hold_segments`), and a span's slices are
        // taken out of the walk before its blocks are visited, so that no
        // slice of a span freed meanwhile is read as a page. (A visitor
        // freeing 100 blocks of 200000 B with PTRS_PURGE_DELAY=0 read a
        // released segment: SIGSEGV.)
        if !heap::is_empty_heap(p.heap) {
            (*p.heap).hold_segments = true;
        }
        let mut seg = (*p.heap).segments;
        let mut result = 0;
        'walk: while !seg.is_null() {
            let mut used = (*seg).used_slices & !1;
            while used != 0 {
                let i = used.trailing_zeros() as usize;
                used &= used - 1;
                let page = &raw mut (*seg).pages[i];
                if (*page).head != page || (*page).heap != p.heap {
                    continue;
                }
                let n = ((*page).slice_count as usize).max(1);
                if n < 64 {
                    used &= !(((1u64 << n) - 1) << i);
                } else {
                    used = 0;
                }
                // The current bump chunk is carved up to `bump_cur`.
                let end = if page == p.bump_chunks && !p.in_arena { p.bump_cur } else { 0 };
                let r = visit_page(&mut *page, end, visit);
                if r != 0 {
                    result = r;
                    break 'walk;
                }
            }
            seg = (*seg).next;
        }
        if !heap::is_empty_heap(p.heap) {
            (*p.heap).hold_segments = false;
        }
        if result != 0 {
            return result;
        }
        // Huge blocks: the visitor may free the block it is given, and
        // other threads may free any block meanwhile. While the walk runs,
        // such frees leave the blocks listed and mapped, marked freed
        // (`forget_huge`), so the link to the next block stays readable;
        // the walk skips marked blocks and frees them at its end. (Read
        // before the visitor ran and followed after it, a link to a block
        // another thread had freed meanwhile crashed the walk, or ended it
        // early when the freed segment had gone to the mapping cache.)
        lock_huge(p);
        p.huge_visits += 1;
        let mut h = p.huge;
        p.huge_lock.store(false, Ordering::Release);
        while !h.is_null() {
            lock_huge(p);
            let next = (*h).next;
            let freed = (*h).pages[0].flags & FLAG_FREED_IN_VISIT != 0;
            let (b, usable) = ((*h).pages[0].start, (*h).pages[0].block_size);
            p.huge_lock.store(false, Ordering::Release);
            if !freed {
                let r = visit(b, usable);
                if r != 0 {
                    result = r;
                    break;
                }
            }
            h = next;
        }
        end_huge_visit(p);
        result
    }
}

/// Ends a walk of the pool's huge list: the last walk to end takes off the
/// list and frees the blocks freed while it ran.
///
/// # Safety
/// `p` is live; the caller began a walk (`huge_visits` counted it).
unsafe fn end_huge_visit(p: &mut Pool) {
    let mut done: *mut Segment = ptr::null_mut();
    lock_huge(p);
    p.huge_visits -= 1;
    if p.huge_visits == 0 {
        let mut h = p.huge;
        // SAFETY: the list is under the huge lock; marked blocks are still
        // mapped (nobody frees them but this).
        unsafe {
            while !h.is_null() {
                let next = (*h).next;
                if (*h).pages[0].flags & FLAG_FREED_IN_VISIT != 0 {
                    unlink_huge(p, h);
                    (*h).next = done;
                    done = h;
                }
                h = next;
            }
        }
    }
    p.huge_lock.store(false, Ordering::Release);
    while !done.is_null() {
        // SAFETY: taken off the list above; each is freed once, here.
        unsafe {
            let next = (*done).next;
            (*done).next = ptr::null_mut();
            (*done).pages[0].flags &= !FLAG_FREED_IN_VISIT;
            free::remember_huge_free((*done).pages[0].start as usize);
            let saved = os::errno();
            huge::free(done);
            os::set_errno(saved);
            done = next;
        }
    }
}

/// Visits the live bump blocks carved in `start..end` (headers first).
///
/// # Safety
/// `start..end` must be the carved part of a bump region of the pool,
/// which the caller holds.
unsafe fn visit_bump(start: usize, end: usize, visit: &mut dyn FnMut(*mut u8, usize) -> i32) -> i32 {
    let mut h = start;
    while h + HDR <= end {
        // SAFETY: a block header (caller).
        let w0 = unsafe { *(h as *const usize) };
        let usable = w0 & !HDR_FLAGS;
        let b = h + HDR;
        h = b + usable;
        if w0 & HDR_FREED == 0 {
            let r = visit(b as *mut u8, usable);
            if r != 0 {
                return r;
            }
        }
    }
    0
}

/// `bump_end`: for the pool's current bump chunk, where its carved part
/// ends (0 for any other page).
///
/// # Safety
/// `page` must be a live page of the pool, which the caller holds.
unsafe fn visit_page(page: &mut Page, bump_end: usize, visit: &mut dyn FnMut(*mut u8, usize) -> i32) -> i32 {
    // SAFETY: the page is live and its lists are stable (caller).
    unsafe {
        let start = page.start as usize;
        if page.flags & FLAG_BUMP != 0 {
            let end = if bump_end != 0 { bump_end } else { start + page.capacity as usize * MIN_ALIGN };
            return visit_bump(start + BUMP_CHUNK_HDR, end, visit);
        }
        if page.flags & FLAG_LARGE != 0 {
            let freed = page.thread_free.load(Ordering::Acquire) & page::TF_LIST != 0;
            if page.used_count() == 0 || freed {
                return 0;
            }
            return visit(page.start, page.block_size);
        }
        // A small page: every carved block not on a free list. At most
        // 64 KiB / 16 blocks per slice-sized page; bigger pages hold
        // bigger blocks, so 4096 bits cover every page.
        let mut free_set = [0u64; 64];
        let cap = page.capacity as usize;
        let bs = page.block_size;
        let lists = [page.free, page::remote_head(page.thread_free.load(Ordering::Acquire))];
        for mut cur in lists {
            let mut steps = 0;
            while !page::at_end(page, cur) && steps <= cap {
                let i = (cur as usize - start) / bs;
                if i < 4096 {
                    free_set[i / 64] |= 1 << (i % 64);
                }
                cur = page::next_of(cur, page.key);
                steps += 1;
            }
        }
        for i in 0..cap.min(4096) {
            if free_set[i / 64] & (1 << (i % 64)) == 0 {
                let r = visit((start + i * bs) as *mut u8, bs);
                if r != 0 {
                    return r;
                }
            }
        }
        0
    }
}

/// The pool's name (without the NUL).
pub fn name(p: &Pool) -> &[u8] {
    let n = p.name.iter().position(|&c| c == 0).unwrap_or(NAME_LEN);
    &p.name[..n]
}

/// Visits every live pool with its figures, under the registry lock. The
/// visitor must not create or destroy pools.
pub fn for_each_live(mut f: impl FnMut(&[u8], &Stats)) -> usize {
    let r = Reg::lock();
    let reg = r.get();
    let mut pool = reg.live;
    while !pool.is_null() {
        // SAFETY: live pools stay live while the registry lock is held
        // (destroy unlinks them under it first).
        unsafe {
            let s = stats(pool);
            f(name(&*pool), &s);
            pool = (*pool).reg_next;
        }
    }
    reg.live_count
}

/// Bytes of bump blocks in use in all live pools (see
/// `Pool::bump_carved`), for the process statistics: those blocks lie in
/// arena chunks and bump chunks, which the statistics' walk of the pages
/// does not count block by block. A tester's 10 000 live 1000-byte blocks
/// of a bump pool, and 10 000 pools with one 64-byte block each, added
/// nothing to `mallinfo2().uordblks` and `ptrs_stats_get`'s `allocated`
/// before. Racy against concurrent frees as any statistics snapshot.
pub fn bump_live_total() -> usize {
    let r = Reg::lock();
    let reg = r.get();
    let mut total = 0usize;
    let mut pool = reg.live;
    while !pool.is_null() {
        // SAFETY: live pools stay live while the registry lock is held.
        unsafe {
            let p = &*pool;
            let live = p.bump_carved.load(Ordering::Relaxed).wrapping_sub(p.bump_released.load(Ordering::Relaxed));
            if (live as isize) > 0 {
                total += live;
            }
            pool = p.reg_next;
        }
    }
    total
}

/// The pool heap's figure for `malloc_trim`: gives back the segments kept
/// by cached (destroyed) pools. True if any was released.
pub fn trim_cache() -> bool {
    let mut any = false;
    // The registry lock, which ptrs's fork prepare handler takes, is held
    // with every signal blocked (restored after it is released: declared
    // first, dropped last): a handler that forked inside this loop waited
    // for it on its own thread, and every other thread for the stdio lock
    // that handler held (a hang of tst-mt-signal-fork-sweeps, 1 run of
    // about 20, a thread looping malloc_trim). malloc_trim is rare; pool
    // creation and destruction keep taking it without the two system
    // calls.
    let _sig = crate::sync::SignalsBlocked::new();
    let r = Reg::lock();
    let reg = r.get();
    let mut pool = reg.cache;
    while !pool.is_null() {
        // SAFETY: cached pools are ours under the registry lock; nothing
        // else uses them.
        unsafe {
            if !(*(*pool).heap).segments.is_null() {
                release_pages(pool, Keep::None);
                any = true;
            }
            pool = (*pool).reg_next;
        }
    }
    any
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every free of a default-mode pool's block is remote and counted on
    /// its page (`page::remote_len`), and the allocating thread takes the
    /// lists back without a walk (`collect_direct`, `page::collect_remote`):
    /// after blocks freed by another thread and by the allocating one, and
    /// allocations that take them back, every page of the pool heap passes
    /// the consistency check and the statistics count exactly the live
    /// blocks and bytes.
    #[test]
    fn remote_frees_keep_pool_pages_consistent() {
        let opts = Options { name: b"pages", limit: 0, flags: 0, parent: ptr::null_mut() };
        let Ok(pool) = create(&opts) else { panic!("pool create") };
        let mut live: std::vec::Vec<(usize, usize)> = std::vec::Vec::new();
        let mut n = 0usize;
        let mut grow = |live: &mut std::vec::Vec<(usize, usize)>, count: usize| {
            for _ in 0..count {
                let size = 16 + (n * 37) % 1000;
                n += 1;
                // SAFETY: the pool is live and used by this thread alone.
                let b = unsafe { alloc(pool, size) };
                assert!(!b.is_null());
                // SAFETY: a fresh block of at least `size` bytes.
                unsafe { ptr::write_bytes(b, (n & 0xff) as u8, size) };
                live.push((b as usize, size));
            }
        };
        grow(&mut live, 20_000);
        for round in 0..4 {
            // Every other block freed by another thread, every fourth by us.
            let (theirs, rest): (std::vec::Vec<_>, std::vec::Vec<_>) =
                live.iter().enumerate().partition(|(i, _)| i % 2 == round % 2);
            let theirs: std::vec::Vec<usize> = theirs.into_iter().map(|(_, b)| b.0).collect();
            std::thread::spawn(move || theirs.into_iter().for_each(|b| free::free(b as *mut u8)))
                .join()
                .unwrap();
            live = rest.into_iter().map(|(_, b)| *b).collect();
            let (ours, rest): (std::vec::Vec<_>, std::vec::Vec<_>) =
                live.iter().enumerate().partition(|(i, _)| i % 4 == 0);
            ours.into_iter().for_each(|(_, b)| free::free(b.0 as *mut u8));
            live = rest.into_iter().map(|(_, b)| *b).collect();
            grow(&mut live, 10_000);
            // SAFETY: the pool is live and quiet; its heap is its own.
            assert!(crate::check::check_heap(unsafe { &*(*pool).heap }), "round {round}");
            // SAFETY: as above.
            let st = unsafe { stats(pool) };
            assert_eq!(st.blocks, live.len(), "round {round}");
            let bytes: usize = live
                .iter()
                // SAFETY: live blocks of the pool.
                .map(|&(b, _)| unsafe { free::block_info(b as *mut u8) }.map_or(0, |i| i.usable))
                .sum();
            assert_eq!(st.allocated, bytes, "round {round}");
        }
        // SAFETY: live, and nobody uses it any more.
        unsafe { destroy(pool) };
    }
}
