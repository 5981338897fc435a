"""How a PostgreSQL target's connection encodes values as MySQL sources give them."""

from __future__ import annotations

import uuid as _uuid

import asyncpg

from dbmux.replicator.pg_types import inet_address, inet_binary, time_micros, time_of_micros, uuid_bytes

__all__ = ["install_mysql_codecs"]


async def install_mysql_codecs(conn: asyncpg.Connection) -> None:
    """Values as MySQL sources give them. Text: MySQL clients bind string parameters as bytes (their
    character set is the connection's), and the ingress records them so; PostgreSQL text columns take
    them as UTF-8 text. Invalid UTF-8 still fails, loudly, as it must (the server checks text received
    in binary form too). UUID: MariaDB's, from text or row images (:func:`~replicator.pg_types.uuid_bytes`).
    TIME (targets created before MySQL TIME became INTERVAL): ``timedelta`` values too (:func:`time_micros`).
    Binary format, so COPY (which is binary in asyncpg) takes these columns as well."""
    def encode(value):
        if type(value) is str:
            return value.encode("utf-8")
        if isinstance(value, (bytes, bytearray, memoryview)):
            return bytes(value)
        raise TypeError(f"a text value must be str or bytes, got {type(value).__name__}")

    def decode(data: bytes) -> str:
        return data.decode("utf-8")

    for name in ("text", "varchar", "bpchar"):
        await conn.set_type_codec(name, schema="pg_catalog", encoder=encode, decoder=decode, format="binary")
    await conn.set_type_codec("uuid", schema="pg_catalog", encoder=uuid_bytes, decoder=lambda b: _uuid.UUID(bytes=b),
                              format="binary")
    await conn.set_type_codec("time", schema="pg_catalog", encoder=time_micros, decoder=time_of_micros,
                              format="binary")
    await conn.set_type_codec("inet", schema="pg_catalog", encoder=inet_binary, decoder=inet_address, format="binary")
