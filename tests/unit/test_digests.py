"""Statement digests (dbmux/core/digests.py): a statement answered from its shape's cache gets exactly
what a fresh analysis gives it -- the ingress's classification and deterministic rewrite, a
replicator's table filter -- on generated
statements of many shapes with ever-new literals."""

from __future__ import annotations

import datetime as dt
import random
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dbmux.core.digests import DigestCache, digest
from dbmux.core.sqllex import scan
from dbmux.ingress import classify as classify_mod
from dbmux.ingress import rewrite as rewrite_mod
from dbmux.ingress.classify import classify
from dbmux.ingress.rewrite import rewrite_deterministic
from dbmux.replicator import filtering
from dbmux.replicator.filtering import statement_tables

TEMPLATES = [
    "UPDATE {t} SET k=k+{n} WHERE id={n}",
    "UPDATE {t} SET c={s} WHERE id={n}",
    "DELETE FROM {t} WHERE id={n}",
    "INSERT INTO {t} (id, k, c, pad) VALUES ({n}, {n}, {s}, {s})",
    "INSERT INTO {t} (id, c) VALUES ({n}, {s}), ({n}, {s}) ON DUPLICATE KEY UPDATE c=VALUES(c)",
    "REPLACE INTO {t} VALUES ({n}, {s})",
    "INSERT INTO {t} (id, ts) VALUES ({n}, NOW())",
    "INSERT INTO {t} (id, ts) VALUES ({n}, NOW(6))",
    "INSERT INTO {t} (id, ts) VALUES ({n}, NOW({n}))",
    "UPDATE {t} SET v={n} WHERE id IN (SELECT id FROM {u} WHERE k>{n}) LIMIT {n}",
    "UPDATE {t} SET v=RAND() WHERE id={n}",
    "UPDATE {t} SET v=RAND({n}) WHERE id={n}",
    "INSERT INTO {t} SELECT * FROM {u} WHERE c LIKE {s}",
    "UPDATE {t} SET v=@x WHERE id={n}",
    "DELETE FROM {t} WHERE id>{n} ORDER BY id LIMIT {n}",
    "DELETE FROM {t} WHERE id>{n} LIMIT {n}",
    "INSERT INTO {t} (id, u) VALUES ({n}, UUID())",
    "/* c */ UPDATE {t} SET v=v*{n} WHERE c={s}",
    "UPDATE {t} JOIN {u} ON {t}.id={u}.id SET {t}.v={n} WHERE {u}.c={s}",
    "INSERT INTO {t} (id, j) VALUES ({n}, JSON_OBJECT('a', {n}))",
    "UPDATE {t} SET c=CONCAT(c, {s}) WHERE id BETWEEN {n} AND {n}",
    "INSERT INTO {t} (id, c) VALUES ({n}, MY_FUNC({s}))",
    "UPDATE {t} SET c=SUBSTRING({s}, {n}, {n}) WHERE id={n}",
    "INSERT INTO {t} SET id={n}, c={s}",
    "UPDATE information_schema.tables SET x={n}",
    "INSERT IGNORE INTO {t} SELECT id, {s} FROM {u} ORDER BY id LIMIT {n}",
    "UPDATE {t} SET d=DATE_ADD(CURRENT_TIMESTAMP, INTERVAL {n} DAY) WHERE id={n}",
]
TABLES = ["sbtest1", "t", "`odd table`", "db1.items", "`d`.`x`"]

numbers = st.one_of(st.integers(0, 10**12).map(str), st.integers(-999, -1).map(str),
                    st.floats(0, 1e6, allow_nan=False).map(lambda f: repr(round(f, 4))),
                    st.integers(0, 2**32).map(lambda i: hex(i)), st.sampled_from(["1e5", ".5", "0b101", "007"]))
strings = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12).map(
    lambda s: "'" + s.replace("\\", "\\\\").replace("'", "''") + "'")


def _fill(template: str, tables: list[str], nums: list[str], strs: list[str]) -> str:
    nums, strs = list(nums), list(strs)
    out = template.replace("{t}", tables[0]).replace("{u}", tables[1])
    out = re.sub(r"\{n\}", lambda _: nums.pop() if nums else "1", out)
    return re.sub(r"\{s\}", lambda _: strs.pop() if strs else "''", out)


def _clear() -> None:
    classify.cache_clear()
    classify_mod.lexed.cache_clear()
    classify_mod._DML_CLASSES.clear()
    rewrite_mod._FUNCTIONS.clear()
    rewrite_mod._UNCHANGED.clear()
    filtering._TABLES.clear()


NOW = dt.datetime(2026, 12, 6, 1, 2, 3, 456789, tzinfo=dt.UTC)


def _rewrite(sql: str):
    return rewrite_deterministic(sql, NOW, "+00:00", random.Random(7))


@settings(max_examples=300, deadline=None)
@given(template=st.sampled_from(TEMPLATES), tables=st.permutations(TABLES),
       first=st.tuples(st.lists(numbers, min_size=8, max_size=8), st.lists(strings, min_size=4, max_size=4)),
       second=st.tuples(st.lists(numbers, min_size=8, max_size=8), st.lists(strings, min_size=4, max_size=4)))
def test_a_shape_answered_from_the_cache_is_answered_as_a_fresh_analysis_would(template, tables, first, second):
    a, b = _fill(template, tables, *first), _fill(template, tables, *second)
    _clear()
    cold = (classify(b), _rewrite(b), statement_tables(b))
    _clear()
    classify(a), _rewrite(a), statement_tables(a)  # the shape is cached now
    warm = (classify(b), _rewrite(b), statement_tables(b))
    assert warm == cold, (a, b)
    same_kind = [(t.type, t.text[:2].lower() in ("0x", "0b")) for t in scan(a)] == \
        [(t.type, t.text[:2].lower() in ("0x", "0b")) for t in scan(b)]
    if same_kind and cold[0].kind == "dml" and cold[0].parsed:
        assert len(classify_mod._DML_CLASSES) == 1  # b was answered from a's entry, not analysed again


@pytest.mark.parametrize("a, b, same", [
    ("UPDATE t SET c='x' WHERE id=1", "UPDATE t SET c = 'yy''z' WHERE id = 22", True),
    ("UPDATE t SET c='x' WHERE id=1", "UPDATE u SET c='x' WHERE id=1", False),  # another table
    ("UPDATE t SET c='x' WHERE id=1", "UPDATE t SET c=\"x\" WHERE id=1", False),  # "x": maybe an identifier
    ("INSERT INTO t VALUES (1)", "INSERT INTO t VALUES (0x1)", False),  # hex: a binary string
    ("INSERT INTO t VALUES (1), (2)", "INSERT INTO t VALUES (1)", False),  # another row count
    ("SELECT NOW(3)", "SELECT NOW(6)", True),  # (the value of an argument is a literal)
])
def test_digest_keeps_everything_but_literal_values(a, b, same):
    assert (digest(scan(a)) == digest(scan(b))) is same


def test_the_cache_is_bounded_and_keeps_only_what_it_is_told_to():
    cache: DigestCache[int] = DigestCache("test", size=2)
    assert cache.get("a", lambda: 1) == 1 and cache.get("a", lambda: 2) == 1
    assert cache.get("b", lambda: -1, keep=lambda v: v > 0) == -1 and len(cache) == 1
    cache.get("b", lambda: 2)
    cache.get("c", lambda: 3)
    assert len(cache) == 2 and cache.get("a", lambda: 9) == 9  # "a" was the least recently used
