#!/usr/bin/env bash
# Usage: scripts/memcheck.sh [TEST...]
# Runs the C tests (their -linked builds, made by c-tests/run.sh) under
# valgrind's memcheck. --soname-synonyms=somalloc=nouserintercepts stops
# valgrind from replacing ptrs's malloc with its own; ptrs then tells
# memcheck about its blocks with client requests (src/valgrind.rs), so
# memcheck checks the program's accesses to the heap as it does on glibc.
# Each test must report no error.
# First, c-tests/memcheck/misuse.c (a use after free, two overflows, a read
# of uninitialised memory, a read of a block realloc moved, a read of a
# block of a destroyed pool) must be caught:
# each misuse reported once, and nothing else.
# Tests listed in c-tests/memcheck-skip.txt (with the reason) are skipped;
# a test that is not built fails; exit status 77 (unsupported) is a skip.
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

# Memcheck must see heap misuse in a program running on ptrs.
lib_dir=$(pwd)/target/release
misuse=build/memcheck/misuse
if gcc -std=gnu11 -O1 -g -w -o "$misuse" c-tests/memcheck/misuse.c \
     -L "$lib_dir" -Wl,--no-as-needed -lptrs "-Wl,-rpath,$lib_dir"; then
  valgrind --tool=memcheck -q --soname-synonyms=somalloc=nouserintercepts \
    "$misuse" >build/memcheck/misuse.log 2>&1
  for f in use_after_free overflow_into_slack overflow_into_next uninitialised_read realloc_old_block use_after_destroy use_after_parent_destroy; do
    # The first frame of each error report ("at 0x...: FUNC (misuse.c:N)").
    if grep -qE "^==[0-9]+==    at 0x[0-9A-F]+: $f \(misuse\.c" build/memcheck/misuse.log; then
      echo "PASS: memcheck reports $f"; passed=$((passed + 1))
    else
      echo "FAIL: memcheck does not report $f (build/memcheck/misuse.log)"; failed=$((failed + 1))
    fi
  done
  n=$(grep -cE "^==[0-9]+== (Invalid|Conditional|Use of uninit|Mismatched)" build/memcheck/misuse.log)
  if [ "$n" -eq 7 ]; then
    echo "PASS: memcheck reports 7 errors in misuse.c, none in correct uses"; passed=$((passed + 1))
  else
    echo "FAIL: memcheck reports $n errors in misuse.c, want 7 (build/memcheck/misuse.log)"
    sed -n '1,30p' build/memcheck/misuse.log | sed 's/^/    /'; failed=$((failed + 1))
  fi
else
  echo "FAIL: c-tests/memcheck/misuse.c does not build"; failed=$((failed + 1))
fi
# A Rust program with ptrs as its #[global_allocator] (examples/global_alloc.rs,
# threads, maps, pools) runs clean: its blocks are announced to memcheck as
# the C functions' are (every deallocation was reported as an invalid free
# before; fresh tester).
if [ $# -eq 0 ]; then
  if cargo build --release --quiet --example global_alloc 2>build/memcheck/global_alloc.build.log; then
    if valgrind --tool=memcheck -q --error-exitcode=99 --soname-synonyms=somalloc=nouserintercepts \
         target/release/examples/global_alloc >build/memcheck/global_alloc.log 2>&1; then
      echo "PASS: the global_alloc example (Rust, #[global_allocator]) runs clean under memcheck"; passed=$((passed + 1))
    else
      echo "FAIL: the global_alloc example under memcheck (build/memcheck/global_alloc.log)"
      sed -n '1,20p' build/memcheck/global_alloc.log | sed 's/^/    /'; failed=$((failed + 1))
    fi
  else
    echo "FAIL: examples/global_alloc.rs does not build (build/memcheck/global_alloc.build.log)"; failed=$((failed + 1))
  fi
fi
for t in "${tests[@]}"; do
  bin=build/c-tests/$t-linked
  if grep -qE "^$t( |$)" "$skip_list" 2>/dev/null; then
    echo "SKIP: $t ($(grep -E "^$t( |$)" "$skip_list" | cut -d' ' -f2-))"; skipped=$((skipped + 1)); continue
  fi
  if [ ! -x "$bin" ]; then echo "FAIL: $t (not built; run c-tests/run.sh first)"; failed=$((failed + 1)); continue; fi
  log=build/memcheck/$t.log
  # The test's own /* ENV: ... */ and /* ARGS: ... */ directives, as c-tests/run.sh reads them.
  src=$(ls c-tests/$t.c c-tests/$t.cc 2>/dev/null | head -n 1)
  env_extra=$(sed -n 's|^.*/\* *ENV: *\(.*[^ ]\) *\*/.*$|\1|p' "$src" | head -n 1)
  args_extra=$(sed -n 's|^.*/\* *ARGS: *\(.*[^ ]\) *\*/.*$|\1|p' "$src" | head -n 1)
  read -r -a env_arr <<< "$env_extra" || true
  read -r -a args_arr <<< "$args_extra" || true
  # Valgrind runs programs tens of times slower: stretch the tests' own
  # deadlock watchdogs accordingly. --fair-sched=yes: valgrind runs one
  # thread at a time, and its default lock between them is unfair, so a
  # thread that makes system calls in a loop (tst-mt-purge-stress's
  # malloc_trim thread, threads waiting on a lock with sched_yield) takes
  # it back at once and starves the others: that test, 4 s with the fair
  # lock, took 97 s once without it and was killed at 200 s in four other
  # runs, and once took 12 minutes in CI.
  env "${env_arr[@]}" TEST_UNDER_MEMCHECK=1 TEST_TIMEOUT_FACTOR=${TEST_TIMEOUT_FACTOR:-8} \
    timeout "${MEMCHECK_TIMEOUT:-900}" valgrind --tool=memcheck -q --fair-sched=yes --error-exitcode=99 \
    --soname-synonyms=somalloc=nouserintercepts "$bin" "${args_arr[@]}" >"$log" 2>&1
  rc=$?
  if [ $rc -eq 0 ]; then
    echo "PASS: $t"; passed=$((passed + 1))
  elif [ $rc -eq 77 ]; then
    echo "SKIP: $t (unsupported: $(tail -n 1 "$log"))"; skipped=$((skipped + 1))
  else
    echo "FAIL: $t [exit $rc]"; sed -n '1,15p' "$log" | sed 's/^/    /'; failed=$((failed + 1))
  fi
done
echo "$passed passed, $failed failed, $skipped skipped"
[ $failed -eq 0 ]
