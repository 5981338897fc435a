"""One pooled connection from the ingress to a replica, logged in as a client's own user (read routing).

A :class:`ReplicaLink` speaks the same protocol dialect as the client's connection to the primary: it is
opened with the capabilities the ingress negotiated with the primary for that client (``upstream_caps``:
the same result encoding, so the command relay's readers and the OK re-encoding for the client work on
its answers unchanged), and with the client's own account (:mod:`ingress.replica_auth`). Before a read
it takes the client session's state (:meth:`sync`): default database, ``sql_mode``, ``time_zone`` and
the character sets and collation of the connection -- one round trip, only when something differs from
what the link already has. It keeps the statements it prepared (by SQL text), so a client's prepared
statement is prepared once per link, however many sessions execute it there.

Every failure here raises :class:`ReplicaLinkError` before anything reached the client: the read goes
to the primary instead (``ingress.read_session``).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from dbmux.ingress.errors import IngressError
from dbmux.ingress.protocol import constants as c
from dbmux.ingress.protocol.commands import ComInitDb, ComQuery, ComStmtPrepare
from dbmux.ingress.protocol.generic_packets import ErrPacket
from dbmux.ingress.protocol.handshake import AuthSwitchRequest, HandshakeResponse41, HandshakeV10
from dbmux.ingress.protocol.response import ResponseReader
from dbmux.ingress.replica_auth import NATIVE, native_response
from dbmux.ingress.wire import PacketStream

# What a link never asks for (the hop to a replica is the ingress's own) ...
LINK_STRIP = (c.CLIENT_SSL | c.CLIENT_COMPRESS | c.CLIENT_ZSTD_COMPRESSION_ALGORITHM | c.CLIENT_CONNECT_WITH_DB
              | c.CLIENT_CONNECT_ATTRS)
# ... and what it must get exactly as the primary's hop has it: these decide how answers are encoded.
_ENCODING_CAPS = (c.CLIENT_PROTOCOL_41 | c.CLIENT_DEPRECATE_EOF | c.CLIENT_SESSION_TRACK
                  | c.CLIENT_QUERY_ATTRIBUTES | c.CLIENT_MULTI_RESULTS | c.CLIENT_PS_MULTI_RESULTS)
MAX_PREPARED = 512  # statements a link keeps prepared; past that it forgets them all (COM_STMT_CLOSE)
_TIMEOUT_S = 5.0


class ReplicaLinkError(IngressError):
    """A replica could not take a read (connect, login, session setup, prepare): the read goes to the primary."""


@dataclass(frozen=True, slots=True)
class Settings:
    """The client session's variables a read's answer depends on (carried to the replica)."""

    sql_mode: str | None
    time_zone: str | None
    character_set_client: str | None
    character_set_connection: str | None
    collation_connection: str | None
    character_set_results: str | None

    def set_statement(self) -> str:
        parts = []
        for name in ("sql_mode", "time_zone", "character_set_client", "character_set_connection",
                     "collation_connection", "character_set_results"):
            value = getattr(self, name)
            if value is None:
                if name == "character_set_results":
                    parts.append(f"{name} = NULL")
                continue
            parts.append(f"{name} = {_quote(value)}")
        return "SET SESSION " + ", ".join(parts)


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


class ReplicaLink:
    """An authenticated connection to one replica (see the module docstring)."""

    def __init__(self, stream: PacketStream, caps: int, ext_caps: int) -> None:
        self.stream = stream
        self.caps = caps
        self.ext_caps = ext_caps
        self.db: str | None = None
        self.settings: Settings | None = None
        self.prepared: dict[tuple[str | None, str], int] = {}  # (sql_mode, SQL text) -> the replica's statement id

    @classmethod
    async def open(cls, host: str, port: int, user: bytes, secret: bytes, upstream_caps: int, ext_caps: int,
                   charset: int) -> ReplicaLink:
        """Log ``user`` in to ``host:port`` (``secret``: SHA1 of the password; empty: no password)."""
        loop = asyncio.get_running_loop()
        try:
            _, stream = await asyncio.wait_for(
                loop.create_connection(lambda: PacketStream(max_payload_bytes=1 << 30), host, port), _TIMEOUT_S)
            link = await asyncio.wait_for(cls._login(stream, user, secret, upstream_caps, ext_caps, charset),
                                          _TIMEOUT_S)
        except (OSError, TimeoutError, ConnectionError) as exc:
            raise ReplicaLinkError(f"cannot connect to the replica {host}:{port}: {exc}") from None
        return link

    @classmethod
    async def _login(cls, stream: PacketStream, user: bytes, secret: bytes, upstream_caps: int, ext_caps: int,
                     charset: int) -> ReplicaLink:
        try:
            greet = await stream.read(expected_seq=0)
            if greet.payload[:1] == b"\xff":
                raise ReplicaLinkError(f"the replica refused the connection: {ErrPacket.parse(greet.payload)}")
            hello = HandshakeV10.parse(greet.payload)
            caps = upstream_caps & ~LINK_STRIP
            if (caps ^ (caps & hello.capabilities)) & _ENCODING_CAPS:
                raise ReplicaLinkError("the replica lacks capabilities the primary's connection has")
            caps = (caps & hello.capabilities) | c.CLIENT_PLUGIN_AUTH | c.CLIENT_SECURE_CONNECTION
            token = native_response(secret, hello.auth_plugin_data) if secret else b""
            ext = ext_caps & hello.mariadb_ext_caps
            stream.write(HandshakeResponse41(caps, user, token, None, NATIVE, {}, 1 << 24, charset, ext).encode(), 1)
            await stream.drain()
            answer = await stream.read()
            if answer.payload[:1] == b"\xfe":  # auth switch (a new scramble, or another plugin)
                switch = AuthSwitchRequest.parse(answer.payload)
                if switch.plugin_name != NATIVE:
                    raise ReplicaLinkError(f"the replica asks for authentication plugin {switch.plugin_name}")
                scramble = switch.plugin_data.rstrip(b"\x00")
                stream.write(native_response(secret, scramble) if secret else b"", (answer.last_seq + 1) & 0xFF)
                await stream.drain()
                answer = await stream.read()
        except BaseException:
            stream.close()
            raise
        if answer.payload[:1] != b"\x00":
            stream.close()
            detail = ErrPacket.parse(answer.payload) if answer.payload[:1] == b"\xff" else "an unexpected packet"
            raise ReplicaLinkError(f"the replica refused the login: {detail}")
        return cls(stream, upstream_caps, ext_caps)

    @property
    def alive(self) -> bool:
        return not self.stream.closed

    def close(self) -> None:
        self.stream.close()

    async def _round_trip(self, code: int, payload: bytes) -> ResponseReader:
        """One command of the ingress's own; its whole answer read (raises ReplicaLinkError on ERR)."""
        stream = self.stream
        try:
            stream.write(payload, 0)
            await stream.drain()
            reader = ResponseReader(code, self.caps, self.ext_caps)
            while not reader.complete:
                reader.feed((await asyncio.wait_for(stream.read(), _TIMEOUT_S)).payload)
        except (OSError, TimeoutError, ConnectionError) as exc:
            self.close()
            raise ReplicaLinkError(f"the replica connection failed: {exc}") from None
        if reader.is_error:
            raise ReplicaLinkError(f"the replica answered {reader.final_result}")
        return reader

    async def round_trip_query(self, sql: str) -> None:
        """A statement of the ingress's own (its answer not relayed)."""
        await self._round_trip(c.COM_QUERY, ComQuery(sql.encode()).encode(self.caps))

    async def sync(self, db: str | None, settings: Settings) -> None:
        """Take the client session's database and settings (round trips only for what differs)."""
        if db != self.db:
            if db is None:  # (no command unselects a database)
                raise ReplicaLinkError("the link has a database selected, the session none")
            await self._round_trip(c.COM_INIT_DB, ComInitDb(db.encode("utf-8", "surrogateescape")).encode())
            self.db = db
        if settings != self.settings:
            self.settings = None
            await self._round_trip(c.COM_QUERY, ComQuery(settings.set_statement().encode()).encode(self.caps))
            self.settings = settings

    async def statement_id(self, sql: str) -> int:
        """The replica's id of ``sql`` prepared on this link (prepared now if it is not yet)."""
        key = (self.settings.sql_mode if self.settings else None, sql)  # (sql_mode decides how it parses)
        stmt_id = self.prepared.get(key)
        if stmt_id is not None:
            return stmt_id
        if len(self.prepared) >= MAX_PREPARED:
            for old in self.prepared.values():
                self.stream.write(c.COM_STMT_CLOSE.to_bytes(1, "little") + old.to_bytes(4, "little"), 0)
            self.prepared.clear()
        reader = await self._round_trip(c.COM_STMT_PREPARE,
                                        ComStmtPrepare(sql.encode("utf-8", "surrogateescape")).encode())
        ok = reader.prepare_ok
        if ok is None:
            raise ReplicaLinkError("the replica did not prepare the statement")
        self.prepared[key] = ok.statement_id
        return ok.statement_id
