#!/usr/bin/env python3
"""Turn the raw data of scripts/bench.sh into markdown tables and an SVG chart.

  bench_report.py results --raw bench/raw.csv --md bench/results.md --svg bench/results.svg \
      --reps 5 --scale 1 --alloc glibc= --alloc ptrs=target/release/libptrs.so ...
  bench_report.py scaling --raw bench/scaling.csv --md bench/scaling.md --alloc ...

Options: --commit REV (named in every file written), --trace-dir DIR and
--trace WORKLOAD=OUT.svg (RSS-over-time chart of DIR/WORKLOAD.<allocator>.txt,
"ms rss_kb" lines from bench/lifecycle.c's LIFECYCLE_RSS_TRACE sampler).

raw CSV columns: rep,allocator,workload,threads,metric,value[,commit] (one line
per metric per run).  Medians over the repetitions are reported.  Only the
standard library is used (the chart is written as SVG text directly).
"""
import argparse
import csv
import datetime
import math
import os
import platform
import statistics
import subprocess
from collections import OrderedDict, defaultdict

PKG = {
    "glibc": "libc6",
    "jemalloc": "libjemalloc2",
    "mimalloc": "libmimalloc2.0",
    "tcmalloc": "libtcmalloc-minimal4",
}

DESCR = {
    "churn": "1 thread, random replace in 100k live slots, 8..512 B mostly",
    "larson": "T threads (2 in the main table) replace random slots of one shared table by atomic exchange: mostly remote frees",
    "larson4": "larson with 4 threads",
    "prodcons": "producers allocate, consumers free (batches of 256 through a bounded queue); T threads = T/2 producers + T/2 consumers, T=1 runs 1+1",
    "falsesharing": "T threads in a ring (2 in the main table); objects of 8..64 B are written heavily by the next thread, then freed by it",
    "realloc": "string builders (small appends) and vector doubling",
    "mixedlarge": "power-law sizes 16 B..8 MiB, 512 live slots, pages touched",
    "frag": "500k x 16..256 B, free 90%, refill with 300..600 B, free all, trim",
    "threadchurn": "40k short-lived threads, 4 at a time",
    "redis": "redis-server (allocator preloaded into the server only) on 127.0.0.1, redis-benchmark -n 30000 -r 100000 -t set,get,lpush,lpop -d 100 (50 clients); time = sum of n / (requests/s)",
    "sqlite": "sqlite3 CLI, 200k INSERTs in transactions, indexes, group-by (:memory:)",
    "python": "python3 allocation-heavy script (PYTHONMALLOC=malloc)",
    "cxx": "C++, 2 threads: std::map, std::string, std::unordered_map, std::vector growth, shared_ptrs released on other threads (operator new / sized delete)",
    # bench/lifecycle.c
    "rounds16k": "lifecycle rounds 16384 20000 4: build 20000 blocks of 16 KiB (one byte written per 4 KiB), free all, 4 rounds; faults and time per block from round 2 on",
    "rounds1k": "lifecycle rounds 1024 100000 4: the same with 100000 blocks of 1 KiB",
    "rounds256k": "lifecycle rounds 262144 1000 4: the same with 1000 blocks of 256 KiB",
    "largeheap": "lifecycle largeheap 20000: grow to 20000 blocks of 256 KiB (one byte written each), free every other and allocate them again, twice; us per malloc while growing and into the holes",
    "largeset": "24 live blocks of 64 KiB..4 MiB (log-uniform) replaced at random, 16 small replacements between; RSS after freeing them (25 ms later, after one more malloc)",
    "reallocgrow": "exact-size string builders, vectors doubling to 4 MiB, buffers grown by 64 KiB to 8 MiB; RSS after freeing (25 ms later, after one more malloc)",
    "burst": "64 threads build and free ~1.5 MiB each and exit; RSS after the joins, after 500 ms idle, after malloc_trim(0)",
    "exited": "a thread allocates 600k blocks of 64..191 B (~66 MiB) and exits; main frees them and builds the same set: RSS peak of the rebuild",
    "dormant": "thread A allocates the set and sleeps; B frees it; C builds the same set: RSS peak of the rebuild",
    "latedtor": "3000 threads whose pthread key destructor allocates 4 KiB in every destructor round: RSS growth",
    "idletrim": "a worker allocates 2M blocks of 64..160 B, frees all but 1 in 40000 and blocks; main calls malloc_trim(0): RSS",
}

LIFECYCLE = ["rounds16k", "rounds1k", "rounds256k", "largeset", "largeheap", "reallocgrow", "burst",
             "exited", "dormant", "latedtor", "idletrim"]

PALETTE = ["#7f7f7f", "#1f77b4", "#2ca02c", "#9467bd", "#d62728",
           "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#bcbd22"]


def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True,
                              timeout=20).stdout.strip()
    except Exception:
        return ""


def load(path):
    data = defaultdict(lambda: defaultdict(list))  # (wl, alloc, threads) -> metric -> [values]
    workloads, allocs, threads = OrderedDict(), OrderedDict(), OrderedDict()
    runs = defaultdict(dict)  # (wl, alloc, threads, rep) -> metric -> value
    with open(path) as f:
        for row in csv.DictReader(f):
            try:
                v = float(row["value"])
            except ValueError:
                continue
            key = (row["workload"], row["allocator"], int(row["threads"]))
            runs[key + (row["rep"],)][row["metric"]] = v
            workloads[row["workload"]] = 1
            allocs[row["allocator"]] = 1
            threads[int(row["threads"])] = 1
    for k, m in runs.items():
        if m.get("exit", 0) != 0:
            continue  # failed run: left out
        for metric, v in m.items():
            data[k[:3]][metric].append(v)
    return data, list(workloads), list(allocs), sorted(threads)


def med(xs):
    return statistics.median(xs) if xs else None


def gmean(xs):
    xs = [x for x in xs if x and x > 0]
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else None


def fmt(x, nd=3):
    if x is None:
        return "n/a"
    if abs(x) >= 100:
        return f"{x:.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}"
    return f"{x:.{nd}f}"


def mib(kb):
    return None if kb is None or kb < 0 else kb / 1024.0


def meta_lines(args, allocs):
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    libs = dict(a.split("=", 1) for a in args.alloc)
    out = [
        f"- commit: {args.commit or 'not recorded'}",
        f"- date: {datetime.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}",
        f"- machine: {os.cpu_count()} CPUs (nproc {sh('nproc')}), {cpu}, "
        f"{round(os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30)} GiB RAM, "
        f"Linux {platform.release()}",
        f"- repetitions: {args.reps} (median reported), scale {args.scale}, "
        f"run time {args.elapsed // 60} min {args.elapsed % 60} s",
        "- allocators:",
    ]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for a in allocs:
        lib = libs.get(a, "")
        if a in PKG:
            ver = sh(f"dpkg-query -W -f '${{Version}}' {PKG[a]}") or "?"
            what = f"{PKG[a]} {ver}" + (f", LD_PRELOAD={lib}" if lib else ", no preload")
        else:
            what = f"LD_PRELOAD={lib}"
            if a == "ptrs" or os.path.realpath(lib).startswith(root):
                rev = args.commit or sh(f"git -C {root} describe --always --dirty 2>/dev/null") or "uncommitted"
                try:
                    mt = datetime.datetime.fromtimestamp(os.path.getmtime(lib)).strftime("%Y-%m-%d %H:%M")
                except OSError:
                    mt = "?"
                what += f" (git {rev}, built {mt})"
        out.append(f"  - {a}: {what}")
    return out


def smoke_warning(args):
    try:
        small = float(args.scale) < 1 or int(args.reps) < 3
    except ValueError:
        small = True
    if not small:
        return []
    return ["> **Smoke run** (reduced scale and/or fewer than 3 repetitions): the figures only "
            "show that the suite runs; do not quote them.", ""]


def md_table(header, rows):
    s = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    for r in rows:
        s.append("| " + " | ".join(r) + " |")
    return s


# ------------------------------------------------------------------ results
def results(args):
    data, workloads, allocs, _ = load(args.raw)
    order = [a.split("=", 1)[0] for a in args.alloc]
    allocs = [a for a in order if a in allocs] + [a for a in allocs if a not in order]

    def cell(wl, a):
        m = data.get((wl, a, 2)) or {}
        return m

    def time_of(wl, a):
        m = cell(wl, a)
        return med(m.get("time_s")) if wl == "redis" else med(m.get("wall_s"))

    def spread_of(wl, a):
        m = cell(wl, a)
        xs = m.get("time_s") if wl == "redis" else m.get("wall_s")
        if not xs or len(xs) < 2:
            return None
        return (max(xs) - min(xs)) / statistics.median(xs)

    def peak_of(wl, a):
        return med(cell(wl, a).get("maxrss_kb"))

    T = {(w, a): time_of(w, a) for w in workloads for a in allocs}
    P = {(w, a): peak_of(w, a) for w in workloads for a in allocs}

    out = ["# ptrs benchmark results", ""]
    out += smoke_warning(args)
    out += meta_lines(args, allocs)
    out += ["",
            "Every workload runs once per allocator in turn (interleaved: A B C D E A B C D E ...), "
            "as a fresh process with the allocator in LD_PRELOAD (glibc: none; for redis-server, which "
            "links jemalloc, glibc's malloc is forced by a small preloaded shim). Time is the wall time "
            "of the whole process (redis: the sum over the four tests of requests / (requests/s)); "
            "peak RSS is the process's ru_maxrss (redis: the server's VmHWM). Lower is better everywhere. "
            "Produced by `bash scripts/bench.sh`; raw per-run data in raw.csv.", ""]
    ref_sets = [("glibc", "glibc"), ("mimalloc", "mimalloc")]

    def table_block(title, short, V, unit_fmt, spread=None):
        blk = [f"## {title}", ""]
        rows = []
        for w in workloads:
            r = [f"{w}"]
            for a in allocs:
                v = V[(w, a)]
                s = unit_fmt(v)
                if spread is not None and v is not None:
                    sp = spread(w, a)
                    if sp is not None:
                        s += f" ±{sp * 50:.0f}%"
                r.append(s)
            rows.append(r)
        blk += md_table(["workload"] + allocs, rows)
        blk.append("")
        for ref, name in ref_sets:
            if ref not in allocs:
                continue
            rows = []
            ratios = defaultdict(list)
            complete = [w for w in workloads if all(V[(w, a)] for a in allocs)]
            for w in workloads:
                r = [w]
                for a in allocs:
                    x, y = V[(w, a)], V[(w, ref)]
                    if x and y:
                        q = x / y
                        r.append(f"{q:.2f}")
                        if w in complete:
                            ratios[a].append(q)
                    else:
                        r.append("n/a")
                rows.append(r)
            rows.append([f"**geomean** ({len(complete)} workloads)"] +
                        [f"**{gm:.2f}**" if (gm := gmean(ratios[a])) else "n/a" for a in allocs])
            blk += [f"### {short}, ratio to {name} (< 1: better than {name})", ""]
            blk += md_table(["workload"] + allocs, rows)
            blk.append("")
        return blk

    out += table_block("Time (s, median; ± half the max-min spread over the repetitions)", "Time", T,
                       lambda v: fmt(v), spread_of)
    out += table_block("Peak RSS (MiB, median)", "Peak RSS", P, lambda v: fmt(mib(v), 1))

    if "frag" in workloads:
        phases = [("rss_alloc_kb", "after allocating 500k x 16..256 B"),
                  ("rss_free_kb", "after freeing 90%"),
                  ("rss_refill_kb", "after refilling with 300..600 B"),
                  ("rss_freeall_kb", "after freeing everything"),
                  ("rss_trim_kb", "after malloc_trim(0)")]
        rows = []
        for key, label in phases:
            rows.append([label] + [fmt(mib(med(cell("frag", a).get(key))), 1) for a in allocs])
        out += ["## frag: RSS after each phase (MiB, from /proc/self/statm)", ""]
        out += md_table(["phase"] + allocs, rows) + [""]
    if "threadchurn" in workloads:
        rows = [["time (s)"] + [fmt(T[("threadchurn", a)]) for a in allocs],
                ["RSS at the end (MiB)"] + [fmt(mib(med(cell("threadchurn", a).get("rss_final_kb"))), 1)
                                            for a in allocs]]
        out += ["## threadchurn", ""] + md_table(["", *allocs], rows) + [""]
    if "redis" in workloads:
        rows = []
        for t in ("set", "get", "lpush", "lpop"):
            rows.append([f"{t.upper()} (requests/s)"] +
                        [fmt(med(cell("redis", a).get(f"rps_{t}")), 0) for a in allocs])
        rows.append(["server VmHWM (MiB)"] + [fmt(mib(med(cell("redis", a).get("vmhwm_kb"))), 1) for a in allocs])
        rows.append(["server VmRSS before shutdown (MiB)"] +
                    [fmt(mib(med(cell("redis", a).get("vmrss_kb"))), 1) for a in allocs])
        out += ["## redis (higher requests/s is better)", ""] + md_table(["", *allocs], rows) + [""]
    out += lifecycle_section(workloads, allocs, cell)
    out += ["## Workloads", ""]
    for w in workloads:
        out.append(f"- **{w}**: {DESCR.get(w, '')}")
    failed = [f"{w}/{a}" for w in workloads for a in allocs if T[(w, a)] is None]
    if failed:
        out += ["", "Failed or missing (n/a): " + ", ".join(failed)]
    with open(args.md, "w") as f:
        f.write("\n".join(out) + "\n")
    if args.svg:
        write_svg(args.svg, workloads, allocs, T, P, args.commit)
    for spec in args.trace:
        wl, path = spec.split("=", 1)
        write_trace_svg(path, wl, allocs, args.trace_dir, args.commit)


def lifecycle_section(workloads, allocs, cell):
    """Rows "workload: figure" x allocators for the lifecycle workloads run."""
    def m(wl, a, key, div=1.0, nd=3):
        v = med(cell(wl, a).get(key))
        return fmt(None if v is None else v / div, nd)

    rows = []
    for wl in ("rounds16k", "rounds1k", "rounds256k"):
        if wl in workloads:
            rows.append([f"{wl}: page faults per block per round"] + [m(wl, a, "faults_per_block") for a in allocs])
            rows.append([f"{wl}: us per malloc (+ touch)"] + [m(wl, a, "us_per_malloc") for a in allocs])
    if "largeheap" in workloads:
        rows.append(["largeheap: us per malloc while growing"] + [m("largeheap", a, "grow_us_per_malloc") for a in allocs])
        rows.append(["largeheap: us per malloc into freed holes"] + [m("largeheap", a, "refill_us_per_malloc") for a in allocs])
    for wl in ("largeset", "reallocgrow"):
        if wl in workloads:
            rows.append([f"{wl}: RSS after free (MiB)"] + [m(wl, a, "rss_after_free_kb", 1024, 1) for a in allocs])
    if "burst" in workloads:
        for key, label in (("after_join_kb", "after the joins"), ("after_idle_kb", "after 500 ms idle"),
                           ("after_trim_kb", "after malloc_trim(0)")):
            rows.append([f"burst: RSS {label} (MiB)"] + [m("burst", a, key, 1024, 1) for a in allocs])
    for wl in ("exited", "dormant"):
        if wl in workloads:
            rows.append([f"{wl}: RSS peak of the rebuild (MiB)"] + [m(wl, a, "rebuilt_rss_kb", 1024, 1) for a in allocs])
            rows.append([f"{wl}: mallinfo2 uordblks after free (KiB)"] +
                        [m(wl, a, "uordblks_after_free", 1024, 1) for a in allocs])
    if "latedtor" in workloads:
        rows.append(["latedtor: RSS growth (MiB)"] + [m("latedtor", a, "growth_kb", 1024, 1) for a in allocs])
    if "idletrim" in workloads:
        rows.append(["idletrim: RSS after malloc_trim(0) (MiB)"] + [m("idletrim", a, "after_trim_kb", 1024, 1) for a in allocs])
    if not rows:
        return []
    notes = []
    if "exited" in workloads or "dormant" in workloads:
        notes = ["uordblks: bytes in use as `mallinfo2()` reports them; an allocator that does not "
                 "export mallinfo2 leaves glibc's own (unused) arena to answer, about 0.", ""]
    return (["## lifecycle (bench/lifecycle.c; medians; lower is better)", ""] +
            md_table(["figure"] + allocs, rows) + [""] + notes)


TRACE_TITLE = {
    "burst": "64 threads build, free ~1.5 MiB, exit; idle; trim",
    "rounds16k": "build 16 KiB blocks, free all; 4 rounds",
}


def load_trace(path):
    pts = []
    try:
        with open(path) as f:
            for line in f:
                p = line.split()
                if len(p) == 2:
                    try:
                        pts.append((float(p[0]), float(p[1]) / 1024.0))
                    except ValueError:
                        pass
    except OSError:
        pass
    return pts


def nice_step(span, n=6):
    raw = span / n if span > 0 else 1
    mag = 10 ** math.floor(math.log10(raw))
    for k in (1, 2, 2.5, 5, 10):
        if raw <= k * mag:
            return k * mag
    return 10 * mag


def write_trace_svg(path, wl, allocs, trace_dir, commit):
    """One polyline per allocator: RSS (MiB) against time (ms)."""
    series = [(a, load_trace(os.path.join(trace_dir or ".", f"{wl}.{a}.txt"))) for a in allocs]
    series = [(a, p) for a, p in series if p]
    W, H, left, right, top, bottom = 760, 380, 64, 130, 44, 48
    pw, ph = W - left - right, H - top - bottom
    xmax = max([p[-1][0] for _, p in series] + [1.0])
    ymax = max([y for _, p in series for _, y in p] + [1.0]) * 1.05
    xs, ys = nice_step(xmax), nice_step(ymax, 5)
    xmax = math.ceil(xmax / xs) * xs
    ymax = math.ceil(ymax / ys) * ys
    colors = {a: PALETTE[i % len(PALETTE)] for i, a in enumerate(allocs)}
    if "ptrs" in colors:
        colors["ptrs"] = "#e4572e"
    title = f"RSS over time, {wl}" + (f": {TRACE_TITLE[wl]}" if wl in TRACE_TITLE else "")
    s = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" '
         f'font-family="sans-serif" font-size="11">',
         f'<rect width="{W}" height="{H}" fill="white"/>',
         f'<text x="{left}" y="18" font-size="14" font-weight="bold">{escape(title)}</text>',
         f'<text x="{left}" y="34" font-size="10" fill="#555">RSS from /proc/self/statm every 2 ms; '
         f'commit {escape(commit or "?")}</text>']

    def X(ms):
        return left + ms / xmax * pw

    def Y(mb):
        return top + ph - mb / ymax * ph

    v = 0.0
    while v <= xmax + 1e-9:
        s.append(f'<line x1="{X(v):.1f}" x2="{X(v):.1f}" y1="{top}" y2="{top + ph}" stroke="#eee"/>')
        s.append(f'<text x="{X(v):.1f}" y="{top + ph + 15}" text-anchor="middle">{v:g}</text>')
        v += xs
    v = 0.0
    while v <= ymax + 1e-9:
        s.append(f'<line x1="{left}" x2="{left + pw}" y1="{Y(v):.1f}" y2="{Y(v):.1f}" stroke="#eee"/>')
        s.append(f'<text x="{left - 6}" y="{Y(v) + 4:.1f}" text-anchor="end">{v:g}</text>')
        v += ys
    s.append(f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#333"/>')
    s.append(f'<text x="{left + pw / 2}" y="{H - 10}" text-anchor="middle">time (ms)</text>')
    s.append(f'<text x="16" y="{top + ph / 2}" text-anchor="middle" '
             f'transform="rotate(-90 16 {top + ph / 2})">RSS (MiB)</text>')
    for i, (a, pts) in enumerate(series):
        step = max(1, len(pts) // 1500)  # keep the file small
        kept = pts[::step] + ([pts[-1]] if (len(pts) - 1) % step else [])
        coords = " ".join(f"{X(x):.1f},{Y(y):.1f}" for x, y in kept)
        s.append(f'<polyline fill="none" stroke="{colors[a]}" stroke-width="1.5" points="{coords}">'
                 f'<title>{escape(a)}: peak {max(y for _, y in pts):.1f} MiB, end {pts[-1][1]:.1f} MiB</title></polyline>')
        ly = top + 8 + i * 18
        s.append(f'<line x1="{left + pw + 12}" x2="{left + pw + 30}" y1="{ly}" y2="{ly}" '
                 f'stroke="{colors[a]}" stroke-width="3"/>')
        s.append(f'<text x="{left + pw + 35}" y="{ly + 4}">{escape(a)}</text>')
    if not series:
        s.append(f'<text x="{left + 10}" y="{top + 20}">no trace data</text>')
    s.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(s) + "\n")


def escape(t):
    return str(t).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def write_svg(path, workloads, allocs, T, P, commit=None):
    if "glibc" not in allocs:
        return
    groups = workloads + ["geomean"]
    others = [a for a in allocs if a != "glibc"]
    bw, gap, left, top, ph = 9, 14, 60, 50, 230
    gw = bw * len(others) + gap
    width = max(780, left + gw * len(groups) + 20 + 130)
    lo, hi = -3.0, 3.0  # log2 range: 1/8 .. 8
    colors = {a: PALETTE[i % len(PALETTE)] for i, a in enumerate(allocs)}
    if "ptrs" in colors:
        colors["ptrs"] = "#e4572e"
    panels = [("Time relative to glibc (log scale, lower is better)", T),
              ("Peak RSS relative to glibc (log scale, lower is better)", P)]
    height = top + len(panels) * (ph + 90) + 10
    s = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
         f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">',
         f'<rect width="{width}" height="{height}" fill="white"/>',
         f'<text x="{left}" y="22" font-size="15" font-weight="bold">ptrs benchmark: each allocator relative to glibc, per workload (median of runs)</text>',
         f'<text x="{left}" y="36" font-size="10" fill="#555">commit {escape(commit or "?")}</text>']

    def y_of(r, y0):
        lr = max(lo, min(hi, math.log2(r)))
        return y0 + (hi - lr) / (hi - lo) * ph

    for pi, (title, V) in enumerate(panels):
        y0 = top + pi * (ph + 90) + 20
        s.append(f'<text x="{left}" y="{y0 - 8}" font-size="13">{title}</text>')
        for e in range(int(lo), int(hi) + 1):
            y = y_of(2.0 ** e, y0)
            lab = f"{2.0 ** e:g}" if e >= 0 else f"1/{2 ** -e}"
            s.append(f'<line x1="{left}" x2="{left + gw * len(groups)}" y1="{y:.1f}" y2="{y:.1f}" '
                     f'stroke="{"#333" if e == 0 else "#ddd"}" stroke-width="{1.2 if e == 0 else 0.6}"/>')
            s.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{lab}</text>')
        complete = [w for w in workloads if all(V[(w, a)] for a in allocs)]
        for gi, g in enumerate(groups):
            x0 = left + gi * gw + gap / 2
            for ai, a in enumerate(others):
                if g == "geomean":
                    r = gmean([V[(w, a)] / V[(w, "glibc")] for w in complete])
                else:
                    x, y = V[(g, a)], V[(g, "glibc")]
                    r = x / y if x and y else None
                if not r:
                    continue
                ya, yb = y_of(1.0, y0), y_of(r, y0)
                top_y, h = min(ya, yb), max(abs(ya - yb), 0.8)
                xx = x0 + ai * bw
                s.append(f'<rect x="{xx:.1f}" y="{top_y:.1f}" width="{bw - 1}" height="{h:.1f}" '
                         f'fill="{colors[a]}"><title>{g} {a}: {r:.2f}x glibc</title></rect>')
                if math.log2(r) > hi or math.log2(r) < lo:
                    ty = top_y - 3 if r > 1 else top_y + h + 9
                    s.append(f'<text x="{xx + bw / 2:.1f}" y="{ty:.1f}" font-size="8" '
                             f'text-anchor="middle">{r:.0f}</text>')
            lx = x0 + (bw * len(others)) / 2
            ly = y0 + ph + 12
            weight = ' font-weight="bold"' if g == "geomean" else ""
            s.append(f'<text x="{lx:.1f}" y="{ly:.1f}" text-anchor="end" '
                     f'transform="rotate(-35 {lx:.1f} {ly:.1f})"{weight}>{g}</text>')
    lx = left + gw * len(groups) + 20
    s.append(f'<text x="{lx}" y="{top + 8}">glibc = 1</text>')
    for ai, a in enumerate(others):
        y = top + 20 + ai * 18
        s.append(f'<rect x="{lx}" y="{y}" width="12" height="12" fill="{colors[a]}"/>')
        s.append(f'<text x="{lx + 17}" y="{y + 10}">{a}</text>')
    s.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(s) + "\n")


# ------------------------------------------------------------------ scaling
def scaling(args):
    data, workloads, allocs, threads = load(args.raw)
    order = [a.split("=", 1)[0] for a in args.alloc]
    allocs = [a for a in order if a in allocs] + [a for a in allocs if a not in order]
    out = ["# ptrs benchmark: thread scaling", ""]
    out += smoke_warning(args)
    out += meta_lines(args, allocs)
    out += ["",
            "Throughput in million operations per second (median over the repetitions; "
            "ops / the workload's own measured time). Work is fixed per thread, so ideal scaling "
            "is throughput proportional to the thread count (up to the number of cores). "
            "In parentheses: speedup over the same allocator at the smallest thread count. "
            "Produced by `bash scripts/bench.sh scaling`.", ""]
    for w in workloads:
        out += [f"## {w} (Mops/s, higher is better)", ""]
        rows = []
        base = {}
        for t in threads:
            r = [str(t)]
            for a in allocs:
                m = data.get((w, a, t)) or {}
                tp = [o / s for o, s in zip(m.get("ops", []), m.get("time_s", [])) if s > 0]
                v = med(tp)
                if v is None:
                    r.append("n/a")
                    continue
                base.setdefault(a, v)
                r.append(f"{v / 1e6:.1f} ({v / base[a]:.2f}x)")
            rows.append(r)
        out += md_table(["threads"] + allocs, rows) + [""]
        if w in DESCR:
            out += [f"{w}: {DESCR[w]}", ""]
    with open(args.md, "w") as f:
        f.write("\n".join(out) + "\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["results", "scaling"])
    ap.add_argument("--raw", required=True)
    ap.add_argument("--md", required=True)
    ap.add_argument("--svg")
    ap.add_argument("--reps", default="?")
    ap.add_argument("--scale", default="1")
    ap.add_argument("--elapsed", type=int, default=0)
    ap.add_argument("--alloc", action="append", default=[], help="name=library path")
    ap.add_argument("--commit", default="", help="commit the results come from (git rev-parse --short HEAD[-dirty])")
    ap.add_argument("--trace-dir", default="", help="directory of the RSS traces (WORKLOAD.ALLOCATOR.txt)")
    ap.add_argument("--trace", action="append", default=[], help="WORKLOAD=OUT.svg: RSS-over-time chart")
    args = ap.parse_args()
    (results if args.mode == "results" else scaling)(args)


if __name__ == "__main__":
    main()
