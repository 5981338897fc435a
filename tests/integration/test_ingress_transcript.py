"""Transparency transcript (issue 20 #8): the same command sequence, sent by a raw-protocol client to the
primary directly and through the ingress, gets byte-identical answers -- every packet of every response,
headers (lengths, sequence ids) included -- in each capability mode: with and without
CLIENT_SESSION_TRACK, with and without CLIENT_DEPRECATE_EOF.

What may differ, and why (everything else must be equal byte for byte):

- the server greeting: the connection id and the scramble are per connection; the capability flags
  are the primary's minus what the ingress does not relay (compression, TLS unless
  configured: ``ingress.connection``). The transcript compares the greeting with those fields masked.
- the statement id in COM_STMT_PREPARE's answer: a counter of the primary's server thread, which
  MariaDB reuses across connections, so it does not start at 1 on a new connection even directly.
- the ``SERVER_SESSION_STATE_CHANGED`` flag of the EOF packets of one exchange, ``CALL psws()``
  (clients without CLIENT_DEPRECATE_EOF): its procedure writes (a GTID: tracked for the ingress only)
  before one result set and changes ``time_zone`` (tracked for the client too) before the next. The
  primary flags EOF packets from the first tracked change of a statement on, and which change came
  first is not in the protocol: the ingress keeps the flag on both result sets, the primary sets it on
  the second only (``ingress.response_relay``). With CLIENT_DEPRECATE_EOF the terminators are OK
  packets carrying their changes, and that exchange is compared whole.
- the order of the system variables one OK packet's session state reports (``SET NAMES``: three of
  them): MariaDB walks a hash of the session's tracked variables, and the ingress's session tracks
  more than the client's (see below), so the order can differ -- seen to vary between runs of the
  same server build (equal in one stack, different after a restart). The protocol gives the order no
  meaning; each entry is compared byte for byte, as a set.
- nothing else. The sequence avoids per-connection values in results (``CONNECTION_ID()``), both runs
  use the same database name one after the other, and on MariaDB a client's own session tracking
  never carries a GTID (``last_gtid`` is tracked for the ingress only and stripped; MySQL's
  ``session_track_gtids`` is OFF for a client unless it sets it), so session-state blocks compare
  whole.

The ingress always negotiates CLIENT_SESSION_TRACK with the primary and tracks more than a client's
defaults (``last_gtid``, ``sql_mode``); what it relays must be re-encoded to what the client
negotiated: OK packets (info text with its length prefix, status flags, session state) and the status
flags of EOF packets and result-set terminators.
"""

from __future__ import annotations

import uuid

import pymysql
import pytest

from dbmux.core.dsn import Dsn

from .raw_mysql import MODES, Exchange, RawClient


def _workload(dsn: Dsn, caps: int, db: str) -> RawClient:
    """Run the sequence on one connection; returns the client with its transcript."""
    cl = RawClient(dsn, caps)
    try:
        q = cl.query
        q("SELECT 1 AS one, 'two' AS two")
        q(f"CREATE DATABASE {db}")
        q(f"USE {db}")
        cl.init_db(db)
        q("CREATE TABLE t (id INT AUTO_INCREMENT PRIMARY KEY, v INT NOT NULL, k VARCHAR(10) UNIQUE)")
        q("INSERT INTO t (v, k) VALUES (1, 'a')")
        q("INSERT INTO t (v, k) VALUES (2, 'b'), (3, 'c'), (4, 'd')")  # Records: 3  Duplicates: 0
        q("UPDATE t SET v = v + 1 WHERE id = 1")  # Rows matched: 1  Changed: 1  Warnings: 0
        q("UPDATE t SET v = v WHERE id = 1")  # Changed: 0
        q("INSERT INTO t (v, k) VALUES (9, 'a'), (5, 'e') ON DUPLICATE KEY UPDATE v = VALUES(v)")
        q("REPLACE INTO t (id, v, k) VALUES (2, 20, 'b')")
        q("INSERT IGNORE INTO t (v, k) VALUES (1, 'a')")  # a warning
        q("DELETE FROM t WHERE id = 5")
        q("SET autocommit = 0")
        q("INSERT INTO t (v, k) VALUES (6, 'f')")
        q("COMMIT")
        q("SET autocommit = 1")
        q("BEGIN")
        q("UPDATE t SET v = 7 WHERE k = 'f'")
        q("COMMIT")
        q("START TRANSACTION")
        q("INSERT INTO t (v, k) VALUES (8, 'g')")
        q("ROLLBACK")
        q("BEGIN")
        q("INSERT INTO t (v, k) VALUES (8, 'h')")
        q("CREATE TABLE t2 (id INT PRIMARY KEY)")  # commits implicitly (the ingress commits first)
        q("SET NAMES latin1")
        q("SET NAMES utf8mb4")
        q("SET time_zone = '+01:00'")
        q("SET sql_mode = 'ANSI_QUOTES'")  # tracked by the ingress for capture, not for a client
        q("SET sql_mode = DEFAULT")
        q("CREATE PROCEDURE p(IN a INT, OUT b INT) BEGIN SET b = a * 2; END")
        q("CREATE PROCEDURE pw(IN a INT, OUT b INT) BEGIN INSERT INTO t2 VALUES (a); SET b = a + 1; END")
        call = cl.prepare("CALL p(?, ?)")
        cl.execute("CALL p(21, NULL)", call, (21, None))
        cl.execute("CALL p(4, NULL)", call, (4, None))
        cl.close_statement(call)
        callw = cl.prepare("CALL pw(?, ?)")
        cl.execute("CALL pw(100, NULL)", callw, (100, None))
        cl.close_statement(callw)
        q("CALL pw(101, @b)")
        q("SELECT @b")
        # result sets after a change inside one statement: the status of their EOF packets
        q("CREATE PROCEDURE ps() BEGIN SET time_zone = '+02:00'; SELECT 1 AS x; END")
        q("CREATE PROCEDURE pws() BEGIN INSERT INTO t2 VALUES (200); SELECT 2 AS y; END")
        q("CREATE PROCEDURE psws() BEGIN SELECT 3 AS z; INSERT INTO t2 VALUES (300); SELECT 4 AS w; "
          "SET time_zone = '+03:00'; SELECT 5 AS v; END")
        q("CALL ps()")
        q("CALL pws()")
        q("CALL psws()")
        q("SET time_zone = '+04:00'; SELECT 6 AS u")
        q("INSERT INTO t2 VALUES (400); SELECT 7 AS s")
        ins = cl.prepare("INSERT INTO t (v, k) VALUES (?, ?)")
        cl.execute("INSERT (30, 'p')", ins, (30, b"p"))
        cl.close_statement(ins)
        upd = cl.prepare("UPDATE t SET v = v + ? WHERE id <= ?")
        cl.execute("UPDATE (1, 3)", upd, (1, 3))
        cl.close_statement(upd)
        sel = cl.prepare("SELECT id, v, k FROM t WHERE id >= ? ORDER BY id")
        cl.execute("SELECT (1)", sel, (1,))
        cl.close_statement(sel)
        q("SELECT id, v, k FROM t ORDER BY id")
        q("SELECT 1; UPDATE t SET v = 5 WHERE id = 2; INSERT INTO t (v, k) VALUES (7, 'x'), (8, 'y'); SELECT 2")
        q("SELECT * FROM no_such_table")  # an error
        q("SELEC 1")  # a syntax error
        q("INSERT INTO t (v, k) VALUES (1, 'a')")  # a duplicate key
        q("SHOW WARNINGS")
        cl.ping()
        q(f"DROP DATABASE {db}")
        q("SELECT DATABASE()")
    finally:
        cl.close()
    return cl


def _masked_greeting(packet: bytes) -> bytes:
    """The greeting without the per-connection fields (connection id, scramble) and capability flags."""
    out = bytearray(packet)
    pos = out.index(0, 5) + 1  # after the header, protocol version and NUL-terminated server version
    out[pos:pos + 4] = bytes(4)  # connection id
    out[pos + 4:pos + 12] = bytes(8)  # scramble part 1
    out[pos + 13:pos + 15] = bytes(2)  # capabilities (low)
    out[pos + 18:pos + 20] = bytes(2)  # capabilities (high)
    part2 = pos + 31
    out[part2:part2 + 12] = bytes(12)  # scramble part 2
    return bytes(out)


AMBIGUOUS_EOF_FLAG = frozenset({"CALL psws()"})  # see the module docstring


def _comparable(exchange: Exchange) -> list[bytes]:
    """The exchange's packets with the fields that may differ (module docstring) zeroed."""
    packets = list(exchange.packets)
    if exchange.label.startswith("PREPARE ") and packets[0][4] == 0x00:
        packets[0] = packets[0][:5] + bytes(4) + packets[0][9:]  # COM_STMT_PREPARE_OK's statement id
    if exchange.label in AMBIGUOUS_EOF_FLAG:
        packets = [p[:8] + bytes((p[8] & ~0x40,)) + p[9:] if p[4] == 0xFE and len(p) == 9 else p for p in packets]
    return [_state_sorted(p) for p in packets]


def _lenenc(data: bytes, i: int) -> tuple[int, int]:
    first = data[i]
    if first < 0xFB:
        return first, i + 1
    size = {0xFC: 2, 0xFD: 3, 0xFE: 8}[first]
    return int.from_bytes(data[i + 1:i + 1 + size], "little"), i + 1 + size


def _state_sorted(packet: bytes) -> bytes:
    """An OK packet with a session state (SERVER_SESSION_STATE_CHANGED: the client tracks sessions) with
    the state's system-variable entries in one order (module docstring); any other packet as it is."""
    body = packet[4:]
    if not body or body[0] != 0x00 or len(body) < 7:
        return packet
    i = _lenenc(body, _lenenc(body, 1)[1])[1]  # after affected rows and last insert id
    status = int.from_bytes(body[i:i + 2], "little")
    if not status & 0x4000:
        return packet
    length, i = _lenenc(body, i + 4)
    i += length  # after the info text
    total, start = _lenenc(body, i)
    entries, j = [], start
    while j < start + total:
        size, k = _lenenc(body, j + 1)  # (after the entry's type byte)
        entries.append(body[j:k + size])
        j = k + size
    variables = iter(sorted(e for e in entries if e[0] == 0))  # SESSION_TRACK_SYSTEM_VARIABLES, in their slots
    ordered = [next(variables) if e[0] == 0 else e for e in entries]
    return packet[:4] + body[:start] + b"".join(ordered) + body[start + total:]


def _render(exchange: Exchange) -> str:
    return "\n".join(f"  {p[:4].hex()} {p[4:]!r}" for p in exchange.packets)


def differences(direct: list[Exchange], via: list[Exchange]) -> list[str]:
    """Every exchange whose answer differs, both versions shown."""
    assert [e.label for e in direct] == [e.label for e in via]
    return [f"{d.label}:\n direct:\n{_render(d)}\n ingress:\n{_render(v)}"
            for d, v in zip(direct, via, strict=True) if _comparable(d) != _comparable(v)]


@pytest.fixture
def database(stack):
    db = f"tx_{uuid.uuid4().hex[:10]}"
    yield db
    p = stack.primary
    conn = pymysql.connect(host=p.host, port=p.port, user=p.user, password=p.password, autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {db}")
    finally:
        conn.close()


@pytest.mark.parametrize("mode", list(MODES))
def test_answers_are_byte_identical_directly_and_through_the_ingress(stack, ingress, database, mode):
    caps = MODES[mode]
    direct = _workload(stack.primary, caps, database)
    via = _workload(ingress.dsn(stack.primary), caps, database)
    assert via.caps == direct.caps  # the same capabilities negotiated on both
    assert _masked_greeting(via.greeting) == _masked_greeting(direct.greeting)
    diffs = differences(direct.transcript, via.transcript)
    assert not diffs, f"{len(diffs)} of {len(direct.transcript)} answers differ ({mode}):\n" + "\n".join(diffs)
