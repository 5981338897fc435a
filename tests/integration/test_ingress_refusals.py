"""Commands the ingress refuses (XA, replication commands) get an ERR packet of the ingress's own at
once, in sequence, and a log line; the next command on the same connection gets its own answer."""

from __future__ import annotations

import struct
import time

import pymysql
import pytest

# (name, command payload): COM_BINLOG_DUMP, COM_BINLOG_DUMP_GTID, COM_REGISTER_SLAVE
RAW_REFUSED = [
    ("binlog-dump", b"\x12" + struct.pack("<IHI", 4, 0, 4242) + b"mysql-bin.000001"),
    ("binlog-dump-gtid", b"\x1e" + struct.pack("<HIIQ", 0, 4242, 0, 4) + struct.pack("<I", 0)),
    ("register-slave", b"\x15" + struct.pack("<I", 4242) + b"\x00\x00\x00" + struct.pack("<HII", 3306, 0, 0)),
]


def _connect(ingress, stack) -> pymysql.Connection:
    dsn = ingress.dsn(stack.primary)
    return pymysql.connect(host=dsn.host, port=dsn.port, user=dsn.user, password=dsn.password, autocommit=True,
                           read_timeout=10)


def _read_packet(conn: pymysql.Connection) -> tuple[int, bytes]:
    """One packet (sequence id, payload) from the connection's socket, as the server framed it."""
    header = conn._rfile.read(4)
    assert len(header) == 4, "the connection closed"
    length = int.from_bytes(header[:3], "little")
    return header[3], conn._rfile.read(length)


def _frame(payload: bytes, seq: int = 0) -> bytes:
    return len(payload).to_bytes(3, "little") + bytes((seq,)) + payload


@pytest.mark.parametrize(("name", "payload"), RAW_REFUSED, ids=[n for n, _ in RAW_REFUSED])
def test_a_refused_replication_command_gets_err_and_the_next_command_its_answer(stack, ingress, name, payload):
    conn = _connect(ingress, stack)  # (PyMySQL for the handshake; then raw packets on its socket)
    try:
        sock = conn._sock
        sock.sendall(_frame(payload) + _frame(b"\x03SELECT 'next'"))  # pipelined: the refusal, then a query
        seq, err = _read_packet(conn)
        assert seq == 1 and err[0] == 0xFF, (seq, err)
        assert struct.unpack("<H", err[1:3])[0] == 1235 and err[3:9] == b"#42000"
        assert b"not supported through the ingress" in err
        # the query's own result set: column count 1, its definition, EOF, the row 'next', EOF
        packets = []
        while not packets or not (packets[-1][1][:1] == b"\xfe" and len(packets) > 3):
            packets.append(_read_packet(conn))
        assert [s for s, _ in packets] == [1, 2, 3, 4, 5]
        assert packets[0][1] == b"\x01" and packets[3][1] == b"\x04next"
        sock.sendall(_frame(b"\x0e"))  # COM_PING: OK
        seq, ok = _read_packet(conn)
        assert seq == 1 and ok[0] == 0x00
    finally:
        conn.close()
    deadline = time.monotonic() + 5
    while f"refused command 0x{payload[0]:02X}" not in ingress.log() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert f"refused command 0x{payload[0]:02X}" in ingress.log()


@pytest.mark.parametrize("statement", ["XA START 'x1'", "XA END 'x1'", "XA PREPARE 'x1'", "XA COMMIT 'x1'",
                                       "XA ROLLBACK 'x1'", "XA RECOVER"])
def test_xa_is_refused_and_the_session_goes_on(stack, ingress, statement):
    conn = _connect(ingress, stack)
    try:
        with conn.cursor() as cur:
            with pytest.raises(pymysql.err.MySQLError) as info:
                cur.execute(statement)
            assert info.value.args[0] == 1235 and "XA transactions are not supported" in info.value.args[1]
            cur.execute("SELECT 40 + 2")
            assert cur.fetchall() == ((42,),)
            with pytest.raises(pymysql.err.MySQLError):
                cur.execute(statement)
            cur.execute("SELECT CONNECTION_ID() > 0")  # same connection, still in step
            assert cur.fetchall() == ((1,),)
    finally:
        conn.close()
