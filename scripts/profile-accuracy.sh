#!/usr/bin/env bash
# Unbiasedness of the heap profiler's estimates: runs the known-answer
# program of c-tests/tst-profile-pprof.c (three functions keeping 64, 32 and
# 16 MiB live in blocks of 64 B to 64 KiB) RUNS times at sampling rate RATE,
# reads each profile with google-pprof --text, and prints the mean, the
# standard deviation and the mean's relative error per function.
#
# usage: scripts/profile-accuracy.sh [RUNS [RATE]]
#   RUNS  number of runs (default 20)
#   RATE  sampling rate in bytes (default 0: the profiler's default, 512 KiB)
#
# Exits 1 if a mean is off the truth by more than 5 %, 2 on a setup error.
# Needs google-pprof (Debian package google-perftools) and the test binary
# built by c-tests/run.sh (rebuilt here).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
RUNS=${1:-20}
RATE=${2:-0}
command -v google-pprof >/dev/null || { echo "google-pprof not installed (google-perftools)" >&2; exit 2; }
BIN=build/c-tests/tst-profile-pprof-linked
# (Re)built and checked at rate 16384 by the C test runner first.
PTRS_TEST_MODES=linked bash c-tests/run.sh tst-profile-pprof >/dev/null || true
[[ -x $BIN ]] || { echo "$BIN was not built" >&2; exit 2; }
for i in $(seq "$RUNS"); do
  PROFILE_TEST_RATE=$RATE "$BIN" | grep '^keeps_64 '
done | awk -v runs="$RUNS" -v rate="$RATE" '
  { for (i = 1; i <= NF; i++) if ($i ~ /^keeps_/) { v = $(i + 1) + 0; s[$i] += v; q[$i] += v * v; n[$i]++ } }
  END {
    truth["keeps_64"] = 64; truth["keeps_32"] = 32; truth["keeps_16"] = 16
    bad = 0
    printf "rate %s, %d runs (MiB in use, google-pprof --text)\n", rate == 0 ? "default" : rate, runs
    for (f in truth) {
      if (n[f] != runs) { printf "%s: %d of %d runs gave a figure\n", f, n[f], runs; bad = 1; continue }
      m = s[f] / n[f]; sd = sqrt(q[f] / n[f] - m * m); e = (m - truth[f]) / truth[f] * 100
      printf "%s: truth %d, mean %.2f, sd %.2f (one run), mean off by %+.1f %%\n", f, truth[f], m, sd, e
      if (e > 5 || e < -5) bad = 1
    }
    exit bad
  }'
