#!/usr/bin/env bash
# Usage: scripts/memcheck.sh [TEST...]
# Runs the C tests (their -linked builds, made by c-tests/run.sh) under
# valgrind's memcheck, which then checks the memory accesses of ptrs's own
# code. --soname-synonyms=somalloc=nouserintercepts stops valgrind from
# replacing ptrs's malloc with its own. Each test must report no error.
# Tests listed in c-tests/memcheck-skip.txt (with the reason) are skipped.
# Under valgrind ptrs does not move or resize mappings with mremap (see
# os::running_on_valgrind): valgrind loses track of such pages.
# Ends with "N passed, N failed, N skipped".
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$here/.."
command -v valgrind >/dev/null || { echo "memcheck: valgrind is not installed" >&2; exit 2; }
skip_list=c-tests/memcheck-skip.txt
if [ $# -gt 0 ]; then tests=("$@"); else
  tests=()
  for f in c-tests/tst-*.c c-tests/tst-*.cc; do n=$(basename "$f"); tests+=("${n%.*}"); done
fi
passed=0 failed=0 skipped=0
mkdir -p build/memcheck
for t in "${tests[@]}"; do
  bin=build/c-tests/$t-linked
  if grep -qE "^$t( |$)" "$skip_list" 2>/dev/null; then
    echo "SKIP: $t ($(grep -E "^$t( |$)" "$skip_list" | cut -d' ' -f2-))"; skipped=$((skipped + 1)); continue
  fi
  if [ ! -x "$bin" ]; then echo "SKIP: $t (not built; run c-tests/run.sh first)"; skipped=$((skipped + 1)); continue; fi
  log=build/memcheck/$t.log
  # Valgrind runs programs tens of times slower: stretch the tests' own
  # deadlock watchdogs accordingly.
  TEST_TIMEOUT_FACTOR=${TEST_TIMEOUT_FACTOR:-8} timeout "${MEMCHECK_TIMEOUT:-900}" valgrind --tool=memcheck -q --error-exitcode=99 \
    --soname-synonyms=somalloc=nouserintercepts "$bin" >"$log" 2>&1
  rc=$?
  if [ $rc -eq 0 ] || [ $rc -eq 77 ]; then
    echo "PASS: $t"; passed=$((passed + 1))
  else
    echo "FAIL: $t [exit $rc]"; sed -n '1,15p' "$log" | sed 's/^/    /'; failed=$((failed + 1))
  fi
done
echo "$passed passed, $failed failed, $skipped skipped"
[ $failed -eq 0 ]
