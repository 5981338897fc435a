import datetime
import hashlib
import struct

import pytest

from dbmux.ingress.protocol import constants as c
from dbmux.ingress.protocol.auth import (
    CachingSha2Step,
    caching_sha2_step,
    is_known_plugin,
    scramble_native_password,
)
from dbmux.ingress.protocol.binary_values import ParamType
from dbmux.ingress.protocol.errors import MalformedPacket
from dbmux.ingress.protocol.handshake import AuthMoreData
from dbmux.ingress.protocol.resultset import BinaryRow, ColumnCount, ColumnDefinition41, StmtPrepareOk, TextRow

from .builders import column_def, feed_each_way, lstr, packet, text_row, u8, u16, u32


def test_scramble_native_password_matches_the_documented_formula():
    salt = b"12345678901234567890"
    stage1 = hashlib.sha1(b"pw").digest()
    mask = hashlib.sha1(salt + hashlib.sha1(stage1).digest()).digest()
    expected = bytes(a ^ b for a, b in zip(stage1, mask, strict=True))
    assert scramble_native_password(b"pw", salt) == expected
    assert scramble_native_password(b"", salt) == b""


def test_plugins_and_caching_sha2_markers():
    for name in ("mysql_native_password", "caching_sha2_password", "client_ed25519", "ed25519"):
        assert is_known_plugin(name)
    assert not is_known_plugin("auth_gssapi_client_x")
    assert caching_sha2_step(AuthMoreData(b"\x03")) is CachingSha2Step.FAST_AUTH_SUCCESS
    assert caching_sha2_step(AuthMoreData(b"\x04")) is CachingSha2Step.PERFORM_FULL_AUTH
    assert caching_sha2_step(AuthMoreData(b"-----BEGIN PUBLIC KEY-----")) is None


def test_column_definition_roundtrip():
    payload = column_def(b"price", c.MYSQL_TYPE_NEWDECIMAL, flags=c.NOT_NULL_FLAG | c.UNSIGNED_FLAG, decimals=2)
    for _mode, payloads in feed_each_way(packet(payload, 2)):
        col = ColumnDefinition41.parse(payloads[0])
        assert (col.name, col.type, col.decimals, col.schema, col.table) == (b"price", 246, 2, b"db", b"t")
        assert col.param_type == ParamType(c.MYSQL_TYPE_NEWDECIMAL, True)
        assert col.encode() == payload


def test_mariadb_extended_metadata_column():
    payload = (
        lstr(b"def") + lstr(b"db") + lstr(b"t") + lstr(b"t") + lstr(b"j") + lstr(b"j") + lstr(b"\x01\x04json")
        + b"\x0c" + u16(45) + u32(100) + u8(c.MYSQL_TYPE_BLOB) + u16(0) + u8(0) + b"\x00\x00"
    )  # fmt: skip
    col = ColumnDefinition41.parse(payload, c.MARIADB_CLIENT_EXTENDED_METADATA, capabilities=0)
    assert col.extended_metadata == b"\x01\x04json" and col.type == c.MYSQL_TYPE_BLOB
    assert col.encode() == payload
    with pytest.raises(MalformedPacket):  # without the capability the layout does not fit
        ColumnDefinition41.parse(payload)


def test_text_row_with_null_and_count_check():
    payload = text_row(b"1", None, b"")
    assert TextRow.parse(payload).values == (b"1", None, b"")
    assert TextRow.parse(payload).encode() == payload
    with pytest.raises(MalformedPacket):
        TextRow.parse(payload, column_count=2)


def test_binary_row_bitmap_offset_two():
    types = [ParamType(c.MYSQL_TYPE_LONG), ParamType(c.MYSQL_TYPE_VAR_STRING), ParamType(c.MYSQL_TYPE_DATE)]
    # NULL in column 1 -> bit 1 + 2 = 3
    payload = b"\x00" + u8(0b1000) + struct.pack("<i", -5) + u8(4) + u16(2000) + u8(1) + u8(2)
    row = BinaryRow.parse(payload, types)
    assert row.values == (-5, None, datetime.date(2000, 1, 2))
    assert row.encode(types) == payload


def test_column_count_and_prepare_ok():
    assert ColumnCount.parse(b"\xfc\x00\x01").count == 256
    with pytest.raises(MalformedPacket):
        ColumnCount.parse(b"\x00")
    prep = StmtPrepareOk.parse(b"\x00" + u32(3) + u16(2) + u16(1) + b"\x00" + u16(4))
    assert prep == StmtPrepareOk(3, 2, 1, 4)
    assert prep.encode() == b"\x00" + u32(3) + u16(2) + u16(1) + b"\x00" + u16(4)
