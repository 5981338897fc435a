"""How the ingress logs a client's own user in to a replica (read routing). Pure.

A read routed to a replica runs as the client's own account, never a broader service account. The
ingress never sees a password; what it sees is ``mysql_native_password``'s challenge-response::

    response = SHA1(password) XOR SHA1(scramble + SHA1(SHA1(password)))

where ``scramble`` is the primary's greeting's and ``SHA1(SHA1(password))`` the account's stored hash
(``authentication_string`` ``*HEX`` in ``mysql.user``). With the stored hash, read from the primary by the
ingress's own account, the response gives back ``SHA1(password)`` (:func:`stage1`), checked against the
hash (a response that does not match the hash gives nothing). ``SHA1(password)`` answers any other
server's challenge for the same account (:func:`native_response`) -- what MySQL's own replication of
``mysql.user`` makes possible, and what ProxySQL does the same way. It is password-equivalent: it lives in
the session's memory only, is never logged, never written anywhere.

Other authentication methods (``ed25519``, ``caching_sha2_password``, ``unix_socket``, PAM, GSSAPI) do not
give the ingress anything it could log in with elsewhere: their sessions read from the primary (counted
with reason ``auth_method``).
"""

from __future__ import annotations

import hashlib

NATIVE = "mysql_native_password"


def _sha1(*parts: bytes) -> bytes:
    h = hashlib.sha1()  # noqa: S324 - the protocol's own hash, not a choice
    for p in parts:
        h.update(p)
    return h.digest()


def _xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b, strict=True))


def stored_hash(authentication_string: str) -> bytes | None:
    """The 20-byte ``SHA1(SHA1(password))`` of a ``*HEX`` authentication string (None for anything else:
    another plugin's data, an empty password, a locked account's ``invalid``)."""
    text = authentication_string.strip()
    if len(text) != 41 or not text.startswith("*"):
        return None
    try:
        return bytes.fromhex(text[1:])
    except ValueError:
        return None


def stage1(scramble: bytes, response: bytes, stored: bytes) -> bytes | None:
    """``SHA1(password)`` from a native-password ``response`` to ``scramble``, if it matches ``stored``."""
    if len(response) != 20 or len(stored) != 20:
        return None
    candidate = _xor(response, _sha1(scramble[:20], stored))
    return candidate if _sha1(candidate) == stored else None


def native_response(secret: bytes, scramble: bytes) -> bytes:
    """The native-password response to ``scramble`` for the account whose ``SHA1(password)`` is ``secret``."""
    return _xor(secret, _sha1(scramble[:20], _sha1(secret)))
