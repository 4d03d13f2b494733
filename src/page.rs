//! Pages: a span of one or more 64 KiB slices holding blocks of one size.
//!
//! A page has three sources of free blocks:
//! - `free`: the local free list, touched only by the owning heap's thread;
//! - `thread_free`: blocks freed by other threads, pushed with one
//!   compare-and-swap and collected by the owner in one swap;
//! - the uncarved tail: blocks `capacity .. reserved` not yet handed out, so
//!   a fresh page touches its memory 4 KiB at a time, as it is used.
//!
//! Counting invariant (checked by `check_page` in debug builds):
//!
//! ```text
//!   used + |free| == capacity        (thread_free blocks are still "used")
//!   capacity <= reserved == page bytes / block_size
//! ```
//!
//! `used` also carries [`IN_FULL`] while the page sits on its heap's full
//! list, so the free fast path tests "page became empty or was full" with a
//! single signed comparison. The page at the head of its class's queue is
//! *pinned*: its `used` holds one extra count ([`FLAG_PINNED`]), so freeing
//! its last block does not leave the fast path (a malloc/free pair on an
//! otherwise empty heap would otherwise take the slow path every time).
//!
//! Free-list links are encoded (in the spirit of glibc's safe-linking): a
//! link is stored as `next ^ key`, with a random per-page key, so a stray
//! write into a freed block yields a pointer that fails the same-segment
//! check instead of an attacker-chosen address. Freed blocks
//! carry the key in their second word (the free mark); `free` finding it
//! there is the cue to check for a double free. (A program that reads a
//! freed block can learn its page's key, as with glibc's tcache key; the
//! encoding is against blind overwrites, not a secret from the program.)

use core::ptr;
use core::sync::atomic::{AtomicUsize, Ordering};

use crate::heap::Heap;
use crate::segment::{SEGMENT_MASK, SLICE_SHIFT};

/// A free block's first two words.
#[repr(C)]
pub struct Block {
    /// The encoded link to the next free block.
    pub next: usize,
    /// The page's key while the block is free (the free mark).
    pub mark: usize,
}

static LIST_KEY: AtomicUsize = AtomicUsize::new(0x7074_7273_6672_6565);

/// Sets the process's random key, from which each page's key is derived;
/// called once at initialisation, before any page exists.
pub fn set_key(key: usize) {
    LIST_KEY.store(key, Ordering::Relaxed);
}

/// The mask a link is stored under: the page's random key. (An earlier
/// version also mixed in the link's address, as glibc's safe-linking does
/// with no secret; with a secret per-page key that term added two
/// instructions to every malloc and every free for little: the address of a
/// block is rarely what an attacker lacks. A decoded link must still stay
/// in its page's segment, else malloc aborts.)
#[inline(always)]
fn link_key(_slot: *const usize, key: usize) -> usize {
    key
}

/// Stores `next` (possibly null) as the encoded link of `block`, a block
/// of a page whose key is `key`.
///
/// # Safety
/// `block` must be a block of ptrs that the caller may write.
#[inline(always)]
pub unsafe fn set_next(block: *mut Block, next: *mut Block, key: usize) {
    // SAFETY: the caller owns the block; blocks are at least 16 bytes.
    unsafe {
        let slot = &raw mut (*block).next;
        *slot = next as usize ^ link_key(slot, key);
    }
}

/// Reads the decoded link of `block`, a block of a page whose key is `key`.
///
/// # Safety
/// `block` must be a free block of ptrs.
#[inline(always)]
pub unsafe fn next_of(block: *const Block, key: usize) -> *mut Block {
    // SAFETY: the caller guarantees `block` is a readable free block.
    unsafe {
        let slot = &raw const (*block).next;
        (*slot ^ link_key(slot, key)) as *mut Block
    }
}

/// The end of `page`'s free lists: the last block of a list links here,
/// and an empty local list (`Page::free`) is this value. It is the page
/// descriptor's own address, which is in the page's segment (the header)
/// and is no block: so malloc's fast path tests one thing of a link it
/// decodes, that it stays in the segment ([`same_segment`]), where a null
/// end would need a second test (the hot-path issue's idea of lists
/// terminated inside the page). An empty remote list is still a null
/// `Page::thread_free`; its last block links here too.
#[inline(always)]
pub const fn list_end(page: *const Page) -> *mut Block {
    page as *mut Block
}

/// True at the end of one of `page`'s free lists (see [`list_end`]); a null
/// pointer (an empty remote list's head) also ends a walk.
#[inline(always)]
pub fn at_end(page: *const Page, p: *const Block) -> bool {
    p.is_null() || p as usize == page as usize
}

/// The most blocks a small page holds (64 KiB of 16-byte blocks).
pub const MAX_PAGE_BLOCKS: usize = crate::segment::SLICE_SIZE / crate::size_class::MIN_ALIGN;

/// A set of one page's blocks, by their index in the page: for the slow
/// checks that look for a block met twice on its lists.
pub struct BlockSet([u64; MAX_PAGE_BLOCKS / 64]);

impl BlockSet {
    pub const fn new() -> Self {
        Self([0; MAX_PAGE_BLOCKS / 64])
    }

    /// The index of `b`, a block of `page` (clamped into the set).
    fn index(page: &Page, b: *const Block) -> usize {
        ((b as usize).wrapping_sub(page.start as usize) / page.block_size).min(MAX_PAGE_BLOCKS - 1)
    }

    /// Whether `b`, a block of `page`, is in the set.
    pub fn contains(&self, page: &Page, b: *const Block) -> bool {
        let i = Self::index(page, b);
        self.0[i / 64] & (1 << (i % 64)) != 0
    }

    /// Adds `b`, a block of `page`; false if it was in the set already.
    pub fn insert(&mut self, page: &Page, b: *const Block) -> bool {
        let i = Self::index(page, b);
        let had = self.0[i / 64] & (1 << (i % 64)) != 0;
        self.0[i / 64] |= 1 << (i % 64);
        !had
    }
}

/// True if `block` lies in the same segment as `page` (page descriptors
/// live in their segment's header): the sanity check of every decoded link.
#[inline(always)]
pub fn same_segment(block: *const Block, page: *const Page) -> bool {
    (block as usize ^ page as usize) & !SEGMENT_MASK == 0
}

/// `used` carries this bit while the page is on its heap's full list.
pub const IN_FULL: u16 = 1 << 15;

/// `thread_free` low bits: the owner wants to hear about the next remote free
/// (the page is full or a large span, so it is in no queue the owner scans).
pub const TF_WANT_NOTIFY: usize = 1;
/// `thread_free` low bits: a remote freer has queued the page on its heap's
/// notify list; the owner clears it when it takes the page off that list.
pub const TF_NOTIFIED: usize = 2;
pub const TF_FLAGS: usize = 3;
/// `thread_free` high bits: how many blocks the remote list holds,
/// updated by the same compare-and-swap that pushes a block, so that the
/// owner takes a list and its length in one atomic swap and never walks
/// it to count (see [`push_remote`]). Blocks live in ptrs segments, inside
/// `segment_map`'s address range (below 2^47 on x86-64, 2^48 elsewhere),
/// so bits 48 to 63 are free; a page holds at most 4096 blocks.
pub const TF_COUNT_SHIFT: u32 = 48;
/// `thread_free` bits of the remote list's head block.
pub const TF_LIST: usize = ((1 << TF_COUNT_SHIFT) - 1) & !TF_FLAGS;
const _: () = assert!(crate::segment_map::ADDRESS_BITS <= TF_COUNT_SHIFT);
const _: () = assert!(crate::segment::SLICE_SIZE / crate::size_class::MIN_ALIGN < 1 << (usize::BITS - TF_COUNT_SHIFT));

/// The head block of the remote list in the `thread_free` word `tf`.
#[inline(always)]
pub fn remote_head(tf: usize) -> *mut Block {
    (tf & TF_LIST) as *mut Block
}

/// The number of blocks on the remote list of the `thread_free` word `tf`.
#[inline(always)]
pub fn remote_len(tf: usize) -> u32 {
    (tf >> TF_COUNT_SHIFT) as u32
}

/// Page flags.
pub const FLAG_LARGE: u8 = 1; // one block spanning the whole page
pub const FLAG_HUGE: u8 = 2; // the one block of a huge segment
pub const FLAG_ZERO: u8 = 4; // a large or huge block on memory never written since mapped or purged
pub const FLAG_PINNED: u8 = 8; // the head of its queue: `used` holds one extra count
pub const FLAG_BUMP: u8 = 16; // a pool's bump chunk: blocks of any size, each after a header (pool.rs)
pub const FLAG_SAMPLED: u8 = 32; // a large block the heap profiler recorded: its free tells the profiler (profile/mod.rs)
pub const FLAG_FREED_IN_VISIT: u8 = 64; // a pool's huge block freed while `ptrs_pool_visit` walks the pool: kept listed and mapped until the walk ends (pool.rs)
pub const FLAG_TAIL_CLEAN: u8 = 128; // a small page whose uncarved tail holds no written memory: made on clean slices, or purged since (heap.rs, `purge_page_tails`)

/// `bin` value of pages that are not in a size class.
pub const NO_BIN: u8 = 255;

/// Page descriptor. One exists for every slice of a segment; only the first
/// slice of a span (its head) describes the page, the others hold the
/// distance back to it in `head_offset`. 128 bytes, so that finding one
/// from a slice index is a shift.
#[repr(C, align(128))]
pub struct Page {
    // The first cache line holds everything the malloc and free fast paths
    // touch (free: `head`, the block-start test's `start`, `div_inverse`,
    // `div_shift` and `capacity`, `heap`, both list heads, `key`, `used`);
    // the second, what only slow paths and sized frees need. With
    // `thread_free` in the second line, as before, every free touched two
    // lines of the descriptor: the churn workload missed the first-level
    // cache 1.16 times per free in the descriptor (callgrind's cache
    // simulation), mimalloc's free 0.79 times.
    /// Local free list (encoded links). Owner only.
    pub free: *mut Block,
    /// Blocks handed out and not yet back on `free`, plus [`IN_FULL`].
    /// 16 bits: a page holds at most `SLICE_SIZE / MIN_ALIGN` = 4096
    /// blocks (classes above 8 KiB span 8 slices, at most 64 blocks).
    pub used: u16,
    /// `div_params(block_size).1`.
    pub div_shift: u8,
    /// Size class, or [`NO_BIN`].
    pub bin: u8,
    /// Blocks carved so far.
    pub capacity: u32,
    /// The head descriptor of the span this slice belongs to (itself for a
    /// head or a free slice), so `free` finds a page in one load.
    pub head: *mut Page,
    /// First block.
    pub start: *mut u8,
    /// `div_params(block_size).0`: see `size_class::div_params`.
    pub div_inverse: u64,
    /// The owning heap; null for free slices and huge blocks.
    pub heap: *mut Heap,
    /// This page's key: free-list links are encoded with it, and a block
    /// on a free list (freed, or carved and not yet handed out) carries it
    /// in its second word (the free mark), which allocation clears. Random
    /// per page, with [`KEY_TAG`] set (so never 0).
    pub key: usize,
    /// Blocks freed by other threads: the head of their list, with `TF_*`
    /// flags in the low bits and the list's length from bit
    /// [`TF_COUNT_SHIFT`] up.
    pub thread_free: AtomicUsize,
    /// Slices in this page (head only); 0 for a free slice.
    pub slice_count: u8,
    /// Slices back to the head of the span this slice belongs to.
    pub head_offset: u8,
    /// `FLAG_*` bits.
    pub flags: u8,
    /// Blocks that fit in the page.
    pub reserved: u32,
    /// Bytes per block (for a large page, the whole span).
    pub block_size: usize,
    /// Links of the heap queue this page is on.
    pub next: *mut Page,
    pub prev: *mut Page,
    /// Link of the heap's notify list, written by the remote freer that set
    /// [`TF_NOTIFIED`].
    pub notify_next: *mut Page,
    /// Large pages, while the heap profiler runs: the bytes its block was
    /// last allocated or resized to, which its sampling odds cover (0:
    /// unknown). Written by the block's holder (`profile::plain`,
    /// `profile::sampled`, `profile::note_resized_large`).
    pub charged: usize,
}

/// Set in every page's key, including the key of descriptors without a
/// page ([`Page::empty`]). malloc's fast path tests a list head's free
/// mark before it tests for the end of the list: at the end, the head is
/// the page descriptor itself ([`list_end`]), whose second word is `used`
/// and `capacity`, and `capacity` (a block count, below 2^31) never has
/// this bit, so the end of the list fails the mark test as a block in use
/// does, and the slow path tells the two apart.
pub const KEY_TAG: usize = 1 << (usize::BITS - 1);

const _: () = assert!(core::mem::size_of::<Page>() == 128);
// The end-of-list reasoning of `KEY_TAG`: a block's mark is its second
// word, which in a descriptor is `used` and then `capacity`.
const _: () = assert!(core::mem::offset_of!(Block, mark) == 8);
const _: () = assert!(core::mem::offset_of!(Page, used) == 8);
const _: () = assert!(core::mem::offset_of!(Page, capacity) == 12);
const _: () = assert!(core::mem::offset_of!(Page, thread_free) + 8 <= 64);
const _: () = assert!(core::mem::offset_of!(Page, div_shift) < 64);
// `used` never reaches the full-list bit: a page holds at most 4096 blocks.
const _: () = assert!(crate::segment::SLICE_SIZE / crate::size_class::MIN_ALIGN < IN_FULL as usize);

impl Page {
    pub const fn empty() -> Self {
        Self {
            free: ptr::null_mut(),
            used: 0,
            capacity: 0,
            head: ptr::null_mut(),
            start: ptr::null_mut(),
            div_inverse: 0,
            heap: ptr::null_mut(),
            key: KEY_TAG,
            div_shift: 0,
            bin: NO_BIN,
            slice_count: 0,
            head_offset: 0,
            flags: 0,
            reserved: 0,
            block_size: 0,
            thread_free: AtomicUsize::new(0),
            next: ptr::null_mut(),
            prev: ptr::null_mut(),
            notify_next: ptr::null_mut(),
            charged: 0,
        }
    }

    /// A descriptor at `at` with no page and an empty local free list
    /// (which ends at the descriptor, see [`list_end`]).
    pub const fn empty_at(at: *const Page) -> Self {
        let mut p = Self::empty();
        p.free = list_end(at);
        p
    }

    /// A fresh descriptor for a page being handed to a heap, with a key
    /// derived from the process's random key and the descriptor's address.
    pub fn new_keyed(at: *const Page) -> Self {
        let mut p = Self::empty_at(at);
        let mixed = (at as usize).wrapping_mul(0x9e37_79b9_7f4a_7c15_u64 as usize);
        p.key = (LIST_KEY.load(Ordering::Relaxed) ^ mixed.rotate_left(29)) | KEY_TAG | 1;
        p
    }

    /// Blocks handed out, without the full-list bit and the pin.
    #[inline]
    pub fn used_count(&self) -> u32 {
        // Saturating: statistics read other heaps' pages without their
        // lock, and the pin moves by a decrement before the flag clears.
        (self.used & !IN_FULL).saturating_sub((self.flags & FLAG_PINNED != 0) as u16) as u32
    }

    #[inline]
    pub fn is_in_full(&self) -> bool {
        self.used & IN_FULL != 0
    }

    /// Bytes the page spans.
    #[inline]
    pub fn span_size(&self) -> usize {
        (self.slice_count as usize) << SLICE_SHIFT
    }

    /// Sets the block size and the parameters of the block-start test.
    pub fn set_block_size(&mut self, size: usize) {
        let (inverse, shift) = crate::size_class::div_params(size);
        self.block_size = size;
        self.div_inverse = inverse;
        self.div_shift = shift;
    }

    /// True if `p` is the start of one of this page's carved blocks: a
    /// multiple of the block size past `start`, below `capacity` blocks.
    #[inline(always)]
    pub fn is_block_start(&self, p: usize) -> bool {
        let off = p.wrapping_sub(self.start as usize) as u64;
        let index = off.wrapping_mul(self.div_inverse).rotate_right(self.div_shift as u32);
        index < self.capacity as u64
    }
}

/// Carves up to 4 KiB of new blocks (at least one) from the page's tail
/// onto its (empty) free list. Returns false if the page is fully carved.
/// Carving writes each block's link, which makes its first OS page
/// resident: blocks above 2 KiB are carved one or two at a time, so that a
/// class the program uses for a block or two does not keep several pages
/// resident that nothing asked for (carving at least four blocks cost the
/// cxx workload 130 KiB of peak RSS, 2.4 %, and the heap profiler's own
/// pages of sampled blocks as much again).
///
/// # Safety
/// `page` must be a live small page owned by the calling thread's heap, with
/// an empty local free list.
pub unsafe fn extend(page: &mut Page) -> bool {
    debug_assert!(at_end(page, page.free));
    let remaining = page.reserved - page.capacity;
    if remaining == 0 {
        return false;
    }
    let per_step = (4096 / page.block_size).max(1) as u32;
    let n = remaining.min(per_step);
    let size = page.block_size;
    // SAFETY: blocks capacity .. capacity + n lie inside the page's span,
    // which the owner may write; none of them is handed out yet.
    unsafe {
        let first = page.start.add(page.capacity as usize * size) as *mut Block;
        let mut block = first;
        for _ in 1..n {
            let next = (block as *mut u8).add(size) as *mut Block;
            set_next(block, next, page.key);
            (*block).mark = page.key;
            block = next;
        }
        set_next(block, list_end(page), page.key);
        (*block).mark = page.key;
        page.free = first;
    }
    page.capacity += n;
    true
}

/// Pushes `block` on the page's remote free list (a free from a thread that
/// does not own the page): one successful compare-and-swap in the common
/// case, which also adds one to the list's length in the same word
/// ([`TF_COUNT_SHIFT`]). Returns [`PUSH_NOTIFY`] if the caller must put
/// the page on its heap's notify list (the owner asked to hear about it
/// and nobody else has told it yet), [`PUSH_FIRST`] if the list was empty
/// and nobody is told, else 0; the caller passes it to
/// `heap::remote_pushed`.
///
/// With the length in the word, the owner takes the list back without
/// walking it ([`collect_remote`]). The walk read every block another
/// thread had just written, one cache miss after the other: 35 % of the
/// time of `larson 4` (perf; four threads exchanging blocks on this 2-core
/// machine) went to it. tcmalloc and jemalloc have no such walk (the
/// freeing thread keeps the block in its own cache); mimalloc walks as
/// ptrs did. A separate counter, added to after the push, did as well
/// for speed, but lagged behind the list, which made every count of the
/// blocks in use approximate while a free was on its way.
///
/// # Safety
/// `block` must be a block of `page`, handed out and not yet freed.
pub unsafe fn push_remote(page: &Page, block: *mut Block) -> u8 {
    // SAFETY: as the caller guarantees.
    unsafe { push_remote_with(page, block, true) }
}

/// [`push_remote`]'s answer: the owner must be told (push the page on its
/// notify list, `heap::push_notify`).
pub const PUSH_NOTIFY: u8 = 1;
/// [`push_remote`]'s answer: the push made the page's remote list
/// non-empty without a notification (a page not on the full list), which
/// its owner sees only when it next looks at the page; the dormant-heap
/// scan is told instead (`heap::remote_pushed`).
pub const PUSH_FIRST: u8 = 2;

/// [`push_remote`] for a block that carries the page's free mark already
/// (kept by the foreign-block cache, `foreign.rs`): the mark is not
/// written again, so that a block the owner took again meanwhile (after a
/// second free of it) keeps the cleared mark by which its next allocation
/// finds it.
///
/// # Safety
/// `block` must be a block of `page`, counted in use by it.
pub unsafe fn push_remote_marked(page: &Page, block: *mut Block) -> u8 {
    // SAFETY: as the caller guarantees.
    unsafe { push_remote_with(page, block, false) }
}

/// [`push_remote`]; `write_mark`: whether to store the free mark.
#[inline(always)]
unsafe fn push_remote_with(page: &Page, block: *mut Block, write_mark: bool) -> u8 {
    let mark = page.key;
    let mut old = page.thread_free.load(Ordering::Relaxed);
    loop {
        let head = remote_head(old);
        // The length and the flags: the word without its head.
        let rest = old - head as usize;
        let notify = rest & TF_FLAGS == TF_WANT_NOTIFY;
        // SAFETY: the block is ours to write until it is published below.
        unsafe {
            set_next(block, if head.is_null() { list_end(page) } else { head }, page.key);
            if write_mark {
                (*block).mark = mark;
            }
        }
        let new = rest.wrapping_add(1 << TF_COUNT_SHIFT) + block as usize;
        match page.thread_free.compare_exchange_weak(
            old,
            if notify { new | TF_NOTIFIED } else { new },
            Ordering::Release,
            Ordering::Relaxed,
        ) {
            Ok(_) => {
                return if notify {
                    PUSH_NOTIFY
                } else if head.is_null() && rest & TF_NOTIFIED == 0 {
                    PUSH_FIRST
                } else {
                    0
                };
            }
            Err(cur) => old = cur,
        }
    }
}

/// Moves every block on the page's remote free list to its local free list
/// and returns how many there were (the length taken with the list, so
/// the list is not walked to count it). `clear_flags` also clears the
/// `TF_*` bits (the owner took the page off the notify list or is taking
/// it off the full list). The list is walked only to find its tail when
/// the local list is not empty, which the collections of malloc's refill
/// never meet (they collect a page whose local list ran out); `pop`
/// checks every link it follows. Owner only.
///
/// A block freed by another thread and then by the owner (whose test of
/// the list heads sees only the last block pushed) is on both lists; when
/// the count then exceeds the blocks out, or the tail walk finds a list of
/// another length, that is reported here, naming the block. Otherwise the
/// allocation that meets the block the second time finds its free mark
/// cleared and reports it, and a page whose count says empty has its
/// blocks' marks checked before it is given back
/// (`heap::check_empty_page`).
///
/// # Safety
/// `page` must be a live page owned by the calling thread's heap.
pub unsafe fn collect_remote(page: &mut Page, clear_flags: bool) -> u32 {
    let tf = page.thread_free.load(Ordering::Relaxed);
    if tf & TF_LIST == 0 && (!clear_flags || tf & TF_FLAGS == 0) {
        return 0;
    }
    let taken = take_remote(page, tf, clear_flags);
    let head = remote_head(taken);
    if head.is_null() {
        return 0;
    }
    let count = remote_len(taken);
    let mut twice = count > page.used_count();
    if !twice && !at_end(page, page.free) {
        // SAFETY: the list was just taken from this page; `tail` is a free
        // block of it.
        unsafe {
            let (tail, walked) = remote_tail(page, head);
            twice = walked != count;
            if !twice {
                set_next(tail, page.free, page.key);
            }
        }
    }
    if twice {
        // SAFETY: `head` heads the list just taken from this page.
        let block = unsafe { first_shared_block(page, head) };
        crate::diag::heap_error_fatal("free", "double free detected", block as usize);
    }
    page.free = head;
    // At most `used_count()` (tested above), so it fits in 16 bits.
    page.used -= count as u16;
    page.flags &= !FLAG_ZERO;
    count
}

/// The first block of the remote list at `head` that is also on the page's
/// local list (a block freed by another thread, then by the owner), or
/// `head` if there is none.
///
/// # Safety
/// As `remote_tail`; the caller is the page's owner.
unsafe fn first_shared_block(page: &Page, head: *mut Block) -> *mut Block {
    let mut local = BlockSet::new();
    let limit = page.reserved + 1;
    let mut cur = page.free;
    let mut n = 0;
    // SAFETY: blocks on the page's lists are its carved blocks; both walks
    // stop at `reserved + 1` steps and at a link outside the segment.
    unsafe {
        while !at_end(page, cur) && same_segment(cur, page) && n < limit {
            local.insert(page, cur);
            cur = next_of(cur, page.key);
            n += 1;
        }
        let (mut cur, mut n) = (head, 0);
        while !at_end(page, cur) && same_segment(cur, page) && n < limit {
            if local.contains(page, cur) {
                return cur;
            }
            cur = next_of(cur, page.key);
            n += 1;
        }
    }
    head
}

/// The last block of a remote list taken from `page`, starting at `head`,
/// and the number of blocks on it. A link outside the page's segment, or
/// more links than the page has blocks (a cycle), is reported as a
/// corrupted list and ends the walk there.
///
/// # Safety
/// `head` must head a list just taken off `page.thread_free` by its owner:
/// every block on it is a free block of this page, published by the
/// Release CAS in `push_remote` and acquired by the taking.
unsafe fn remote_tail(page: &Page, head: *mut Block) -> (*mut Block, u32) {
    let mut count = 1u32;
    let mut tail = head;
    loop {
        // SAFETY: as the caller guarantees, `tail` is a free block of the page.
        let next = unsafe { next_of(tail, page.key) };
        if at_end(page, next) {
            break;
        }
        if !same_segment(next, page) || count > page.reserved {
            crate::diag::heap_error("free", "corrupted remote free list", tail as usize);
            break;
        }
        tail = next;
        count += 1;
    }
    (tail, count)
}

/// Takes the page's remote list (`tf`: `thread_free` as last loaded),
/// clearing the `TF_*` flags too when `clear_flags`; returns the word
/// taken (head and length: [`remote_head`], [`remote_len`]).
fn take_remote(page: &Page, tf: usize, clear_flags: bool) -> usize {
    let old = if clear_flags {
        page.thread_free.swap(0, Ordering::Acquire)
    } else {
        // Keep the flags, take the list.
        let mut cur = tf;
        loop {
            match page.thread_free.compare_exchange_weak(
                cur,
                cur & TF_FLAGS,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => break cur,
                Err(c) => cur = c,
            }
        }
    };
    old & !TF_FLAGS
}

/// True if `block` is on the page's local or remote free list (the slow
/// confirmation of a suspected double free).
///
/// # Safety
/// `page` must be a live page; only its owner may call this with
/// `local == true`.
pub unsafe fn list_contains(page: &Page, block: *mut Block, local: bool) -> bool {
    let limit = page.reserved as usize + 1;
    let mut lists = [ptr::null_mut::<Block>(); 2];
    lists[0] = remote_head(page.thread_free.load(Ordering::Acquire));
    if local {
        lists[1] = page.free;
    }
    for mut cur in lists {
        let mut steps = 0;
        while !at_end(page, cur) && steps < limit {
            if cur == block {
                return true;
            }
            if !same_segment(cur, page) {
                break;
            }
            // SAFETY: `cur` is on a free list of this page (checked to be in
            // its segment), so it is a readable free block.
            cur = unsafe { next_of(cur, page.key) };
            steps += 1;
        }
    }
    false
}
