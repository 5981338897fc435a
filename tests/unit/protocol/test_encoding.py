import pytest

from dbmux.ingress.protocol.encoding import (
    lenenc_int_size,
    read_fixed_int,
    read_lenenc_int,
    read_lenenc_str,
    read_lenenc_str_or_null,
    read_nul_str,
    read_nul_str_or_eof,
    write_lenenc_int,
    write_lenenc_str,
)
from dbmux.ingress.protocol.errors import MalformedPacket

from .builders import lenenc

# value -> expected wire bytes, written out by hand from the spec
LENENC_TABLE = [
    (0, b"\x00"),
    (250, b"\xfa"),
    (251, b"\xfc\xfb\x00"),
    (252, b"\xfc\xfc\x00"),
    (0xFFFF, b"\xfc\xff\xff"),
    (0x10000, b"\xfd\x00\x00\x01"),
    (0xFFFFFF, b"\xfd\xff\xff\xff"),
    (0x1000000, b"\xfe\x00\x00\x00\x01\x00\x00\x00\x00"),
    (2**64 - 1, b"\xfe" + b"\xff" * 8),
]


@pytest.mark.parametrize(("value", "wire"), LENENC_TABLE)
def test_lenenc_int_table(value, wire):
    assert write_lenenc_int(value) == wire
    assert lenenc_int_size(value) == len(wire)
    # read from the middle of a buffer with trailing bytes: position must land right after the int
    buf = b"xx" + wire + b"rest"
    assert read_lenenc_int(buf, 2) == (value, 2 + len(wire))


@pytest.mark.parametrize(("value", "wire"), LENENC_TABLE)
def test_lenenc_int_truncated_raises_malformed(value, wire):
    for cut in range(len(wire)):
        with pytest.raises(MalformedPacket):
            read_lenenc_int(wire[:cut], 0)


@pytest.mark.parametrize("first", [b"\xfb", b"\xff"])
def test_lenenc_int_rejects_null_and_err_markers(first):
    with pytest.raises(MalformedPacket):
        read_lenenc_int(first + b"\x00" * 8, 0)


def test_write_lenenc_int_rejects_out_of_range():
    with pytest.raises(ValueError):
        write_lenenc_int(2**64)
    with pytest.raises(ValueError):
        write_lenenc_int(-1)


@pytest.mark.parametrize("size", [0, 1, 250, 251, 0xFFFF, 0x10000])
def test_lenenc_str_roundtrip_and_truncation(size):
    value = bytes(range(256)) * (size // 256) + bytes(range(size % 256))
    wire = write_lenenc_str(value)
    assert wire == lenenc(size) + value
    assert read_lenenc_str(wire + b"tail", 0) == (value, len(wire))
    if size:
        with pytest.raises(MalformedPacket):
            read_lenenc_str(wire[:-1], 0)


def test_lenenc_str_or_null():
    assert read_lenenc_str_or_null(b"\xfb\x01a", 0) == (None, 1)
    assert read_lenenc_str_or_null(b"\xfb\x01a", 1) == (b"a", 3)
    with pytest.raises(MalformedPacket):
        read_lenenc_str_or_null(b"", 0)


def test_nul_str():
    assert read_nul_str(b"abc\x00def\x00", 0) == (b"abc", 4)
    assert read_nul_str(b"abc\x00def\x00", 4) == (b"def", 8)
    with pytest.raises(MalformedPacket):
        read_nul_str(b"abc", 0)
    assert read_nul_str_or_eof(b"abc", 1) == (b"bc", 3)


def test_fixed_int():
    assert read_fixed_int(b"\x01\x02\x03", 0, 3) == (0x030201, 3)
    with pytest.raises(MalformedPacket):
        read_fixed_int(b"\x01\x02", 0, 3)
