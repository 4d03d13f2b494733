#!/usr/bin/env bash
# Usage: scripts/run-tests.sh
# Runs every test suite of ptrs (Rust unit tests, the C tests in both link
# modes, real programs under LD_PRELOAD) and ends with one combined line
# "N passed, N failed, N skipped". Exits 1 if anything failed.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$here/.."
mkdir -p build
passed=0 failed=0 skipped=0 status=0

# Reads "N passed, N failed[, N skipped]" from the last such line of a log.
tally() {
  local line
  line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$1" | tail -n 1)
  if [ -z "$line" ]; then
    echo "run-tests: $2 printed no summary" >&2
    failed=$((failed + 1))
    return
  fi
  passed=$((passed + $(echo "$line" | sed -E 's/^([0-9]+) passed.*/\1/')))
  failed=$((failed + $(echo "$line" | sed -E 's/^[0-9]+ passed, ([0-9]+) failed.*/\1/')))
  if echo "$line" | grep -q skipped; then
    skipped=$((skipped + $(echo "$line" | sed -E 's/.* ([0-9]+) skipped.*/\1/')))
  fi
}

echo "== Rust unit tests (cargo test --no-default-features --features pool-allocator-api2 --no-fail-fast)"
# --no-fail-fast: a test binary that fails or aborts (SIGABRT is how ptrs
# reports a heap error) does not stop the binaries after it.
cargo_rc=0
cargo test --release --no-default-features --features pool-allocator-api2 --no-fail-fast 2>&1 | tee build/unit-tests.log || cargo_rc=$?
# Every test binary cargo starts prints "Running <binary>" (or
# "Doc-tests <crate>") and, if it ends normally, one "test result:" line.
read -r u_pass u_fail u_ign u_started u_results < <(awk '
  /^test result:/ {
    results++
    for (i = 2; i <= NF; i++) {
      if ($i ~ /^passed/) p += $(i - 1)
      if ($i ~ /^failed/) f += $(i - 1)
      if ($i ~ /^ignored/) g += $(i - 1)
    }
  }
  /^ *Running / || /^ *Doc-tests / { started++ }
  END { print p + 0, f + 0, g + 0, started + 0, results + 0 }' build/unit-tests.log)
passed=$((passed + u_pass))
failed=$((failed + u_fail))
skipped=$((skipped + u_ign))
# A binary that started and printed no result crashed: its remaining tests
# were neither run nor counted, so it counts as one failure.
crashed=$((u_started - u_results))
if [ "$crashed" -gt 0 ]; then
  echo "run-tests: $crashed Rust test binary(ies) ended without a result (crashed)" >&2
  failed=$((failed + crashed))
fi
# cargo failed and no failure was counted yet (a build error, no binary
# started): that is a failure, not "0 passed, 0 failed".
if [ "$cargo_rc" -ne 0 ]; then
  status=1
  if [ "$u_fail" -eq 0 ] && [ "$crashed" -le 0 ]; then
    echo "run-tests: cargo test failed (exit $cargo_rc) with no failed test counted" >&2
    failed=$((failed + 1))
  fi
fi

# The unit tests build the crate without the C names; make sure the
# library the C tests load is the full one.
if ! make -s lib >build/make-lib.log 2>&1; then
  cat build/make-lib.log >&2
  echo "run-tests: make lib failed; the C tests and programs were not run" >&2
  failed=$((failed + 1))
  echo "$passed passed, $failed failed, $skipped skipped"
  exit 1
fi

echo "== C tests (c-tests/run.sh)"
if bash c-tests/run.sh 2>&1 | tee build/c-tests.log; then :; else status=1; fi
tally build/c-tests.log c-tests

echo "== Real programs (scripts/test-programs.sh)"
if bash scripts/test-programs.sh 2>&1 | tee build/programs.log; then :; else status=1; fi
tally build/programs.log programs

[ "$failed" -eq 0 ] || status=1
echo "$passed passed, $failed failed, $skipped skipped"
exit $status
