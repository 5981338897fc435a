"""Authentication helpers for pass-through.

The proxy forwards the primary's scramble to the client and the client's answer to the primary, so it
never verifies a password. It only needs to recognise plugins and the caching_sha2_password markers
that tell whether the exchange continues; :func:`scramble_native_password` exists for test clients.
"""

from __future__ import annotations

import enum
import hashlib

from dbmux.ingress.protocol.handshake import AuthMoreData

MYSQL_NATIVE_PASSWORD = "mysql_native_password"
CACHING_SHA2_PASSWORD = "caching_sha2_password"
SHA256_PASSWORD = "sha256_password"
CLIENT_ED25519 = "client_ed25519"  # MariaDB's client-side name of the ed25519 plugin
ED25519 = "ed25519"
MYSQL_CLEAR_PASSWORD = "mysql_clear_password"
DIALOG = "dialog"

KNOWN_PLUGINS = frozenset(
    {
        MYSQL_NATIVE_PASSWORD, CACHING_SHA2_PASSWORD, SHA256_PASSWORD, CLIENT_ED25519, ED25519,
        MYSQL_CLEAR_PASSWORD, DIALOG,
    }
)

CACHING_SHA2_REQUEST_PUBLIC_KEY = b"\x02"
CACHING_SHA2_FAST_AUTH_SUCCESS = b"\x03"
CACHING_SHA2_PERFORM_FULL_AUTH = b"\x04"


class CachingSha2Step(enum.Enum):
    FAST_AUTH_SUCCESS = "fast_auth_success"  # the server's OK follows; the client sends nothing
    PERFORM_FULL_AUTH = "perform_full_auth"  # the client sends the password (TLS) or asks for the RSA key


def is_known_plugin(name: str | None) -> bool:
    return name in KNOWN_PLUGINS


def caching_sha2_step(packet: AuthMoreData) -> CachingSha2Step | None:
    """Interpret an AuthMoreData of caching_sha2_password; None if it is not a status marker (e.g. a key)."""
    if packet.data == CACHING_SHA2_FAST_AUTH_SUCCESS:
        return CachingSha2Step.FAST_AUTH_SUCCESS
    if packet.data == CACHING_SHA2_PERFORM_FULL_AUTH:
        return CachingSha2Step.PERFORM_FULL_AUTH
    return None


def scramble_native_password(password: bytes, salt: bytes) -> bytes:
    """mysql_native_password: SHA1(password) XOR SHA1(salt + SHA1(SHA1(password))); empty password -> b""."""
    if not password:
        return b""
    stage1 = hashlib.sha1(password).digest()
    stage2 = hashlib.sha1(stage1).digest()
    mask = hashlib.sha1(salt[:20] + stage2).digest()
    return bytes(a ^ b for a, b in zip(stage1, mask, strict=True))  # two SHA1 digests


def scramble_caching_sha2(password: bytes, salt: bytes) -> bytes:
    """caching_sha2_password fast-auth scramble: SHA256(pw) XOR SHA256(SHA256(SHA256(pw)) + salt)."""
    if not password:
        return b""
    p1 = hashlib.sha256(password).digest()
    p2 = hashlib.sha256(p1).digest()
    p3 = hashlib.sha256(p2 + salt[:20]).digest()
    return bytes(a ^ b for a, b in zip(p1, p3, strict=True))  # two SHA256 digests
