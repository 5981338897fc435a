"""Connection-phase packets: the server greeting, SSLRequest, the client's handshake response and the
authentication exchange that follows (auth switch, more data).

The proxy rewrites the greeting's and the response's capability flags, so every packet here re-encodes
with ``encode()``; a greeting or response from a real server/client re-encodes to the same bytes.
Text the client's charset governs (user, database, attributes) stays ``bytes``; ASCII protocol text
(server version, plugin names) is ``str`` decoded as latin-1, which never fails and round-trips.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dbmux.ingress.protocol.constants import (
    AUTH_MORE_DATA_HEADER,
    AUTH_SWITCH_HEADER,
    CLIENT_CONNECT_ATTRS,
    CLIENT_CONNECT_WITH_DB,
    CLIENT_MYSQL,
    CLIENT_PLUGIN_AUTH,
    CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA,
    CLIENT_PROTOCOL_41,
    CLIENT_SECURE_CONNECTION,
    CLIENT_SSL,
    CLIENT_ZSTD_COMPRESSION_ALGORITHM,
    ERR_HEADER,
    OK_HEADER,
)
from dbmux.ingress.protocol.encoding import (
    read_eof_str,
    read_fixed_int,
    read_fixed_str,
    read_lenenc_str,
    read_nul_str,
    read_nul_str_or_eof,
    write_fixed_int,
    write_lenenc_str,
    write_nul_str,
)
from dbmux.ingress.protocol.errors import MalformedPacket
from dbmux.ingress.protocol.generic_packets import ErrPacket, OkPacket

PROTOCOL_VERSION_10 = 10
SSL_REQUEST_BYTES = 32
AUTH_NEXT_FACTOR_HEADER = 0x02


def _latin1(raw: bytes) -> str:
    return raw.decode("latin-1")


@dataclass(frozen=True, slots=True)
class HandshakeV10:
    """The server greeting (Protocol::HandshakeV10).

    ``capabilities`` is the 32-bit MySQL field. When its CLIENT_MYSQL bit is 0 the server is MariaDB and
    ``mariadb_ext_caps`` holds the extended capabilities from the last 4 reserved bytes.
    ``auth_plugin_data`` is the whole scramble (normally 20 bytes) without the trailing NUL.
    """

    server_version: str
    connection_id: int
    auth_plugin_data: bytes
    capabilities: int
    charset: int = 0
    status_flags: int = 0
    auth_plugin_name: str | None = None
    mariadb_ext_caps: int = 0
    protocol_version: int = PROTOCOL_VERSION_10

    @property
    def is_mariadb(self) -> bool:
        return not self.capabilities & CLIENT_MYSQL or "mariadb" in self.server_version.lower()

    @classmethod
    def parse(cls, payload: bytes) -> HandshakeV10:
        protocol_version, pos = read_fixed_int(payload, 0, 1)
        if protocol_version != PROTOCOL_VERSION_10:
            if protocol_version == ERR_HEADER:
                raise MalformedPacket("expected a server greeting, got an ERR packet (parse it with ErrPacket)")
            raise MalformedPacket(f"unsupported handshake protocol version {protocol_version}, need 10")
        version, pos = read_nul_str(payload, pos)
        connection_id, pos = read_fixed_int(payload, pos, 4)
        scramble, pos = read_fixed_str(payload, pos, 8)
        pos += 1  # filler
        capabilities, pos = read_fixed_int(payload, pos, 2)
        if pos >= len(payload):  # very old servers stop here
            return cls(_latin1(version), connection_id, scramble, capabilities, protocol_version=protocol_version)
        charset, pos = read_fixed_int(payload, pos, 1)
        status_flags, pos = read_fixed_int(payload, pos, 2)
        caps_high, pos = read_fixed_int(payload, pos, 2)
        capabilities |= caps_high << 16
        auth_data_len, pos = read_fixed_int(payload, pos, 1)
        reserved, pos = read_fixed_str(payload, pos, 10)
        ext_caps = 0 if capabilities & CLIENT_MYSQL else int.from_bytes(reserved[6:], "little")
        if capabilities & CLIENT_SECURE_CONNECTION:
            part2, pos = read_fixed_str(payload, pos, max(13, auth_data_len - 8))
            scramble += part2[:-1] if part2.endswith(b"\x00") else part2
        plugin = None
        if capabilities & CLIENT_PLUGIN_AUTH:
            raw_plugin, pos = read_nul_str_or_eof(payload, pos)
            plugin = _latin1(raw_plugin)
        return cls(
            _latin1(version), connection_id, scramble, capabilities, charset, status_flags, plugin,
            ext_caps, protocol_version,
        )  # fmt: skip

    def encode(self) -> bytes:
        caps = self.capabilities
        out = bytearray((self.protocol_version,))
        out += write_nul_str(self.server_version.encode("latin-1"))
        out += write_fixed_int(self.connection_id, 4)
        if len(self.auth_plugin_data) < 8:
            raise ValueError("auth_plugin_data must be at least 8 bytes")
        out += self.auth_plugin_data[:8] + b"\x00"
        out += write_fixed_int(caps & 0xFFFF, 2)
        out += write_fixed_int(self.charset, 1) + write_fixed_int(self.status_flags, 2)
        out += write_fixed_int(caps >> 16 & 0xFFFF, 2)
        # the length byte is 0 without CLIENT_PLUGIN_AUTH, unless the scramble is longer than the 13-byte
        # default part 2 (a reader must then be told how much to read)
        long_scramble = len(self.auth_plugin_data) + 1 - 8 > 13
        out.append(len(self.auth_plugin_data) + 1 if caps & CLIENT_PLUGIN_AUTH or long_scramble else 0)
        if caps & CLIENT_MYSQL:
            out += bytes(10)
        else:
            out += bytes(6) + write_fixed_int(self.mariadb_ext_caps, 4)
        if caps & CLIENT_SECURE_CONNECTION:
            part2 = self.auth_plugin_data[8:] + b"\x00"
            out += part2.ljust(13, b"\x00")
        if caps & CLIENT_PLUGIN_AUTH:
            out += write_nul_str((self.auth_plugin_name or "").encode("latin-1"))
        return bytes(out)


def _read_fixed_header(payload: bytes) -> tuple[int, int, int, int, int]:
    """capabilities, max_packet, charset, mariadb_ext_caps, position after the 23-byte filler."""
    capabilities, pos = read_fixed_int(payload, 0, 4)
    if not capabilities & CLIENT_PROTOCOL_41:
        raise MalformedPacket(
            "client sent a pre-4.1 HandshakeResponse320 (no CLIENT_PROTOCOL_41); this proxy supports 4.1+ clients only"
        )
    max_packet, pos = read_fixed_int(payload, pos, 4)
    charset, pos = read_fixed_int(payload, pos, 1)
    filler, pos = read_fixed_str(payload, pos, 23)
    ext_caps = 0 if capabilities & CLIENT_MYSQL else int.from_bytes(filler[19:], "little")
    return capabilities, max_packet, charset, ext_caps, pos


def _encode_fixed_header(capabilities: int, max_packet: int, charset: int, ext_caps: int) -> bytes:
    out = write_fixed_int(capabilities, 4) + write_fixed_int(max_packet, 4) + write_fixed_int(charset, 1)
    if capabilities & CLIENT_MYSQL:
        return out + bytes(23)
    return out + bytes(19) + write_fixed_int(ext_caps, 4)


@dataclass(frozen=True, slots=True)
class SSLRequest:
    """The 32-byte short handshake response asking to switch to TLS."""

    capabilities: int
    max_packet: int = 1 << 24
    charset: int = 0
    mariadb_ext_caps: int = 0

    @classmethod
    def parse(cls, payload: bytes) -> SSLRequest:
        if len(payload) != SSL_REQUEST_BYTES:
            raise MalformedPacket(f"SSLRequest is {SSL_REQUEST_BYTES} bytes, got {len(payload)}")
        capabilities, max_packet, charset, ext_caps, _ = _read_fixed_header(payload)
        if not capabilities & CLIENT_SSL:
            raise MalformedPacket("32-byte handshake response without CLIENT_SSL")
        return cls(capabilities, max_packet, charset, ext_caps)

    def encode(self) -> bytes:
        return _encode_fixed_header(
            self.capabilities | CLIENT_SSL, self.max_packet, self.charset, self.mariadb_ext_caps
        )


@dataclass(frozen=True, slots=True)
class HandshakeResponse41:
    """The client's handshake response (Protocol::HandshakeResponse41).

    ``connect_attrs`` keeps the wire order; it is excluded from hashing (dicts are unhashable).
    """

    capabilities: int
    username: bytes
    auth_response: bytes = b""
    database: bytes | None = None
    auth_plugin_name: str | None = None
    connect_attrs: dict[bytes, bytes] = field(default_factory=dict, hash=False)
    max_packet: int = 1 << 24
    charset: int = 0
    mariadb_ext_caps: int = 0
    zstd_compression_level: int | None = None

    @classmethod
    def parse(cls, payload: bytes) -> HandshakeResponse41:
        capabilities, max_packet, charset, ext_caps, pos = _read_fixed_header(payload)
        username, pos = read_nul_str(payload, pos)
        if capabilities & CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA:
            auth_response, pos = read_lenenc_str(payload, pos)
        elif capabilities & CLIENT_SECURE_CONNECTION:
            auth_len, pos = read_fixed_int(payload, pos, 1)
            auth_response, pos = read_fixed_str(payload, pos, auth_len)
        else:
            auth_response, pos = read_nul_str(payload, pos)
        database = plugin = None
        if capabilities & CLIENT_CONNECT_WITH_DB and pos < len(payload):
            database, pos = read_nul_str_or_eof(payload, pos)
        if capabilities & CLIENT_PLUGIN_AUTH and pos < len(payload):
            raw_plugin, pos = read_nul_str_or_eof(payload, pos)
            plugin = _latin1(raw_plugin)
        attrs: dict[bytes, bytes] = {}
        if capabilities & CLIENT_CONNECT_ATTRS and pos < len(payload):
            block, pos = read_lenenc_str(payload, pos)
            attrs = _decode_attrs(block)
        zstd_level = None
        if capabilities & CLIENT_ZSTD_COMPRESSION_ALGORITHM and pos < len(payload):
            zstd_level, pos = read_fixed_int(payload, pos, 1)
        if pos != len(payload):
            raise MalformedPacket(f"handshake response has {len(payload) - pos} unexpected trailing bytes")
        return cls(
            capabilities, username, auth_response, database, plugin, attrs, max_packet, charset, ext_caps,
            zstd_level,
        )  # fmt: skip

    def encode(self) -> bytes:
        caps = self.capabilities
        out = bytearray(_encode_fixed_header(caps, self.max_packet, self.charset, self.mariadb_ext_caps))
        out += write_nul_str(self.username)
        if caps & CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA:
            out += write_lenenc_str(self.auth_response)
        elif caps & CLIENT_SECURE_CONNECTION:
            if len(self.auth_response) > 255:
                raise ValueError("auth_response longer than 255 bytes needs CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA")
            out += write_fixed_int(len(self.auth_response), 1) + self.auth_response
        else:
            out += write_nul_str(self.auth_response)
        # Optional trailing fields are positional: a later field present forces the earlier ones out
        # (as empty strings), otherwise the parser would read the later field in the earlier one's place.
        zstd = caps & CLIENT_ZSTD_COMPRESSION_ALGORITHM and self.zstd_compression_level is not None
        attrs = caps & CLIENT_CONNECT_ATTRS and (self.connect_attrs or self.auth_plugin_name is not None or zstd)
        plugin = caps & CLIENT_PLUGIN_AUTH and (self.auth_plugin_name is not None or attrs or zstd)
        database = caps & CLIENT_CONNECT_WITH_DB and (self.database is not None or plugin or attrs or zstd)
        if database:
            out += write_nul_str(self.database or b"")
        if plugin:
            out += write_nul_str((self.auth_plugin_name or "").encode("latin-1"))
        if attrs:
            out += write_lenenc_str(encode_attrs(self.connect_attrs))
        if zstd:
            out += write_fixed_int(self.zstd_compression_level or 0, 1)
        return bytes(out)


def _decode_attrs(block: bytes) -> dict[bytes, bytes]:
    attrs: dict[bytes, bytes] = {}
    pos = 0
    while pos < len(block):
        key, pos = read_lenenc_str(block, pos)
        value, pos = read_lenenc_str(block, pos)
        attrs[key] = value
    return attrs


def encode_attrs(attrs: dict[bytes, bytes]) -> bytes:
    """Encode connection attributes as key/value length-encoded string pairs (without the outer length)."""
    return b"".join(write_lenenc_str(k) + write_lenenc_str(v) for k, v in attrs.items())


def parse_client_handshake(payload: bytes) -> SSLRequest | HandshakeResponse41:
    """Parse the client's first packet: an SSLRequest (32 bytes, CLIENT_SSL) or a full response."""
    if len(payload) == SSL_REQUEST_BYTES:
        return SSLRequest.parse(payload)
    return HandshakeResponse41.parse(payload)


@dataclass(frozen=True, slots=True)
class AuthSwitchRequest:
    """Server asks the client to re-authenticate with another plugin (0xFE plugin<NUL> data<EOF>).

    ``plugin_data`` is kept raw (for mysql_native_password it is the 20-byte scramble plus a NUL).
    """

    plugin_name: str
    plugin_data: bytes = b""

    @classmethod
    def parse(cls, payload: bytes) -> AuthSwitchRequest:
        if not payload or payload[0] != AUTH_SWITCH_HEADER or len(payload) < 2:
            raise MalformedPacket("AuthSwitchRequest must be 0xFE followed by a plugin name")
        name, pos = read_nul_str(payload, 1)
        data, _ = read_eof_str(payload, pos)
        return cls(_latin1(name), data)

    def encode(self) -> bytes:
        return b"\xfe" + write_nul_str(self.plugin_name.encode("latin-1")) + self.plugin_data


@dataclass(frozen=True, slots=True)
class OldAuthSwitchRequest:
    """A bare 0xFE: switch to the pre-4.1 ``mysql_old_password`` scheme with the greeting's scramble."""

    def encode(self) -> bytes:
        return b"\xfe"


@dataclass(frozen=True, slots=True)
class AuthMoreData:
    """Extra authentication data from the server (0x01 data<EOF>), e.g. caching_sha2 fast-auth markers."""

    data: bytes

    @classmethod
    def parse(cls, payload: bytes) -> AuthMoreData:
        if not payload or payload[0] != AUTH_MORE_DATA_HEADER:
            raise MalformedPacket("AuthMoreData must start with 0x01")
        return cls(payload[1:])

    def encode(self) -> bytes:
        return b"\x01" + self.data


@dataclass(frozen=True, slots=True)
class AuthNextFactor:
    """MySQL multi-factor authentication: continue with the next plugin (0x02 plugin<NUL> data<EOF>)."""

    plugin_name: str
    plugin_data: bytes = b""

    @classmethod
    def parse(cls, payload: bytes) -> AuthNextFactor:
        if not payload or payload[0] != AUTH_NEXT_FACTOR_HEADER:
            raise MalformedPacket("AuthNextFactor must start with 0x02")
        name, pos = read_nul_str(payload, 1)
        data, _ = read_eof_str(payload, pos)
        return cls(_latin1(name), data)

    def encode(self) -> bytes:
        return b"\x02" + write_nul_str(self.plugin_name.encode("latin-1")) + self.plugin_data


@dataclass(frozen=True, slots=True)
class AuthSwitchResponse:
    """Any client packet during the authentication exchange; opaque plugin data, forwarded raw."""

    data: bytes

    @classmethod
    def parse(cls, payload: bytes) -> AuthSwitchResponse:
        return cls(bytes(payload))

    def encode(self) -> bytes:
        return self.data


AuthServerPacket = OkPacket | ErrPacket | AuthSwitchRequest | OldAuthSwitchRequest | AuthMoreData | AuthNextFactor


def parse_auth_server_packet(payload: bytes, capabilities: int) -> AuthServerPacket:
    """Parse a server packet of the authentication exchange (after the handshake response or COM_CHANGE_USER)."""
    if not payload:
        raise MalformedPacket("empty server packet during authentication")
    header = payload[0]
    if header == OK_HEADER:
        return OkPacket.parse(payload, capabilities)
    if header == ERR_HEADER:
        return ErrPacket.parse(payload, capabilities)
    if header == AUTH_SWITCH_HEADER:
        return OldAuthSwitchRequest() if len(payload) == 1 else AuthSwitchRequest.parse(payload)
    if header == AUTH_MORE_DATA_HEADER:
        return AuthMoreData.parse(payload)
    if header == AUTH_NEXT_FACTOR_HEADER:
        return AuthNextFactor.parse(payload)
    raise MalformedPacket(f"unexpected packet header 0x{header:02X} during authentication")


__all__ = [
    "AuthMoreData",
    "AuthNextFactor",
    "AuthServerPacket",
    "AuthSwitchRequest",
    "AuthSwitchResponse",
    "HandshakeResponse41",
    "HandshakeV10",
    "OldAuthSwitchRequest",
    "SSLRequest",
    "encode_attrs",
    "parse_auth_server_packet",
    "parse_client_handshake",
]
