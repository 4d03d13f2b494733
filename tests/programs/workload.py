"""Deterministic Python workload for scripts/test-programs.sh: dicts,
strings, lists, json, and threads that build data and hand it to each
other. Prints the same stdout under any correct allocator; reports on
stderr whether libptrs is mapped into the process."""

import collections
import hashlib
import json
import queue
import sys
import threading

MASK = (1 << 64) - 1


def lcg(x):
    return (x * 6364136223846793005 + 1442695040888963407) & MASK


def build(seed, n):
    x = seed
    d = {}
    for i in range(n):
        x = lcg(x)
        key = "k%d_%x" % (i % 997, x >> 52)
        d.setdefault(key, []).append("v" * (x % 13) + str(x % 10007))
    return d


def digest(obj):
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]


def thread_work(tid, results, handoff):
    out = []
    for r in range(6):
        d = build(tid * 1000 + r, 4000)
        text = json.dumps(d, sort_keys=True)
        back = json.loads(text)
        assert back == d
        words = sorted(set(w for v in d.values() for w in v), key=lambda s: (len(s), s))
        joined = "|".join(words[:200])
        counts = collections.Counter(len(w) for w in words)
        out.append((r, len(d), len(text), digest(back), hashlib.md5(joined.encode()).hexdigest()[:12],
                    sorted(counts.items())[:5]))
        # Hand a big structure to another thread, which frees it.
        handoff.put({"tid": tid, "r": r, "data": back, "blob": bytearray(200000 + r * 1000)})
    results[tid] = out


def consumer(handoff, totals, n):
    for _ in range(n):
        item = handoff.get()
        totals.append((item["tid"], item["r"], sum(len(v) for v in item["data"].values()),
                       len(item["blob"])))
        del item


def main():
    maps = open("/proc/self/maps").read()
    print("libptrs mapped: %s" % ("libptrs" in maps), file=sys.stderr)

    # Single-threaded part: strings, lists, dicts, big buffers.
    s = []
    for i in range(20000):
        s.append(("%05d" % i)[::-1] * (1 + i % 5))
    s.sort()
    print("strings", len(s), hashlib.sha1("".join(s).encode()).hexdigest()[:16])
    big = bytearray()
    for i in range(300):
        big += bytes([i % 251]) * (i * 37)
    print("bytearray", len(big), hashlib.sha1(big).hexdigest()[:16])
    nested = {str(i): {"list": list(range(i % 50)), "s": "x" * i} for i in range(3000)}
    print("nested", digest(nested))
    del nested, s, big

    # Threads.
    results = {}
    handoff = queue.Queue(maxsize=8)
    totals = []
    n_threads = 4
    threads = [threading.Thread(target=thread_work, args=(t, results, handoff)) for t in range(n_threads)]
    cons = threading.Thread(target=consumer, args=(handoff, totals, n_threads * 6))
    cons.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    cons.join()
    for tid in range(n_threads):
        for row in results[tid]:
            print("thread", tid, row)
    for row in sorted(totals):
        print("handoff", row)


if __name__ == "__main__":
    main()
