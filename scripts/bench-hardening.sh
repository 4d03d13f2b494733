#!/usr/bin/env bash
# Usage: scripts/bench-hardening.sh [bench.sh args...]
# Measures what the free-path hardening checks cost: builds a second
# libptrs.so with feature `unchecked-free` (no block-start or double-free
# test in free's fast path) and runs the benchmark suite with both builds
# interleaved (column "unchecked"), writing bench/hardening.md.
# A tree with uncommitted changes is refused unless BENCH_ALLOW_DIRTY=1;
# hardening.md names the commit (its "- commit:" line, from bench.sh).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$here/.."
# shellcheck source=scripts/bench-rev.sh
. scripts/bench-rev.sh
rev=$(bench_rev "$PWD") || exit 1
# Both builds as `make lib` builds the shared library (a cdylib alone: see
# the Makefile), so that they differ only by the checks.
make -s lib >/dev/null
CARGO_TARGET_DIR=target/unchecked cargo rustc --release --lib --crate-type cdylib --features unchecked-free >/dev/null
export BENCH_EXTRA_unchecked=$PWD/target/unchecked/release/libptrs.so
export BENCH_ALLOCATORS="${BENCH_ALLOCATORS:-ptrs unchecked}"
export BENCH_OUT="${BENCH_OUT:-build/bench-hardening}"
bash scripts/bench.sh "$@"
mkdir -p bench
grep -q "^- commit: $rev\$" "$BENCH_OUT/results.md" ||
    { echo "bench-hardening: $BENCH_OUT/results.md does not name commit $rev" >&2; exit 1; }
cp "$BENCH_OUT/results.md" bench/hardening.md
echo "wrote bench/hardening.md (commit $rev)"
