import pymysql
import pytest
from pymysql.protocol import MysqlPacket

from dbmux.ingress.protocol import constants as c
from dbmux.ingress.protocol.errors import MalformedPacket, ProtocolError
from dbmux.ingress.protocol.generic_packets import ErrPacket, OkPacket
from dbmux.ingress.protocol.handshake import (
    AuthMoreData,
    AuthNextFactor,
    AuthSwitchRequest,
    HandshakeResponse41,
    HandshakeV10,
    OldAuthSwitchRequest,
    SSLRequest,
    parse_auth_server_packet,
    parse_client_handshake,
)

from .builders import feed_each_way, packet, u8, u16, u32

SCRAMBLE = b"N]<Kd'Y9bLq-e7k0TR*x"  # 20 printable bytes, as servers generate them

# MariaDB 10.11 greeting, laid out field by field from the HandshakeV10 spec
MARIADB_LOW_CAPS = 0xF7FE  # CLIENT_MYSQL (bit 0) clear: MariaDB extended capabilities follow
MARIADB_HIGH_CAPS = 0x81FF
MARIADB_EXT_CAPS = 0x0000001D
MARIADB_GREETING = (
    u8(10)
    + b"5.5.5-10.11.6-MariaDB-0+deb12u1\x00"
    + u32(31)
    + SCRAMBLE[:8] + b"\x00"
    + u16(MARIADB_LOW_CAPS)
    + u8(45)  # utf8mb4_general_ci
    + u16(0x0002)  # SERVER_STATUS_AUTOCOMMIT
    + u16(MARIADB_HIGH_CAPS)
    + u8(21)
    + b"\x00" * 6 + u32(MARIADB_EXT_CAPS)
    + SCRAMBLE[8:] + b"\x00"
    + b"mysql_native_password\x00"
)  # fmt: skip

# A MySQL 8.0 greeting (caching_sha2_password, 10 zero reserved bytes)
MYSQL8_CAPS = 0xDFFFFFFF
MYSQL8_GREETING = (
    u8(10) + b"8.0.36\x00" + u32(9) + SCRAMBLE[:8] + b"\x00" + u16(MYSQL8_CAPS & 0xFFFF) + u8(255)
    + u16(0x0002) + u16(MYSQL8_CAPS >> 16) + u8(21) + b"\x00" * 10 + SCRAMBLE[8:] + b"\x00"
    + b"caching_sha2_password\x00"
)  # fmt: skip

GREETING_TABLE = [
    pytest.param(
        MARIADB_GREETING,
        dict(
            server_version="5.5.5-10.11.6-MariaDB-0+deb12u1", connection_id=31, auth_plugin_data=SCRAMBLE,
            capabilities=MARIADB_HIGH_CAPS << 16 | MARIADB_LOW_CAPS, charset=45, status_flags=2,
            auth_plugin_name="mysql_native_password", mariadb_ext_caps=MARIADB_EXT_CAPS,
        ),
        id="mariadb-10.11",
    ),  # fmt: skip
    pytest.param(
        MYSQL8_GREETING,
        dict(
            server_version="8.0.36", connection_id=9, auth_plugin_data=SCRAMBLE, capabilities=MYSQL8_CAPS,
            charset=255, status_flags=2, auth_plugin_name="caching_sha2_password", mariadb_ext_caps=0,
        ),
        id="mysql-8.0",
    ),  # fmt: skip
]


@pytest.mark.parametrize(("payload", "fields"), GREETING_TABLE)
def test_greeting_parses_and_reencodes_identically(payload, fields):
    for _mode, payloads in feed_each_way(packet(payload)):
        assert len(payloads) == 1
        greeting = HandshakeV10.parse(payloads[0])
        for name, value in fields.items():
            assert getattr(greeting, name) == value, name
        assert greeting.encode() == payload


def test_mariadb_detection():
    assert HandshakeV10.parse(MARIADB_GREETING).is_mariadb
    assert not HandshakeV10.parse(MYSQL8_GREETING).is_mariadb


def test_proxy_can_rewrite_greeting_capabilities():
    import dataclasses

    greeting = HandshakeV10.parse(MARIADB_GREETING)
    without = dataclasses.replace(greeting, capabilities=greeting.capabilities & ~(c.CLIENT_COMPRESS | c.CLIENT_SSL))
    reparsed = HandshakeV10.parse(without.encode())
    assert not reparsed.capabilities & c.CLIENT_COMPRESS
    assert reparsed.auth_plugin_data == SCRAMBLE and reparsed.mariadb_ext_caps == MARIADB_EXT_CAPS


def test_greeting_that_pymysql_accepts():
    """A real client parses our re-encoded greeting to the same values."""
    conn = pymysql.connections.Connection(defer_connect=True, user="u")
    conn._read_packet = lambda *a, **k: MysqlPacket(HandshakeV10.parse(MARIADB_GREETING).encode(), "utf8")
    conn._get_server_information()
    assert conn.salt == SCRAMBLE
    assert conn.server_capabilities == MARIADB_HIGH_CAPS << 16 | MARIADB_LOW_CAPS
    assert conn._auth_plugin_name == "mysql_native_password"


def pymysql_handshake_response(greeting: bytes, **kwargs) -> bytes:
    """Capture the HandshakeResponse41 PyMySQL sends for ``greeting`` (no socket involved)."""
    conn = pymysql.connections.Connection(defer_connect=True, **kwargs)
    conn._read_packet = lambda *a, **k: MysqlPacket(greeting, "utf8")
    conn._get_server_information()
    sent = []
    conn._write_bytes = sent.append
    conn._next_seq_id = 1

    def stop(*a, **k):
        raise LookupError("captured")

    conn._read_packet = stop
    with pytest.raises(LookupError):
        conn._request_authentication()
    return sent[0][4:]


def test_pymysql_handshake_response_roundtrip():
    payload = pymysql_handshake_response(
        MARIADB_GREETING, user="app", password="s3cret", database="shop", program_name="billing"
    )
    for _mode, payloads in feed_each_way(packet(payload, 1)):
        response = parse_client_handshake(payloads[0])
        assert isinstance(response, HandshakeResponse41)
        assert response.username == b"app"
        assert response.database == b"shop"
        assert response.auth_plugin_name == "mysql_native_password"
        assert response.auth_response == pymysql._auth.scramble_native_password(b"s3cret", SCRAMBLE)
        assert response.connect_attrs[b"program_name"] == b"billing"
        assert response.connect_attrs[b"_client_name"] == b"pymysql"
        assert response.encode() == payload


HANDSHAKE_RESPONSE_TABLE = [
    pytest.param(
        HandshakeResponse41(
            capabilities=c.CLIENT_PROTOCOL_41 | c.CLIENT_SECURE_CONNECTION | c.CLIENT_PLUGIN_AUTH | c.CLIENT_MYSQL,
            username=b"root", auth_response=bytes(range(20)), auth_plugin_name="mysql_native_password",
            charset=33,
        ),
        id="secure-connection-1-byte-len",
    ),  # fmt: skip
    pytest.param(
        HandshakeResponse41(
            capabilities=c.CLIENT_PROTOCOL_41 | c.CLIENT_SECURE_CONNECTION | c.CLIENT_PLUGIN_AUTH
            | c.CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA | c.CLIENT_CONNECT_ATTRS | c.CLIENT_CONNECT_WITH_DB,
            username=b"m\xc3\xa4x", auth_response=b"\xff" * 300, database=b"db", auth_plugin_name="client_ed25519",
            connect_attrs={b"_os": b"Linux", b"k": b""}, mariadb_ext_caps=c.MARIADB_CLIENT_STMT_BULK_OPERATIONS,
        ),
        id="mariadb-lenenc-auth-attrs-extcaps",
    ),  # fmt: skip
    pytest.param(
        HandshakeResponse41(
            capabilities=c.CLIENT_PROTOCOL_41 | c.CLIENT_MYSQL | c.CLIENT_ZSTD_COMPRESSION_ALGORITHM
            | c.CLIENT_SECURE_CONNECTION,
            username=b"", zstd_compression_level=3,
        ),
        id="zstd-level",
    ),  # fmt: skip
]


@pytest.mark.parametrize("response", HANDSHAKE_RESPONSE_TABLE)
def test_handshake_response_roundtrip(response):
    wire = response.encode()
    for _mode, payloads in feed_each_way(packet(wire, 1)):
        assert HandshakeResponse41.parse(payloads[0]) == response


def test_mariadb_ext_caps_live_in_filler():
    resp = HANDSHAKE_RESPONSE_TABLE[1].values[0]
    wire = resp.encode()
    assert wire[9 + 19 : 9 + 23] == u32(c.MARIADB_CLIENT_STMT_BULK_OPERATIONS)
    assert wire[:4] == u32(resp.capabilities)


def test_ssl_request_detection():
    wire = u32(c.CLIENT_SSL | c.CLIENT_PROTOCOL_41 | c.CLIENT_MYSQL) + u32(1 << 24) + u8(45) + b"\x00" * 23
    for _mode, payloads in feed_each_way(packet(wire, 1)):
        request = parse_client_handshake(payloads[0])
        assert isinstance(request, SSLRequest)
        assert request.charset == 45
        assert request.encode() == wire
    with pytest.raises(MalformedPacket):  # 32 bytes without CLIENT_SSL is not a valid packet
        parse_client_handshake(u32(c.CLIENT_PROTOCOL_41) + wire[4:])


def test_pre_41_response_rejected_with_actionable_message():
    with pytest.raises(MalformedPacket, match="4.1"):
        HandshakeResponse41.parse(u32(c.CLIENT_LONG_PASSWORD) + b"\x00" * 40)


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (b"\xfemysql_native_password\x00" + SCRAMBLE + b"\x00",
         AuthSwitchRequest("mysql_native_password", SCRAMBLE + b"\x00")),
        (b"\xfe", OldAuthSwitchRequest()),
        (b"\x01\x03", AuthMoreData(b"\x03")),
        (b"\x01\x04", AuthMoreData(b"\x04")),
        (b"\x02authentication_webauthn_client\x00xyz", AuthNextFactor("authentication_webauthn_client", b"xyz")),
        (b"\x00\x00\x00\x02\x00\x00\x00", OkPacket(status_flags=2)),
        (b"\xff\x15\x04#28000Access denied", ErrPacket(1045, "28000", "Access denied")),
    ],
)  # fmt: skip
def test_auth_server_packets(payload, expected):
    for _mode, payloads in feed_each_way(packet(payload, 2)):
        parsed = parse_auth_server_packet(payloads[0], c.CLIENT_PROTOCOL_41)
        assert parsed == expected
        assert parsed.encode() == payload


@pytest.mark.parametrize("payload", [b"", b"\x05abc", b"\xfeno-nul"])
def test_auth_server_packet_garbage_is_protocol_error(payload):
    with pytest.raises(ProtocolError):
        parse_auth_server_packet(payload, c.CLIENT_PROTOCOL_41)


def test_greeting_err_and_wrong_version():
    with pytest.raises(MalformedPacket, match="ERR"):
        HandshakeV10.parse(b"\xff\x10\x04Too many connections")
    with pytest.raises(MalformedPacket, match="version 9"):
        HandshakeV10.parse(b"\x09" + MARIADB_GREETING[1:])


def test_greeting_truncated_everywhere_is_malformed_not_index_error():
    for cut in range(len(MARIADB_GREETING) - len(b"mysql_native_password\x00")):
        try:
            HandshakeV10.parse(MARIADB_GREETING[:cut])
        except MalformedPacket:
            pass
