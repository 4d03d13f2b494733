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

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks, clippy::missing_safety_doc)]

pub mod abi;
pub mod alloc;
pub mod check;
pub mod diag;
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
