"""The ingress's error root: every error the ingress raises on purpose is an :class:`IngressError`
(the protocol codec's :class:`~dbmux.ingress.protocol.errors.ProtocolError` included)."""

from __future__ import annotations

from dbmux.core.errors import DbmuxError

__all__ = ["IngressError"]


class IngressError(DbmuxError):
    """Root of the ingress's errors. They end one client session, never the proxy."""
