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
    let arena = t.mapped - t.huge_mapped;
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
    stats::print(&mut |s: &[u8]| os::write_fd(2, s));
}

/// Returns free memory to the OS now: this thread's empty pages and free
/// slices, parked heaps', and the segment cache. 1 if memory was released.
///
/// # Safety
/// C ABI: any pad (ignored: ptrs keeps no top chunk to pad).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn malloc_trim(_pad: usize) -> i32 {
    super::preserving_errno(|| crate::abi::api::trim()) as i32
}

const M_TRIM_THRESHOLD: i32 = -1;
const M_TOP_PAD: i32 = -2;
const M_MMAP_THRESHOLD: i32 = -3;
const M_CHECK_ACTION: i32 = -5;
/// glibc's upper bound for M_MMAP_THRESHOLD on 64-bit systems.
const MMAP_THRESHOLD_MAX: usize = 32 << 20;

/// glibc's mallopt: 1 where the parameter is honoured, 0 otherwise.
///
/// # Safety
/// C ABI: any values.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mallopt(param: i32, value: i32) -> i32 {
    match param {
        M_MMAP_THRESHOLD if value >= 0 && value as usize <= MMAP_THRESHOLD_MAX => {
            options::set_large_threshold(value as usize);
            1
        }
        M_TRIM_THRESHOLD => {
            // -1 disables trimming: keep every empty segment.
            options::set_retain(if value < 0 { usize::MAX } else { value as usize });
            1
        }
        M_TOP_PAD if value >= 0 => {
            options::set_top_pad(value as usize);
            1
        }
        M_CHECK_ACTION => {
            // glibc: bit 1 asks for abort on a detected error.
            options::set_abort_on_error(value & 2 != 0);
            1
        }
        // M_ARENA_MAX and the rest have no meaning for ptrs, whose heaps
        // are per thread: not honoured.
        _ => 0,
    }
}

unsafe extern "C" {
    fn fwrite(ptr: *const c_void, size: usize, n: usize, stream: *mut c_void) -> usize;
}

/// Writes glibc-shaped XML statistics to `stream`. `options` must be 0.
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
    let arena = t.mapped - t.huge_mapped;
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
