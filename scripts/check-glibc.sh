#!/usr/bin/env bash
# Run glibc 2.36's own malloc tests under ptrs.
#
# usage: scripts/check-glibc.sh [-h] [--baseline] [NAME...]
#
# The tests (malloc/tst-*.c and malloc/mallocbug.c) and the test-support
# library they use (support/*.c) come from Debian's glibc-source package,
# installed with apt-get if missing; the script extracts the parts it needs
# into build/glibc-src/ once. They are built as ordinary programs against
# the installed glibc (tests/glibc/Makefile, our stand-ins for glibc-internal
# headers in tests/glibc/include/) into build/glibc-tests/, then each runs
# with LD_PRELOAD=<absolute path of libptrs.so> ($PTRS_LIB, default
# target/release/libptrs.so) under glibc's test driver (its own timeout:
# the test's TIMEOUT, default 20 s, times $TIMEOUTFACTOR) and an outer
# timeout of $GLIBC_TEST_TIMEOUT seconds (default 150).
#
# tests/glibc/not-applicable.txt lists, with a reason each, the tests of
# glibc internals that are neither built nor run. A test whose executable
# defines malloc, free, calloc or realloc itself (the interposition tests)
# is built but not run, and reported N/A: ptrs would serve none of its
# allocations.
#
# --baseline runs the same binaries without the preload (glibc's malloc),
# to see which tests pass there. NAME... picks tests.
#
# Prints one line per test, PASS: NAME / FAIL: NAME (why) / N/A: NAME (why),
# with the tail of the output of a failed test, and ends with
# "N passed, N failed, N skipped" (skipped: not applicable, or exit status
# 77, UNSUPPORTED). Exits 1 if any test failed, 2 on a usage or setup error.
# Outputs of the runs are in build/glibc-tests/logs/NAME.out.
set -uo pipefail

usage() {
  echo "usage: $0 [-h] [--baseline] [NAME...]   (PTRS_LIB=path overrides the library)"
}

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

BASELINE=0
SELECTED=()
for arg in "$@"; do
  case $arg in
    -h | --help) usage; exit 0 ;;
    --baseline) BASELINE=1 ;;
    -*) usage >&2; exit 2 ;;
    *) SELECTED+=("$arg") ;;
  esac
done

SRC=build/glibc-src
OUT=build/glibc-tests
SHIM=tests/glibc/include
NA_LIST=tests/glibc/not-applicable.txt
OUTER_TIMEOUT=${GLIBC_TEST_TIMEOUT:-150}
CC=${CC:-cc}
JOBS=${GLIBC_TEST_JOBS:-2}

die() {
  echo "check-glibc: $*" >&2
  exit 2
}

# The library, by absolute path (the tests run from build/glibc-tests/run).
LIB=${PTRS_LIB:-target/release/libptrs.so}
[[ -f $LIB ]] || die "$LIB not found (run 'make lib' or 'cargo build --release' first)"
LIB=$(cd "$(dirname "$LIB")" && pwd)/$(basename "$LIB")

# 1. The glibc source, from Debian's glibc-source package.
tarball() {
  local t
  t=$(ls /usr/src/glibc/glibc-*.tar.xz 2>/dev/null | sort -V | tail -n 1)
  echo "$t"
}
TARBALL=$(tarball)
if [[ -z $TARBALL ]]; then
  [[ $(id -u) == 0 ]] || die "package glibc-source is not installed (needs root: apt-get install glibc-source)"
  echo "check-glibc: installing glibc-source" >&2
  export DEBIAN_FRONTEND=noninteractive
  { apt-get update -qq && apt-get install -y -qq glibc-source; } >&2 \
    || die "apt-get install glibc-source failed"
  TARBALL=$(tarball)
  [[ -n $TARBALL ]] || die "glibc-source installed no /usr/src/glibc/glibc-*.tar.xz"
fi
# Debian's tarball already carries the Debian patches (the 2.36 stable
# branch updates), so it matches the installed libc6.
STAMP="$SRC/.extracted"
WANT="$(basename "$TARBALL") $(stat -c %s "$TARBALL")"
if [[ ! -f $STAMP || $(cat "$STAMP") != "$WANT" ]]; then
  echo "check-glibc: extracting malloc/, support/ from $TARBALL" >&2
  top=$(basename "$TARBALL" .tar.xz)
  rm -rf "$SRC" && mkdir -p "$SRC" \
    && tar -xJf "$TARBALL" -C "$SRC" --strip-components=1 \
      "$top/malloc" "$top/support" "$top/test-skeleton.c" \
    || die "extracting $TARBALL failed"
  echo "$WANT" > "$STAMP"
fi

# 2. The list of tests: malloc/tst-*.c less the helper sources other tests
# include or link, plus mallocbug.c; less the not-applicable ones.
declare -A NA
while IFS= read -r line; do
  [[ $line =~ ^[[:space:]]*(#|$) ]] && continue
  NA[${line%%:*}]=${line#*: }
done < "$NA_LIST"

ALL=()
for f in "$SRC"/malloc/tst-*.c "$SRC"/malloc/mallocbug.c; do
  n=$(basename "$f" .c)
  case $n in
    tst-interpose-aux | tst-interpose-aux-nothread | tst-interpose-aux-thread | tst-interpose-skeleton) continue ;;
  esac
  ALL+=("$n")
done
for n in "${!NA[@]}"; do
  [[ -f $SRC/malloc/$n.c ]] || echo "check-glibc: warning: $NA_LIST names $n, which is not a test" >&2
done
if ((${#SELECTED[@]})); then
  for s in "${SELECTED[@]}"; do
    found=0
    for n in "${ALL[@]}"; do [[ $n == "$s" ]] && found=1; done
    ((found)) || die "unknown test: $s"
  done
  TESTS=("${SELECTED[@]}")
else
  TESTS=("${ALL[@]}")
fi
BUILD=()
for n in "${TESTS[@]}"; do
  [[ -n ${NA[$n]+x} ]] || BUILD+=("$n")
done

# 3. Build (make keeps what is up to date; a test that does not build fails
# on its own).
mkdir -p "$OUT/logs" "$OUT/run"
echo "check-glibc: building ${#BUILD[@]} tests" >&2
make -s -k -j"$JOBS" -f tests/glibc/Makefile SRC="$SRC" OUT="$OUT" SHIM="$SHIM" \
  CC="$CC" TESTS="${BUILD[*]}" > "$OUT/logs/make.log" 2>&1
if [[ ! -f $OUT/libsupport.a ]]; then
  tail -n 20 "$OUT/logs/make.log" >&2
  die "the test-support library did not build"
fi
"$CC" -O2 -o "$OUT/probe" tests/glibc/probe.c -ldl > "$OUT/logs/probe.build.log" 2>&1 \
  || die "tests/glibc/probe.c did not build"

# 4. Run.
if ((BASELINE)); then
  PRELOAD=
  MODE="glibc (no preload)"
  probe=$(cd "$OUT/run" && ../probe)
  [[ $probe == glibc ]] || die "without LD_PRELOAD the probe says '$probe'"
else
  PRELOAD=$LIB
  MODE="ptrs ($LIB)"
  probe=$(cd "$OUT/run" && LD_PRELOAD=$PRELOAD ../probe 2>&1)
  [[ $probe == ptrs ]] || die "ptrs does not serve malloc under LD_PRELOAD=$PRELOAD: $probe"
fi
echo "check-glibc: running under $MODE" >&2

passed=0 failed=0 skipped=0
for n in "${TESTS[@]}"; do
  if [[ -n ${NA[$n]+x} ]]; then
    echo "N/A: $n (${NA[$n]})"
    skipped=$((skipped + 1))
    continue
  fi
  bin=$OUT/bin/$n
  if [[ ! -x $bin ]]; then
    why=$(grep -m1 -E 'error|undefined' "$OUT/logs/$n.build.log" 2>/dev/null)
    echo "FAIL: $n (did not build: ${why:-see $OUT/logs/make.log})"
    failed=$((failed + 1))
    continue
  fi
  # A test that defines the allocation functions in the executable itself
  # (tst-interpose-nothread and -thread link tst-interpose-aux.c's own
  # malloc) is served by them, not by ptrs, whatever LD_PRELOAD says: its
  # result says nothing about ptrs. Found from the binary, not a list.
  own=$(nm --defined-only "$bin" 2>/dev/null \
    | awk '$2 ~ /^[TtWw]$/ && ($3 == "malloc" || $3 == "free" || $3 == "calloc" || $3 == "realloc") { print $3 }' \
    | sort -u | tr '\n' ' ')
  if [[ -n $own ]]; then
    echo "N/A: $n (the executable defines ${own% } itself, so ptrs serves none of its allocations)"
    skipped=$((skipped + 1))
    continue
  fi
  log=$OUT/logs/$n.out
  start=$(date +%s.%N)
  if [[ $n == tst-mtrace ]]; then
    # As glibc's malloc/tst-mtrace.sh runs it: MALLOC_TRACE set, from the
    # directory its __FILE__ is relative to (it reads its own source), then
    # glibc's mtrace script (Debian's libc-devtools) over the trace, which
    # fails on a leak or a free of an unknown block. (glibc preloads its
    # libc_malloc_debug.so for mtrace; here the preload is ptrs, whose
    # mtrace() writes the same format.)
    trace=$OUT/run/tst-mtrace.leak
    rm -f "$trace"
    pre=${PRELOAD:-/lib/x86_64-linux-gnu/libc_malloc_debug.so.0}
    (exec timeout -k 10 "$OUTER_TIMEOUT" env MALLOC_TRACE="$trace" LD_PRELOAD="$pre" "$OUT/bin/$n") > "$log" 2>&1
    rc=$?
    if ((rc == 0)); then
      if command -v mtrace >/dev/null; then
        mtrace "$OUT/bin/$n" "$trace" >> "$log" 2>&1
        rc=$?
      else
        echo "UNSUPPORTED: glibc's mtrace script is not installed (Debian package libc-devtools)" >> "$log"
        rc=77
      fi
    fi
  else
    (cd "$OUT/run" && exec timeout -k 10 "$OUTER_TIMEOUT" env ${PRELOAD:+LD_PRELOAD="$PRELOAD"} "../bin/$n") > "$log" 2>&1
    rc=$?
  fi
  secs=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }')
  if [[ -n $PRELOAD ]] && grep -q 'cannot be preloaded' "$log"; then
    echo "FAIL: $n (the preload did not happen: $(grep -m1 'cannot be preloaded' "$log"))"
    failed=$((failed + 1))
  elif ((rc == 0)); then
    echo "PASS: $n (${secs}s)"
    passed=$((passed + 1))
  elif ((rc == 77)); then
    echo "N/A: $n (UNSUPPORTED, exit 77: $(grep -m1 -i 'unsupported\|warning' "$log" || tail -n 1 "$log"))"
    skipped=$((skipped + 1))
  else
    if ((rc == 124 || rc == 137)); then
      why="outer timeout after ${OUTER_TIMEOUT}s"
    elif ((rc > 128)); then
      why="killed by signal $((rc - 128))"
    else
      why="exit status $rc"
    fi
    echo "FAIL: $n ($why, ${secs}s; output in $log)"
    tail -n 8 "$log" | sed 's/^/    | /'
    failed=$((failed + 1))
  fi
done

echo "$passed passed, $failed failed, $skipped skipped"
((failed == 0))
