//! `GlobalAlloc` over the ptrs engine, so a Rust program can use it with
//! `#[global_allocator] static A: ptrs::Ptrs = ptrs::Ptrs;` without
//! `LD_PRELOAD`.

use core::alloc::{GlobalAlloc, Layout};

use crate::{alloc, free, size_class::MIN_ALIGN, valgrind};

/// The ptrs allocator as a Rust global allocator.
///
/// Under valgrind's memcheck it allocates as the C functions do there
/// (memcheck mode, `valgrind.rs`: every block announced to memcheck, with a
/// redzone), since `dealloc`'s free is memcheck mode's free then; before,
/// every deallocation of a Rust program was reported as an invalid free
/// (fresh tester).
pub struct Ptrs;

// SAFETY: every method forwards to the engine (or to memcheck mode, over
// the engine), which returns blocks of at least the requested size and
// alignment (or null), and frees only blocks it handed out.
unsafe impl GlobalAlloc for Ptrs {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if valgrind::active() {
            return valgrind::alloc(layout.size(), layout.align(), false);
        }
        if layout.align() <= MIN_ALIGN {
            alloc::malloc(layout.size())
        } else {
            alloc::malloc_aligned(layout.align(), layout.size())
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        free::free(ptr)
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if valgrind::active() {
            return valgrind::alloc(layout.size(), layout.align(), true);
        }
        if layout.align() <= MIN_ALIGN {
            alloc::calloc(1, layout.size())
        } else {
            let p = alloc::malloc_aligned(layout.align(), layout.size());
            if !p.is_null() {
                // SAFETY: `p` holds at least `layout.size()` writable bytes.
                unsafe { core::ptr::write_bytes(p, 0, layout.size()) };
            }
            p
        }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if layout.align() <= MIN_ALIGN {
            if valgrind::active() {
                return valgrind::realloc(ptr, new_size.max(1));
            }
            return alloc::realloc(ptr, new_size.max(1));
        }
        let q = if valgrind::active() {
            valgrind::alloc(new_size, layout.align(), false)
        } else {
            alloc::malloc_aligned(layout.align(), new_size)
        };
        if !q.is_null() {
            // SAFETY: both blocks are live and distinct; the old one holds
            // `layout.size()` bytes, the new one at least `new_size`.
            unsafe { core::ptr::copy_nonoverlapping(ptr, q, layout.size().min(new_size)) };
            free::free(ptr);
        }
        q
    }
}
