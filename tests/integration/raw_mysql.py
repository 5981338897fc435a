"""A raw MySQL-protocol test client: it negotiates exactly the capability flags it is given and records
every packet of every response as the server framed it (header included), so two servers -- the
primary directly and through the ingress -- can be compared byte by byte.

Responses are delimited with the codec's sans-IO ``ResponseReader`` (only to know where a response
ends: the recorded bytes are the socket's).
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass, field

from dbmux.core.dsn import Dsn
from dbmux.ingress.protocol import constants as c
from dbmux.ingress.protocol.auth import scramble_native_password
from dbmux.ingress.protocol.handshake import HandshakeResponse41, HandshakeV10
from dbmux.ingress.protocol.response import ResponseReader

# What a current connector asks for, minus what the transcript varies (see ``MODES``).
BASE_CAPS = (c.CLIENT_LONG_PASSWORD | c.CLIENT_LONG_FLAG | c.CLIENT_PROTOCOL_41 | c.CLIENT_TRANSACTIONS
             | c.CLIENT_SECURE_CONNECTION | c.CLIENT_MULTI_STATEMENTS | c.CLIENT_MULTI_RESULTS
             | c.CLIENT_PS_MULTI_RESULTS | c.CLIENT_PLUGIN_AUTH | c.CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA)
MODES = {
    "plain": BASE_CAPS,
    "deprecate-eof": BASE_CAPS | c.CLIENT_DEPRECATE_EOF,
    "session-track": BASE_CAPS | c.CLIENT_SESSION_TRACK,
    "session-track+deprecate-eof": BASE_CAPS | c.CLIENT_SESSION_TRACK | c.CLIENT_DEPRECATE_EOF,
}

MYSQL_TYPE_LONGLONG, MYSQL_TYPE_NULL, MYSQL_TYPE_VAR_STRING = 0x08, 0x06, 0xFD


@dataclass
class Exchange:
    """One command and the packets (4-byte header + payload each) of the server's answer."""

    label: str
    packets: list[bytes] = field(default_factory=list)


class RawClient:
    """One connection with ``caps`` (ANDed with the server's); ``transcript`` records every exchange."""

    def __init__(self, dsn: Dsn, caps: int, timeout_s: float = 20.0) -> None:
        self.sock = socket.create_connection((dsn.host, dsn.port), timeout=timeout_s)
        self._buf = b""
        self.transcript: list[Exchange] = []
        greeting = self._read_packet()
        self.greeting = greeting
        hello = HandshakeV10.parse(greeting[4:])
        self.server_caps = hello.capabilities
        self.caps = caps & hello.capabilities
        self.stmt_ids: dict[str, int] = {}
        password = (dsn.password or "").encode()
        auth = scramble_native_password(password, hello.auth_plugin_data)
        resp = HandshakeResponse41(self.caps, dsn.user.encode(), auth, None, "mysql_native_password")
        self._send(resp.encode(), seq=1)
        exchange = Exchange("auth")
        while True:
            pkt = self._read_packet()
            exchange.packets.append(pkt)
            payload = pkt[4:]
            if payload[0] == 0xFE:  # auth switch: answer for mysql_native_password only
                plugin, _, data = payload[1:].partition(b"\x00")
                assert plugin == b"mysql_native_password", plugin
                self._send(scramble_native_password(password, data.rstrip(b"\x00")), seq=pkt[3] + 1)
                continue
            assert payload[0] == 0x00, f"authentication failed: {payload!r}"
            break
        self.transcript.append(exchange)

    # ---- framing ----------------------------------------------------------------------------------------
    def _send(self, payload: bytes, seq: int = 0) -> None:
        self.sock.sendall(len(payload).to_bytes(3, "little") + bytes((seq,)) + payload)

    def _read_exact(self, n: int) -> bytes:
        while len(self._buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("the server closed the connection")
            self._buf += chunk
        out, self._buf = self._buf[:n], self._buf[n:]
        return out

    def _read_packet(self) -> bytes:
        header = self._read_exact(4)
        return header + self._read_exact(int.from_bytes(header[:3], "little"))

    # ---- commands -----------------------------------------------------------------------------------------
    def command(self, label: str, payload: bytes) -> Exchange:
        """Send one command and record its whole answer (nothing for commands without one)."""
        self._send(payload)
        reader = ResponseReader(payload[0], self.caps)
        exchange = Exchange(label)
        while not reader.complete:
            pkt = self._read_packet()
            exchange.packets.append(pkt)
            reader.feed(pkt[4:])
        if payload[0] == c.COM_STMT_PREPARE and reader.prepare_ok is not None:
            self.stmt_ids[label] = reader.prepare_ok.statement_id
        self.transcript.append(exchange)
        return exchange

    def query(self, sql: str) -> Exchange:
        return self.command(sql, b"\x03" + sql.encode())

    def init_db(self, db: str) -> Exchange:
        return self.command(f"COM_INIT_DB {db}", b"\x02" + db.encode())

    def ping(self) -> Exchange:
        return self.command("COM_PING", b"\x0e")

    def prepare(self, sql: str) -> int:
        self.command(f"PREPARE {sql}", b"\x16" + sql.encode())
        return self.stmt_ids[f"PREPARE {sql}"]

    def execute(self, label: str, stmt_id: int, params: tuple[int | bytes | None, ...] = ()) -> Exchange:
        """COM_STMT_EXECUTE without a cursor; parameters are integers, bytes or NULL."""
        payload = b"\x17" + struct.pack("<IBI", stmt_id, 0, 1)
        if params:
            bitmap = bytearray((len(params) + 7) // 8)
            types, values = b"", b""
            for i, value in enumerate(params):
                if value is None:
                    bitmap[i // 8] |= 1 << i % 8
                    types += struct.pack("<BB", MYSQL_TYPE_NULL, 0)
                elif isinstance(value, int):
                    types += struct.pack("<BB", MYSQL_TYPE_LONGLONG, 0)
                    values += struct.pack("<q", value)
                else:
                    types += struct.pack("<BB", MYSQL_TYPE_VAR_STRING, 0)
                    values += bytes((len(value),)) + value
            payload += bytes(bitmap) + b"\x01" + types + values
        return self.command(f"EXECUTE {label}", payload)

    def close_statement(self, stmt_id: int) -> None:
        self._send(b"\x19" + struct.pack("<I", stmt_id))  # COM_STMT_CLOSE: no answer

    def close(self) -> None:
        try:
            self._send(b"\x01")  # COM_QUIT
        finally:
            self.sock.close()
