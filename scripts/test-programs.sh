#!/usr/bin/env bash
# Run real programs with and without ptrs preloaded and compare the results.
#
# usage: scripts/test-programs.sh [-h] [NAME...]
#
# NAME picks programs (default: all): python3 python3-pymalloc cxx gcc bash
# perl sqlite3 python3-profile gcc-profile sqlite3-profile python3-unwind
# gcc-unwind perl-unwind sqlite3-unwind. The library is $PTRS_LIB, default
# target/release/libptrs.so in this repository.
#
# The *-profile runs are python3, gcc and sqlite3 again with ptrs's heap
# profiler sampling (PTRS_PROFILE=$OUT/prof PTRS_PROFILE_RATE=4096): the
# same output is expected, and every process must have written its heap
# profile (prof.<pid>.heap, header "heap_v2/4096").
#
# The *-unwind runs are python3, gcc, perl and sqlite3 with every
# allocation sampled (PTRS_PROFILE_RATE=1) and PTRS_PROFILE_UNWIND_CHECK=1:
# each stack is taken by ptrs's caching unwinder and by libgcc's, and a
# difference aborts the program (so the run fails) with both stacks on
# stderr.
#
# Each program runs twice from the same directory: once without LD_PRELOAD
# (the baseline, served by glibc's malloc) and once with
# LD_PRELOAD="libptrs.so probe.so". Its stdout, its stderr (less the
# "libptrs mapped:" lines the workloads print) and its exit status must be
# the same, and the baseline must succeed; for gcc the object file and the
# linked executable built under ptrs (compile, assemble and link all run
# preloaded) must be byte for byte those built without it. The probe (tests/programs/probe.c) logs for every
# process of the preloaded run whether ptrs serves its malloc; a run fails
# unless every process says yes and the expected executables (cc1, as, ld,
# sort, awk, ...) are among them, so a preload that silently did not happen
# cannot pass.
#
# A program that is not installed is skipped (SKIP: NAME (why)) and counted.
#
# Prints one line per program (PASS: NAME / FAIL: NAME (why) with a diff
# excerpt / SKIP: NAME (why)) and ends with "N passed, N failed, N skipped".
# Exits 1 if
# any program failed, 2 on a usage or setup error. Work files go to
# build/test-programs/. TEST_PROGRAMS_TIMEOUT sets the timeout of one run
# in seconds (default 90).
set -euo pipefail

usage() {
  echo "usage: $0 [-h] [NAME...]   (NAME: python3 python3-pymalloc cxx gcc bash perl sqlite3 python3-profile gcc-profile sqlite3-profile python3-unwind gcc-unwind perl-unwind sqlite3-unwind; PTRS_LIB=path overrides the library)"
}

ALL=(python3 python3-pymalloc cxx gcc bash perl sqlite3 python3-profile gcc-profile sqlite3-profile
  python3-unwind gcc-unwind perl-unwind sqlite3-unwind)
SELECTED=()
for arg in "$@"; do
  case $arg in
    -h | --help) usage; exit 0 ;;
    -*) usage >&2; exit 2 ;;
    *)
      found=0
      for n in "${ALL[@]}"; do [[ $n == "$arg" ]] && found=1; done
      if ((!found)); then
        echo "unknown program: $arg" >&2
        usage >&2
        exit 2
      fi
      SELECTED+=("$arg")
      ;;
  esac
done
((${#SELECTED[@]})) || SELECTED=("${ALL[@]}")

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LIB=${PTRS_LIB:-$ROOT/target/release/libptrs.so}
if [[ ! -f $LIB ]]; then
  echo "error: $LIB not found (build it with 'cargo build --release', or set PTRS_LIB)" >&2
  exit 2
fi
LIB=$(cd "$(dirname "$LIB")" && pwd)/$(basename "$LIB")
# ptrs warns about PTRS_* variables it does not know: keep ours out of the
# programs' environment.
unset PTRS_LIB
PROG=$ROOT/tests/programs
WORK=$ROOT/build/test-programs
TIMEOUT=${TEST_PROGRAMS_TIMEOUT:-90}
unset LD_PRELOAD
export LC_ALL=C

mkdir -p "$WORK"
PROBE=$WORK/libptrs-probe.so
gcc -shared -fPIC -O1 -Wall -o "$PROBE" "$PROG/probe.c" -ldl

passed=0
failed=0
skipped=0

# skip_unless NAME COMMAND...: true if every COMMAND is installed; else
# prints and counts a SKIP for NAME.
skip_unless() {
  local name=$1 c
  shift
  for c in "$@"; do
    if ! command -v "$c" >/dev/null 2>&1; then
      echo "SKIP: $name ($c not installed)"
      skipped=$((skipped + 1))
      return 1
    fi
  done
}

pass() {
  echo "PASS: $1"
  passed=$((passed + 1))
}

# fail NAME WHY [DETAIL-FILE]
fail() {
  echo "FAIL: $1 ($2)"
  if [[ -n ${3:-} && -s $3 ]]; then
    head -n 25 "$3" | sed 's/^/    /'
  fi
  failed=$((failed + 1))
}

# run_mode NAME MODE SCRIPT: run SCRIPT with bash from $WORK/NAME, the same
# directory for both modes; $OUT (per mode) is where it may write files.
run_mode() {
  local name=$1 mode=$2 script=$3
  local dir=$WORK/$name/$mode
  rm -rf "$dir"
  mkdir -p "$dir"
  local rc=0
  if [[ $mode == ptrs ]]; then
    # PTRS_ENV: extra variables (NAME=VALUE ..., @OUT@ standing for $dir)
    # for the preloaded run.
    local extra=${PTRS_ENV:-}
    (cd "$WORK/$name" && OUT=$dir TEST_PROGRAMS_PROBE_LOG=$dir/probe.log \
      env ${extra//@OUT@/$dir} LD_PRELOAD="$LIB $PROBE" timeout "$TIMEOUT" bash -c "$script") \
      >"$dir/stdout" 2>"$dir/stderr" </dev/null || rc=$?
  else
    (cd "$WORK/$name" && OUT=$dir timeout "$TIMEOUT" bash -c "$script") \
      >"$dir/stdout" 2>"$dir/stderr" </dev/null || rc=$?
  fi
  echo "$rc" >"$dir/status"
  grep -v '^libptrs mapped:' "$dir/stderr" >"$dir/stderr.cmp" || true
}

# check NAME SCRIPT EXE-PATTERN...: run both modes and compare. Each
# EXE-PATTERN (an extended regex) must match the executable of at least one
# process of the preloaded run.
check() {
  local name=$1 script=$2
  shift 2
  mkdir -p "$WORK/$name"
  run_mode "$name" base "$script"
  run_mode "$name" ptrs "$script"
  local b=$WORK/$name/base p=$WORK/$name/ptrs d=$WORK/$name/diff
  local bs ps
  bs=$(cat "$b/status")
  ps=$(cat "$p/status")
  if [[ $bs != 0 ]]; then
    fail "$name" "baseline without ptrs failed with status $bs" "$b/stderr"
    return
  fi
  if [[ $ps == 124 ]]; then
    fail "$name" "timed out after ${TIMEOUT}s with ptrs" "$p/stderr"
    return
  fi
  if [[ $ps != "$bs" ]]; then
    {
      echo "exit status $ps with ptrs, $bs without; stderr with ptrs:"
      cat "$p/stderr"
    } >"$d"
    fail "$name" "exit status differs" "$d"
    return
  fi
  if ! diff -u "$b/stdout" "$p/stdout" >"$d"; then
    fail "$name" "output differs" "$d"
    return
  fi
  if ! diff -u "$b/stderr.cmp" "$p/stderr.cmp" >"$d"; then
    fail "$name" "stderr differs" "$d"
    return
  fi
  # Proof that ptrs served every process of the preloaded run.
  local log=$p/probe.log
  if [[ ! -s $log ]] || ! grep -q ' ptrs=1 ' "$log"; then
    echo "probe log: $(cat "$log" 2>/dev/null | head -n 5)" >"$d"
    fail "$name" "ptrs was not loaded: no process reported it" "$d"
    return
  fi
  if grep -q ' ptrs=0 ' "$log"; then
    grep ' ptrs=0 ' "$log" >"$d"
    fail "$name" "ptrs did not serve malloc in some processes" "$d"
    return
  fi
  local pat
  for pat in "$@"; do
    if ! grep -Eq "exe=.*($pat)\$" "$log"; then
      {
        echo "no process matching /$pat/ in the probe log:"
        cat "$log"
      } >"$d"
      fail "$name" "ptrs not seen in $pat" "$d"
      return
    fi
  done
  if [[ -n ${EXTRA_CHECK:-} ]] && ! $EXTRA_CHECK "$b" "$p" >"$d" 2>&1; then
    fail "$name" "$(head -n 1 "$d")" "$d"
    return
  fi
  pass "$name"
}

# gcc: the object file and the linked executable must be identical (gcc,
# cc1, as, collect2 and ld are deterministic for the same input and
# directory; the executable's build-id is a hash of its contents).
cmp_gcc_outputs() {
  local b=$1 p=$2 f
  for f in compile_me.o compile_me; do
    if [[ ! -s $b/$f || ! -s $p/$f ]]; then
      echo "$f missing"
      return 1
    fi
    if ! cmp "$b/$f" "$p/$f"; then
      echo "$f differs"
      return 1
    fi
  done
}

# The profiled runs: one heap profile per process of the preloaded run
# (the probe log lists them), each at rate 4096.
check_profiles() {
  local p=$1 pid n=0
  for pid in $(sed -n 's/^pid=\([0-9]*\) .*/\1/p' "$p/probe.log"); do
    local f=$p/prof.$pid.heap
    if [[ ! -s $f ]]; then
      echo "no heap profile from process $pid ($(grep "^pid=$pid " "$p/probe.log"))"
      return 1
    fi
    if ! head -n 1 "$f" | grep -q '@ heap_v2/4096$'; then
      echo "$f: unexpected header: $(head -n 1 "$f")"
      return 1
    fi
    n=$((n + 1))
  done
  ((n > 0)) || { echo "no process in the probe log"; return 1; }
}
cmp_gcc_and_profiles() {
  cmp_gcc_outputs "$@" && check_profiles "$2"
}
profile_check() { check_profiles "$2"; }
PROFILE_ENV="PTRS_PROFILE=@OUT@/prof PTRS_PROFILE_RATE=4096"
UNWIND_ENV="PTRS_PROFILE=@OUT@/prof PTRS_PROFILE_RATE=1 PTRS_PROFILE_UNWIND_CHECK=1"

for name in "${SELECTED[@]}"; do
  EXTRA_CHECK=
  PTRS_ENV=
  case $name in
    python3 | python3-pymalloc)
      skip_unless "$name" python3 || continue
      PYTHON=$(python3 -c 'import sys; print(sys.executable)')
      ;;&
    python3-profile)
      skip_unless "$name" python3 || continue
      PYTHON=$(python3 -c 'import sys; print(sys.executable)')
      EXTRA_CHECK=profile_check PTRS_ENV=$PROFILE_ENV
      check python3-profile "PYTHONMALLOC=malloc '$PYTHON' '$PROG/workload.py'" 'python[0-9.]*'
      ;;
    gcc-profile)
      skip_unless "$name" gcc || continue
      EXTRA_CHECK=cmp_gcc_and_profiles PTRS_ENV=$PROFILE_ENV
      check gcc-profile "gcc -O2 -g -Wall -Wextra -c '$PROG/compile_me.c' -o \"\$OUT/compile_me.o\" &&
        gcc -O2 -Wall -Wextra -o \"\$OUT/compile_me\" '$PROG/compile_me.c' &&
        \"\$OUT/compile_me\"" \
        '/cc1' '(/|-)as' '(/|-)ld(\.bfd|\.gold)?' '/collect2' '/compile_me'
      ;;
    sqlite3-profile)
      skip_unless "$name" sqlite3 || continue
      EXTRA_CHECK=profile_check PTRS_ENV=$PROFILE_ENV
      check sqlite3-profile "sqlite3 :memory: < '$PROG/workload.sql'" '/sqlite3'
      ;;
    python3-unwind)
      skip_unless "$name" python3 || continue
      PYTHON=$(python3 -c 'import sys; print(sys.executable)')
      PTRS_ENV=$UNWIND_ENV
      check python3-unwind "PYTHONMALLOC=malloc '$PYTHON' '$PROG/workload.py'" 'python[0-9.]*'
      ;;
    gcc-unwind)
      skip_unless "$name" gcc || continue
      EXTRA_CHECK=cmp_gcc_outputs PTRS_ENV=$UNWIND_ENV
      check gcc-unwind "gcc -O2 -g -Wall -Wextra -c '$PROG/compile_me.c' -o \"\$OUT/compile_me.o\" &&
        gcc -O2 -Wall -Wextra -o \"\$OUT/compile_me\" '$PROG/compile_me.c' &&
        \"\$OUT/compile_me\"" \
        '/cc1' '(/|-)as' '(/|-)ld(\.bfd|\.gold)?' '/collect2' '/compile_me'
      ;;
    perl-unwind)
      skip_unless "$name" perl || continue
      PTRS_ENV=$UNWIND_ENV
      check perl-unwind "perl '$PROG/workload.pl'" '/perl[0-9.]*'
      ;;
    sqlite3-unwind)
      skip_unless "$name" sqlite3 || continue
      PTRS_ENV=$UNWIND_ENV
      check sqlite3-unwind "sqlite3 :memory: < '$PROG/workload.sql'" '/sqlite3'
      ;;
    python3)
      # PYTHONMALLOC=malloc: every Python object comes from malloc.
      check python3 "PYTHONMALLOC=malloc '$PYTHON' '$PROG/workload.py'" 'python[0-9.]*'
      ;;
    python3-pymalloc)
      check python3-pymalloc "'$PYTHON' '$PROG/workload.py'" 'python[0-9.]*'
      ;;
    cxx)
      skip_unless cxx g++ || continue
      mkdir -p "$WORK/cxx"
      if ! g++ -O2 -pthread -Wall -Wextra -o "$WORK/cxx_workload" \
        "$PROG/cxx_workload.cc" 2>"$WORK/cxx/build.log"; then
        fail cxx "build failed" "$WORK/cxx/build.log"
        continue
      fi
      check cxx "'$WORK/cxx_workload'" 'cxx_workload'
      ;;
    gcc)
      skip_unless gcc gcc || continue
      EXTRA_CHECK=cmp_gcc_outputs
      check gcc "gcc -O2 -g -Wall -Wextra -c '$PROG/compile_me.c' -o \"\$OUT/compile_me.o\" &&
        gcc -O2 -Wall -Wextra -o \"\$OUT/compile_me\" '$PROG/compile_me.c' &&
        \"\$OUT/compile_me\"" \
        '/cc1' '(/|-)as' '(/|-)ld(\.bfd|\.gold)?' '/collect2' '/compile_me'
      ;;
    bash)
      check bash "bash '$PROG/pipeline.sh'" '/bash' '/sort' '/(g|m)?awk' '/sed' '/md5sum'
      ;;
    perl)
      skip_unless perl perl || continue
      check perl "perl '$PROG/workload.pl'" '/perl[0-9.]*'
      ;;
    sqlite3)
      skip_unless sqlite3 sqlite3 || continue
      check sqlite3 "sqlite3 :memory: < '$PROG/workload.sql'" '/sqlite3'
      ;;
  esac
done

echo "$passed passed, $failed failed, $skipped skipped"
((failed == 0))
