#!/usr/bin/env bash
# Benchmark suite for ptrs: every workload under every allocator, interleaved.
#
#   bash scripts/bench.sh            full suite  -> bench/results.md, results.svg, raw.csv
#   bash scripts/bench.sh scaling    multi-threaded workloads at BENCH_THREADS
#                                    -> bench/scaling.md, bench/scaling.csv
#   bash scripts/bench.sh build      only build the workloads (build/bench/)
#   bash scripts/bench.sh pools      the pool benchmark (bench/pools.c): ptrs
#                                    pools (default, bump) against APR pools,
#                                    mimalloc heaps, jemalloc arenas -> stdout
#   bash scripts/bench.sh poolcg     instructions (callgrind) per pool operation:
#                                    allocation and free from malloc, a pool, a
#                                    bump pool; create, destroy and a whole
#                                    request cycle (bench/poolfast.c) -> stdout
#
# Environment:
#   BENCH_REPS=5          repetitions (median is reported)
#   BENCH_SCALE=1         multiplies the work of every workload
#   BENCH_QUICK=1         smoke run: scale x0.05 and 1 repetition (unless BENCH_REPS set)
#   BENCH_ALLOCATORS="glibc jemalloc mimalloc tcmalloc ptrs"
#   BENCH_WORKLOADS="churn larson larson4 prodcons falsesharing realloc mixedlarge
#                    frag threadchurn redis sqlite python cxx
#                    rounds16k rounds1k rounds256k largeset largeheap reallocgrow burst
#                    exited dormant latedtor idletrim"  (the last ten: bench/lifecycle.c)
#   BENCH_PTRS_LIB=path   the ptrs library (default target/release/libptrs.so)
#   BENCH_EXTRA_<name>=path  an extra allocator <name> (e.g. BENCH_EXTRA_ptrs2=...);
#                         added to the default allocator list, or name it in
#                         BENCH_ALLOCATORS
#   BENCH_ENV_<name>="VAR=value ..."  environment for allocator <name> only (e.g.
#                         BENCH_EXTRA_prof=target/release/libptrs.so
#                         BENCH_ENV_prof="PTRS_PROFILE=/tmp/bench-prof": ptrs with
#                         its heap profiler on)
#   BENCH_THREADS="1 2 4 8 16"   thread counts of the scaling mode
#   BENCH_TIMEOUT=600     per-run time limit (seconds)
#   BENCH_NO_INSTALL=1    never call apt-get
#   BENCH_NO_BUILD=1      never call cargo (fail if the ptrs library is missing)
#   BENCH_PYTHONMALLOC=malloc  PYTHONMALLOC of the python workload ("" = pymalloc)
#   BENCH_REDIS_KEYSPACE=100000  redis-benchmark -r (random keys); 0 = single key
#   BENCH_OUT=bench       where results go (relative to the repo root)
#   BENCH_ALLOW_DIRTY=1   run from a git tree with uncommitted changes (refused
#                         otherwise); results are then marked <commit>-dirty
#
# Every results file names the commit (git rev-parse --short HEAD): results.md
# and scaling.md in their header, raw.csv / scaling.csv in a "commit" column,
# the SVGs in their title.  When burst or rounds16k run, each allocator runs
# them once more with LIFECYCLE_RSS_TRACE (RSS sampled every 2 ms; untimed,
# traces in build/bench/trace/) for rss-burst.svg and rss-rounds.svg.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
MODE=${1:-run}
SRC=$ROOT/bench
BUILD=$ROOT/build/bench
OUT=$ROOT/${BENCH_OUT:-bench}
LIBDIR=/usr/lib/x86_64-linux-gnu
PY=/usr/bin/python3
[ -x "$PY" ] || PY=$(command -v python3)

if [ "$MODE" = poolcg ]; then
  # Each figure is (Ir(N) - Ir(0)) / calls of a non-inlined wrapper of
  # bench/poolfast.c, inclusive (the wrapper's call and return included).
  command -v valgrind >/dev/null || { echo "valgrind is not installed" >&2; exit 1; }
  [ -n "${BENCH_NO_BUILD:-}" ] || make -s lib >/dev/null
  mkdir -p "$BUILD/callgrind"
  lib=$ROOT/target/release
  gcc -O2 -g -I include -o "$BUILD/poolfast" bench/poolfast.c -L "$lib" "-Wl,-rpath,$lib" -lptrs
  N=${BENCH_CALLGRIND_N:-200000}
  incl() { # file function -> inclusive Ir
    callgrind_annotate --inclusive=yes "$1" 2>/dev/null |
      awk -v f=":$2 " 'index($0, f) { gsub(",", "", $1); print $1; found = 1; exit } END { if (!found) print 0 }'
  }
  per() { awk -v a="$1" -v b="$2" -v n="$3" 'BEGIN { printf "%.1f", (a - b) / n }'; }
  echo "mode alloc_Ir free_Ir pair_Ir create_Ir destroy_Ir cycle_Ir   (N=$N; cycle: create, 102 allocations, destroy)"
  for m in malloc pool bump cycle cyclebump; do
    n=$N
    case $m in cycle*) n=$((N / 20)) ;; esac
    for k in 0 "$n"; do
      valgrind --tool=callgrind --callgrind-out-file="$BUILD/callgrind/poolfast.$m.$k.out" \
        "$BUILD/poolfast" "$m" "$k" >/dev/null 2>&1
    done
    f0=$BUILD/callgrind/poolfast.$m.0.out f1=$BUILD/callgrind/poolfast.$m.$n.out
    a=$(per "$(incl "$f1" do_alloc)" "$(incl "$f0" do_alloc)" "$n")
    fr=$(per "$(incl "$f1" do_free)" "$(incl "$f0" do_free)" "$n")
    case $m in
      cycle*)
        c=$(per "$(incl "$f1" do_create)" "$(incl "$f0" do_create)" "$n")
        d=$(per "$(incl "$f1" do_destroy)" "$(incl "$f0" do_destroy)" "$n")
        t=$(per "$(incl "$f1" main)" "$(incl "$f0" main)" "$n")
        a=$(awk -v a="$a" 'BEGIN { printf "%.1f", a / 102 }')
        echo "$m $a - - $c $d $t" ;;
      *)
        t=$(per "$(incl "$f1" main)" "$(incl "$f0" main)" "$n")
        echo "$m $a $fr $t - - -" ;;
    esac
  done
  exit 0
fi

if [ "$MODE" = pools ]; then
  # APR, mimalloc and jemalloc from Debian, installed if missing.
  if [ -z "${BENCH_NO_INSTALL:-}" ] && { [ ! -e /usr/include/apr-1.0/apr_pools.h ] ||
       [ ! -e /usr/include/mimalloc.h ] || [ ! -e /usr/include/jemalloc/jemalloc.h ]; }; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libapr1-dev libmimalloc-dev libjemalloc-dev >/dev/null 2>&1 || true
  fi
  [ -n "${BENCH_NO_BUILD:-}" ] || make -s lib >/dev/null
  mkdir -p "$BUILD"
  lib=$ROOT/target/release
  gcc -O2 -I include -o "$BUILD/pools" bench/pools.c -L "$lib" "-Wl,-rpath,$lib" -lptrs
  systems="ptrs ptrs-bump"
  if [ -e /usr/include/apr-1.0/apr_pools.h ]; then
    gcc -O2 -DHAVE_APR -I include -I /usr/include/apr-1.0 -o "$BUILD/pools-apr" bench/pools.c \
      -L "$lib" "-Wl,-rpath,$lib" -lptrs -lapr-1 && systems="$systems apr"
  fi
  if [ -e /usr/include/mimalloc.h ]; then
    gcc -O2 -DHAVE_MIMALLOC -I include -o "$BUILD/pools-mimalloc" bench/pools.c \
      -L "$lib" "-Wl,-rpath,$lib" -lptrs -lmimalloc && systems="$systems mimalloc"
  fi
  if [ -e /usr/include/jemalloc/jemalloc.h ]; then
    gcc -O2 -DHAVE_JEMALLOC -I include -o "$BUILD/pools-jemalloc" bench/pools.c \
      -L "$lib" "-Wl,-rpath,$lib" -lptrs -ljemalloc && systems="$systems jemalloc"
  fi
  echo "system cycle_us destroy_1k_ms destroy_10k_ms destroy_100k_ms destroy_1M_ms rss_10k_pools_MiB rss_after_destroy_MiB rss_after_2_delays_MiB rss_after_trim_MiB"
  for s in $systems; do
    bin=$BUILD/pools
    case $s in apr|mimalloc|jemalloc) bin=$BUILD/pools-$s ;; esac
    timeout "${BENCH_TIMEOUT:-600}" "$bin" "$s" || echo "$s failed"
  done
  exit 0
fi

QUICK=${BENCH_QUICK:-0}
[ "$QUICK" = 0 ] && QUICK=""
if [ -n "$QUICK" ]; then
    REPS=${BENCH_REPS:-1}
    SCALE=$(awk -v s="${BENCH_SCALE:-1}" 'BEGIN { printf "%g", s * 0.05 }')
else
    REPS=${BENCH_REPS:-5}
    SCALE=${BENCH_SCALE:-1}
fi
export BENCH_SCALE=$SCALE
TIMEOUT=${BENCH_TIMEOUT:-600}
C_WORKLOADS="churn larson prodcons falsesharing realloc mixedlarge frag threadchurn"
ALL_WORKLOADS="churn larson larson4 prodcons falsesharing realloc mixedlarge frag threadchurn redis sqlite python cxx"
SCALING_WORKLOADS="larson prodcons falsesharing"
# memory-lifecycle workloads: modes of bench/lifecycle.c (see lifecycle_args)
LIFECYCLE_WORKLOADS="rounds16k rounds1k rounds256k largeset largeheap reallocgrow burst exited dormant latedtor idletrim"
ALL_WORKLOADS="$ALL_WORKLOADS $LIFECYCLE_WORKLOADS"
# workloads traced for the RSS-over-time charts: workload=chart name
TRACED_WORKLOADS="burst=rss-burst rounds16k=rss-rounds"

log() { printf '[bench] %s\n' "$*" >&2; }
die() { printf '[bench] error: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- allocators
extra_names() {
    # names of BENCH_EXTRA_<name> variables
    compgen -v | sed -n 's/^BENCH_EXTRA_\([A-Za-z0-9_]*\)$/\1/p'
}

lib_for() {
    case $1 in
        glibc) echo "" ;;
        jemalloc) echo "$LIBDIR/libjemalloc.so.2" ;;
        mimalloc) echo "$LIBDIR/libmimalloc.so.2" ;;
        tcmalloc) echo "$LIBDIR/libtcmalloc_minimal.so.4" ;;
        ptrs) echo "${BENCH_PTRS_LIB:-$ROOT/target/release/libptrs.so}" ;;
        *)
            local v="BENCH_EXTRA_$1"
            [ -n "${!v:-}" ] || die "unknown allocator '$1' (set $v=/path/to/lib.so)"
            echo "${!v}"
            ;;
    esac
}

if [ -n "${BENCH_ALLOCATORS:-}" ]; then
    ALLOCATORS=$BENCH_ALLOCATORS
else
    ALLOCATORS="glibc jemalloc mimalloc tcmalloc ptrs $(extra_names | tr '\n' ' ')"
fi
ALLOCATORS=$(echo $ALLOCATORS)

# ---------------------------------------------------------------- dependencies
install_deps() {
    local pkgs=""
    for a in $ALLOCATORS; do
        case $a in
            jemalloc) [ -e "$(lib_for jemalloc)" ] || pkgs="$pkgs libjemalloc2" ;;
            mimalloc) [ -e "$(lib_for mimalloc)" ] || pkgs="$pkgs libmimalloc2.0" ;;
            tcmalloc) [ -e "$(lib_for tcmalloc)" ] || pkgs="$pkgs libtcmalloc-minimal4" ;;
        esac
    done
    local wl
    for wl in $WORKLOADS; do
        case $wl in
            redis) command -v redis-server >/dev/null || pkgs="$pkgs redis-server"
                   command -v redis-benchmark >/dev/null || pkgs="$pkgs redis-tools" ;;
            sqlite) command -v sqlite3 >/dev/null || pkgs="$pkgs sqlite3" ;;
        esac
    done
    command -v gcc >/dev/null || pkgs="$pkgs gcc libc6-dev"
    command -v g++ >/dev/null || pkgs="$pkgs g++"
    pkgs=$(echo $pkgs | tr ' ' '\n' | sort -u | tr '\n' ' ')
    [ -n "${pkgs// /}" ] || return 0
    [ -z "${BENCH_NO_INSTALL:-}" ] || die "missing packages: $pkgs (BENCH_NO_INSTALL is set)"
    local sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo"
    log "installing:$pkgs"
    $sudo apt-get update
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y $pkgs
}

ensure_ptrs() {
    local lib
    lib=$(lib_for ptrs)
    [ -e "$lib" ] && return 0
    if [ -z "${BENCH_PTRS_LIB:-}" ] && [ -z "${BENCH_NO_BUILD:-}" ] && command -v cargo >/dev/null; then
        log "ptrs library missing: make lib"
        (cd "$ROOT" && make -s lib) || die "make lib failed"
    fi
    [ -e "$lib" ] || die "ptrs library not found: $lib (build it, set BENCH_PTRS_LIB, or drop ptrs from BENCH_ALLOCATORS)"
}

# ---------------------------------------------------------------- build
build_workloads() {
    mkdir -p "$BUILD"
    local w
    for w in $C_WORKLOADS lifecycle fastpath benchrun; do
        if [ ! -x "$BUILD/$w" ] || [ "$SRC/$w.c" -nt "$BUILD/$w" ] || [ "$SRC/common.h" -nt "$BUILD/$w" ]; then
            gcc -O2 -pthread -Wall -o "$BUILD/$w" "$SRC/$w.c" -lm -ldl || die "cannot build $w"
        fi
    done
    # The C++ workload (bench/cxx.cc).
    if [ ! -x "$BUILD/cxx" ] || [ "$SRC/cxx.cc" -nt "$BUILD/cxx" ]; then
        g++ -O2 -std=c++17 -pthread -Wall -o "$BUILD/cxx" "$SRC/cxx.cc" || die "cannot build cxx"
    fi
    if [ ! -e "$BUILD/libglibcshim.so" ] || [ "$SRC/glibc_shim.c" -nt "$BUILD/libglibcshim.so" ]; then
        gcc -O2 -shared -fPIC -Wall -o "$BUILD/libglibcshim.so" "$SRC/glibc_shim.c" -ldl || die "cannot build glibc shim"
    fi
}

sqlite_script() {
    local rows f
    rows=$(awk -v s="$SCALE" 'BEGIN { r = int(200000 * s); if (r < 1000) r = 1000; print r }')
    f=$BUILD/sqlite_workload_$rows.sql
    [ -s "$f" ] || "$PY" "$SRC/sqlite_gen.py" "$rows" >"$f"
    echo "$f"
}

# A program that links an allocator itself (Debian's redis-server links
# libjemalloc) would not run glibc's malloc without a preload; the glibc
# column then preloads a shim that routes malloc & co. to glibc.
glibc_preload_for() {
    if ldd "$1" 2>/dev/null | grep -qE 'lib(jemalloc|tcmalloc|mimalloc)'; then
        echo "$BUILD/libglibcshim.so"
    fi
}

# ---------------------------------------------------------------- running
CSV=""
record() { # rep alloc workload threads <key=value lines on stdin>
    local rep=$1 alloc=$2 wl=$3 thr=$4 line
    while IFS= read -r line; do
        if [[ $line =~ ^([a-z0-9_]+)=(-?[0-9][0-9.eE+-]*)$ ]]; then
            echo "$rep,$alloc,$wl,$thr,${BASH_REMATCH[1]},${BASH_REMATCH[2]},$BENCH_REV" >>"$CSV"
        fi
    done
}

# Servers are started inside command substitutions (subshells), so their pids
# are also kept in a file for the main shell's trap.
PIDFILE=$BUILD/servers.pids
cleanup() {
    local p
    if [ -f "$PIDFILE" ]; then
        while read -r p; do
            [ -n "$p" ] && kill -9 "$p" 2>/dev/null || true
        done <"$PIDFILE"
        rm -f "$PIDFILE"
    fi
}
trap cleanup EXIT
trap 'cleanup; exit 130' INT TERM

run_redis() { # lib -> key=value lines
    local lib=$1 n keyspace port pid="" try out tests i
    n=$(awk -v s="$SCALE" 'BEGIN { r = int(30000 * s); if (r < 1000) r = 1000; print r }')
    keyspace=${BENCH_REDIS_KEYSPACE:-100000}
    for try in 1 2 3 4 5; do
        port=$((20000 + RANDOM % 40000))
        if redis-cli -h 127.0.0.1 -p "$port" ping >/dev/null 2>&1; then continue; fi
        LD_PRELOAD=$lib redis-server --port "$port" --bind 127.0.0.1 --save "" \
            --appendonly no --daemonize no --protected-mode yes \
            --logfile "$BUILD/redis-server.log" &
        pid=$!
        echo "$pid" >>"$PIDFILE"
        trap 'kill -9 $pid 2>/dev/null' EXIT
        for i in $(seq 100); do
            kill -0 "$pid" 2>/dev/null || break
            if [ "$(redis-cli -h 127.0.0.1 -p "$port" info server 2>/dev/null | tr -d '\r' | sed -n 's/^process_id://p')" = "$pid" ]; then
                break 2
            fi
            sleep 0.05
        done
        kill -9 "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
        pid=""
    done
    [ -n "$pid" ] || { log "redis-server did not start"; echo "exit=1"; return 0; }
    local rargs=()
    [ "$keyspace" -gt 0 ] && rargs=(-r "$keyspace")
    out=$(timeout "$TIMEOUT" redis-benchmark -h 127.0.0.1 -p "$port" -q -n "$n" \
        -t set,get,lpush,lpop -d 100 "${rargs[@]}" --csv 2>/dev/null || true)
    local hwm rss
    hwm=$(awk '/^VmHWM:/ { print $2 }' "/proc/$pid/status" 2>/dev/null || echo -1)
    rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status" 2>/dev/null || echo -1)
    redis-cli -h 127.0.0.1 -p "$port" shutdown nosave >/dev/null 2>&1 || true
    for i in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    sed -i "/^$pid\$/d" "$PIDFILE" 2>/dev/null || true
    trap - EXIT
    # "SET","77519.38",... -> rps_set=77519.38 ; time = sum(n / rps)
    echo "$out" | awk -F'"' -v n="$n" -v hwm="$hwm" -v rss="$rss" '
        $2 ~ /^[A-Z]+$/ && $4 + 0 > 0 { printf "rps_%s=%s\n", tolower($2), $4; t += n / $4; k++ }
        END {
            if (k == 4) { printf "time_s=%.4f\nrequests=%d\nexit=0\n", t, 4 * n }
            else print "exit=1"
            printf "maxrss_kb=%d\nvmhwm_kb=%d\nvmrss_kb=%d\n", hwm, hwm, rss
        }'
}

# n scaled by SCALE, at least min
scaled_n() { awk -v s="$SCALE" -v n="$1" -v m="$2" 'BEGIN { r = int(n * s); if (r < m) r = m; print r }'; }

# arguments of bench/lifecycle.c for a lifecycle workload (sizes of the issue
# at scale 1; largeset and reallocgrow scale themselves with BENCH_SCALE)
lifecycle_args() {
    case $1 in
        rounds16k) echo "rounds 16384 $(scaled_n 20000 200) 4" ;;
        rounds1k) echo "rounds 1024 $(scaled_n 100000 1000) 4" ;;
        rounds256k) echo "rounds 262144 $(scaled_n 1000 20) 4" ;;
        largeheap) echo "largeheap $(scaled_n 20000 200)" ;;
        latedtor) echo "latedtor $(scaled_n 3000 100)" ;;
        *) echo "$1" ;;
    esac
}

run_one() { # alloc workload threads -> key=value lines
    local alloc=$1 wl=$2 thr=$3 lib
    lib=$(lib_for "$alloc")
    local run=("$BUILD/benchrun" -t "$TIMEOUT" -p "$lib")
    local envvar="BENCH_ENV_$alloc"
    if [ -n "${!envvar:-}" ]; then
        # shellcheck disable=SC2206
        run=(env ${!envvar} "${run[@]}")
    fi
    case $wl in
        larson4) "${run[@]}" -- "$BUILD/larson" 4 ;;
        churn | realloc | mixedlarge | frag) "${run[@]}" -- "$BUILD/$wl" ;;
        larson | prodcons | falsesharing | cxx) "${run[@]}" -- "$BUILD/$wl" "$thr" ;;
        threadchurn) "${run[@]}" -- "$BUILD/threadchurn" ;;
        rounds16k | rounds1k | rounds256k | largeset | largeheap | reallocgrow | burst | exited | dormant | latedtor | idletrim)
            # shellcheck disable=SC2046
            "${run[@]}" -- "$BUILD/lifecycle" $(lifecycle_args "$wl")
            ;;
        sqlite)
            local sql
            sql=$(sqlite_script)
            "${run[@]}" -q -- sqlite3 :memory: <"$sql"
            ;;
        python)
            PYTHONMALLOC=${BENCH_PYTHONMALLOC-malloc} "${run[@]}" -q -- "$PY" "$SRC/python_alloc.py" "$SCALE"
            ;;
        redis)
            if [ "$alloc" = glibc ]; then lib=$(glibc_preload_for "$(command -v redis-server)"); fi
            run_redis "$lib"
            ;;
        *) die "unknown workload $wl" ;;
    esac
}

# 'time_s' printed by a workload is its own measured region; the table uses
# the runner's wall_s (whole process) except for redis (sum of n / rps).
run_matrix() { # reps workloads threads-list
    local reps=$1 wls=$2 threads=$3 rep wl a t outp ex
    local total=0 done_=0
    for wl in $wls; do for t in $threads; do for a in $ALLOCATORS; do total=$((total + 1)); done; done; done
    total=$((total * reps))
    for rep in $(seq "$reps"); do
        for wl in $wls; do
            for t in $threads; do
                for a in $ALLOCATORS; do
                    done_=$((done_ + 1))
                    outp=$(run_one "$a" "$wl" "$t" 2>>"$BUILD/stderr.log" || true)
                    echo "$outp" | record "$rep" "$a" "$wl" "$t"
                    ex=$(echo "$outp" | sed -n 's/^exit=//p' | tail -1)
                    if [ "${ex:-1}" != 0 ]; then
                        log "FAILED: $a $wl (threads $t, rep $rep): exit ${ex:-?} (see $BUILD/stderr.log)"
                    fi
                    printf '[bench] %d/%d rep %d %-12s %-9s t=%s %s\n' "$done_" "$total" "$rep" "$wl" "$a" "$t" \
                        "$(echo "$outp" | grep -E '^(wall_s|time_s|maxrss_kb)=' | tr '\n' ' ')" >&2
                done
            done
        done
    done
}

# One more, untimed, run of each traced workload per allocator with the RSS
# sampler on: build/bench/trace/<workload>.<allocator>.txt ("ms rss_kb" lines).
run_traces() {
    local tw wl a lib
    rm -rf "$TRACE"
    mkdir -p "$TRACE"
    for tw in $TRACED_WORKLOADS; do
        wl=${tw%%=*}
        case " $WORKLOADS " in *" $wl "*) ;; *) continue ;; esac
        for a in $ALLOCATORS; do
            lib=$(lib_for "$a")
            # shellcheck disable=SC2046
            LIFECYCLE_RSS_TRACE=$TRACE/$wl.$a.txt "$BUILD/benchrun" -t "$TIMEOUT" -p "$lib" -- \
                "$BUILD/lifecycle" $(lifecycle_args "$wl") >/dev/null 2>>"$BUILD/stderr.log" ||
                log "trace run failed: $a $wl"
            log "traced $wl $a: $(wc -l <"$TRACE/$wl.$a.txt" 2>/dev/null || echo 0) samples"
        done
    done
}

trace_args() {
    local tw
    for tw in $TRACED_WORKLOADS; do
        case " $WORKLOADS " in *" ${tw%%=*} "*) ;; *) continue ;; esac
        printf -- '--trace %s=%s ' "${tw%%=*}" "$OUT/${tw#*=}.svg"
    done
}

check_allocators() {
    local a lib
    for a in $ALLOCATORS; do
        [ "$a" = ptrs ] && ensure_ptrs
        lib=$(lib_for "$a")
        if [ -n "$lib" ] && [ ! -e "$lib" ]; then die "allocator $a: $lib not found"; fi
        # the library must load and serve a malloc
        "$BUILD/benchrun" -p "$lib" -- "$BUILD/fastpath" pair 1000 >/dev/null ||
            die "allocator $a ($lib) fails to run a trivial program"
    done
}

alloc_args() {
    local a
    for a in $ALLOCATORS; do printf -- '--alloc %s=%s ' "$a" "$(lib_for "$a")"; done
}

case $MODE in
    build)
        WORKLOADS=""
        build_workloads
        exit 0
        ;;
    run)
        WORKLOADS=${BENCH_WORKLOADS:-$ALL_WORKLOADS}
        ;;
    scaling)
        WORKLOADS=${BENCH_WORKLOADS:-$SCALING_WORKLOADS}
        ;;
    *) die "unknown mode '$MODE' (run | scaling | build)" ;;
esac
WORKLOADS=$(echo $WORKLOADS)
for wl in $WORKLOADS; do
    case " $ALL_WORKLOADS " in *" $wl "*) ;; *) die "unknown workload '$wl'" ;; esac
done
# shellcheck source=scripts/bench-rev.sh
. "$ROOT/scripts/bench-rev.sh"
BENCH_REV=$(bench_rev "$ROOT") || exit 1
TRACE=$BUILD/trace

install_deps
build_workloads
check_allocators
mkdir -p "$OUT"
: >"$BUILD/stderr.log"

START=$(date +%s)
if [ "$MODE" = run ]; then
    CSV=$OUT/raw.csv
    echo "rep,allocator,workload,threads,metric,value,commit" >"$CSV"
    log "allocators: $ALLOCATORS"
    log "workloads: $WORKLOADS"
    log "reps $REPS, scale $SCALE${QUICK:+ (quick)}"
    log "commit $BENCH_REV"
    run_matrix "$REPS" "$WORKLOADS" 2
    run_traces
    # shellcheck disable=SC2046
    "$PY" "$ROOT/scripts/bench_report.py" results --raw "$CSV" --md "$OUT/results.md" \
        --svg "$OUT/results.svg" --reps "$REPS" --scale "$SCALE" --elapsed $(($(date +%s) - START)) \
        --commit "$BENCH_REV" --trace-dir "$TRACE" $(trace_args) $(alloc_args)
    log "wrote $OUT/results.md, $OUT/results.svg, $OUT/raw.csv$(trace_args | sed 's/--trace [a-z0-9]*=/, /g; s/ *$//; s/ ,/,/g') ($(($(date +%s) - START)) s)"
else
    THREADS=${BENCH_THREADS:-"1 2 4 8 16"}
    CSV=$OUT/scaling.csv
    echo "rep,allocator,workload,threads,metric,value,commit" >"$CSV"
    log "scaling: threads $THREADS, workloads $WORKLOADS, allocators $ALLOCATORS, reps $REPS"
    run_matrix "$REPS" "$WORKLOADS" "$THREADS"
    "$PY" "$ROOT/scripts/bench_report.py" scaling --raw "$CSV" --md "$OUT/scaling.md" \
        --reps "$REPS" --scale "$SCALE" --elapsed $(($(date +%s) - START)) \
        --commit "$BENCH_REV" $(alloc_args)
    log "wrote $OUT/scaling.md, $OUT/scaling.csv ($(($(date +%s) - START)) s)"
fi
