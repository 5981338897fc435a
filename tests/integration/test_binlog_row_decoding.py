"""Row decoding against the real primary: the reader's own row-image decoder (binlog.row_decoder)
gives exactly what python-mysql-replication's decoding gives, for every column type."""

from __future__ import annotations

import uuid
from collections import Counter

from dbmux.core.codec import encode_event
from dbmux.core.events import ChangeEvent
from dbmux.core.gtid import Gtid

from .test_binlog_reader import _master_status
from .test_replicator_mysql import _conn

_TYPES_DDL = """CREATE TABLE {db}.types (
  id INT PRIMARY KEY,
  ti TINYINT, tiu TINYINT UNSIGNED, si SMALLINT, siu SMALLINT UNSIGNED, mi MEDIUMINT, miu MEDIUMINT UNSIGNED,
  i INT, iu INT UNSIGNED, bi BIGINT, biu BIGINT UNSIGNED,
  f FLOAT, d DOUBLE,
  d52 DECIMAL(5,2), d650 DECIMAL(65,30), d100 DECIMAL(10,0), d2010 DECIMAL(20,10), d99 DECIMAL(9,9), d181 DECIMAL(18,1),
  c10 CHAR(10), c100 CHAR(100), cascii CHAR(5) CHARACTER SET ascii, vlatin VARCHAR(10) CHARACTER SET latin1,
  v300 VARCHAR(300), vbin VARBINARY(20), bin4 BINARY(4), vutf16 VARCHAR(10) CHARACTER SET utf16,
  vucs2 VARCHAR(10) CHARACTER SET ucs2, vgbk VARCHAR(10) CHARACTER SET gbk,
  tt TINYTEXT, t TEXT, mt MEDIUMTEXT, lt LONGTEXT, tb TINYBLOB, b BLOB, mb MEDIUMBLOB, lb LONGBLOB, j JSON,
  dt DATE, dtm0 DATETIME, dtm1 DATETIME(1), dtm3 DATETIME(3), dtm6 DATETIME(6),
  ts0 TIMESTAMP NULL, ts2 TIMESTAMP(2) NULL, ts6 TIMESTAMP(6) NULL,
  tm0 TIME, tm1 TIME(1), tm4 TIME(4), tm6 TIME(6), y YEAR,
  e ENUM('a','bb','c d',''), s SET('r','g','b','x1','x2','x3','x4','x5','x6'),
  bit1 BIT(1), bit10 BIT(10), bit64 BIT(64)
) DEFAULT CHARSET=utf8mb4"""


def _type_rows(rnd) -> list[str]:
    """SQL value tuples for _TYPES_DDL: edge values, NULLs, then random ones."""
    def q(v):
        return "NULL" if v is None else "'" + str(v).replace("\\", "\\\\").replace("'", "''") + "'"

    edge = [
        "(1, -128, 0, -32768, 0, -8388608, 0, -2147483648, 0, -9223372036854775808, 0, -3.5e38, -1.7e308, "
        "-999.99, '-99999999999999999999999999999999999.999999999999999999999999999999', -9999999999, "
        "'-9999999999.9999999999', -0.999999999, -12345678901234567.8, "
        "'', '', '', '', '', '', x'00000000', '', '', '', '', '', '', '', '', '', '', '', '[]', "
        "'1000-01-01', '1000-01-01 00:00:00', '1000-01-01 00:00:00.1', '1000-01-01 00:00:00.001', "
        "'1000-01-01 00:00:00.000001', '1970-01-01 00:00:01', '1970-01-01 00:00:01.01', '2038-01-19 03:14:07.999999', "
        "'-838:59:59', '-838:59:58.9', '-00:00:00.0001', '-00:00:01.000001', 1901, 'a', '', 0, 0, 0)",
        "(2, 127, 255, 32767, 65535, 8388607, 16777215, 2147483647, 4294967295, 9223372036854775807, "
        "18446744073709551615, 3.4e38, 1.7e308, 999.99, "
        "'99999999999999999999999999999999999.999999999999999999999999999999', "
        "9999999999, '9999999999.9999999999', 0.999999999, 12345678901234567.8, "
        "'ábcdéfghí', REPEAT('ü', 100), 'abcde', 'äöüß', REPEAT('漢', 300), x'00ff10', x'01020304', 'ab€', "
        "'xy', '中文', REPEAT('t', 255), REPEAT('ť', 1000), REPEAT('m', 70000), REPEAT('🎉', 20000), x'ff', "
        "REPEAT(x'00ab', 1000), REPEAT(x'ee', 70000), REPEAT(x'01', 300000), '{\"k\": [1, 2.5, null, \"é\"]}', "
        "'9999-12-31', '9999-12-31 23:59:59', '9999-12-31 23:59:59.9', '9999-12-31 23:59:59.999', "
        "'9999-12-31 23:59:59.999999', '2038-01-19 03:14:07', '2001-02-03 04:05:06.99', '2001-02-03 04:05:06.000001', "
        "'838:59:59', '838:59:58.9', '00:00:00.0001', '12:34:56.123456', 2155, 'c d', 'r,g,b,x1,x2,x3,x4,x5,x6', "
        "1, 1023, 18446744073709551615)",
        "(3, 0, NULL, 0, NULL, 0, NULL, 0, NULL, 0, NULL, 0, -0.0, 0, 0, 0, 0, 0, -0.1, NULL, NULL, NULL, NULL, "
        "NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, "
        "'0000-00-00', '0000-00-00 00:00:00', '2024-00-00 00:00:00.0', '2024-02-00 00:00:00.000', "
        "'0000-00-00 00:00:00.000000', '0000-00-00 00:00:00', NULL, NULL, '00:00:00', '-00:00:00.5', NULL, "
        "'-12:00:00.000001', 0, '', 'g,x6', b'0', b'0000000001', b'1')",
        "(4, " + ", ".join(["NULL"] * 55) + ")",
    ]
    rows = []
    for k in range(5, 200):
        def maybe(v):
            return None if rnd.random() < 0.1 else v
        sign = rnd.choice([-1, 1])
        vals = [
            k, maybe(rnd.randint(-128, 127)), maybe(rnd.randint(0, 255)), maybe(rnd.randint(-32768, 32767)),
            maybe(rnd.randint(0, 65535)), maybe(rnd.randint(-8388608, 8388607)), maybe(rnd.randint(0, 16777215)),
            maybe(rnd.randint(-2**31, 2**31 - 1)), maybe(rnd.randint(0, 2**32 - 1)),
            maybe(rnd.randint(-2**63, 2**63 - 1)), maybe(rnd.randint(0, 2**64 - 1)),
            maybe(rnd.uniform(-1e6, 1e6)), maybe(rnd.uniform(-1e300, 1e300)),
            maybe(f"{sign * rnd.randint(0, 99999) / 100:.2f}"),
            maybe(f"{'-' if sign < 0 else ''}{rnd.randint(0, 10**35 - 1)}.{rnd.randint(0, 10**30 - 1):030d}"),
            maybe(sign * rnd.randint(0, 10**10 - 1)),
            maybe(f"{'-' if sign < 0 else ''}{rnd.randint(0, 10**10 - 1)}.{rnd.randint(0, 10**10 - 1):010d}"),
            maybe(f"{'-' if sign < 0 else ''}0.{rnd.randint(0, 10**9 - 1):09d}"),
            maybe(f"{'-' if sign < 0 else ''}{rnd.randint(0, 10**17 - 1)}.{rnd.randint(0, 9)}"),
            maybe("".join(rnd.choices("aé漢🎉 z", k=rnd.randint(0, 10)))),
            maybe("".join(rnd.choices("xyzüñ", k=rnd.randint(0, 100)))),
            maybe("".join(rnd.choices("abc", k=rnd.randint(0, 5)))),
            maybe("".join(rnd.choices("aäöü", k=rnd.randint(0, 10)))),
            maybe("".join(rnd.choices("q漢é", k=rnd.randint(0, 300)))),
            None, None,  # vbin, bin4 (below, as hex)
            maybe("".join(rnd.choices("ab€", k=rnd.randint(0, 10)))),
            maybe("".join(rnd.choices("ab", k=rnd.randint(0, 10)))),
            maybe("".join(rnd.choices("中文", k=rnd.randint(0, 10)))),
            maybe("t" * rnd.randint(0, 255)), maybe("T" * rnd.randint(0, 3000)), maybe("m" * rnd.randint(0, 3000)),
            maybe("l" * rnd.randint(0, 3000)), None, None, None, None,  # blobs (below)
            maybe(f'{{"a": {rnd.randint(0, 9)}}}'),
            maybe(f"{rnd.randint(1000, 9999)}-{rnd.randint(1, 12):02d}-{rnd.randint(1, 28):02d}"),
        ]
        for fsp in (0, 1, 3, 6):
            frac = f".{rnd.randint(0, 10**fsp - 1):0{fsp}d}" if fsp else ""
            vals.append(maybe(f"{rnd.randint(1000, 9999)}-{rnd.randint(1, 12):02d}-{rnd.randint(1, 28):02d} "
                              f"{rnd.randint(0, 23):02d}:{rnd.randint(0, 59):02d}:{rnd.randint(0, 59):02d}{frac}"))
        for fsp in (0, 2, 6):
            frac = f".{rnd.randint(0, 10**fsp - 1):0{fsp}d}" if fsp else ""
            vals.append(maybe(f"{rnd.randint(1971, 2037)}-{rnd.randint(1, 12):02d}-{rnd.randint(1, 28):02d} "
                              f"{rnd.randint(0, 23):02d}:{rnd.randint(0, 59):02d}:{rnd.randint(0, 59):02d}{frac}"))
        for fsp in (0, 1, 4, 6):
            frac = f".{rnd.randint(0, 10**fsp - 1):0{fsp}d}" if fsp else ""
            vals.append(maybe(f"{'-' if rnd.random() < 0.3 else ''}{rnd.randint(0, 838):02d}:{rnd.randint(0, 59):02d}:"
                              f"{rnd.randint(0, 59):02d}{frac}"))
        vals += [maybe(rnd.randint(1901, 2155)), maybe(rnd.choice(["a", "bb", "c d", ""])),
                 maybe(",".join(rnd.sample(["r", "g", "b", "x1", "x2", "x3", "x4", "x5", "x6"], rnd.randint(0, 9))))]
        sql = [q(v) if not isinstance(v, (int, float)) else repr(v) for v in vals]
        sql[24] = "NULL" if rnd.random() < 0.1 else f"x'{rnd.randbytes(rnd.randint(0, 20)).hex()}'"
        sql[25] = "NULL" if rnd.random() < 0.1 else f"x'{rnd.randbytes(4).hex()}'"
        for idx, n in ((33, 255), (34, 3000), (35, 3000), (36, 3000)):
            sql[idx] = "NULL" if rnd.random() < 0.1 else f"x'{rnd.randbytes(rnd.randint(0, n)).hex()}'"
        sql += [str(rnd.randint(0, 1)), str(rnd.randint(0, 1023)), str(rnd.randint(0, 2**64 - 1))]
        rows.append("(" + ", ".join(sql) + ")")
    return edge + rows


def test_fast_row_decoding_equals_the_librarys(stack):
    """binlog.row_decoder decodes row images itself (plans per table definition); for every column
    type of the primary, edge values, NULLs, zero dates and random rows, in inserts, updates and deletes,
    the images equal (names, order, types, values) what the library's own decoding gives after
    convert_value; a table with a type the plan does not cover goes to the library."""
    import random

    from pymysqlreplication import BinLogStreamReader
    from pymysqlreplication.event import MariadbGtidEvent, QueryEvent, RotateEvent, XidEvent
    from pymysqlreplication.row_event import DeleteRowsEvent, TableMapEvent, UpdateRowsEvent, WriteRowsEvent

    from dbmux.binlog.reader import _connection_settings
    from dbmux.binlog.row_decoder import _fast_row_changes, _library_row_changes

    db = f"fr_{uuid.uuid4().hex[:8]}"
    rnd = random.Random(11)
    c = _conn(stack.primary)
    try:
        with c.cursor() as cur:
            cur.execute("SET SESSION sql_mode = ''")  # zero dates
            cur.execute(f"CREATE DATABASE {db}")
            cur.execute(_TYPES_DDL.format(db=db))
            cur.execute(f"CREATE TABLE {db}.narrow (id INT PRIMARY KEY, v VARCHAR(5), n INT)")
            cur.execute(f"CREATE TABLE {db}.geo (id INT PRIMARY KEY, p POINT, v VARCHAR(5), b3 BINARY(3))")
            _, _, start = _master_status(stack.primary)
            rows = _type_rows(rnd)
            for k in range(0, len(rows), 20):
                cur.execute(f"INSERT INTO {db}.types VALUES " + ", ".join(rows[k:k + 20]))
            cur.execute(f"UPDATE {db}.types SET ti = ti + 0, s = 'b', j = '{{}}' WHERE id >= 3 AND id % 3 = 0")
            cur.execute(f"UPDATE {db}.types SET c10 = 'upd', dtm6 = '2020-01-01 00:00:00.5', ts0 = NULL "
                        "WHERE id IN (1, 2, 4)")
            cur.execute(f"DELETE FROM {db}.types WHERE id % 5 = 0")
            cur.execute(f"INSERT INTO {db}.narrow VALUES (1, 'a', 1), (2, NULL, NULL), (3, '', -1)")
            cur.execute(f"UPDATE {db}.narrow SET n = n + 1")
            cur.execute(f"DELETE FROM {db}.narrow WHERE id = 2")
            cur.execute(f"INSERT INTO {db}.geo VALUES (1, POINT(1, 2), 'x', x'6100')")
            _, _, end = _master_status(stack.primary)
    finally:
        c.close()
    end_seq = int(end.split(",")[0].rsplit("-", 1)[1])

    stream = BinLogStreamReader(
        connection_settings=_connection_settings(stack.binlog), server_id=4545, is_mariadb=True,
        auto_position=start, blocking=False, freeze_schema=True,
        only_events=[MariadbGtidEvent, QueryEvent, XidEvent, WriteRowsEvent, UpdateRowsEvent, DeleteRowsEvent,
                     TableMapEvent, RotateEvent])
    compared = Counter()
    try:
        seq = 0
        for ev in stream:
            if isinstance(ev, MariadbGtidEvent):
                seq = int(str(ev.gtid).rsplit("-", 1)[1])
                if seq > end_seq:
                    break
            if not isinstance(ev, (WriteRowsEvent, UpdateRowsEvent, DeleteRowsEvent)) or ev.schema != db:
                continue
            fast = _fast_row_changes(ev)
            lib = _library_row_changes(ev)
            if ev.table == "geo":
                assert fast is None  # POINT: the library decodes
                assert lib[0].after["b3"] == b"a\0\0"  # BINARY(3): padded back (the binlog packs b'a')
                compared["library"] += len(lib)
                continue
            assert fast is not None, f"fast path not taken for {ev.table} {type(ev).__name__}"
            assert len(fast) == len(lib)
            for a, b in zip(fast, lib, strict=True):
                assert (a.db, a.table, a.op) == (b.db, b.table, b.op)
                for side in ("before", "after"):
                    x, y = getattr(a, side), getattr(b, side)
                    if x is None or y is None:
                        assert x is y
                        continue
                    assert list(x) == list(y)  # names, in column order
                    for name in y:
                        assert type(x[name]) is type(y[name]) and x[name] == y[name], \
                            f"{ev.table}.{name} ({side}): {x[name]!r} != {y[name]!r}"
                    # same envelope bytes
                    assert encode_event(ChangeEvent(Gtid.parse("0-1-1"), "binlog", 0, rows=(a,))) == \
                        encode_event(ChangeEvent(Gtid.parse("0-1-1"), "binlog", 0, rows=(b,)))
                if a.table == "types" and a.after is not None and a.after["id"] == 1:
                    assert a.after["bin4"] == bytes(4)  # x'00000000': the binlog packs it as ''
                compared[a.op] += 1
    finally:
        stream.close()
        with _conn(stack.primary).cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {db}")
    assert compared["insert"] >= 199 and compared["update"] >= 60 and compared["delete"] >= 30, compared
    assert compared["library"] == 1, compared
