#!/usr/bin/env python3
"""Write the SQL script of the sqlite workload to stdout.

usage: sqlite_gen.py [rows]   (default 200000)

Individual INSERT statements (each one parsed and prepared by the sqlite3
CLI, which is where most of its malloc traffic comes from) in transactions
of 5000 rows, then an index, updates, deletes and group-by / join queries.
Deterministic (fixed seed) so every allocator runs the same script.
"""
import random
import sys

rows = int(sys.argv[1]) if len(sys.argv) > 1 else 200000
rng = random.Random(42)
words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf",
         "hotel", "india", "juliet", "kilo", "lima", "mike", "november"]
out = sys.stdout
w = out.write
w("PRAGMA journal_mode=OFF;\nPRAGMA synchronous=OFF;\n")
w("CREATE TABLE item(id INTEGER PRIMARY KEY, cat INTEGER, name TEXT, "
  "price REAL, qty INTEGER, note TEXT);\n")
w("CREATE TABLE cat(id INTEGER PRIMARY KEY, label TEXT);\n")
for c in range(200):
    w(f"INSERT INTO cat VALUES({c}, '{words[c % len(words)]}-{c}');\n")
for i in range(rows):
    if i % 5000 == 0:
        if i:
            w("COMMIT;\n")
        w("BEGIN;\n")
    name = "-".join(rng.choice(words) for _ in range(rng.randint(1, 4)))
    note = "x" * rng.randint(0, 120)
    w(f"INSERT INTO item(cat,name,price,qty,note) VALUES({rng.randrange(200)},"
      f"'{name}',{rng.random() * 1000:.2f},{rng.randint(1, 50)},'{note}');\n")
w("COMMIT;\n")
w("CREATE INDEX item_cat ON item(cat);\n")
w("CREATE INDEX item_name ON item(name, price);\n")
w("UPDATE item SET qty = qty + 1 WHERE cat % 7 = 3;\n")
w("DELETE FROM item WHERE id % 11 = 0;\n")
w("SELECT cat, count(*), sum(price*qty), avg(length(note)) FROM item "
  "GROUP BY cat ORDER BY 3 DESC LIMIT 5;\n")
w("SELECT c.label, count(*), max(i.price) FROM item i JOIN cat c ON c.id = i.cat "
  "GROUP BY c.label ORDER BY 2 DESC LIMIT 5;\n")
w("SELECT name, count(*) FROM item GROUP BY name ORDER BY 2 DESC LIMIT 5;\n")
w("SELECT count(DISTINCT name || note) FROM item;\n")
w("SELECT substr(name,1,5) AS p, group_concat(DISTINCT cat) FROM item "
  "GROUP BY p ORDER BY p LIMIT 3;\n")
