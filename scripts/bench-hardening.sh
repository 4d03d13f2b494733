#!/usr/bin/env bash
# Usage: scripts/bench-hardening.sh [bench.sh args...]
# Measures what the free-path hardening checks cost: builds a second
# libptrs.so with feature `unchecked-free` (no block-start or double-free
# test in free's fast path) and runs the benchmark suite with both builds
# interleaved (column "unchecked"), writing bench/hardening.md.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$here/.."
cargo build --release >/dev/null
CARGO_TARGET_DIR=target/unchecked cargo build --release --features unchecked-free >/dev/null
export BENCH_EXTRA_unchecked=$PWD/target/unchecked/release/libptrs.so
export BENCH_ALLOCATORS="${BENCH_ALLOCATORS:-ptrs unchecked}"
export BENCH_OUT="${BENCH_OUT:-build/bench-hardening}"
bash scripts/bench.sh "$@"
mkdir -p bench
cp "$BENCH_OUT/results.md" bench/hardening.md
echo "wrote bench/hardening.md"
