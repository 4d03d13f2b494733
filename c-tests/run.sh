#!/usr/bin/env bash
# Build and run the C test suite of ptrs.
#
# usage: c-tests/run.sh [-h] [--build-only] [TEST...]
#
#   --build-only  build the tests (every mode) and run none; ends with
#           "N built, N failed" and exits 1 if any did not compile (for
#           scripts/memcheck.sh, which runs the -linked builds)
#   TEST    names or shell globs of tests to run (tst-foo, foo, 'tst-malloc*',
#           tst-foo.c); default: every c-tests/tst-*.c and c-tests/tst-*.cc
#
# Each test is built twice into build/c-tests/:
#   NAME-linked   linked with -lptrs (rpath to the library directory)
#   NAME-preload  not linked with ptrs, run with LD_PRELOAD=<dir>/libptrs.so
# and run with a timeout. Exit status 0 is PASS, 77 UNSUPPORTED, anything else
# (a timeout, a signal, a compile error) FAIL. One line is printed per test
# and mode; the output of a test goes to build/c-tests/NAME-MODE.log.
#
# Environment:
#   PTRS_LIB_DIR        directory holding libptrs.so (default target/release)
#   PTRS_TEST_MODES     modes to run (default "linked preload")
#   PTRS_TEST_TIMEOUT   factor multiplying every test's timeout (default 1;
#                       decimals allowed). A test's timeout is 120 s unless
#                       its source says e.g. /* TIMEOUT: 300 */.
#   CC, CXX             compilers (default gcc, g++)
#
# Directives a test source may carry (each in a comment, on one line):
#   /* TIMEOUT: N */    timeout in seconds
#   /* ENV: A=1 B=2 */  extra environment variables for the test
#   /* ARGS: x y */     command-line arguments for the test
#
# Ends with the line "N passed, N failed, N skipped"; exits 1 if any failed.
set -euo pipefail

usage() {
  sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"
}

BUILD_ONLY=0
case "${1:-}" in
  -h|--help) usage; exit 0 ;;
  --build-only) BUILD_ONLY=1; shift ;;
esac
case "${1:-}" in
  -*) usage >&2; exit 2 ;;
esac

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

LIB_DIR="${PTRS_LIB_DIR:-target/release}"
LIB_DIR="$(cd "$LIB_DIR" 2>/dev/null && pwd || echo "$ROOT/$LIB_DIR")"
# Programs linked with -lptrs ask for the soname, libptrs.so.0.
[ ! -e "$LIB_DIR/libptrs.so" ] || [ -e "$LIB_DIR/libptrs.so.0" ] || ln -sf libptrs.so "$LIB_DIR/libptrs.so.0"
MODES="${PTRS_TEST_MODES:-linked preload}"
FACTOR="${PTRS_TEST_TIMEOUT:-1}"
CC="${CC:-gcc}"
CXX="${CXX:-g++}"
OUT="$ROOT/build/c-tests"
mkdir -p "$OUT"

if ! awk -v f="$FACTOR" 'BEGIN { exit !(f + 0 > 0) }'; then
  echo "run.sh: PTRS_TEST_TIMEOUT must be a positive number, not '$FACTOR'" >&2
  exit 2
fi
for m in $MODES; do
  case "$m" in
    linked|preload) ;;
    *) echo "run.sh: unknown mode '$m' (want linked and/or preload)" >&2; exit 2 ;;
  esac
done

CFLAGS=(-std=gnu11 -O1 -g -Wall -Wextra -Werror -fno-builtin -pthread -rdynamic
        -I include -I c-tests)
CXXFLAGS=(-std=gnu++17 -O1 -g -Wall -Wextra -Werror -fno-builtin -pthread
          -I include -I c-tests)
LINK_PTRS=(-L "$LIB_DIR" -Wl,--no-as-needed -lptrs "-Wl,-rpath,$LIB_DIR")

# The tests, sorted, as source paths.
shopt -s nullglob
all_sources=(c-tests/tst-*.c c-tests/tst-*.cc)
shopt -u nullglob
mapfile -t all_sources < <(printf '%s\n' "${all_sources[@]}" | LC_ALL=C sort)

selected=()
if [ "$#" -eq 0 ]; then
  selected=("${all_sources[@]}")
else
  for src in "${all_sources[@]}"; do
    base="${src##*/}"
    name="${base%.*}"
    for pat in "$@"; do
      pat="${pat##*/}"
      # shellcheck disable=SC2053
      if [[ "$name" == $pat || "$base" == $pat || "$name" == tst-$pat ]]; then
        selected+=("$src")
        break
      fi
    done
  done
  if [ "${#selected[@]}" -eq 0 ]; then
    echo "run.sh: no test matches: $*" >&2
    exit 2
  fi
fi

# directive FILE KEY: the value of the first "/* KEY: value */" in FILE.
directive() {
  sed -n "s|^.*/\\* *$2: *\\(.*[^ ]\\) *\\*/.*\$|\\1|p" "$1" | head -n 1
}

# Print the last lines of a log, indented.
tail_log() {
  tail -n 20 "$1" 2>/dev/null | sed 's/^/    /' || true
}

# signame N: the name of signal N (e.g. ABRT), or N.
signame() {
  local n
  n="$(kill -l "$1" 2>/dev/null)" || { echo "$1"; return; }
  echo "SIG$n"
}

# descendants PID: the processes below PID (children first).
descendants() {
  local c
  for c in $(pgrep -P "$1" 2>/dev/null); do
    echo "$c"
    descendants "$c"
  done
}

# run_watched SECONDS LOG COMMAND...: runs COMMAND with its output in LOG
# and returns its status. A command still running after SECONDS is a hang:
# every thread's stack of it and of its descendants (a forked child the
# test waits for) goes into LOG, by gdb where the machine has it, so that a
# hang seen once, in CI, can be diagnosed; then all of them are killed and
# the status is 124, as timeout(1) gives.
run_watched() {
  local secs="$1" log="$2"
  shift 2
  "$@" > "$log" 2>&1 < /dev/null &
  local pid=$!
  local flag="$log.timedout"
  rm -f "$flag"
  (
    sleep "$secs"
    kill -0 "$pid" 2>/dev/null || exit 0
    : > "$flag"
    local procs p
    procs="$pid $(descendants "$pid")"
    for p in $procs; do
      {
        echo "== hang: stacks of process $p ($(tr '\0' ' ' < "/proc/$p/cmdline" 2>/dev/null))"
        if command -v gdb > /dev/null; then
          timeout 60 gdb -p "$p" -batch -ex "thread apply all bt 40" < /dev/null 2>&1 \
            | grep -E '^(Thread|#)' || true
        else
          echo "(no gdb on this machine)"
        fi
      } >> "$log"
    done
    # shellcheck disable=SC2086
    kill -9 $procs 2>/dev/null || true
  ) &
  local watchdog=$!
  local st=0
  wait "$pid" || st=$?
  pkill -P "$watchdog" 2>/dev/null || true # its sleep
  kill "$watchdog" 2>/dev/null || true
  wait "$watchdog" 2>/dev/null || true
  if [ -e "$flag" ]; then
    rm -f "$flag"
    return 124
  fi
  return "$st"
}

passed=0
failed=0
skipped=0

for src in "${selected[@]}"; do
  base="${src##*/}"
  name="${base%.*}"
  timeout_s="$(directive "$src" TIMEOUT)"
  timeout_s="${timeout_s:-120}"
  case "$timeout_s" in
    *[!0-9]*|'') timeout_s=120 ;;
  esac
  timeout_s="$(awk -v t="$timeout_s" -v f="$FACTOR" \
               'BEGIN { v = t * f; if (v < 1) v = 1; printf "%d", v + 0.5 }')"
  env_extra="$(directive "$src" ENV)"
  args_extra="$(directive "$src" ARGS)"
  read -r -a env_arr <<< "$env_extra" || true
  read -r -a args_arr <<< "$args_extra" || true

  if [[ "$src" == *.cc ]]; then
    compiler=("$CXX" "${CXXFLAGS[@]}")
  else
    compiler=("$CC" "${CFLAGS[@]}")
  fi

  for mode in $MODES; do
    bin="$OUT/$name-$mode"
    log="$OUT/$name-$mode.log"
    if [ "$mode" = linked ]; then
      link=("${LINK_PTRS[@]}" -ldl -lm)
      run_env=(env -u LD_PRELOAD)
    else
      link=(-ldl -lm)
      run_env=(env "LD_PRELOAD=$LIB_DIR/libptrs.so")
    fi

    rm -f "$bin"
    if ! "${compiler[@]}" -o "$bin" "$src" "${link[@]}" > "$log" 2>&1; then
      echo "FAIL: $name ($mode) [compile error]"
      tail_log "$log"
      failed=$((failed + 1))
      continue
    fi
    if [ "$BUILD_ONLY" = 1 ]; then
      passed=$((passed + 1))
      continue
    fi

    status=0
    # The braces catch bash's own "Aborted"/"Segmentation fault" notices.
    { run_watched "$timeout_s" "$log" "${run_env[@]}" "${env_arr[@]}" \
        "$bin" "${args_arr[@]}"; } 2>/dev/null || status=$?

    case "$status" in
      0)
        echo "PASS: $name ($mode)"
        passed=$((passed + 1))
        ;;
      77)
        echo "UNSUPPORTED: $name ($mode)"
        skipped=$((skipped + 1))
        ;;
      *)
        if [ "$status" -eq 124 ]; then
          why="timeout after ${timeout_s}s"
        elif [ "$status" -gt 128 ]; then
          why="signal $(signame $((status - 128)))"
        else
          why="exit $status"
        fi
        echo "FAIL: $name ($mode) [$why]"
        if [ "$status" -eq 124 ]; then
          sed 's/^/    /' "$log" | head -n 400
        else
          tail_log "$log"
        fi
        failed=$((failed + 1))
        ;;
    esac
  done
done

if [ "$BUILD_ONLY" = 1 ]; then
  echo "$passed built, $failed failed"
else
  echo "$passed passed, $failed failed, $skipped skipped"
fi
[ "$failed" -eq 0 ]
