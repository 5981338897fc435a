"""The credential a MySQL/MariaDB server stores for a clear-text password, computed the way it does.

These let producers replace a clear-text password in a statement by the stored form, which a replica
accepts in place of the password (``IDENTIFIED BY PASSWORD '<hash>'``, ``USING '<hash>'``) and which
gives the account the same credential. Only unsalted schemes can be reproduced; salted ones
(``caching_sha2_password``, ``sha256_password``, MariaDB ``parsec``) cannot, and :mod:`.passwords`
withholds those passwords instead. An empty password is stored as an empty string by every scheme here.
"""

from __future__ import annotations

import base64
import hashlib

__all__ = ["PLUGIN_HASHES", "ed25519_password_hash", "native_password_hash", "old_password_hash"]


def _bytes(password: str | bytes) -> bytes:
    # a str holding a statement's bytes as UTF-8 with surrogateescape (how the ingress holds what a
    # client sent in any character set): the password's bytes as sent
    return password.encode("utf-8", "surrogateescape") if isinstance(password, str) else password


def native_password_hash(password: str | bytes) -> str:
    """``mysql_native_password`` / ``PASSWORD('pw')``: ``*`` + upper-case hex SHA1(SHA1(pw))."""
    pw = _bytes(password)
    if not pw:
        return ""
    return "*" + hashlib.sha1(hashlib.sha1(pw).digest()).hexdigest().upper()


def old_password_hash(password: str | bytes) -> str:
    """``mysql_old_password`` / ``OLD_PASSWORD('pw')`` (pre-4.1): 16 lower-case hex digits."""
    nr, add, nr2 = 1345345333, 7, 0x12345671
    mask = 0xFFFFFFFF  # the server computes in an unsigned long; only the low 31 bits are kept
    for c in _bytes(password):
        if c in (0x20, 0x09):  # spaces and tabs do not count
            continue
        nr ^= (((nr & 63) + add) * c + (nr << 8)) & mask
        nr2 = (nr2 + ((nr2 << 8) ^ nr)) & mask
        add = (add + c) & mask
    if not _bytes(password):
        return ""
    return f"{nr & 0x7FFFFFFF:08x}{nr2 & 0x7FFFFFFF:08x}"


# ed25519 (RFC 8032 arithmetic, extended coordinates): MariaDB's auth_ed25519 stores the public key of
# the key pair whose secret is SHA-512(password) -- crypto_sign_keypair(pk, password, len) -- in base64
# without padding. Public-key derivation involves no secret beyond the password itself.
_P = 2**255 - 19
_D = -121665 * pow(121666, _P - 2, _P) % _P
_SQRT_M1 = pow(2, (_P - 1) // 4, _P)

_Point = tuple[int, int, int, int]


def _add(a: _Point, b: _Point) -> _Point:
    x1, y1, z1, t1 = a
    x2, y2, z2, t2 = b
    aa = (y1 - x1) * (y2 - x2) % _P
    bb = (y1 + x1) * (y2 + x2) % _P
    cc = 2 * t1 * t2 * _D % _P
    dd = 2 * z1 * z2 % _P
    e, f, g, h = bb - aa, dd - cc, dd + cc, bb + aa
    return (e * f % _P, g * h % _P, f * g % _P, e * h % _P)


def _base_point() -> _Point:
    y = 4 * pow(5, _P - 2, _P) % _P
    x2 = (y * y - 1) * pow(_D * y * y + 1, _P - 2, _P) % _P
    x = pow(x2, (_P + 3) // 8, _P)
    if (x * x - x2) % _P:
        x = x * _SQRT_M1 % _P
    if x & 1:
        x = _P - x
    return (x, y, 1, x * y % _P)


_BASE = _base_point()


def ed25519_password_hash(password: str | bytes) -> str:
    """MariaDB ``ed25519`` / ``IDENTIFIED VIA ed25519 USING PASSWORD('pw')``: base64 public key, unpadded."""
    pw = _bytes(password)
    if not pw:
        return ""
    digest = hashlib.sha512(pw).digest()
    scalar = int.from_bytes(digest[:32], "little")
    scalar &= (1 << 254) - 8
    scalar |= 1 << 254
    q: _Point = (0, 1, 1, 0)
    p = _BASE
    while scalar:
        if scalar & 1:
            q = _add(q, p)
        p = _add(p, p)
        scalar >>= 1
    zinv = pow(q[2], _P - 2, _P)
    x, y = q[0] * zinv % _P, q[1] * zinv % _P
    key = (y | ((x & 1) << 255)).to_bytes(32, "little")
    return base64.b64encode(key).decode().rstrip("=")


# ``IDENTIFIED VIA|WITH <plugin> USING|AS PASSWORD('pw')``: the plugins whose stored form is reproducible.
PLUGIN_HASHES = {
    "mysql_native_password": native_password_hash,
    "mysql_old_password": old_password_hash,
    "ed25519": ed25519_password_hash,
}
