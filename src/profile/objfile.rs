//! Reading a loaded object's unwind tables from its file instead of its
//! mapping, for the profiler's unwinder (`unwind.rs`).
//!
//! Why: the unwinder reads `.eh_frame_hdr` and `.eh_frame` once per new
//! return address. Through the mapping, the first touch of those sections
//! makes the kernel map a whole 64 KiB fault-around window of them into
//! the process, resident from then on: for a small program sampled at the
//! default rate, C library frames alone (`start_thread`,
//! `__libc_start_call_main`) cost two windows (+128 KiB of peak RSS),
//! libptrs's own frames one more (+40 KiB), libstdc++'s three (+192 KiB),
//! measured with /proc/self/smaps. `pread(2)` copies the same bytes from
//! the page cache into a buffer on the stack and maps nothing.
//!
//! The file is the one the loader mapped only if it was not replaced since
//! (a package upgrade while the program runs): the object's GNU build-id
//! note in memory must equal the file's. An object without a build-id is
//! read through its mapping: its ELF and program headers were compared at
//! first, but a rebuild with the same layout and other frame rules has the
//! same headers (a review made one: a wrong stack). Whatever the file holds, reads
//! stay inside the stack buffer, so a mismatch can give a wrong rule
//! (which the walk's stack bounds catch as for any wrong rule), never a
//! wrong memory access. Where the file cannot be used (no absolute path,
//! as for the vDSO; `open` refused, as under a seccomp filter that fails
//! it; a mismatch; a read error), the caller reads the mapping as before.
//! A seccomp filter that kills the process on `open` instead kills it
//! here: `PTRS_PROFILE_UNWIND_FILES=0` is for such programs.
//!
//! Nothing here allocates or takes a lock: raw system calls on a
//! descriptor opened for one rule computation and closed after it. It is
//! recorded in [`OPEN_FDS`] meanwhile, so that a fork child, which has a
//! copy of it but not the thread that would close it, closes it
//! ([`after_fork_child`]). Another thread of the program may close it
//! under us (`close_range(3, ~0)` in a daemon) and open a file of its own
//! under the same number: the descriptor's device and inode are checked
//! again after the computation ([`ObjFile::still_ours`]), so the rule is
//! then not used and the program's descriptor is not closed (a review saw
//! both happen, in 5 runs of 6, before this check). Between that check
//! and the close, a window of one system call remains. errno is the
//! caller's to keep (`unwind.rs`).

use core::ffi::c_char;
use core::sync::atomic::{AtomicI32, Ordering};

/// Bytes read from the file at a time.
const WINDOW: usize = 256;
/// Most `PT_LOAD` segments kept (objects have 2 to 5).
const MAX_LOADS: usize = 8;

/// Most `PT_NOTE` segments looked at for the build-id.
const MAX_NOTES: usize = 4;

const PT_LOAD: u32 = 1;
const PT_NOTE: u32 = 4;
const NT_GNU_BUILD_ID: u32 = 3;
/// The first page of an object's mapping holds its ELF header and program
/// headers (and usually its notes); only that much of the mapping is read.
const FIRST_PAGE: usize = 4096;

#[derive(Clone, Copy)]
struct Load {
    vaddr: usize,
    filesz: usize,
    offset: usize,
}

/// An open object file and a window of its bytes, addressed by where
/// they are mapped in this process.
pub struct ObjFile {
    fd: i32,
    /// Load bias: mapped address minus the file's virtual address.
    bias: usize,
    loads: [Load; MAX_LOADS],
    nloads: usize,
    win: [u8; WINDOW],
    /// Mapped address of `win[0]`, and how many bytes `win` holds.
    win_addr: usize,
    win_len: usize,
    /// A read failed (or went outside every segment): the bytes returned
    /// since are zeros and the caller must not trust its result.
    pub failed: bool,
    /// The slot of `fd` in [`OPEN_FDS`] (None until it is open).
    slot: Option<FdSlot>,
    /// Device and inode of the file opened (see [`ObjFile::still_ours`]);
    /// None until checked.
    id: Option<(u64, u64)>,
}

/// `struct link_map`'s first two fields (link.h).
#[repr(C)]
struct LinkMapHead {
    l_addr: usize,
    l_name: *const c_char,
}

fn pread(fd: i32, buf: &mut [u8], offset: usize) -> isize {
    loop {
        // SAFETY: `buf` is writable for its length; a raw call, which
        // allocates nothing and is no cancellation point.
        let n = unsafe { libc::syscall(libc::SYS_pread64, fd, buf.as_mut_ptr(), buf.len(), offset as i64) } as isize;
        if n < 0 && crate::os::errno() == libc::EINTR {
            continue;
        }
        return n;
    }
}

/// Reads `buf.len()` bytes of the file at `offset`; false if fewer came.
fn pread_exact(fd: i32, buf: &mut [u8], offset: usize) -> bool {
    pread(fd, buf, offset) == buf.len() as isize
}

/// Reads a little-endian field of `N` bytes at `at` inside `page`.
fn field<const N: usize>(page: &[u8], at: usize) -> u64 {
    let mut v = 0u64;
    for i in (0..N).rev() {
        v = v << 8 | page[at + i] as u64;
    }
    v
}

impl ObjFile {
    /// Opens the file of the object mapped at `map_start` whose link map is
    /// `link_map` (both from `_dl_find_object`). None: the file cannot be
    /// used (see the module documentation); the caller reads the mapping.
    ///
    /// # Safety
    /// `map_start` and `link_map` must describe a loaded object: its first
    /// page mapped readable at `map_start`, `link_map` its live link map.
    pub unsafe fn open(map_start: usize, link_map: usize) -> Option<ObjFile> {
        // SAFETY: the first page of a loaded object is mapped readable
        // (caller); the loader itself read its headers from there.
        let page = unsafe { core::slice::from_raw_parts(map_start as *const u8, FIRST_PAGE) };
        if page[..4] != *b"\x7fELF" || page[4] != 2 || page[5] != 1 {
            return None; // not a little-endian ELF64 object
        }
        let phoff = field::<8>(page, 32) as usize;
        let phentsize = field::<2>(page, 54) as usize;
        let phnum = field::<2>(page, 56) as usize;
        let ph_end = phoff.checked_add(phnum.checked_mul(56)?)?;
        if phentsize != 56 || phnum == 0 || ph_end > FIRST_PAGE {
            return None;
        }
        let mut f = ObjFile {
            fd: -1,
            bias: 0,
            loads: [Load { vaddr: 0, filesz: 0, offset: 0 }; MAX_LOADS],
            nloads: 0,
            win: [0; WINDOW],
            win_addr: 0,
            win_len: 0,
            failed: false,
            slot: None,
            id: None,
        };
        // (vaddr, size, alignment) of the PT_NOTE segments: libraries linked
        // with a `.note.gnu.property` have two, the build-id in the second.
        let mut notes = [(0usize, 0usize, 0usize); MAX_NOTES];
        let mut nnotes = 0;
        for i in 0..phnum {
            let ph = phoff + i * 56;
            let kind = field::<4>(page, ph) as u32;
            let offset = field::<8>(page, ph + 8) as usize;
            let vaddr = field::<8>(page, ph + 16) as usize;
            let filesz = field::<8>(page, ph + 32) as usize;
            if kind == PT_LOAD {
                if f.nloads == MAX_LOADS {
                    return None;
                }
                if f.nloads == 0 {
                    if offset != 0 {
                        return None; // the header is not at the mapping's start
                    }
                    f.bias = map_start.wrapping_sub(vaddr & !(FIRST_PAGE - 1));
                }
                f.loads[f.nloads] = Load { vaddr, filesz, offset };
                f.nloads += 1;
            } else if kind == PT_NOTE && nnotes < MAX_NOTES {
                let align = field::<8>(page, ph + 48) as usize;
                notes[nnotes] = (vaddr, filesz, if align == 8 { 8 } else { 4 });
                nnotes += 1;
            }
        }
        if f.nloads == 0 {
            return None;
        }
        // SAFETY: a live link map (caller) starts with these two fields.
        let head = unsafe { &*(link_map as *const LinkMapHead) };
        if head.l_addr != f.bias {
            return None;
        }
        if head.l_name.is_null() {
            return None;
        }
        // SAFETY: l_name is a NUL-terminated string owned by the loader
        // ("" for the main program).
        let name = unsafe { core::ffi::CStr::from_ptr(head.l_name) }.to_bytes();
        let path: *const c_char = if name.is_empty() {
            c"/proc/self/exe".as_ptr()
        } else if name[0] == b'/' {
            head.l_name
        } else {
            return None; // the vDSO, or a path relative to some old cwd
        };
        // O_NONBLOCK: a path that is now a FIFO must not block malloc.
        let flags = libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NONBLOCK | libc::O_NOCTTY;
        let slot = FdSlot::take()?;
        // SAFETY: a NUL-terminated path; a raw call that allocates nothing.
        f.fd = unsafe { libc::syscall(libc::SYS_openat, libc::AT_FDCWD, path, flags) } as i32;
        if f.fd < 0 {
            slot.release();
            return None;
        }
        f.slot = Some(slot);
        slot.hold(f.fd);
        let Some((id, true)) = crate::os::file_id(f.fd) else {
            return None; // not a regular file; `f` closes the descriptor
        };
        f.id = Some(id);
        if !f.same_build_id(page, &notes[..nnotes]) {
            return None;
        }
        Some(f)
    }

    /// Whether the descriptor still refers to the file opened: another
    /// thread may have closed it and opened something else under its
    /// number (see the module documentation).
    pub fn still_ours(&self) -> bool {
        self.id.is_some() && crate::os::file_id(self.fd).map(|(id, _)| id) == self.id
    }

    /// Whether the open file is the one mapped: the object has a GNU
    /// build-id note in its first page, and the file the same bytes there.
    fn same_build_id(&mut self, page: &[u8], notes: &[(usize, usize, usize)]) -> bool {
        let mut buf = [0u8; 256];
        for &(vaddr, size, align) in notes {
            // The note segment's place in the first page; page[i] is file
            // byte i (the first segment maps the file from offset 0,
            // page-aligned, as p_vaddr and p_offset agree modulo the page
            // size).
            let at = vaddr.wrapping_sub(self.loads[0].vaddr & !(FIRST_PAGE - 1));
            if at >= FIRST_PAGE || size > FIRST_PAGE - at {
                continue;
            }
            let end = at + size;
            let pad = |n: usize| (n + align - 1) & !(align - 1);
            let mut p = at;
            while p + 12 <= end {
                let namesz = field::<4>(page, p) as usize;
                let descsz = field::<4>(page, p + 4) as usize;
                let kind = field::<4>(page, p + 8) as u32;
                // Both sizes are below 2^32: no overflow in usize.
                let desc = pad(p + 12 + namesz);
                let next = pad(desc + descsz);
                if next > end || desc + descsz > end {
                    break;
                }
                if kind == NT_GNU_BUILD_ID && namesz == 4 && &page[p + 12..p + 16] == b"GNU\0" && descsz <= buf.len() {
                    return pread_exact(self.fd, &mut buf[..descsz], desc) && buf[..descsz] == page[desc..desc + descsz];
                }
                p = next;
            }
        }
        false
    }

    /// The byte mapped at `addr`, read from the file (0 and `failed` when
    /// no segment holds it or the read fails).
    #[inline]
    pub fn byte(&mut self, addr: usize) -> u8 {
        let k = addr.wrapping_sub(self.win_addr);
        if k < self.win_len {
            return self.win[k];
        }
        self.fill(addr);
        if self.win_len == 0 {
            self.failed = true;
            return 0;
        }
        self.win[0]
    }

    /// Loads the window with the bytes from `addr` on (as many as the
    /// segment holding it has, up to the window's size).
    fn fill(&mut self, addr: usize) {
        self.win_len = 0;
        let vaddr = addr.wrapping_sub(self.bias);
        for l in &self.loads[..self.nloads] {
            let k = vaddr.wrapping_sub(l.vaddr);
            if k < l.filesz {
                let n = (l.filesz - k).min(WINDOW);
                let got = pread(self.fd, &mut self.win[..n], l.offset + k);
                if got > 0 {
                    self.win_addr = addr;
                    self.win_len = got as usize;
                }
                return;
            }
        }
    }
}

impl Drop for ObjFile {
    fn drop(&mut self) {
        if let Some(slot) = self.slot {
            // The slot first: a fork child must not close a number that
            // this thread has given back and someone else reopened.
            slot.release();
            // Not closed if the number is someone else's file now.
            if self.id.is_none() || self.still_ours() {
                // SAFETY: the descriptor was opened by `open` and is ours.
                unsafe { libc::syscall(libc::SYS_close, self.fd) };
            }
        }
    }
}

/// Descriptors open for rule computations, so that a fork child (which
/// has copies of them but not the threads that would close them) closes
/// them: `after_fork_child`. -1: free; -2: taken, not yet open.
static OPEN_FDS: [AtomicI32; MAX_OPEN] = [const { AtomicI32::new(-1) }; MAX_OPEN];
/// Computations from files at once (beyond that, rules are computed
/// from the mappings).
const MAX_OPEN: usize = 8;

#[derive(Clone, Copy)]
struct FdSlot(usize);

impl FdSlot {
    fn take() -> Option<FdSlot> {
        (0..MAX_OPEN)
            .find(|&i| OPEN_FDS[i].compare_exchange(-1, -2, Ordering::AcqRel, Ordering::Relaxed).is_ok())
            .map(FdSlot)
    }
    fn hold(self, fd: i32) {
        OPEN_FDS[self.0].store(fd, Ordering::Release);
    }
    fn release(self) {
        OPEN_FDS[self.0].store(-1, Ordering::Release);
    }
}

/// In the child after `fork`: closes the descriptors that threads of the
/// parent had open for rule computations (only the forking thread runs
/// in the child, and it was not inside one: `fork` is not called from
/// malloc).
pub fn after_fork_child() {
    for s in &OPEN_FDS {
        let fd = s.swap(-1, Ordering::AcqRel);
        if fd >= 0 {
            // SAFETY: the child's copy of a descriptor no thread here uses.
            unsafe { libc::syscall(libc::SYS_close, fd) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A library replaced on disk after it was loaded (a package upgrade)
    /// is not read from its path: the build-ids differ.
    #[test]
    fn a_replaced_file_is_not_used() {
        let lib_dir = "/usr/lib/x86_64-linux-gnu";
        let (first, second) = (format!("{lib_dir}/libdl.so.2"), format!("{lib_dir}/libm.so.6"));
        if !std::path::Path::new(&first).exists() || !std::path::Path::new(&second).exists() {
            return;
        }
        let dir = std::env::temp_dir().join(format!("ptrs-objfile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("libprobe.so");
        std::fs::copy(&first, &path).unwrap();
        let cpath = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
        // SAFETY: a NUL-terminated path of a copy of a system library.
        let h = unsafe { libc::dlopen(cpath.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
        assert!(!h.is_null());
        let mut lm: *mut LinkMapHead = core::ptr::null_mut();
        // SAFETY: `h` is a live handle; RTLD_DI_LINKMAP writes a pointer.
        assert_eq!(unsafe { libc::dlinfo(h, libc::RTLD_DI_LINKMAP, (&raw mut lm).cast()) }, 0);
        // SAFETY: the link map of a loaded object.
        let map_start = unsafe { (*lm).l_addr };
        // SAFETY: the object is loaded: its first page is at its load
        // bias (first segment at virtual address 0), `lm` its link map.
        assert!(unsafe { ObjFile::open(map_start, lm as usize) }.is_some());
        // Replaced the way package managers do it: a new file renamed
        // over the old path (the old inode stays mapped).
        let new = dir.join("libprobe.so.new");
        std::fs::copy(&second, &new).unwrap();
        std::fs::rename(&new, &path).unwrap();
        // SAFETY: as above.
        assert!(unsafe { ObjFile::open(map_start, lm as usize) }.is_none());
        // SAFETY: `h` came from dlopen.
        unsafe { libc::dlclose(h) };
        let _ = std::fs::remove_dir_all(&dir);
    }
}
