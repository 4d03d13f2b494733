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

echo "== Rust unit tests (cargo test --no-default-features)"
if cargo test --release --no-default-features 2>&1 | tee build/unit-tests.log; then :; else status=1; fi
u_pass=$(awk '/^test result:/ { for (i = 1; i <= NF; i++) if ($i ~ /^passed/) n += $(i - 1) } END { if (NR) print n + 0 }' build/unit-tests.log)
u_fail=$(awk '/^test result:/ { for (i = 1; i <= NF; i++) if ($i ~ /^failed/) n += $(i - 1) } END { print n + 0 }' build/unit-tests.log)
passed=$((passed + ${u_pass:-0}))
failed=$((failed + ${u_fail:-0}))
if [ -z "${u_pass:-}" ]; then failed=$((failed + 1)); fi

# The unit tests build the crate without the C names; make sure the
# library the C tests load is the full one.
make -s lib >/dev/null

echo "== C tests (c-tests/run.sh)"
if bash c-tests/run.sh 2>&1 | tee build/c-tests.log; then :; else status=1; fi
tally build/c-tests.log c-tests

echo "== Real programs (scripts/test-programs.sh)"
if bash scripts/test-programs.sh 2>&1 | tee build/programs.log; then :; else status=1; fi
tally build/programs.log programs

[ "$failed" -eq 0 ] || status=1
echo "$passed passed, $failed failed, $skipped skipped"
exit $status
