//! ptrs: a drop-in replacement for the C heap allocator.
//!
//! Layers, calls going downwards only:
//!
//! ```text
//!   abi/            the C names (malloc, free, ...): errno, NULL, EINVAL
//!   alloc, free     engine entry points; small / large / huge dispatch
//!   heap            per-thread heaps: size-class queues, slow paths
//!   page            blocks of one size: local and remote free lists
//!   segment, huge   4 MiB aligned regions; slices; huge mappings
//!   os              mmap, madvise, clock, entropy
//! ```
//!
//! Leaves usable from anywhere: `size_class`, `options`, `diag`, `sync`,
//! `segment_map`, `tls`, `stats`, `init`, `valgrind` (memcheck client
//! requests, used by `abi/` and `init` only).
//!
//! Nothing here allocates through Rust's `alloc` (no `Vec`, `Box`,
//! `String`, `format!`): under `LD_PRELOAD` that would call back into us.
//!
//! # Hot code
//!
//! The functions that every program runs (the C entry points that are
//! not inlined, the heap's refill and span paths, start-up, thread start
//! and exit, remote frees) carry `#[unsafe(link_section =
//! ".text.hot.ptrs")]`, which puts them next to each other in the
//! library's text (the Linux kernel's `__hot`, GCC's `.text.hot`). The
//! kernel maps a file's pages around each one a program touches (64 KiB
//! fault-around, or the whole page-cache folio), so spread over the text
//! they kept most of it resident in every process: grouped, the peak RSS
//! of a small program is lower (falsesharing 2132 -> 1940 KiB, python3
//! -c 'import json' 15512 -> 15452 KiB, bash -c 'echo hi' 3656 -> 3616
//! KiB, medians of 5). Rarely run paths (huge blocks, fork, purges,
//! profiler, statistics) stay out of it. The attribute changes placement
//! only: a function without it is as correct, just farther away.
//!
//! To find what is missing, list the library's text pages that programs
//! fault in: `perf record -e page-faults -c 1 -d` on a program under
//! `LD_PRELOAD`, then `perf script -F ip,sym,dso,addr`, keeping the lines
//! whose address is the instruction pointer. A fault outside the first
//! page-cache folio of the text maps another 64 to 128 KiB. Functions
//! that had drifted out (the refill's `alloc_bin`, the segment header's
//! set-up, the exit hook, the decay tick and its purge, the C++ entry
//! points, realloc's slow path, the sampling countdown's reset) were put
//! back: peak RSS of `int main(){free(malloc(100));}` 1784 -> 1704 KiB,
//! falsesharing 2088 -> 2028, cxx 5304 -> 5184, sqlite3 4552 -> 4436,
//! bash -c true 3636 -> 3564 (medians of 5). What stays out: std's
//! `ARGV_INIT_ARRAY` constructor and the PLT, which the linker places at
//! the end of the text.

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks, clippy::missing_safety_doc)]

pub mod abi;
pub mod alloc;
pub mod check;
pub mod diag;
pub mod foreign;
pub mod free;
mod global_alloc;
pub mod heap;
pub mod huge;
pub mod init;
pub mod mtrace;
pub mod options;
pub mod os;
pub mod page;
pub mod pool;
mod pool_handle;
pub mod profile;
pub mod purger;
pub mod retain;
pub mod segment;
pub mod segment_map;
pub mod size_class;
pub mod stats;
pub mod sync;
pub mod tls;
pub mod valgrind;

pub use global_alloc::Ptrs;
pub use pool_handle::Pool;

/// The library version, from Cargo.toml.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
