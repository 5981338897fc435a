"""TLS for the ingress's two hops, on memory BIOs.

MySQL upgrades to TLS in the middle of its own protocol (SSLRequest, then the TLS handshake on the
same socket). A client sends its ClientHello right behind the SSLRequest, so those bytes may already
sit in the ingress's receive buffer; ``asyncio``'s ``start_tls`` would lose them. :class:`TlsLayer`
is an ``ssl.SSLObject`` over memory BIOs: it takes the already-buffered bytes, and the stream code
passes every received chunk through :meth:`decrypt` and every outgoing chunk through
:meth:`encrypt`.
"""

from __future__ import annotations

import ssl
from collections.abc import Awaitable, Callable

from dbmux.core.errors import ConfigError
from dbmux.core.mysql_connect import client_context


class TlsLayer:
    def __init__(self, ctx: ssl.SSLContext, *, server_side: bool, server_hostname: str | None = None) -> None:
        self._in = ssl.MemoryBIO()
        self._out = ssl.MemoryBIO()
        self._obj = ctx.wrap_bio(self._in, self._out, server_side=server_side, server_hostname=server_hostname)

    async def handshake(self, recv: Callable[[], Awaitable[bytes]], send: Callable[[bytes], None],
                        initial: bytes = b"") -> None:
        """Run the handshake: ``recv()`` returns the next ciphertext received (b"" when the peer
        closed), ``send(data)`` sends ciphertext as is."""
        if initial:
            self._in.write(initial)
        while True:
            try:
                self._obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                pending = self._out.read()
                if pending:
                    send(pending)
                data = await recv()
                if not data:
                    raise ConnectionResetError("connection closed during the TLS handshake") from None
                self._in.write(data)
        pending = self._out.read()
        if pending:
            send(pending)

    def decrypt(self, data: bytes) -> bytes:
        """Feed received ciphertext; return whatever plaintext is complete (possibly b"")."""
        self._in.write(data)
        chunks = []
        while True:
            try:
                chunk = self._obj.read(65536)
            except ssl.SSLWantReadError:
                break
            except ssl.SSLZeroReturnError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)

    def encrypt(self, plaintext: bytes) -> bytes:
        self._obj.write(plaintext)
        return self._out.read()

    @property
    def version(self) -> str | None:
        return self._obj.version()


def server_context(cert: str, key: str) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        ctx.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError("ingress.tls_cert", f"cannot load the certificate/key: {exc}",
                          "point tls_cert/tls_key at a PEM certificate chain and its private key") from None
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def upstream_context(ca: str = "") -> ssl.SSLContext:
    """Client context towards the primary: verified against ``ca`` when given, else encryption only
    (the primary's certificate is usually self-signed)."""
    return client_context(ca)
