#!/usr/bin/env bash
# Instructions per malloc+free pair, per allocator, counted with callgrind.
#
#   bash scripts/bench-callgrind.sh        -> bench/callgrind.md
#
# bench/fastpath.c runs N iterations of { p = malloc(s); free(p); } (s cycling
# 16/32/64/128; mode "pair") or N/100 x { 100 mallocs; 100 frees } (mode
# "batch").  Each allocator runs with N and with N=0 under
# valgrind --tool=callgrind; (Ir(N) - Ir(0)) / N is the cost of one pair with
# the startup cost subtracted.  callgrind does not replace malloc (memcheck
# does), so the preloaded allocator runs; the report lists the top functions
# of each profile with their object file as evidence.
#
# Environment: BENCH_ALLOCATORS, BENCH_PTRS_LIB, BENCH_EXTRA_<name> as in
# bench.sh; BENCH_CALLGRIND_N (default 1000000); BENCH_OUT (default bench);
# BENCH_ALLOW_DIRTY=1 to run from a tree with uncommitted changes (refused
# otherwise). callgrind.md names the commit (git rev-parse --short HEAD[-dirty]).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
# shellcheck source=scripts/bench-rev.sh
. "$ROOT/scripts/bench-rev.sh"
BENCH_REV=$(bench_rev "$ROOT") || exit 1
OUT=$ROOT/${BENCH_OUT:-bench}
BUILD=$ROOT/build/bench
CG=$BUILD/callgrind
N=${BENCH_CALLGRIND_N:-1000000}
LIBDIR=/usr/lib/x86_64-linux-gnu
mkdir -p "$BUILD" "$CG" "$OUT"
command -v valgrind >/dev/null || { echo "valgrind is not installed (apt-get install valgrind)" >&2; exit 1; }

lib_for() {
    case $1 in
        glibc) echo "" ;;
        jemalloc) echo "$LIBDIR/libjemalloc.so.2" ;;
        mimalloc) echo "$LIBDIR/libmimalloc.so.2" ;;
        tcmalloc) echo "$LIBDIR/libtcmalloc_minimal.so.4" ;;
        ptrs) echo "${BENCH_PTRS_LIB:-$ROOT/target/release/libptrs.so}" ;;
        *) local v="BENCH_EXTRA_$1"; echo "${!v:-/nonexistent/$1}" ;;
    esac
}
if [ -n "${BENCH_ALLOCATORS:-}" ]; then
    ALLOCATORS=$BENCH_ALLOCATORS
else
    ALLOCATORS="glibc jemalloc mimalloc tcmalloc ptrs $(compgen -v | sed -n 's/^BENCH_EXTRA_\([A-Za-z0-9_]*\)$/\1/p' | tr '\n' ' ')"
fi

gcc -O2 -Wall -o "$BUILD/fastpath" bench/fastpath.c

ir_total() { # callgrind out file -> total Ir
    awk '/^(summary|totals):/ { print $2; exit }' "$1"
}

MD=$OUT/callgrind.md
{
    echo "# ptrs benchmark: instructions per malloc+free (callgrind)"
    echo
    echo "- commit: $BENCH_REV"
    echo "- date: $(date '+%Y-%m-%d %H:%M'); $(valgrind --version); N = $N"
    echo "- pair: N x { p = malloc(s); free(p); }, s cycling 16/32/64/128"
    echo "- batch: N/100 x { 100 x malloc(s); 100 x free }, same sizes (a non-trivial free list)"
    echo "- figure = (Ir(N) - Ir(0)) / N: instructions per malloc+free pair, startup subtracted."
    echo '  It includes the benchmark loop itself (the `main` line below: about 11 Ir per pair).'
    echo "- produced by \`bash scripts/bench-callgrind.sh\` (bench/fastpath.c)"
    echo
    echo "| allocator | pair: Ir per malloc+free | batch: Ir per malloc+free | Ir(0) startup |"
    echo "|---|---:|---:|---:|"
} >"$MD"
EVID=""
for a in $ALLOCATORS; do
    lib=$(lib_for "$a")
    if [ -n "$lib" ] && [ ! -e "$lib" ]; then
        echo "[callgrind] skipping $a: $lib not found" >&2
        echo "| $a | missing | missing | |" >>"$MD"
        continue
    fi
    declare -A ir=()
    for mode in pair batch; do
        for n in 0 "$N"; do
            f=$CG/$a.$mode.$n.out
            # LD_PRELOAD given to valgrind reaches the guest program (valgrind
            # adds its own preloads in front; the tool itself is static).
            LD_PRELOAD=$lib valgrind --tool=callgrind --callgrind-out-file="$f" \
                "$BUILD/fastpath" "$mode" "$n" >/dev/null 2>"$CG/$a.$mode.$n.log" || true
            ir[$mode.$n]=$(ir_total "$f")
        done
    done
    p=$(awk -v a="${ir[pair.$N]}" -v b="${ir[pair.0]}" -v n="$N" 'BEGIN { printf "%.1f", (a - b) / n }')
    b=$(awk -v a="${ir[batch.$N]}" -v b="${ir[batch.0]}" -v n="$N" 'BEGIN { printf "%.1f", (a - b) / (int(n / 100) * 100) }')
    echo "[callgrind] $a: pair $p, batch $b Ir per malloc+free" >&2
    echo "| $a | $p | $b | ${ir[pair.0]} |" >>"$MD"
    top=$(callgrind_annotate --inclusive=no "$CG/$a.pair.$N.out" 2>/dev/null |
        grep -E '^ *[0-9,]+ +\(' | head -5 | sed 's/^ *//' || true)
    EVID="$EVID
- $a (${lib:-no preload}), pair mode, top functions by own Ir:

\`\`\`
$top
\`\`\`
"
    unset ir
done
{
    echo
    echo "## Where the instructions go (evidence that the preloaded allocator is measured)"
    echo "$EVID"
} >>"$MD"
echo "[callgrind] wrote $MD" >&2
