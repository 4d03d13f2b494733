"""Allocation-heavy Python workload for the ptrs benchmark.

Builds and discards dicts, lists, tuples, strings and small objects.  The
driver runs it with PYTHONMALLOC=malloc by default so that the interpreter's
small-object allocator (pymalloc) does not hide the allocator under test.
usage: python3 python_alloc.py [scale]
"""
import sys


class Node:
    __slots__ = ("key", "val", "kids")

    def __init__(self, key, val):
        self.key = key
        self.val = val
        self.kids = []


class Record:
    def __init__(self, i):
        self.id = i
        self.name = "rec%d" % i
        self.tags = ["t%d" % (i % 7), "u%d" % (i % 13)]


def build_tree(n, seed):
    root = Node(0, "root")
    nodes = [root]
    x = seed
    for i in range(1, n):
        x = (x * 1103515245 + 12345) & 0x7FFFFFFF
        parent = nodes[x % len(nodes)]
        node = Node(i, str(x))
        parent.kids.append(node)
        nodes.append(node)
    return root, nodes


def walk(node):
    total = 0
    stack = [node]
    while stack:
        n = stack.pop()
        total += len(n.val)
        stack.extend(n.kids)
    return total


def main():
    scale = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0
    rounds = max(1, int(30 * scale))
    check = 0
    for r in range(rounds):
        # dict churn with string keys
        d = {}
        for i in range(20000):
            d["key-%d-%d" % (r, i)] = [i, str(i), (i, r)]
        for i in range(0, 20000, 3):
            del d["key-%d-%d" % (r, i)]
        check += len(d)
        # string building and splitting
        parts = []
        for i in range(10000):
            parts.append("word%d" % (i * r % 997))
        s = " ".join(parts)
        check += len(s.split(" "))
        check += len(s.upper().replace("WORD", "w"))
        # objects, a tree and a sort
        root, nodes = build_tree(15000, r + 1)
        check += walk(root)
        recs = [Record(i) for i in range(8000)]
        recs.sort(key=lambda o: (o.tags[1], -o.id))
        check += recs[0].id
        # list comprehensions, sets and tuples
        sq = [(i, i * i, str(i)) for i in range(15000)]
        st = {t[2] for t in sq if t[0] % 2}
        check += len(st)
        del d, parts, s, root, nodes, recs, sq, st
    print("checksum=%d" % check)


main()
