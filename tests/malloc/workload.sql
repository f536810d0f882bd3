-- sqlite3 :memory: < workload.sql: a table of 150000 rows, indexes,
-- aggregates, a join and a sort; deterministic output.
CREATE TABLE t(a INTEGER PRIMARY KEY, b TEXT, c REAL, d TEXT);
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 150000)
INSERT INTO t SELECT i, printf('%08x', (i * 2654435761) % 4294967296), i * 0.5,
       substr('abcdefghijklmnopqrstuvwxyz', 1 + i % 26, 1 + i % 13) FROM n;
CREATE INDEX tb ON t(b);
CREATE INDEX td ON t(d, c);
SELECT count(*), sum(c), min(b), max(b) FROM t;
SELECT d, count(*), round(avg(c), 2) FROM t GROUP BY d ORDER BY count(*) DESC, d LIMIT 10;
CREATE TABLE u AS SELECT a % 1000 AS k, group_concat(d, '') AS g FROM t GROUP BY a % 1000;
SELECT count(*), sum(length(g)) FROM u;
SELECT t.b, u.k FROM t JOIN u ON u.k = t.a % 1000 WHERE t.a % 7919 = 0 ORDER BY t.b LIMIT 5;
DELETE FROM t WHERE a % 3 = 0;
UPDATE t SET d = upper(d) || b WHERE a % 5 = 0;
SELECT count(*), sum(length(d)) FROM t;
VACUUM;
SELECT b FROM t ORDER BY d DESC, b LIMIT 3;
