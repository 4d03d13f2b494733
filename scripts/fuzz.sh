#!/usr/bin/env bash
# Randomized differential test of the malloc API under ptrs.
#
# usage: scripts/fuzz.sh [-h] [--baseline] [FUZZ ARGS...]
#
# Builds tests/fuzz/fuzz.c into build/fuzz/fuzz and runs it with
# LD_PRELOAD=<absolute path of libptrs.so> ($PTRS_LIB, default
# target/release/libptrs.so): several threads run random sequences of every
# allocation call, checked against a model (alignment, no overlap, usable
# size, contents through realloc, calloc zeroing, error paths); see the
# comment at the top of fuzz.c.
#
# Environment: FUZZ_SECONDS (default 90), FUZZ_SEED (default 1),
# FUZZ_THREADS (default 4). Extra arguments go to the program
# (-s SECONDS, -S SEED, -t THREADS, -n OPS-PER-WORKER). --baseline runs it
# without the preload, against glibc's malloc (a check of the model).
#
# The program checks first that the allocator serving its malloc is the one
# wanted (FUZZ_EXPECT=ptrs: ptrs_owns is true for a fresh malloc block;
# with --baseline, FUZZ_EXPECT=glibc) and fails otherwise: a library that
# did not load (PTRS_LIB=Cargo.toml) or an old libptrs that ptrs does not
# own the malloc of is a failure, not a pass.
#
# Prints the program's report, ending with "fuzz: N operations in S s,
# 0 failures", then "1 passed, 0 failed" or "0 passed, 1 failed" (exit 1).
# Exit 2 on a usage or setup error.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

BASELINE=0
ARGS=()
for arg in "$@"; do
  case $arg in
    -h | --help)
      echo "usage: $0 [-h] [--baseline] [-s SECONDS] [-S SEED] [-t THREADS] [-n OPS]   (env FUZZ_SECONDS, FUZZ_SEED, FUZZ_THREADS; PTRS_LIB=path overrides the library)"
      exit 0
      ;;
    --baseline) BASELINE=1 ;;
    *) ARGS+=("$arg") ;;
  esac
done

CC=${CC:-cc}
OUT=build/fuzz
mkdir -p "$OUT"
if [[ ! -x $OUT/fuzz || tests/fuzz/fuzz.c -nt $OUT/fuzz ]]; then
  # -fno-builtin: the compiler must not reason about the allocator's
  # results (for example fold reads of calloc'd memory to zero).
  "$CC" -O2 -g -fno-builtin -Wall -pthread -o "$OUT/fuzz" tests/fuzz/fuzz.c \
    || { echo "fuzz: tests/fuzz/fuzz.c did not build" >&2; exit 2; }
fi

PRELOAD=()
if ((!BASELINE)); then
  LIB=${PTRS_LIB:-target/release/libptrs.so}
  [[ -f $LIB ]] || { echo "fuzz: $LIB not found (run 'make lib' first)" >&2; exit 2; }
  LIB=$(cd "$(dirname "$LIB")" && pwd)/$(basename "$LIB")
  PRELOAD=(env LD_PRELOAD="$LIB" FUZZ_EXPECT=ptrs)
  echo "fuzz: under ptrs ($LIB)"
else
  PRELOAD=(env -u LD_PRELOAD FUZZ_EXPECT=glibc)
  echo "fuzz: under glibc's malloc (no preload)"
fi

SECONDS_WANTED=${FUZZ_SECONDS:-90}
for ((i = 0; i + 1 < ${#ARGS[@]}; i++)); do
  [[ ${ARGS[i]} == -s ]] && SECONDS_WANTED=${ARGS[i + 1]}
done
# The program stops itself at its deadline; the outer limit is for a hang.
LIMIT=$(awk -v s="$SECONDS_WANTED" 'BEGIN { printf "%d", s * 1.5 + 120 }')
timeout -k 10 "$LIMIT" "${PRELOAD[@]}" "$OUT/fuzz" "${ARGS[@]}"
rc=$?
if ((rc == 0)); then
  echo "1 passed, 0 failed"
  exit 0
fi
case $rc in
  124 | 137) echo "fuzz: timed out after ${LIMIT}s (hang?)" ;;
  2) echo "fuzz: bad arguments"; exit 2 ;;
  3) echo "fuzz: the allocator under test does not serve malloc (see above)" ;;
  1) ;;
  *) ((rc > 128)) && echo "fuzz: killed by signal $((rc - 128)) (an allocator abort or crash; see above)" \
       || echo "fuzz: exit status $rc" ;;
esac
echo "0 passed, 1 failed"
exit 1
