"""Table-driven tests for ingress.rewrite."""

from __future__ import annotations

import datetime as dt
import random
import re
import uuid

import pytest
import sqlglot
from sqlglot import exp

from dbmux.ingress.rewrite import rewrite_deterministic

NOW = dt.datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=dt.UTC)
DT0 = "CAST('2024-01-02 03:04:05' AS DATETIME)"
DT6 = "CAST('2024-01-02 03:04:05.123456' AS DATETIME(6))"
DT3 = "CAST('2024-01-02 03:04:05.123' AS DATETIME(3))"
LOCAL_DT0 = "CAST('2024-01-02 05:04:05' AS DATETIME)"  # +02:00
D = "CAST('2024-01-02' AS DATE)"
T0 = "CAST('03:04:05' AS TIME)"
UNIX = str(int(NOW.timestamp()))

# sql, time zone, expected sql (None = unchanged), unsafe, reason substring (or None)
CASES = [
    # each function
    ("INSERT INTO t VALUES (NOW())", "+00:00", f"INSERT INTO t VALUES ({DT0})", False, None),
    ("INSERT INTO t VALUES (now())", "UTC", f"INSERT INTO t VALUES ({DT0})", False, None),
    ("INSERT INTO t VALUES (NOW(6))", "+00:00", f"INSERT INTO t VALUES ({DT6})", False, None),
    ("INSERT INTO t VALUES (NOW(3))", "+00:00", f"INSERT INTO t VALUES ({DT3})", False, None),
    ("INSERT INTO t VALUES (NOW(0))", "+00:00", f"INSERT INTO t VALUES ({DT0})", False, None),
    ("INSERT INTO t VALUES (NOW ( ))", "+00:00", f"INSERT INTO t VALUES ({DT0})", False, None),
    ("INSERT INTO t VALUES (CURRENT_TIMESTAMP)", "+00:00", f"INSERT INTO t VALUES ({DT0})", False, None),
    ("INSERT INTO t VALUES (CURRENT_TIMESTAMP())", "+00:00", f"INSERT INTO t VALUES ({DT0})", False, None),
    ("INSERT INTO t VALUES (CURRENT_TIMESTAMP(6))", "+00:00", f"INSERT INTO t VALUES ({DT6})", False, None),
    ("INSERT INTO t VALUES (LOCALTIME)", "+00:00", f"INSERT INTO t VALUES ({DT0})", False, None),
    ("INSERT INTO t VALUES (LOCALTIMESTAMP())", "+00:00", f"INSERT INTO t VALUES ({DT0})", False, None),
    ("INSERT INTO t VALUES (SYSDATE())", "+00:00", f"INSERT INTO t VALUES ({DT0})", False, None),
    ("INSERT INTO t VALUES (UTC_TIMESTAMP())", None, f"INSERT INTO t VALUES ({DT0})", False, None),
    ("INSERT INTO t VALUES (UTC_TIMESTAMP(6))", "+05:00", f"INSERT INTO t VALUES ({DT6})", False, None),
    ("INSERT INTO t VALUES (UTC_TIMESTAMP)", "SYSTEM", f"INSERT INTO t VALUES ({DT0})", False, None),
    ("INSERT INTO t VALUES (UNIX_TIMESTAMP())", None, f"INSERT INTO t VALUES ({UNIX})", False, None),
    ("INSERT INTO t VALUES (UNIX_TIMESTAMP('2020-01-01'))", None, None, False, None),
    ("INSERT INTO t VALUES (CURDATE())", "+00:00", f"INSERT INTO t VALUES ({D})", False, None),
    ("INSERT INTO t VALUES (CURRENT_DATE)", "+00:00", f"INSERT INTO t VALUES ({D})", False, None),
    ("INSERT INTO t VALUES (CURRENT_DATE())", "+00:00", f"INSERT INTO t VALUES ({D})", False, None),
    ("INSERT INTO t VALUES (UTC_DATE())", None, f"INSERT INTO t VALUES ({D})", False, None),
    ("INSERT INTO t VALUES (CURTIME())", "+00:00", f"INSERT INTO t VALUES ({T0})", False, None),
    ("INSERT INTO t VALUES (CURRENT_TIME)", "+00:00", f"INSERT INTO t VALUES ({T0})", False, None),
    ("INSERT INTO t VALUES (CURTIME(2))", "+00:00", "INSERT INTO t VALUES (CAST('03:04:05.12' AS TIME(2)))",
     False, None),
    ("INSERT INTO t VALUES (UTC_TIME())", None, f"INSERT INTO t VALUES ({T0})", False, None),
    # time zones
    ("INSERT INTO t VALUES (NOW())", "+02:00", f"INSERT INTO t VALUES ({LOCAL_DT0})", False, None),
    ("INSERT INTO t VALUES (NOW(), UTC_TIMESTAMP())", "+02:00", f"INSERT INTO t VALUES ({LOCAL_DT0}, {DT0})",
     False, None),
    ("INSERT INTO t VALUES (NOW())", "-05:30", "INSERT INTO t VALUES (CAST('2024-01-01 21:34:05' AS DATETIME))",
     False, None),
    ("INSERT INTO t VALUES (NOW())", "Europe/Berlin",
     "INSERT INTO t VALUES (CAST('2024-01-02 04:04:05' AS DATETIME))", False, None),
    ("INSERT INTO t VALUES (CURDATE())", "-05:00", "INSERT INTO t VALUES (CAST('2024-01-01' AS DATE))", False, None),
    ("INSERT INTO t VALUES (NOW())", "SYSTEM", None, True, "SYSTEM"),
    ("INSERT INTO t VALUES (NOW())", None, None, True, "time zone unknown"),
    ("INSERT INTO t VALUES (NOW())", "Mars/Olympus", None, True, "unknown time zone"),
    ("INSERT INTO t VALUES (NOW())", "+25:00", None, True, "out of range"),
    # nesting, positions, repetition
    ("INSERT INTO t VALUES (DATE_ADD(NOW(), INTERVAL 1 DAY))", "+00:00",
     f"INSERT INTO t VALUES (DATE_ADD({DT0}, INTERVAL 1 DAY))", False, None),
    ("UPDATE t SET a = NOW(), b = NOW() WHERE c < NOW() - INTERVAL 1 HOUR", "+00:00",
     f"UPDATE t SET a = {DT0}, b = {DT0} WHERE c < {DT0} - INTERVAL 1 HOUR", False, None),
    ("DELETE FROM t WHERE ts < UTC_TIMESTAMP - INTERVAL 1 DAY", None,
     f"DELETE FROM t WHERE ts < {DT0} - INTERVAL 1 DAY", False, None),
    ("INSERT INTO t (a, b) VALUES (1, NOW()), (2, NOW())", "+00:00",
     f"INSERT INTO t (a, b) VALUES (1, {DT0}), (2, {DT0})", False, None),
    ("INSERT INTO t SET a = NOW()", "+00:00", f"INSERT INTO t SET a = {DT0}", False, None),
    ("REPLACE INTO t VALUES (NOW(6))", "+00:00", f"REPLACE INTO t VALUES ({DT6})", False, None),
    ("INSERT INTO t SELECT NOW(), a FROM u ORDER BY a", "+00:00", f"INSERT INTO t SELECT {DT0}, a FROM u ORDER BY a",
     False, None),
    ("insert into t values (now()) /* keep */ # trailing", "+00:00",
     f"insert into t values ({DT0}) /* keep */ # trailing", False, None),
    ("INSERT INTO t VALUES (/*!50000 NOW() */)", "+00:00", f"INSERT INTO t VALUES (/*!50000 {DT0} */)", False, None),
    # untouched text
    ("INSERT INTO t VALUES ('NOW()', \"UUID()\", 'it''s RAND()')", "+00:00", None, False, None),
    ("INSERT INTO t VALUES (1) /* NOW() */ -- NOW()\n", "+00:00", None, False, None),
    ("INSERT INTO t (`now`, now) VALUES (1, 2)", "+00:00", None, False, None),
    ("UPDATE t SET now = 1 WHERE t.now > 0", "+00:00", None, False, None),
    ("INSERT INTO t VALUES (NOW(@x))", "+00:00", None, True, "NOW() with argument"),
    # per-row functions
    ("INSERT INTO t VALUES (RAND(7))", None, None, False, None),
    ("UPDATE t SET a = RAND() WHERE id = 1", None, None, True, "per row"),
    ("UPDATE t SET a = UUID()", None, None, True, "per row"),
    ("INSERT INTO t SELECT UUID() FROM u", None, None, True, "per row"),
    # unsafe constructs
    ("UPDATE t SET a = 1 LIMIT 1", None, None, True, "LIMIT without ORDER BY"),
    ("DELETE FROM t LIMIT 10", None, None, True, "LIMIT without ORDER BY"),
    ("UPDATE t SET a = 1 ORDER BY id LIMIT 1", None, None, False, None),
    ("INSERT INTO t SELECT * FROM u LIMIT 5", None, None, True, "LIMIT without ORDER BY"),
    ("INSERT INTO t SELECT * FROM u ORDER BY id LIMIT 5", None, None, True, "LIMIT in a subquery or an INSERT"),
    ("UPDATE t SET a = (SELECT b FROM u ORDER BY b LIMIT 1) WHERE id = 1", None, None, True,
     "LIMIT in a subquery"),
    # the rest of MySQL's "unsafe for statement-based replication" list that the text shows
    ("INSERT IGNORE INTO t SELECT * FROM u", None, None, True, "INSERT IGNORE ... SELECT"),
    ("INSERT INTO t SELECT * FROM u ON DUPLICATE KEY UPDATE a = 1", None, None, True,
     "INSERT ... SELECT ... ON DUPLICATE KEY UPDATE"),
    ("REPLACE INTO t SELECT * FROM u", None, None, True, "REPLACE ... SELECT"),
    ("INSERT IGNORE INTO t VALUES (1)", None, None, False, None),
    ("INSERT INTO t VALUES (1) ON DUPLICATE KEY UPDATE a = 1", None, None, False, None),
    ("UPDATE IGNORE t SET a = a + 1", None, None, True, "UPDATE IGNORE"),
    ("CREATE TABLE t2 IGNORE SELECT * FROM t1", None, None, True, "IGNORE|REPLACE SELECT"),
    ("CREATE TABLE t2 REPLACE SELECT * FROM t1", None, None, True, "IGNORE|REPLACE SELECT"),
    ("CREATE OR REPLACE TABLE t2 SELECT * FROM t1", None, None, False, None),
    ("LOAD DATA INFILE '/tmp/x.csv' INTO TABLE t", None, None, True, "LOAD DATA"),
    ("INSERT INTO t SELECT COUNT(*) FROM information_schema.PROCESSLIST", None, None, True,
     "reads information_schema"),
    ("INSERT INTO t SELECT * FROM `performance_schema`.`threads`", None, None, True, "reads performance_schema"),
    ("INSERT INTO t SELECT id FROM u WHERE MATCH (b) AGAINST ('x')", None, None, True, "MATCH ... AGAINST"),
    ("INSERT INTO t VALUES (@x)", None, None, True, "user variable @x"),
    ("UPDATE t SET a = @@sql_mode", None, None, True, "system variable @@sql_mode"),
    ("INSERT INTO t VALUES (FOUND_ROWS())", None, None, True, "FOUND_ROWS"),
    ("INSERT INTO t VALUES (ROW_COUNT())", None, None, True, "ROW_COUNT"),
    ("INSERT INTO t VALUES (CONNECTION_ID())", None, None, True, "CONNECTION_ID"),
    ("INSERT INTO t VALUES (USER())", None, None, True, "USER"),
    ("INSERT INTO t VALUES (CURRENT_USER())", None, None, True, "CURRENT_USER"),
    ("INSERT INTO t VALUES (VERSION())", None, None, True, "VERSION"),
    ("INSERT INTO t VALUES (SLEEP(1))", None, None, True, "SLEEP"),
    ("INSERT INTO t VALUES (GET_LOCK('a', 1))", None, None, True, "GET_LOCK"),
    ("INSERT INTO t VALUES (LOAD_FILE('/etc/passwd'))", None, None, True, "LOAD_FILE"),
    ("INSERT INTO t VALUES (NEXTVAL(s))", None, None, True, "NEXTVAL"),
    ("INSERT INTO t VALUES (my_stored_fn(1))", None, None, True, "unknown function MY_STORED_FN"),
    ("INSERT INTO t SET a = my_fn(1)", None, None, True, "unknown function MY_FN"),
    ("INSERT INTO t VALUES (LAST_INSERT_ID(), DATABASE(), CONCAT('a', UPPER('b')), JSON_OBJECT('k', 1))",
     None, None, False, None),
    ("INSERT INTO t VALUES (?, ?)", None, None, False, None),
    # not rewritten at all
    ("SELECT NOW(), RAND(), UUID()", "+00:00", None, False, None),
    ("CREATE TABLE t (c TIMESTAMP DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP)", "+00:00", None, False, None),
    ("CREATE TABLE t2 AS SELECT NOW() AS c", "+00:00", None, True, "CREATE ... SELECT"),
    ("SET @x = NOW()", "+00:00", None, False, None),
    ("BEGIN", "+00:00", None, False, None),
    ("CALL p(NOW())", "+00:00", None, True, "unknown"),
]


@pytest.mark.parametrize("sql,tz,expected,unsafe,reason", CASES, ids=[f"{c[0][:60]}|{c[1]}" for c in CASES])
def test_rewrite(sql, tz, expected, unsafe, reason):
    res = rewrite_deterministic(sql, NOW, tz, random.Random(42))
    assert res.sql == (sql if expected is None else expected)
    assert res.changed is (expected is not None and expected != sql)
    assert res.unsafe is unsafe, res.reasons
    assert bool(res.reasons) is unsafe
    if reason:
        assert any(reason in r for r in res.reasons), res.reasons


def _casts(sql: str) -> list[tuple[str, str]]:
    text = re.sub(r"^REPLACE", "INSERT", sql)
    tree = sqlglot.parse_one(text, read="mysql")
    return [(c.this.name, c.to.sql("mysql")) for c in tree.find_all(exp.Cast)]


@pytest.mark.parametrize("sql,expected", [(c[0], c[2]) for c in CASES
                                          if c[2] and "CAST(" in c[2] and "/*!" not in c[0] and "SET a" not in c[0]])
def test_rewritten_sql_parses_to_the_intended_values(sql, expected):
    casts = _casts(expected)
    assert casts, expected
    for value, type_sql in casts:
        if type_sql.startswith("DATETIME"):
            parsed = dt.datetime.fromisoformat(value)
            local_delta = parsed - NOW.replace(tzinfo=None)
            # whole multiple of 15 minutes (zone offset) plus, at most, truncated microseconds
            assert abs(local_delta) < dt.timedelta(hours=15)
        elif type_sql == "DATE":
            dt.date.fromisoformat(value)
        else:
            dt.time.fromisoformat(value)
    # the literal transpiles to PostgreSQL without the MySQL-only DATETIME name
    pg = sqlglot.transpile(re.sub(r"^REPLACE", "INSERT", expected), read="mysql", write="postgres")[0]
    assert "DATETIME" not in pg


def test_same_value_for_every_time_function_in_a_statement():
    res = rewrite_deterministic("INSERT INTO t VALUES (NOW(6), SYSDATE(6), CURRENT_TIMESTAMP(6))", NOW, "+00:00",
                                random.Random(1))
    assert res.sql.count(DT6) == 3


def test_postgres_transpile_of_datetime6():
    res = rewrite_deterministic("INSERT INTO t VALUES (NOW(6))", NOW, "+00:00", random.Random(1))
    pg = sqlglot.transpile(res.sql, read="mysql", write="postgres")[0]
    assert pg == "INSERT INTO t VALUES (CAST('2024-01-02 03:04:05.123456' AS TIMESTAMP(6)))"


def test_uuid_rand_uuid_short_literals():
    res = rewrite_deterministic("INSERT INTO t VALUES (UUID(), UUID(), RAND(), UUID_SHORT(), UUID_TO_BIN(UUID()))",
                                NOW, None, random.Random(3))
    assert res.changed and not res.unsafe, res.reasons
    tree = sqlglot.parse_one(res.sql, read="mysql")
    row = tree.find(exp.Tuple).expressions
    u1, u2 = uuid.UUID(row[0].name), uuid.UUID(row[1].name)
    assert u1.version == 1 and u2.version == 1 and u1 != u2
    assert dt.datetime(1582, 10, 15, tzinfo=dt.UTC) + dt.timedelta(microseconds=u1.time // 10) == NOW
    assert isinstance(row[2], exp.Literal) and not row[2].is_string
    rand = float(row[2].name)
    assert 0.0 <= rand < 1.0 and "e" in row[2].name  # exponent form: MySQL reads it as DOUBLE
    assert row[3].is_int and 0 < int(row[3].name) < 2**64
    assert uuid.UUID(row[4].expressions[0].name).version == 1
    # same rng seed -> same statement (replayable)
    assert rewrite_deterministic("INSERT INTO t VALUES (UUID(), RAND())", NOW, None, random.Random(3)).sql == \
        rewrite_deterministic("INSERT INTO t VALUES (UUID(), RAND())", NOW, None, random.Random(3)).sql


def test_ambiguous_local_time_is_flagged():
    # 2023-10-29 00:30 UTC is 02:30 local, which occurs twice in Europe/Berlin
    moment = dt.datetime(2023, 10, 29, 0, 30, tzinfo=dt.UTC)
    res = rewrite_deterministic("INSERT INTO t VALUES (NOW())", moment, "Europe/Berlin", random.Random(1))
    assert res.sql == "INSERT INTO t VALUES (CAST('2023-10-29 02:30:00' AS DATETIME))"
    assert res.unsafe and "ambiguous" in res.reasons[0]


def test_naive_now_is_taken_as_utc():
    res = rewrite_deterministic("INSERT INTO t VALUES (NOW())", NOW.replace(tzinfo=None), "+01:00", random.Random(1))
    assert res.sql == "INSERT INTO t VALUES (CAST('2024-01-02 04:04:05' AS DATETIME))"
