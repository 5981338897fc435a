"""dbmux's own connections to MySQL/MariaDB servers (aiomysql and PyMySQL), with TLS by policy.

A ``mysql://`` URL may carry ``?tls=preferred|required|disabled`` and ``&tls_ca=FILE``; the primary's
URLs get ``primary.tls`` / ``primary.tls_ca`` (see :meth:`dbmux.core.config.PrimaryConfig.dsn`), so the
binlog reader, backfill, verify, status, the source-schema reader and the shard-map commands follow
the same policy as the ingress. Without ``tls`` in the URL (target URLs, say) nothing is encrypted.

- ``preferred``: TLS when the server offers it, plain otherwise;
- ``required``: the connection fails with a clear error unless it is encrypted;
- ``disabled``: never TLS.

``tls_ca`` verifies the server's certificate against that file (its host name is not checked: the
certificates of database servers are usually issued for other names); without it the traffic is
encrypted without verification.
"""

from __future__ import annotations

import ssl
from typing import Any

import aiomysql
import pymysql

from dbmux.core.dsn import Dsn
from dbmux.core.errors import DbmuxError

TLS_MODES = ("preferred", "required", "disabled")


class MySQLTlsError(DbmuxError):
    """A connection could not be made with the TLS policy asked for (a configuration problem: waiting
    and retrying does not help)."""


def tls_policy(dsn: Dsn) -> tuple[str, str]:
    """``(mode, ca)`` from the URL's ``tls`` / ``tls_ca`` parameters (``disabled`` when absent)."""
    params = dict(dsn.params)
    mode = params.get("tls", "disabled")
    if mode not in TLS_MODES:
        raise ValueError(f"{dsn.redacted()}: tls={mode!r} is not one of {', '.join(TLS_MODES)}")
    return mode, params.get("tls_ca", "")


def client_context(ca: str = "") -> ssl.SSLContext:
    """Client TLS context: verified against ``ca`` when given, else encryption only."""
    if ca:
        ctx = ssl.create_default_context(cafile=ca)
        ctx.check_hostname = False
        return ctx
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


async def connect_aiomysql(dsn: Dsn, **kwargs: Any) -> aiomysql.Connection:
    """``aiomysql.connect`` to ``dsn`` (host, port, user, password; ``kwargs`` for the rest) with its TLS
    policy. aiomysql upgrades to TLS exactly when given a context and the server offers it."""
    mode, ca = tls_policy(dsn)
    if mode != "disabled":
        kwargs["ssl"] = client_context(ca)
    try:
        conn = await aiomysql.connect(host=dsn.host, port=dsn.port, user=dsn.user, password=dsn.password,
                                      **kwargs)
    except Exception as exc:
        _raise_if_not_verified(dsn, ca, exc)
        raise
    if mode == "required":
        try:
            async with conn.cursor() as cur:
                await cur.execute("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
                row = await cur.fetchone()
        except BaseException:
            conn.close()
            raise
        if not row or not row[1]:
            conn.close()
            raise MySQLTlsError(f"{dsn.redacted()}: tls=required but the server does not offer TLS")
    return conn


def pymysql_tls_kwargs(dsn: Dsn) -> dict[str, Any]:
    """PyMySQL arguments for ``dsn``'s TLS policy. PyMySQL refuses to go on unencrypted when given a
    context and the server does not offer TLS; :func:`connect_pymysql` falls back for ``preferred``."""
    mode, ca = tls_policy(dsn)
    if mode == "disabled":
        return {"ssl_disabled": True}
    return {"ssl": client_context(ca)}


def connect_pymysql(dsn: Dsn, **kwargs: Any) -> pymysql.connections.Connection[Any]:
    """``pymysql.connect(**kwargs)`` (the connection's own arguments, host and credentials included) with
    ``dsn``'s TLS policy."""
    mode, ca = tls_policy(dsn)
    try:
        conn = pymysql.connect(**kwargs, **pymysql_tls_kwargs(dsn))
    except pymysql.err.OperationalError as exc:
        _raise_if_not_verified(dsn, ca, exc)
        if mode == "preferred" and _no_tls_offered(exc):
            return pymysql.connect(**kwargs, ssl_disabled=True)
        if mode == "required" and _no_tls_offered(exc):
            raise MySQLTlsError(f"{dsn.redacted()}: tls=required but the server does not offer TLS") from None
        raise
    if mode == "required" and not _encrypted(conn):  # (older PyMySQL went on unencrypted)
        conn.close()
        raise MySQLTlsError(f"{dsn.redacted()}: tls=required but the server does not offer TLS")
    return conn


def _raise_if_not_verified(dsn: Dsn, ca: str, exc: BaseException) -> None:
    """A certificate ``tls_ca`` does not vouch for is a configuration problem, not a lost connection:
    say so (the drivers report it as "can't connect", with the cause somewhere in the chain)."""
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            return
        if isinstance(seen, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in str(seen):
            raise MySQLTlsError(f"{dsn.redacted()}: the server's TLS certificate is not verified by tls_ca "
                                f"{ca!r}: {getattr(seen, 'verify_message', '') or seen}") from None
        seen = seen.__cause__ or seen.__context__


def _no_tls_offered(exc: Exception) -> bool:
    return bool(exc.args) and exc.args[0] == 2026 and "support" in str(exc.args[-1])


def _encrypted(conn: pymysql.connections.Connection[Any]) -> bool:
    with conn.cursor(pymysql.cursors.Cursor) as cur:  # (the connection's own cursor class may make dicts)
        cur.execute("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
        row = cur.fetchone()
    return bool(row and row[1])
