-- SQLite workload for scripts/test-programs.sh (sqlite3 :memory: < this).
-- Deterministic output.
CREATE TABLE t(a INTEGER PRIMARY KEY, b INTEGER, c TEXT);
WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 30000)
INSERT INTO t SELECT x, (x * 7919) % 1009, printf('name-%d-%s', x % 997, hex(x * x)) FROM n;
CREATE INDEX t_b ON t(b);
CREATE INDEX t_c ON t(c);
SELECT count(*), sum(b), max(length(c)) FROM t;
SELECT b, count(*), sum(a), min(c) FROM t WHERE b < 10 GROUP BY b ORDER BY b;
CREATE TABLE u AS SELECT b, group_concat(a, ',') AS ids FROM t GROUP BY b;
SELECT b, length(ids), substr(ids, 1, 30) FROM u ORDER BY length(ids) DESC, b LIMIT 5;
SELECT count(*) FROM t JOIN u USING (b) WHERE instr(u.ids, ',' || t.a || ',') > 0;
UPDATE t SET c = upper(c) || replace(c, '-', '_') WHERE a % 3 = 0;
DELETE FROM t WHERE a % 5 = 0;
SELECT count(*), sum(length(c)), max(c) FROM t;
SELECT json_group_array(json_object('b', b, 'n', n)) FROM
  (SELECT b, count(*) AS n FROM t GROUP BY b ORDER BY n DESC, b LIMIT 8);
WITH RECURSIVE fib(i, x, y) AS (SELECT 1, 0, 1 UNION ALL SELECT i + 1, y, x + y FROM fib WHERE i < 80)
SELECT i, x FROM fib WHERE i % 20 = 0;
SELECT c FROM t ORDER BY c DESC LIMIT 3;
