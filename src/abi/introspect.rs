//! malloc_usable_size and glibc's introspection calls: mallinfo,
//! mallinfo2, malloc_stats, malloc_trim, mallopt, malloc_info.

use core::ffi::c_void;
use core::fmt::Write;

use crate::diag::LineBuf;
use crate::{free, options, os, stats};

/// # Safety
/// `p` must be null or a live block from this allocator.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn malloc_usable_size(p: *mut c_void) -> usize {
    if crate::valgrind::active() {
        return crate::valgrind::usable_size(p.cast());
    }
    free::usable_size(p.cast())
}

/// glibc's `struct mallinfo2`.
#[repr(C)]
pub struct Mallinfo2 {
    pub arena: usize,
    pub ordblks: usize,
    pub smblks: usize,
    pub hblks: usize,
    pub hblkhd: usize,
    pub usmblks: usize,
    pub fsmblks: usize,
    pub uordblks: usize,
    pub fordblks: usize,
    pub keepcost: usize,
}

/// glibc's `struct mallinfo` (int fields, saturated).
#[repr(C)]
pub struct Mallinfo {
    pub arena: i32,
    pub ordblks: i32,
    pub smblks: i32,
    pub hblks: i32,
    pub hblkhd: i32,
    pub usmblks: i32,
    pub fsmblks: i32,
    pub uordblks: i32,
    pub fordblks: i32,
    pub keepcost: i32,
}

fn mallinfo_now() -> Mallinfo2 {
    let t = stats::gather();
    // Read apart from `mapped` (one counter of all mappings), the live huge
    // bytes can briefly exceed it while another thread unmaps a block.
    let arena = t.mapped.saturating_sub(t.huge_mapped);
    let in_use = t.small_allocated + t.large_allocated;
    let free_pages: usize = t.classes.iter().map(|c| c.pages).sum();
    Mallinfo2 {
        arena,
        ordblks: free_pages,
        smblks: 0,
        hblks: t.huge_count,
        hblkhd: t.huge_mapped,
        usmblks: 0,
        fsmblks: 0,
        uordblks: in_use,
        fordblks: arena.saturating_sub(in_use),
        keepcost: t.retained,
    }
}

/// # Safety
/// C ABI: no arguments.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mallinfo2() -> Mallinfo2 {
    mallinfo_now()
}

/// # Safety
/// C ABI: no arguments.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mallinfo() -> Mallinfo {
    let m = mallinfo_now();
    let c = |v: usize| v.min(i32::MAX as usize) as i32;
    Mallinfo {
        arena: c(m.arena),
        ordblks: c(m.ordblks),
        smblks: c(m.smblks),
        hblks: c(m.hblks),
        hblkhd: c(m.hblkhd),
        usmblks: c(m.usmblks),
        fsmblks: c(m.fsmblks),
        uordblks: c(m.uordblks),
        fordblks: c(m.fordblks),
        keepcost: c(m.keepcost),
    }
}

/// Prints the statistics table to stderr.
///
/// # Safety
/// C ABI: no arguments.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn malloc_stats() {
    let _q = crate::valgrind::Quiet::new(); // memcheck mode: engine code
    stats::print(&mut |s: &[u8]| os::write_fd(2, s));
}

/// Returns free memory to the OS now: this thread's empty pages and free
/// slices, parked heaps', and the segment cache. 1 if memory was released.
///
/// # Safety
/// C ABI: any pad (ignored: ptrs keeps no top chunk to pad).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn malloc_trim(_pad: usize) -> i32 {
    let _q = crate::valgrind::Quiet::new(); // memcheck mode: engine code
    super::preserving_errno(|| crate::abi::api::trim()) as i32
}

const M_MXFAST: i32 = 1;
const M_TRIM_THRESHOLD: i32 = -1;
const M_TOP_PAD: i32 = -2;
const M_MMAP_THRESHOLD: i32 = -3;
const M_ARENA_MAX: i32 = -8;
/// glibc's `MAX_FAST_SIZE` on 64-bit systems (`80 * sizeof(size_t) / 4`):
/// the largest value `M_MXFAST` accepts.
const MAX_FAST_SIZE: usize = 80 * core::mem::size_of::<usize>() / 4;

/// glibc's `mallopt`: sets a tuning parameter. Returns what glibc 2.36
/// returns (its `__libc_mallopt` in malloc/malloc.c), so that programs
/// which check the result behave as they do on glibc:
///
/// - 0 (the only error) for `M_MXFAST` with a value above glibc's
///   `MAX_FAST_SIZE` (160 bytes; negative values count as huge);
/// - 1 for everything else, unknown parameters included.
///
/// What each parameter does in ptrs (values in bytes; negative values are
/// taken as `size_t`, as glibc does):
///
/// - `M_MMAP_THRESHOLD`: blocks above it get their own mapping (ptrs caps
///   the threshold it applies at 2 MiB, see `alloc.rs`);
/// - `M_TRIM_THRESHOLD`: bytes of empty segments kept for reuse (-1: all);
/// - `M_TOP_PAD`: added to that amount;
/// - `M_ARENA_MAX`: a value above 0 is stored (`options::arena_max`), 0 or
///   less leaves it unchanged, as in glibc;
/// - `M_CHECK_ACTION`: accepted and ignored. glibc 2.36 ignores it too and
///   still aborts on a detected heap error; in ptrs only
///   `PTRS_ABORT_ON_ERROR=0` turns aborting off.
/// - `M_MXFAST`, `M_MMAP_MAX`, `M_PERTURB`, `M_ARENA_TEST` and unknown
///   parameters: accepted, no effect (ptrs has no fastbins, no limit on the
///   number of mappings, no perturb byte, no arena test).
///
/// Does not touch errno. Thread-safe: each parameter is one atomic store.
///
/// # Safety
/// C ABI: any values.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mallopt(param: i32, value: i32) -> i32 {
    // glibc passes the int to helpers taking size_t: -1 becomes SIZE_MAX.
    let as_size = value as isize as usize;
    match param {
        M_MXFAST => (as_size <= MAX_FAST_SIZE) as i32,
        M_MMAP_THRESHOLD => {
            options::set_large_threshold(as_size);
            1
        }
        M_TRIM_THRESHOLD => {
            // -1 (SIZE_MAX) disables trimming: keep every empty segment.
            options::set_retain(as_size);
            1
        }
        M_TOP_PAD => {
            options::set_top_pad(as_size);
            1
        }
        M_ARENA_MAX => {
            if value > 0 {
                options::set_arena_max(value as usize);
            }
            1
        }
        _ => 1,
    }
}

unsafe extern "C" {
    fn fwrite(ptr: *const c_void, size: usize, n: usize, stream: *mut c_void) -> usize;
}

/// Writes glibc-shaped XML statistics to `stream`. `options` must be 0
/// (else EINVAL is returned). Writes with stdio's `fwrite` on the caller's
/// stream, as glibc's writes with `fprintf`: like glibc's, it may be a
/// cancellation point and the stream may allocate its buffer (which works
/// re-entrantly: no ptrs lock is held while writing).
///
/// # Safety
/// `stream` must be a valid `FILE *`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn malloc_info(opts: i32, stream: *mut c_void) -> i32 {
    if opts != 0 {
        return libc::EINVAL;
    }
    let t = stats::gather();
    let mut line = LineBuf::new();
    let emit = |line: &LineBuf| {
        // SAFETY: the caller guarantees `stream` is a valid FILE*; the
        // buffer is valid for its length. Called without any ptrs lock held.
        unsafe { fwrite(line.as_bytes().as_ptr().cast(), 1, line.as_bytes().len(), stream) };
    };
    macro_rules! out {
        ($($arg:tt)*) => {{ line.clear(); let _ = write!(line, $($arg)*); emit(&line); }};
    }
    out!("<malloc version=\"1\">\n<heap nr=\"0\">\n<sizes>\n");
    for (bin, c) in t.classes.iter().enumerate() {
        if c.pages == 0 {
            continue;
        }
        let size = crate::size_class::bin_size(bin);
        let free_blocks = c.blocks_capacity - c.blocks_used.min(c.blocks_capacity);
        out!("<size from=\"{}\" to=\"{}\" total=\"{}\" count=\"{}\"/>\n", size, size, free_blocks * size, free_blocks);
    }
    // Read apart from `mapped` (one counter of all mappings), the live huge
    // bytes can briefly exceed it while another thread unmaps a block.
    let arena = t.mapped.saturating_sub(t.huge_mapped);
    let in_use = t.small_allocated + t.large_allocated;
    out!("</sizes>\n<total type=\"fast\" count=\"0\" size=\"0\"/>\n");
    out!("<total type=\"rest\" count=\"0\" size=\"{}\"/>\n", arena.saturating_sub(in_use));
    out!("<system type=\"current\" size=\"{}\"/>\n<system type=\"max\" size=\"{}\"/>\n", arena, t.peak_mapped);
    out!("<aspace type=\"total\" size=\"{}\"/>\n<aspace type=\"mprotect\" size=\"{}\"/>\n</heap>\n", arena, arena);
    out!("<total type=\"fast\" count=\"0\" size=\"0\"/>\n");
    out!("<total type=\"rest\" count=\"0\" size=\"{}\"/>\n", arena.saturating_sub(in_use));
    out!("<total type=\"mmap\" count=\"{}\" size=\"{}\"/>\n", t.huge_count, t.huge_mapped);
    out!("<system type=\"current\" size=\"{}\"/>\n<system type=\"max\" size=\"{}\"/>\n", t.mapped, t.peak_mapped);
    out!("<aspace type=\"total\" size=\"{}\"/>\n<aspace type=\"mprotect\" size=\"{}\"/>\n</malloc>\n", t.mapped, t.mapped);
    0
}

/// glibc's `mtrace()`: with `MALLOC_TRACE=file`, traces every allocation
/// and free to `file` in glibc's format until `muntrace()` (see
/// `src/mtrace.rs`). Without the variable, does nothing, as glibc.
#[unsafe(no_mangle)]
pub extern "C" fn mtrace() {
    crate::mtrace::mtrace()
}

/// glibc's `muntrace()`: ends tracing started by `mtrace()`.
#[unsafe(no_mangle)]
pub extern "C" fn muntrace() {
    crate::mtrace::muntrace()
}
