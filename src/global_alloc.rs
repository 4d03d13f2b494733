//! `GlobalAlloc` over the ptrs engine, so a Rust program can use it with
//! `#[global_allocator] static A: ptrs::Ptrs = ptrs::Ptrs;` without
//! `LD_PRELOAD`.

use core::alloc::{GlobalAlloc, Layout};

use crate::{alloc, free, size_class::MIN_ALIGN};

/// The ptrs allocator as a Rust global allocator.
pub struct Ptrs;

// SAFETY: every method forwards to the engine, which returns blocks of at
// least the requested size and alignment (or null), and frees only blocks
// it handed out.
unsafe impl GlobalAlloc for Ptrs {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
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
            return alloc::realloc(ptr, new_size.max(1));
        }
        let q = alloc::malloc_aligned(layout.align(), new_size);
        if !q.is_null() {
            // SAFETY: both blocks are live and distinct; the old one holds
            // `layout.size()` bytes, the new one at least `new_size`.
            unsafe { core::ptr::copy_nonoverlapping(ptr, q, layout.size().min(new_size)) };
            free::free(ptr);
        }
        q
    }
}
