//! The profiler's tables, in memory mapped directly (never malloc):
//! - stacks: one record per distinct call stack, with sampled counts and
//!   bytes (in use and allocated in total), found through a hash index;
//! - live: the sampled blocks still allocated, address -> (stack, size),
//!   an open-addressing table with linear probing and backward-shift
//!   deletion (no tombstones), doubled when 5/8 full.
//!
//! Everything here runs under the profiler's lock (`profile::LOCK`).

use core::ptr;

use super::stack::MAX_DEPTH;
use crate::os;

/// A live entry's value is `size << 24 | stack id`; sizes are capped here
/// (bit 63 is [`TRACED_ONLY`]).
const LIVE_SIZE_MAX: usize = (1usize << 39) - 1;
/// Live-entry flag: a block mtrace logs that the sampler did not choose
/// (no stack id, in no stack's figures).
const TRACED_ONLY: usize = 1 << 63;
/// The stack id in a live entry's value.
const ID_MASK: usize = (1 << 24) - 1;

/// The block size in a live entry's value.
fn entry_size(value: usize) -> usize {
    (value & !TRACED_ONLY) >> 24
}

/// One distinct call stack and what was sampled from it. Counts and bytes
/// are raw samples (not scaled by the sampling rate).
#[derive(Clone, Copy)]
#[repr(C)]
pub struct StackRec {
    pub hash: u64,
    pub depth: u32,
    /// The size bucket (see `size_bucket`): a stack has one record per
    /// bucket, so that pprof's per-line unsampling, exact for blocks of
    /// one size, stays close for each line.
    pub bucket: u32,
    pub live_count: u64,
    pub live_bytes: u64,
    pub alloc_count: u64,
    pub alloc_bytes: u64,
    pub frames: [usize; MAX_DEPTH],
}

/// Most distinct stacks recorded; later new stacks share the last record.
pub const MAX_STACKS: usize = 1 << 18;
/// Entries of the live-block table when it is made (grown as needed): 8
/// KiB, where a first table of 64 KiB was all resident (a hash table
/// touches every page with a few dozen entries).
const LIVE_INITIAL: usize = 512;

pub struct Tables {
    /// MAX_STACKS records, mapped at once (pages become resident as
    /// records fill them, in order).
    pub stacks: *mut StackRec,
    pub nstacks: usize,
    /// Hash index into `stacks` (index + 1; 0 = empty), `index_cap` slots.
    index: *mut u32,
    index_cap: usize,
    /// Live sampled blocks: pairs (address, size << 24 | stack).
    live: *mut [usize; 2],
    live_cap: usize,
    pub live_len: usize,
    /// The record that every new stack is charged to once the table is
    /// full (see [`stack_table_full`]), if it came to that.
    overflow: Option<u32>,
}

/// The one frame of the record that takes the stacks beyond the table's
/// [`MAX_STACKS`] (or beyond what its index could grow to): a profile or
/// leak report names this function for them, so a reader sees that the
/// figures of that many distinct stacks were merged. Before, every new
/// stack was charged silently to the last one recorded: a fresh tester's
/// 300 000 distinct stacks gave one stack 37 857 blocks that were not its
/// own, and the leak report still said "exact". Never called.
#[inline(never)]
fn stack_table_full() {
    // SAFETY: a no-op instruction. A body of its own, which LLVM merges
    // with no other function, and whose first instruction the debug
    // information gives to this function itself (an inlined helper's
    // would name that helper in pprof).
    unsafe { core::arch::asm!("nop", "nop", options(nomem, nostack, preserves_flags)) };
}

impl Tables {
    pub const fn new() -> Self {
        Self {
            stacks: ptr::null_mut(),
            nstacks: 0,
            index: ptr::null_mut(),
            index_cap: 0,
            live: ptr::null_mut(),
            live_cap: 0,
            live_len: 0,
            overflow: None,
        }
    }

    /// Maps the initial tables. False when out of memory.
    pub fn init(&mut self) -> bool {
        if !self.stacks.is_null() {
            return true;
        }
        let stacks = os::map(MAX_STACKS * core::mem::size_of::<StackRec>()) as *mut StackRec;
        let index = os::map(1024 * 4) as *mut u32;
        let live = os::map(LIVE_INITIAL * 16) as *mut [usize; 2];
        if stacks.is_null() || index.is_null() || live.is_null() {
            // SAFETY: each non-null pointer is a mapping made just above.
            unsafe {
                if !stacks.is_null() {
                    os::unmap(stacks.cast(), MAX_STACKS * core::mem::size_of::<StackRec>());
                }
                if !index.is_null() {
                    os::unmap(index.cast(), 1024 * 4);
                }
                if !live.is_null() {
                    os::unmap(live.cast(), LIVE_INITIAL * 16);
                }
            }
            return false;
        }
        self.stacks = stacks;
        self.index = index;
        self.index_cap = 1024;
        self.live = live;
        self.live_cap = LIVE_INITIAL;
        true
    }

    /// The records in use.
    pub fn records(&self) -> &[StackRec] {
        if self.stacks.is_null() {
            return &[];
        }
        // SAFETY: the first `nstacks` records are initialised.
        unsafe { core::slice::from_raw_parts(self.stacks, self.nstacks) }
    }

    /// The record of this stack, made if new. None only when the tables
    /// are not mapped.
    pub fn intern(&mut self, frames: &[usize], size: usize) -> Option<u32> {
        if self.stacks.is_null() {
            return None;
        }
        let bucket = size_bucket(size);
        let hash = hash_frames(frames) ^ (bucket as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let mask = self.index_cap - 1;
        let mut i = hash as usize & mask;
        loop {
            // SAFETY: `i` < index_cap, the mapped index's length.
            let slot = unsafe { *self.index.add(i) };
            if slot == 0 {
                break;
            }
            // SAFETY: index entries point at initialised records.
            let rec = unsafe { &*self.stacks.add(slot as usize - 1) };
            if rec.hash == hash && rec.bucket == bucket && &rec.frames[..rec.depth as usize] == frames {
                return Some(slot - 1);
            }
            i = (i + 1) & mask;
        }
        if self.overflow.is_none()
            && (self.nstacks + 1 >= MAX_STACKS || ((self.nstacks + 1) * 2 > self.index_cap && !self.grow_index()))
        {
            self.start_overflow();
        }
        if let Some(id) = self.overflow {
            return Some(id);
        }
        let id = self.append(hash, bucket, frames);
        self.index_insert(id);
        Some(id as u32)
    }

    /// Fills the next free record with zero counts and this stack, and
    /// returns its number. The caller has checked there is room (the
    /// overflow record's slot is always kept).
    fn append(&mut self, hash: u64, bucket: u32, frames: &[usize]) -> usize {
        let id = self.nstacks;
        debug_assert!(id < MAX_STACKS);
        // SAFETY: `id` < MAX_STACKS, inside the mapping.
        unsafe {
            let rec = &mut *self.stacks.add(id);
            // A record discarded by `discard_samples` may be reused.
            rec.live_count = 0;
            rec.live_bytes = 0;
            rec.alloc_count = 0;
            rec.alloc_bytes = 0;
            rec.hash = hash;
            rec.depth = frames.len() as u32;
            rec.bucket = bucket;
            rec.frames[..frames.len()].copy_from_slice(frames);
        }
        self.nstacks += 1;
        id
    }

    /// Appends the record that takes every new stack from now on (the last
    /// slot when the table is full; it is not in the index, so no stack
    /// finds it by its frames) and warns once on stderr.
    fn start_overflow(&mut self) {
        let id = self.append(0, 0, &[Self::overflow_frame()]);
        self.overflow = Some(id as u32);
        crate::diag::print(format_args!(
            "ptrs: heap profiler: more than {} distinct stacks; the blocks of further stacks are counted under ptrs::profile::table::stack_table_full\n",
            id
        ));
    }

    /// Whether new stacks went to the overflow record (see
    /// [`stack_table_full`]).
    pub fn overflowed(&self) -> bool {
        self.overflow.is_some()
    }

    /// The frame of the overflow record.
    pub fn overflow_frame() -> usize {
        stack_table_full as *const () as usize
    }

    fn index_insert(&mut self, id: usize) {
        // SAFETY: `id` is an initialised record.
        let hash = unsafe { (*self.stacks.add(id)).hash };
        let mask = self.index_cap - 1;
        let mut i = hash as usize & mask;
        // SAFETY: `i` stays below index_cap; the index is never full (load
        // at most 1/2).
        unsafe {
            while *self.index.add(i) != 0 {
                i = (i + 1) & mask;
            }
            *self.index.add(i) = id as u32 + 1;
        }
    }

    fn grow_index(&mut self) -> bool {
        let cap = self.index_cap * 2;
        let new = os::map(cap * 4) as *mut u32;
        if new.is_null() {
            return false;
        }
        // SAFETY: the old index is ours and no longer referenced after this.
        unsafe { os::unmap(self.index.cast(), self.index_cap * 4) };
        self.index = new;
        self.index_cap = cap;
        for id in 0..self.nstacks {
            self.index_insert(id);
        }
        true
    }

    /// Records a sampled block of `size` bytes at `addr` from stack `id`.
    /// Records the block at `addr` of `size` bytes in the live table
    /// only ([`TRACED_ONLY`]): a block mtrace logs that the sampler did
    /// not choose. Its free is found (and logged); no stack counts it.
    pub fn add_traced(&mut self, addr: usize, size: usize) {
        self.insert_new(addr, TRACED_ONLY | (size.min(LIVE_SIZE_MAX) << 24));
    }

    pub fn add_live(&mut self, addr: usize, size: usize, id: u32) {
        // SAFETY: `id` is a record returned by `intern`; the stack table
        // does not move while the live table changes.
        let rec = unsafe { self.stacks.add(id as usize) };
        // SAFETY: as above.
        unsafe {
            (*rec).alloc_count += 1;
            (*rec).alloc_bytes += size as u64;
        }
        if !self.insert_new(addr, (size.min(LIVE_SIZE_MAX) << 24) | id as usize) {
            return; // untracked: counted as allocated, never as in use
        }
        // SAFETY: as above.
        unsafe {
            (*rec).live_count += 1;
            (*rec).live_bytes += size as u64;
        }
    }

    /// Enters `addr -> value` for a block just allocated. A stale entry
    /// for `addr` (its free was lost: the signal handlers' queue was full)
    /// first leaves its stack's in-use figures, so that they do not count
    /// a block forever. False when the table is full and cannot grow (the
    /// block is not entered).
    fn insert_new(&mut self, addr: usize, value: usize) -> bool {
        self.remove_live(addr);
        if (self.live_len + 1) * 8 > self.live_cap * 5 && !self.grow_live() {
            return false;
        }
        self.live_insert(addr, value);
        self.live_len += 1;
        true
    }

    /// Puts `[addr, value]` in the first free slot of its probe chain;
    /// `addr` must not be in the table (see `insert_new`, `move_live`).
    fn live_insert(&mut self, addr: usize, value: usize) {
        let mask = self.live_cap - 1;
        let mut i = hash_addr(addr) & mask;
        // SAFETY: `i` stays below live_cap; the table is never full.
        unsafe {
            while (*self.live.add(i))[0] != 0 {
                i = (i + 1) & mask;
            }
            *self.live.add(i) = [addr, value];
        }
    }

    fn grow_live(&mut self) -> bool {
        let cap = self.live_cap * 2;
        let new = os::map(cap * 16) as *mut [usize; 2];
        if new.is_null() {
            return false;
        }
        let (old, old_cap) = (self.live, self.live_cap);
        self.live = new;
        self.live_cap = cap;
        for i in 0..old_cap {
            // SAFETY: `i` < old_cap, inside the old table.
            let e = unsafe { *old.add(i) };
            if e[0] != 0 {
                self.live_insert(e[0], e[1]);
            }
        }
        // SAFETY: the old table is ours and no longer referenced.
        unsafe { os::unmap(old.cast(), old_cap * 16) };
        true
    }

    /// The slot of the sampled block at `addr` in the live table, if it is
    /// one.
    fn find_live(&self, addr: usize) -> Option<usize> {
        if self.live.is_null() {
            return None;
        }
        let mask = self.live_cap - 1;
        let mut i = hash_addr(addr) & mask;
        loop {
            // SAFETY: masked index inside the table.
            let e = unsafe { *self.live.add(i) };
            if e[0] == 0 {
                return None;
            }
            if e[0] == addr {
                return Some(i);
            }
            i = (i + 1) & mask;
        }
    }

    /// Empties slot `i` of the live table (a used one) and returns what it
    /// held. Backward-shift deletion keeps every probe chain unbroken.
    fn take_live_slot(&mut self, i: usize) -> [usize; 2] {
        let mask = self.live_cap - 1;
        // SAFETY: all indices are masked below live_cap.
        unsafe {
            let taken = *self.live.add(i);
            let mut hole = i;
            let mut j = (i + 1) & mask;
            loop {
                let e = *self.live.add(j);
                if e[0] == 0 {
                    break;
                }
                let home = hash_addr(e[0]) & mask;
                // Move `e` into the hole if its home is not in (hole, j].
                let dist_home = j.wrapping_sub(home) & mask;
                let dist_hole = j.wrapping_sub(hole) & mask;
                if dist_home >= dist_hole {
                    *self.live.add(hole) = e;
                    hole = j;
                }
                j = (j + 1) & mask;
            }
            *self.live.add(hole) = [0, 0];
            self.live_len -= 1;
            taken
        }
    }

    /// Forgets the sampled block at `addr`, if it is one: takes it out of
    /// its stack's in-use figures. Returns whether it was sampled.
    pub fn remove_live(&mut self, addr: usize) -> bool {
        let Some(i) = self.find_live(addr) else {
            return false;
        };
        let e = self.take_live_slot(i);
        if e[1] & TRACED_ONLY != 0 {
            return true;
        }
        let id = e[1] & ID_MASK;
        let size = entry_size(e[1]);
        // SAFETY: the id in a live entry is a record returned by `intern`.
        let rec = unsafe { &mut *self.stacks.add(id) };
        rec.live_count -= 1;
        rec.live_bytes -= size as u64;
        true
    }

    /// The size recorded for the block at `addr`, and whether it is a
    /// sample (rather than known to mtrace only); None if unknown.
    pub fn live_entry(&self, addr: usize) -> Option<(usize, bool)> {
        let i = self.find_live(addr)?;
        // SAFETY: `i` is a slot of the table.
        let v = unsafe { (*self.live.add(i))[1] };
        Some((entry_size(v), v & TRACED_ONLY == 0))
    }

    /// The size recorded for the block at `addr`, if the table knows it.
    pub fn live_size(&self, addr: usize) -> Option<usize> {
        self.live_entry(addr).map(|(size, _)| size)
    }

    /// Gives the block at `addr`, if the table knows it, the size `size`
    /// (realloc kept it in place): its stack's in-use bytes follow, and
    /// growth is also added to its allocated total (the bytes were handed
    /// out to the program), so that in-use bytes never exceed allocated
    /// bytes (`1: 120 [1: 100]` after growing 100 bytes to 120). The block
    /// stays with the stack that allocated it; a realloc that moves a block
    /// is a new allocation, recorded with the realloc's stack. Returns the
    /// size it had.
    pub fn resize_live(&mut self, addr: usize, size: usize) -> Option<usize> {
        let i = self.find_live(addr)?;
        let size = size.min(LIVE_SIZE_MAX);
        // SAFETY: `i` is a slot of the table.
        let v = unsafe { (*self.live.add(i))[1] };
        let old = entry_size(v);
        let low = v & (TRACED_ONLY | ID_MASK);
        // SAFETY: as above.
        unsafe { (*self.live.add(i))[1] = low | (size << 24) };
        if v & TRACED_ONLY == 0 {
            // SAFETY: the id in a live entry is a record returned by `intern`.
            let rec = unsafe { &mut *self.stacks.add(v & ID_MASK) };
            rec.live_bytes = rec.live_bytes.wrapping_add(size as u64).wrapping_sub(old as u64);
            if size > old {
                rec.alloc_bytes += (size - old) as u64;
            }
        }
        Some(old)
    }

    /// Forgets every sampled block and every stack record (the sampling
    /// rate changed: see `profile::start`); blocks known only to mtrace
    /// stay in the live table. A later free of a forgotten block finds
    /// nothing, as for any block never sampled.
    pub fn discard_samples(&mut self) {
        if self.stacks.is_null() {
            return;
        }
        // Backward-shift deletion only moves entries towards the slot just
        // emptied (a later one of its probe chain, possibly wrapped round to
        // the start): a slot is read again after each removal, and an entry
        // moved to a slot already passed is one already kept (mtrace's).
        let mut i = 0;
        while i < self.live_cap {
            // SAFETY: `i` < live_cap, inside the table.
            let e = unsafe { *self.live.add(i) };
            if e[0] != 0 && e[1] & TRACED_ONLY == 0 {
                self.take_live_slot(i);
            } else {
                i += 1;
            }
        }
        self.nstacks = 0;
        self.overflow = None;
        // SAFETY: the index is `index_cap` mapped u32 slots, ours.
        unsafe { ptr::write_bytes(self.index, 0, self.index_cap) };
    }

    /// Moves the record of the sampled block at `old` to `new` (a huge
    /// block that realloc moved with `mremap`); returns its recorded size,
    /// or None when `old` is not a sampled block. Its stack's figures do
    /// not change.
    pub fn move_live(&mut self, old: usize, new: usize) -> Option<usize> {
        if old == new {
            return None;
        }
        let i = self.find_live(old)?;
        let e = self.take_live_slot(i);
        self.remove_live(new); // a stale entry, as in `add_live`
        self.live_insert(new, e[1]);
        self.live_len += 1;
        Some(entry_size(e[1]))
    }
}

/// Four buckets per power of two of the size.
pub fn size_bucket(size: usize) -> u32 {
    if size < 16 {
        return size as u32;
    }
    let log = usize::BITS - 1 - size.leading_zeros();
    log * 4 + ((size >> (log - 2)) & 3) as u32
}

fn hash_frames(frames: &[usize]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &f in frames {
        h = (h ^ f as u64).wrapping_mul(0x0000_0100_0000_01b3);
        h ^= h >> 29;
    }
    h
}

#[inline]
fn hash_addr(addr: usize) -> usize {
    let h = (addr as u64 >> 4).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (h >> 20) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_blocks_come_and_go() {
        let mut t = Tables::new();
        assert!(t.init());
        let a = t.intern(&[1, 2, 3], 10).unwrap();
        let b = t.intern(&[4, 5], 10).unwrap();
        assert_eq!(t.intern(&[1, 2, 3], 10), Some(a));
        assert_ne!(a, b);
        for i in 1..20_000usize {
            t.add_live(i * 16, 10, if i % 2 == 0 { a } else { b });
        }
        assert_eq!(t.live_len, 19_999);
        for i in (1..20_000usize).step_by(3) {
            assert!(t.remove_live(i * 16));
        }
        assert!(!t.remove_live(16));
        for i in 1..20_000usize {
            assert_eq!(t.live_size(i * 16).is_some(), (i - 1) % 3 != 0, "{i}");
        }
        let total: u64 = t.records().iter().map(|r| r.live_count).sum();
        assert_eq!(total as usize, t.live_len);
        assert_eq!(t.records().iter().map(|r| r.alloc_count).sum::<u64>(), 19_999);
    }

    #[test]
    fn in_place_growth_counts_as_allocated() {
        let mut t = Tables::new();
        assert!(t.init());
        let a = t.intern(&[7, 8], 100).unwrap();
        t.add_live(4096, 100, a);
        assert_eq!(t.resize_live(4096, 120), Some(100));
        let r = t.records()[a as usize];
        assert_eq!((r.live_count, r.live_bytes, r.alloc_count, r.alloc_bytes), (1, 120, 1, 120));
        // Shrinking leaves the allocated total alone.
        assert_eq!(t.resize_live(4096, 50), Some(120));
        let r = t.records()[a as usize];
        assert_eq!((r.live_bytes, r.alloc_bytes), (50, 120));
        assert!(r.live_bytes <= r.alloc_bytes);
    }

    #[test]
    fn discarding_samples_keeps_traced_blocks() {
        let mut t = Tables::new();
        assert!(t.init());
        let a = t.intern(&[1, 2, 3], 10).unwrap();
        for i in 1..5_000usize {
            if i % 3 == 0 {
                t.add_traced(i * 16, 10);
            } else {
                t.add_live(i * 16, 10, a);
            }
        }
        t.discard_samples();
        assert_eq!(t.records().len(), 0);
        assert_eq!(t.live_len, (1..5_000usize).filter(|i| i % 3 == 0).count());
        for i in 1..5_000usize {
            assert_eq!(t.live_size(i * 16).is_some(), i % 3 == 0, "{i}");
            assert_eq!(t.remove_live(i * 16), i % 3 == 0, "{i}");
        }
        // A stack interned again starts from zero.
        let b = t.intern(&[1, 2, 3], 10).unwrap();
        t.add_live(16, 10, b);
        assert_eq!(t.records()[b as usize].alloc_count, 1);
        assert_eq!(t.records()[b as usize].live_bytes, 10);
    }
}
