# Sourced by scripts/bench.sh, bench-callgrind.sh and bench-hardening.sh.
#
# bench_rev ROOT: prints the commit the results come from (git rev-parse
# --short HEAD), with "-dirty" appended when the work tree has changes
# (tracked or untracked, ignored files excepted). A dirty tree, or no git
# checkout at all, is refused (message on stderr, status 1) unless
# BENCH_ALLOW_DIRTY=1: published figures must name the code they measured.
bench_rev() {
    local root=$1 rev allow=${BENCH_ALLOW_DIRTY:-0}
    [ "$allow" = 0 ] && allow=""
    if ! rev=$(git -C "$root" rev-parse --short HEAD 2>/dev/null); then
        if [ -z "$allow" ]; then
            echo "[bench] error: $root is not a git checkout: results could not name their commit (set BENCH_ALLOW_DIRTY=1 to run anyway)" >&2
            return 1
        fi
        echo "unknown-dirty"
        return 0
    fi
    if [ -n "$(git -C "$root" status --porcelain 2>/dev/null)" ]; then
        if [ -z "$allow" ]; then
            echo "[bench] error: the git tree has uncommitted changes (git status --porcelain); commit them, or set BENCH_ALLOW_DIRTY=1 (results are then marked $rev-dirty)" >&2
            return 1
        fi
        rev="$rev-dirty"
    fi
    echo "$rev"
}
