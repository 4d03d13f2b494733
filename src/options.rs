//! Run-time options: one table, read once from the environment at start-up
//! without allocating (the `environ` array is walked directly; `getenv` and
//! `std::env` are not usable before the C runtime is up, and the latter
//! allocates). Values live in atomics so that `mallopt` can change them.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `PTRS_VERBOSE` | off | print start-up messages and warnings (unknown `PTRS_*` names, bad values) to stderr |
//! | `PTRS_SHOW_STATS` | off | print the statistics table at exit |
//! | `PTRS_LARGE_THRESHOLD` (`MALLOC_MMAP_THRESHOLD_`) | 2 MiB | blocks above it are mapped directly |
//! | `PTRS_PURGE_DELAY` | 10 (ms) | free pages are returned to the OS after this delay; 0 = at once |
//! | `PTRS_RETAIN` (`MALLOC_TRIM_THRESHOLD_`) | 8 MiB | empty segments kept mapped (and purged) for reuse |
//! | (`MALLOC_TOP_PAD_`) | 0 | added to the retained amount |
//! | `PTRS_ABORT_ON_ERROR` | on | abort on a detected heap error; off = warn and leave the block alone |
//! | `PTRS_SIZED_FREE_CHECK` | on | a size or alignment given to `free_sized`, `free_aligned_sized` or C++'s sized or aligned `operator delete` that does not match the block is a heap error; off = the block is freed as `free` would (glibc's behaviour) |
//! | `PTRS_HEAP_LIMIT` | 0 (none) | most bytes ptrs maps; beyond it allocations fail with ENOMEM |
//! | `PTRS_ARENA_MAX` (`MALLOC_ARENA_MAX`) | 0 (none) | most heaps owned by threads; later threads share one |
//! | `PTRS_BACKGROUND_PURGE` | off | a thread that purges every heap's idle memory each purge delay |
//! | `PTRS_PROFILE` | unset | heap profiling on from the start; writes `<value>.<pid>.heap` at exit |
//! | `PTRS_PROFILE_RATE` | 512 KiB | bytes allocated per sample on average (1: every allocation) |
//! | `PTRS_LEAK_REPORT` | off | profiling on, and the blocks still allocated at exit reported on stderr |
//! | `PTRS_LEAK_EXITCODE` | 0 (none) | with the leak report: exit status of a program that leaks |
//! | `PTRS_PROFILE_UNWIND_CHECK` | off | debugging aid: the profiler takes every stack with both unwinders and aborts on a difference |
//! | `PTRS_PROFILE_UNWIND_FILES` | on | the profiler's unwinder reads unwind tables from the object files (`open`, `pread`) rather than their mappings, keeping them out of RSS; off for a process whose seccomp filter kills on `open` |
//!
//! `GLIBC_TUNABLES` entries `glibc.malloc.mmap_threshold`, `trim_threshold`
//! and `top_pad` are honoured like the `MALLOC_*_` variables. glibc's
//! variables are applied first, so a `PTRS_*` variable of the same meaning
//! wins whatever the order of the environment.

use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use crate::diag;

pub const DEFAULT_LARGE_THRESHOLD: usize = 2 << 20;
pub const DEFAULT_PURGE_DELAY_MS: u64 = 10;
pub const DEFAULT_RETAIN: usize = 8 << 20;

static VERBOSE: AtomicBool = AtomicBool::new(false);
static BACKGROUND_PURGE: AtomicBool = AtomicBool::new(false);
static SHOW_STATS: AtomicBool = AtomicBool::new(false);
static ABORT_ON_ERROR: AtomicBool = AtomicBool::new(true);
static SIZED_FREE_CHECK: AtomicBool = AtomicBool::new(true);
static LARGE_THRESHOLD: AtomicUsize = AtomicUsize::new(DEFAULT_LARGE_THRESHOLD);
static PURGE_DELAY_MS: AtomicU64 = AtomicU64::new(DEFAULT_PURGE_DELAY_MS);
static RETAIN: AtomicUsize = AtomicUsize::new(DEFAULT_RETAIN);
static HEAP_LIMIT: AtomicUsize = AtomicUsize::new(0);
static TOP_PAD: AtomicUsize = AtomicUsize::new(0);
static ARENA_MAX: AtomicUsize = AtomicUsize::new(0);
/// PTRS_PROFILE's value: a NUL-terminated string in `environ` (null: unset).
static PROFILE_PREFIX: core::sync::atomic::AtomicPtr<libc::c_char> =
    core::sync::atomic::AtomicPtr::new(core::ptr::null_mut());
static PROFILE_RATE: AtomicUsize = AtomicUsize::new(0);
static LEAK_REPORT: AtomicBool = AtomicBool::new(false);
static LEAK_EXITCODE: AtomicU64 = AtomicU64::new(0);
static PROFILE_UNWIND_CHECK: AtomicBool = AtomicBool::new(false);
static PROFILE_UNWIND_FILES: AtomicBool = AtomicBool::new(true);

/// `PTRS_PROFILE_UNWIND_FILES`: the profiler's unwinder may read unwind
/// tables from object files (`open`/`pread`) instead of their mappings
/// (`profile/objfile.rs`); off for processes under a seccomp filter that
/// kills on `open`.
pub fn profile_unwind_files() -> bool {
    PROFILE_UNWIND_FILES.load(Ordering::Relaxed)
}
fn get_profile_unwind_files() -> u64 {
    profile_unwind_files() as u64
}
fn apply_profile_unwind_files(v: u64) {
    PROFILE_UNWIND_FILES.store(v != 0, Ordering::Relaxed)
}

/// `PTRS_PROFILE_UNWIND_CHECK`: compare the profiler's unwinder with
/// libgcc's on every stack (`profile::stack::capture`).
pub fn profile_unwind_check() -> bool {
    PROFILE_UNWIND_CHECK.load(Ordering::Relaxed)
}
fn get_profile_unwind_check() -> u64 {
    profile_unwind_check() as u64
}
fn apply_profile_unwind_check(v: u64) {
    PROFILE_UNWIND_CHECK.store(v != 0, Ordering::Relaxed)
}

/// The `PTRS_PROFILE` prefix (a NUL-terminated string), or null.
pub fn profile_prefix() -> *const libc::c_char {
    PROFILE_PREFIX.load(Ordering::Relaxed)
}
/// The sampling rate asked for in bytes (0: the profiler's default).
pub fn profile_rate() -> usize {
    PROFILE_RATE.load(Ordering::Relaxed)
}
pub fn leak_report() -> bool {
    LEAK_REPORT.load(Ordering::Relaxed)
}
/// Exit status for a program with leaks (0: leave the status alone).
pub fn leak_exitcode() -> u64 {
    LEAK_EXITCODE.load(Ordering::Relaxed)
}

#[inline]
pub fn verbose() -> bool {
    VERBOSE.load(Ordering::Relaxed)
}
#[inline]
pub fn show_stats() -> bool {
    SHOW_STATS.load(Ordering::Relaxed)
}
#[inline]
pub fn abort_on_error() -> bool {
    ABORT_ON_ERROR.load(Ordering::Relaxed)
}
/// `PTRS_SIZED_FREE_CHECK`: whether a sized or aligned free that names the
/// wrong size or alignment is reported (read only on the slow path of a
/// sized free, after its fast test failed).
#[inline]
pub fn sized_free_check() -> bool {
    SIZED_FREE_CHECK.load(Ordering::Relaxed)
}
#[inline]
pub fn large_threshold() -> usize {
    LARGE_THRESHOLD.load(Ordering::Relaxed)
}
#[inline]
pub fn purge_delay_ms() -> u64 {
    PURGE_DELAY_MS.load(Ordering::Relaxed)
}
/// Bytes of empty segments kept mapped for reuse: the trim threshold plus
/// the top pad.
#[inline]
pub fn retain() -> usize {
    RETAIN.load(Ordering::Relaxed).saturating_add(TOP_PAD.load(Ordering::Relaxed))
}

/// Most bytes ptrs may map (0: no limit).
#[inline]
pub fn heap_limit() -> usize {
    HEAP_LIMIT.load(Ordering::Relaxed)
}
pub fn set_heap_limit(v: usize) {
    HEAP_LIMIT.store(v, Ordering::Relaxed);
}

/// The most heaps threads may own (`mallopt(M_ARENA_MAX, n)`,
/// `MALLOC_ARENA_MAX`, `glibc.malloc.arena_max`, `PTRS_ARENA_MAX`); 0: no
/// limit. Threads beyond it share one heap (see `heap::thread_heap_slow`).
#[inline]
pub fn arena_max() -> usize {
    ARENA_MAX.load(Ordering::Relaxed)
}
pub fn set_arena_max(v: usize) {
    ARENA_MAX.store(v, Ordering::Relaxed);
}

pub fn set_large_threshold(v: usize) {
    LARGE_THRESHOLD.store(v, Ordering::Relaxed);
}
pub fn set_purge_delay_ms(v: u64) {
    PURGE_DELAY_MS.store(v, Ordering::Relaxed);
}
pub fn set_retain(v: usize) {
    RETAIN.store(v, Ordering::Relaxed);
}
pub fn set_top_pad(v: usize) {
    TOP_PAD.store(v, Ordering::Relaxed);
}
pub fn set_verbose(v: bool) {
    VERBOSE.store(v, Ordering::Relaxed);
}
/// Whether the background purger runs (`PTRS_BACKGROUND_PURGE`).
#[inline]
pub fn background_purge() -> bool {
    BACKGROUND_PURGE.load(Ordering::Relaxed)
}
fn apply_background_purge(v: u64) {
    BACKGROUND_PURGE.store(v != 0, Ordering::Relaxed)
}
fn get_background_purge() -> u64 {
    background_purge() as u64
}
pub fn set_show_stats(v: bool) {
    SHOW_STATS.store(v, Ordering::Relaxed);
}
pub fn set_abort_on_error(v: bool) {
    ABORT_ON_ERROR.store(v, Ordering::Relaxed);
}

#[derive(Clone, Copy)]
enum Kind {
    Bool,
    Size,
    Millis,
    /// A plain count (heaps).
    Count,
    /// A string: `apply` receives the address of the NUL-terminated value.
    Text,
}

struct OptionSpec {
    name: &'static [u8],
    kind: Kind,
    apply: fn(u64),
    get: fn() -> u64,
}

fn get_verbose() -> u64 {
    verbose() as u64
}
fn get_show_stats() -> u64 {
    show_stats() as u64
}
fn get_abort() -> u64 {
    abort_on_error() as u64
}
fn get_sized_free_check() -> u64 {
    sized_free_check() as u64
}
fn get_large() -> u64 {
    // The threshold in effect (alloc's `large_limit`): a value set above
    // the cap reads back capped.
    large_threshold().min(crate::segment::LARGE_MAX) as u64
}
fn get_purge() -> u64 {
    purge_delay_ms()
}
fn get_retain() -> u64 {
    RETAIN.load(Ordering::Relaxed) as u64
}
fn get_top_pad() -> u64 {
    TOP_PAD.load(Ordering::Relaxed) as u64
}
fn get_heap_limit() -> u64 {
    heap_limit() as u64
}

fn get_profile_prefix() -> u64 {
    profile_prefix() as u64
}
/// The rate the profiler samples at while it runs, else the one it would
/// start with (`PTRS_PROFILE_RATE`, or the default), in bytes: never the
/// option's internal 0 for "the default".
fn get_profile_rate() -> u64 {
    let rate = if crate::profile::sampling() {
        crate::profile::rate()
    } else {
        match profile_rate() {
            0 => crate::profile::DEFAULT_RATE,
            r => r,
        }
    };
    rate as u64
}
fn get_leak_report() -> u64 {
    leak_report() as u64
}
fn get_leak_exitcode() -> u64 {
    leak_exitcode()
}
fn apply_profile_prefix(v: u64) {
    PROFILE_PREFIX.store(v as *mut libc::c_char, Ordering::Relaxed)
}
fn apply_profile_rate(v: u64) {
    PROFILE_RATE.store(v as usize, Ordering::Relaxed)
}
fn apply_leak_report(v: u64) {
    LEAK_REPORT.store(v != 0, Ordering::Relaxed)
}
fn apply_leak_exitcode(v: u64) {
    LEAK_EXITCODE.store(v.min(255), Ordering::Relaxed)
}

fn apply_verbose(v: u64) {
    set_verbose(v != 0)
}
fn apply_show_stats(v: u64) {
    set_show_stats(v != 0)
}
fn apply_abort(v: u64) {
    set_abort_on_error(v != 0)
}
fn apply_sized_free_check(v: u64) {
    SIZED_FREE_CHECK.store(v != 0, Ordering::Relaxed);
}
fn apply_large(v: u64) {
    set_large_threshold(v as usize)
}
fn apply_purge(v: u64) {
    set_purge_delay_ms(v)
}
fn apply_retain(v: u64) {
    set_retain(v as usize)
}
fn apply_top_pad(v: u64) {
    set_top_pad(v as usize)
}
fn apply_heap_limit(v: u64) {
    set_heap_limit(v as usize)
}
fn apply_arena_max(v: u64) {
    set_arena_max(v as usize)
}
fn get_arena_max() -> u64 {
    arena_max() as u64
}

/// Every option ptrs reads. glibc's `MALLOC_*_` variables are honoured where
/// they mean something here; a `PTRS_*` variable of the same meaning wins
/// because it is listed later.
static TABLE: &[OptionSpec] = &[
    OptionSpec { name: b"MALLOC_MMAP_THRESHOLD_", kind: Kind::Size, apply: apply_large, get: get_large },
    OptionSpec { name: b"MALLOC_TRIM_THRESHOLD_", kind: Kind::Size, apply: apply_retain, get: get_retain },
    OptionSpec { name: b"MALLOC_TOP_PAD_", kind: Kind::Size, apply: apply_top_pad, get: get_top_pad },
    OptionSpec { name: b"MALLOC_ARENA_MAX", kind: Kind::Count, apply: apply_arena_max, get: get_arena_max },
    OptionSpec { name: b"PTRS_VERBOSE", kind: Kind::Bool, apply: apply_verbose, get: get_verbose },
    OptionSpec { name: b"PTRS_SHOW_STATS", kind: Kind::Bool, apply: apply_show_stats, get: get_show_stats },
    OptionSpec { name: b"PTRS_ABORT_ON_ERROR", kind: Kind::Bool, apply: apply_abort, get: get_abort },
    OptionSpec { name: b"PTRS_SIZED_FREE_CHECK", kind: Kind::Bool, apply: apply_sized_free_check, get: get_sized_free_check },
    OptionSpec { name: b"PTRS_LARGE_THRESHOLD", kind: Kind::Size, apply: apply_large, get: get_large },
    OptionSpec { name: b"PTRS_PURGE_DELAY", kind: Kind::Millis, apply: apply_purge, get: get_purge },
    OptionSpec { name: b"PTRS_RETAIN", kind: Kind::Size, apply: apply_retain, get: get_retain },
    OptionSpec { name: b"PTRS_HEAP_LIMIT", kind: Kind::Size, apply: apply_heap_limit, get: get_heap_limit },
    OptionSpec { name: b"PTRS_ARENA_MAX", kind: Kind::Count, apply: apply_arena_max, get: get_arena_max },
    OptionSpec { name: b"PTRS_BACKGROUND_PURGE", kind: Kind::Bool, apply: apply_background_purge, get: get_background_purge },
    OptionSpec { name: b"PTRS_PROFILE", kind: Kind::Text, apply: apply_profile_prefix, get: get_profile_prefix },
    OptionSpec { name: b"PTRS_PROFILE_RATE", kind: Kind::Size, apply: apply_profile_rate, get: get_profile_rate },
    OptionSpec { name: b"PTRS_LEAK_REPORT", kind: Kind::Bool, apply: apply_leak_report, get: get_leak_report },
    OptionSpec { name: b"PTRS_LEAK_EXITCODE", kind: Kind::Size, apply: apply_leak_exitcode, get: get_leak_exitcode },
    OptionSpec {
        name: b"PTRS_PROFILE_UNWIND_CHECK",
        kind: Kind::Bool,
        apply: apply_profile_unwind_check,
        get: get_profile_unwind_check,
    },
    OptionSpec {
        name: b"PTRS_PROFILE_UNWIND_FILES",
        kind: Kind::Bool,
        apply: apply_profile_unwind_files,
        get: get_profile_unwind_files,
    },
];

/// `GLIBC_TUNABLES` names ptrs honours, and the option each maps to.
static TUNABLES: &[(&[u8], &[u8])] = &[
    (b"glibc.malloc.mmap_threshold", b"MALLOC_MMAP_THRESHOLD_"),
    (b"glibc.malloc.trim_threshold", b"MALLOC_TRIM_THRESHOLD_"),
    (b"glibc.malloc.top_pad", b"MALLOC_TOP_PAD_"),
    (b"glibc.malloc.arena_max", b"MALLOC_ARENA_MAX"),
];

/// The option called `name` (`purge_delay`, `PTRS_PURGE_DELAY`, any case).
fn find_by_short_name(name: &[u8]) -> Option<&'static OptionSpec> {
    // The prefix in any case too ("Ptrs_Purge_Delay"), as ptrs.h says.
    let name = match name.split_at_checked(5) {
        Some((prefix, rest)) if prefix.eq_ignore_ascii_case(b"PTRS_") => rest,
        _ => name,
    };
    TABLE.iter().find(|o| {
        let Some(short) = o.name.strip_prefix(b"PTRS_") else { return false };
        short.len() == name.len() && short.iter().zip(name).all(|(a, b)| a.eq_ignore_ascii_case(b))
    })
}

/// Sets a ptrs option by name at run time. False for an unknown name.
pub fn set_by_name(name: &[u8], value: u64) -> bool {
    match find_by_short_name(name) {
        // A string option cannot be set from a number.
        Some(o) if matches!(o.kind, Kind::Text) => false,
        Some(o) => {
            (o.apply)(value);
            true
        }
        None => false,
    }
}

/// Reads a ptrs option by name (booleans as 0/1, delays in ms).
pub fn get_by_name(name: &[u8]) -> Option<u64> {
    // A text option (the profile prefix) reads as whether it is set: its
    // getter's value is the text's address, which means nothing to a
    // caller.
    find_by_short_name(name).map(|o| match o.kind {
        Kind::Text => ((o.get)() != 0) as u64,
        _ => (o.get)(),
    })
}

/// Parses a boolean: 1/0, yes/no, on/off, true/false (any case).
pub fn parse_bool(v: &[u8]) -> Option<bool> {
    let mut lower = [0u8; 8];
    if v.len() > lower.len() {
        return None;
    }
    for (d, s) in lower.iter_mut().zip(v) {
        *d = s.to_ascii_lowercase();
    }
    match &lower[..v.len()] {
        b"1" | b"yes" | b"on" | b"true" => Some(true),
        b"0" | b"no" | b"off" | b"false" => Some(false),
        _ => None,
    }
}

/// Parses a size: decimal digits with an optional K, M or G suffix (powers
/// of 1024, optionally followed by `B` or `iB`).
pub fn parse_size(v: &[u8]) -> Option<u64> {
    if let Some(hex) = v.strip_prefix(b"0x").or_else(|| v.strip_prefix(b"0X")) {
        return parse_hex(hex);
    }
    let digits = v.iter().take_while(|c| c.is_ascii_digit()).count();
    if digits == 0 {
        return None;
    }
    let mut n: u64 = 0;
    for &c in &v[..digits] {
        n = n.checked_mul(10)?.checked_add((c - b'0') as u64)?;
    }
    let shift = match &v[digits..] {
        b"" | b"b" | b"B" => 0,
        b"k" | b"K" | b"KB" | b"KiB" | b"kb" => 10,
        b"m" | b"M" | b"MB" | b"MiB" | b"mb" => 20,
        b"g" | b"G" | b"GB" | b"GiB" | b"gb" => 30,
        _ => return None,
    };
    n.checked_mul(1u64 << shift)
}

fn parse_hex(v: &[u8]) -> Option<u64> {
    if v.is_empty() {
        return None;
    }
    let mut n: u64 = 0;
    for &c in v {
        let d = (c as char).to_digit(16)? as u64;
        n = n.checked_mul(16)?.checked_add(d)?;
    }
    Some(n)
}

fn parse(kind: Kind, value: &[u8]) -> Option<u64> {
    match kind {
        Kind::Bool => parse_bool(value).map(u64::from),
        Kind::Size | Kind::Count => parse_size(value),
        // At most i64::MAX ms (as `ptrs_option_set` can give), so that a
        // time plus a delay cannot wrap: a larger value means "never" as
        // that one does, instead of "at once".
        Kind::Millis => parse_size(value).map(|v| v.min(i64::MAX as u64)),
        // The value is the tail of an `environ` entry, NUL-terminated and
        // kept for the process's lifetime; empty means unset.
        Kind::Text if value.is_empty() => Some(0),
        Kind::Text => Some(value.as_ptr() as u64),
    }
}

/// Reads every option from `environ`: glibc's variables first, then the
/// `PTRS_*` ones, so that those win. Called once, early in process
/// initialisation; allocates nothing.
///
/// An unknown `PTRS_*` name or a bad value is ignored (the default stays)
/// and reported on stderr only when `PTRS_VERBOSE` is on: the variables are
/// inherited by every child process, and a line on stderr in a program that
/// did not ask for it changes what that program prints (a test suite that
/// compares its own stderr fails). `scripts/ptrs-run` checks the names
/// before it starts the program.
///
/// Nothing is read in a set-user-ID or set-group-ID program, or one with
/// file capabilities (the kernel's `AT_SECURE`): its environment comes
/// from a less privileged user, and `PTRS_PROFILE` names a file it would
/// create or truncate with its privileges (a fresh tester: a set-user-ID
/// program truncated a file of its owner through a symlink the caller
/// had placed at `<prefix>.<pid>.heap`, and wrote its memory map into
/// it). glibc likewise drops `MALLOC_TRACE` there and ignores its malloc
/// tunables; the program's own calls (`ptrs_option_set`,
/// `ptrs_profile_dump`, `mallopt`) still work.
pub fn read_environment() {
    if secure_mode() {
        return;
    }
    for ptrs_pass in [false, true] {
        for_each_env(|entry| {
            if entry.starts_with(b"PTRS_") == ptrs_pass {
                apply_entry(entry, false);
            }
        });
    }
    if verbose() {
        // A second look, now that PTRS_VERBOSE is known wherever it stood.
        for_each_env(|entry| apply_entry(entry, true));
    }
}

/// Whether the process runs with privileges its caller lacks
/// (`getauxval(AT_SECURE)`, set by the kernel for set-user-ID,
/// set-group-ID and file-capability programs). No allocation.
pub fn secure_mode() -> bool {
    // SAFETY: getauxval reads the auxiliary vector the kernel passed; it
    // has no preconditions and allocates nothing.
    unsafe { libc::getauxval(libc::AT_SECURE) != 0 }
}

fn for_each_env(mut f: impl FnMut(&[u8])) {
    unsafe extern "C" {
        static environ: *const *const libc::c_char;
    }
    // SAFETY: `environ` is the C runtime's NULL-terminated array of
    // NUL-terminated strings; it is valid (possibly null) from process start.
    let mut entry = unsafe { environ };
    if entry.is_null() {
        return;
    }
    loop {
        // SAFETY: `entry` points into the NULL-terminated environ array.
        let s = unsafe { *entry };
        if s.is_null() {
            break;
        }
        // SAFETY: each entry is a NUL-terminated C string.
        f(unsafe { core::ffi::CStr::from_ptr(s) }.to_bytes());
        // SAFETY: not past the terminating NULL, checked above.
        entry = unsafe { entry.add(1) };
    }
}

/// Applies one `NAME=value` entry of the environment, or with `check`
/// only reports what is wrong with it (unknown `PTRS_*` name, bad value).
#[unsafe(link_section = ".text.hot.ptrs")]
fn apply_entry(entry: &[u8], check: bool) {
    let Some(eq) = entry.iter().position(|&c| c == b'=') else { return };
    let (name, value) = (&entry[..eq], &entry[eq + 1..]);
    if name == b"GLIBC_TUNABLES" {
        apply_tunables(value, check);
        return;
    }
    let spec = TABLE.iter().find(|o| o.name == name);
    match spec {
        Some(o) => apply_value(o, name, value, check),
        None if check && name.starts_with(b"PTRS_") => warn_unknown(name),
        None => {}
    }
}

fn apply_value(o: &OptionSpec, name: &[u8], value: &[u8], check: bool) {
    match parse(o.kind, value) {
        Some(v) if !check => (o.apply)(v),
        Some(_) => {}
        None if check => warn_bad(name, value),
        None => {}
    }
}

/// `GLIBC_TUNABLES=glibc.malloc.mmap_threshold=N:glibc.malloc.top_pad=M...`:
/// the malloc tunables that mean something to ptrs; others are glibc's.
fn apply_tunables(list: &[u8], check: bool) {
    for item in list.split(|&c| c == b':') {
        let Some(eq) = item.iter().position(|&c| c == b'=') else { continue };
        let (name, value) = (&item[..eq], &item[eq + 1..]);
        if let Some((_, option)) = TUNABLES.iter().find(|(t, _)| *t == name) {
            if let Some(o) = TABLE.iter().find(|o| o.name == *option) {
                apply_value(o, name, value, check);
            }
        }
    }
}

fn as_str(b: &[u8]) -> &str {
    core::str::from_utf8(b).unwrap_or("?")
}

fn warn_bad(name: &[u8], value: &[u8]) {
    diag::print(format_args!(
        "ptrs: warning: {}={} is not a valid value; using the default\n",
        as_str(name),
        as_str(value)
    ));
}

fn warn_unknown(name: &[u8]) {
    diag::print(format_args!("ptrs: warning: unknown option {} is ignored\n", as_str(name)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_suffixes() {
        assert_eq!(parse_size(b"0"), Some(0));
        assert_eq!(parse_size(b"4096"), Some(4096));
        assert_eq!(parse_size(b"64K"), Some(64 << 10));
        assert_eq!(parse_size(b"3M"), Some(3 << 20));
        assert_eq!(parse_size(b"2GiB"), Some(2 << 30));
        assert_eq!(parse_size(b"x"), None);
        assert_eq!(parse_size(b"12Q"), None);
        assert_eq!(parse_size(b""), None);
        assert_eq!(parse_size(b"99999999999999999999999"), None);
        assert_eq!(parse_size(b"0x1000"), Some(4096));
        assert_eq!(parse_size(b"0x"), None);
    }

    #[test]
    fn options_are_found_by_short_name_in_any_case() {
        let old = get_by_name(b"purge_delay").unwrap();
        assert!(set_by_name(b"PURGE_DELAY", 25));
        assert_eq!(get_by_name(b"ptrs_purge_delay"), Some(25));
        assert!(set_by_name(b"purge_delay", old));
        assert_eq!(get_by_name(b"no_such_option"), None);
        assert!(!set_by_name(b"no_such_option", 1));
    }

    #[test]
    fn tunables_map_to_options() {
        let old = get_by_name(b"large_threshold").unwrap();
        apply_tunables(b"glibc.malloc.tcache_count=0:glibc.malloc.mmap_threshold=131072", false);
        assert_eq!(large_threshold(), 131072);
        set_large_threshold(old as usize);
    }

    #[test]
    fn booleans_parse_in_any_case() {
        for t in [&b"1"[..], b"yes", b"ON", b"True"] {
            assert_eq!(parse_bool(t), Some(true));
        }
        for f in [&b"0"[..], b"no", b"Off", b"FALSE"] {
            assert_eq!(parse_bool(f), Some(false));
        }
        assert_eq!(parse_bool(b"maybe"), None);
        assert_eq!(parse_bool(b"yesyesyesyes"), None);
    }
}
