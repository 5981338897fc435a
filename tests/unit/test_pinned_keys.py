"""Which primary keys a statement's text pins (per-key result cache invalidation, issue 16): table-driven,
every way a pin could be wrong -- a condition that also takes other rows -- pins nothing."""

from __future__ import annotations

import pytest

from dbmux.ingress.classify import classify
from dbmux.ingress.pinned_keys import read_keys, write_keys

NONE = None


@pytest.mark.parametrize(("sql", "keys"), [
    ("SELECT c FROM sbtest1 WHERE id=5", {5}),
    ("SELECT c FROM sbtest1 WHERE id = -5", {-5}),
    ("SELECT c FROM `db`.`sbtest1` AS s WHERE s.`id` = 5 AND k > 3 ORDER BY c LIMIT 1", {5}),
    ("SELECT c FROM t WHERE 5 = id", {5}),
    ("SELECT c FROM t WHERE id <=> 5", {5}),
    ("SELECT c FROM t WHERE k = 1 AND db.t.id IN (1, 2, 3) GROUP BY c HAVING c > 1 OR c < 0", {1, 2, 3}),
    ("SELECT c FROM t WHERE ID = 7;", {7}),
    ("SELECT c FROM t WHERE (a OR b) AND id = 7", {7}),  # (the OR is inside parentheses)
    ("SELECT COUNT(*) FROM t WHERE id = 5 AND c = (1)", {5}),
    ("SELECT c FROM t WHERE id = 5 OR k = 1", NONE),  # other rows too
    ("SELECT c FROM t WHERE k = 1 XOR id = 5", NONE),
    ("SELECT c FROM t WHERE k = 1 || id = 5", NONE),
    ("SELECT c FROM t WHERE k BETWEEN 1 AND id = 5", NONE),  # (BETWEEN 1 AND (id = 5))
    ("SELECT c FROM t WHERE CASE WHEN x AND id = 5 AND y THEN 1 END", NONE),
    ("SELECT c FROM t WHERE (id = 5)", NONE),  # (not walked into: pins nothing, which is safe)
    ("SELECT c FROM t WHERE NOT id = 5", NONE),
    ("SELECT c FROM t WHERE id = 5 = 0", NONE),
    ("SELECT c FROM t WHERE id != 5", NONE),
    ("SELECT c FROM t WHERE id >= 5", NONE),
    ("SELECT c FROM t WHERE 5 <= id", NONE),
    ("SELECT c FROM t WHERE id NOT IN (1, 2)", NONE),
    ("SELECT c FROM t WHERE id IN (1, k)", NONE),
    ("SELECT c FROM t WHERE id IN (SELECT 1)", NONE),
    ("SELECT c FROM t WHERE id = '5'", NONE),  # ('5abc' = 5 too)
    ("SELECT c FROM t WHERE id = 5.0", NONE),
    ("SELECT c FROM t WHERE id = 0x05", NONE),
    ("SELECT c FROM t WHERE id = 5abc", NONE),  # (a column named 5abc)
    ("SELECT c FROM t WHERE k = 5", NONE),  # another column
    ("SELECT c FROM t WHERE other.pk.x = 5", NONE),
    ("SELECT c FROM t WHERE id = ?", NONE),
    ("SELECT c FROM t WHERE id = 5 /*!99999 OR 1 */", NONE),  # an executable comment: a server may skip it
    ("SELECT c FROM t WHERE c = 'a\\' AND id = 5 AND \\'' ", NONE),  # lexes two ways (NO_BACKSLASH_ESCAPES)
    ("SELECT c FROM t a JOIN t b ON a.k = b.k WHERE a.id = 5", NONE),  # b's rows: any
    ("SELECT c FROM t a, t b WHERE a.id = 5", NONE),
    ("SELECT c, (SELECT MAX(k) FROM t) FROM t WHERE id = 5", NONE),  # reads every row
    ("SELECT c FROM t WHERE id = 5 UNION SELECT c FROM t WHERE id = 6", NONE),
    ("SELECT c FROM t USE INDEX (k) WHERE id = 5", NONE),
    ("SELECT c FROM t", NONE),
    ("SELECT c FROM t ORDER BY id LIMIT 5", NONE),
    ("WITH x AS (SELECT 1) SELECT c FROM t WHERE id = 5", NONE),
])
def test_read_keys(sql, keys):
    got = read_keys(sql, "id")
    assert (got if got is None else set(got)) == keys


@pytest.mark.parametrize(("sql", "keys"), [
    ("UPDATE sbtest1 SET k=k+1 WHERE id=5", {5}),
    ("UPDATE IGNORE t AS a SET c = 'x WHERE id = 1' WHERE a.id IN (5, 6) ORDER BY c LIMIT 1", {5, 6}),
    ("UPDATE t SET c = (SELECT MAX(c) FROM u) WHERE id = 5 AND k IN (SELECT k FROM u)", {5}),
    ("DELETE FROM sbtest1 WHERE id=5", {5}),
    ("DELETE LOW_PRIORITY FROM t WHERE id = 5 LIMIT 1", {5}),
    ("INSERT INTO sbtest1 (id, k, c, pad) VALUES (5, 1, 'c', 'p')", {5}),
    ("INSERT INTO t (c, id) VALUES ('a', 5), ('b', -6), (CONCAT('x', 'y'), 7)", {5, -6, 7}),
    ("REPLACE INTO t (id, c) VALUES (5, 'a')", {5}),
    ("INSERT INTO t (id, c) VALUES (5, 'a') ON DUPLICATE KEY UPDATE c = 'b'", {5}),
    ("INSERT INTO t (id, c) VALUES (5, 'a') ON DUPLICATE KEY UPDATE id = 9", NONE),  # the key moves
    ("UPDATE t SET id = 6 WHERE id = 5", NONE),  # the key moves
    ("UPDATE t SET c = 1 WHERE id = 5 OR k = 1", NONE),
    ("UPDATE t SET c = 1", NONE),
    ("UPDATE t, u SET t.c = 1 WHERE t.id = 5", NONE),  # several tables
    ("DELETE t FROM t JOIN u ON t.k = u.k WHERE t.id = 5", NONE),
    ("DELETE FROM t WHERE id > 5", NONE),
    ("INSERT INTO t VALUES (5, 'a')", NONE),  # no column list: which is the key?
    ("INSERT INTO t (c) VALUES ('a')", NONE),  # the key from AUTO_INCREMENT
    ("INSERT INTO t (id, c) VALUES (5, 'a'), (NULL, 'b')", NONE),
    ("INSERT INTO t (id, c) VALUES (5, 'a'), (0, 'b')", NONE),  # (0: AUTO_INCREMENT's next value)
    ("INSERT INTO t (id, c) VALUES (?, ?)", NONE),
    ("INSERT INTO t (id, c) SELECT id, c FROM u", NONE),
    ("INSERT INTO t SET id = 5, c = 'a'", NONE),
])
def test_write_keys(sql, keys):
    shape = classify(sql).shape
    assert shape is not None, sql
    got = write_keys(sql, shape, "id")
    assert (got if got is None else set(got)) == keys


@pytest.mark.parametrize(("sql", "params", "keys"), [
    ("SELECT c FROM t WHERE id = ?", (5,), {5}),
    ("SELECT c FROM t WHERE k = ? AND id IN (?, ?)", ("x", 5, 6), {5, 6}),  # (the ?s in order)
    ("SELECT c FROM t WHERE id = - ?", (5,), {-5}),
    ("SELECT c FROM t WHERE id = ?", ("5",), NONE),  # a string: '5abc' = 5 too
    ("SELECT c FROM t WHERE id = ?", (5.0,), NONE),
    ("SELECT c FROM t WHERE id = ?", (True,), NONE),
    ("SELECT c FROM t WHERE id = ?", (None,), NONE),
    ("SELECT c FROM t WHERE id = ?", (), NONE),
    ("SELECT c FROM t WHERE k = ? OR id = ?", (1, 5), NONE),
])
def test_read_keys_bound(sql, params, keys):
    got = read_keys(sql, "id", params)
    assert (got if got is None else set(got)) == keys


@pytest.mark.parametrize(("sql", "params", "keys"), [
    ("UPDATE sbtest1 SET k=k+1 WHERE id=?", (5,), {5}),
    ("UPDATE t SET c=? WHERE id=?", ("x", 7), {7}),
    ("DELETE FROM t WHERE id=?", (5,), {5}),
    ("INSERT INTO t (id, k, c) VALUES (?, ?, ?)", (5, 1, "c"), {5}),
    ("INSERT INTO t (id, k, c) VALUES (?, ?, ?)", (0, 1, "c"), NONE),  # (AUTO_INCREMENT's next)
    ("INSERT INTO t (id, c) VALUES (?, ?)", ("5", "c"), NONE),
])
def test_write_keys_bound(sql, params, keys):
    shape = classify(sql).shape
    assert shape is not None, sql
    got = write_keys(sql, shape, "id", params)
    assert (got if got is None else set(got)) == keys
