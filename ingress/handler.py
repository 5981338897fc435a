"""The seam between the listener and the command phase (after vitess ``go/mysql/server.go``'s Handler).

The **listener** (``ingress.server``) owns everything up to an authenticated connection: it accepts
the client, creates its :class:`~ingress.connection.Connection`, runs the connection phase
(:meth:`Connection.handshake`: the primary, the handshake, TLS, authentication, the capture setup),
and, once the client is authenticated, calls :meth:`Handler.serve`. Whatever ends the connection,
the listener decides what is logged and answered (a ProtocolError gets an ERR packet) and closes the
connection.

The **handler** owns the command phase: it classifies each client command, forwards it to the
primary, relays the response, captures committed transactions and publishes them.

Concurrency contract:

- Everything runs on the ingress's one event loop; no method is called from another thread.
- One handler serves every connection: ``serve`` runs once per connection, and the ``serve`` calls
  of different connections interleave (at their awaits and stream callbacks). Per-connection state
  therefore lives in per-connection objects; what the handler shares between connections (the
  publisher) must tolerate interleaved calls.
- ``serve(conn)`` is called with ``conn.machine`` in state ``COMMAND`` and both streams in pull mode;
  from then on the handler alone reads and writes ``conn.client`` and ``conn.upstream`` (in push or
  pull mode) and moves ``conn.machine`` (``COMMAND`` <-> ``AWAIT_RESPONSE``, ``CLOSED`` on COM_QUIT).
  It may ask the connection for connection-level work: ``conn.send_error`` and, after
  COM_CHANGE_USER or COM_RESET_CONNECTION, ``conn.setup_upstream``.
- ``serve`` returns when the client quits, and raises what ended the connection otherwise
  (``ProtocolError``, ``PeerClosed``, ``ConnectionError``...). It does not close the streams; it
  stops whatever it started for the connection before it returns, raises or is cancelled (the
  listener cancels it when the ingress stops). A failure ends that one connection only.
"""

from __future__ import annotations

from typing import Protocol

from dbmux.ingress.connection import Connection


class Handler(Protocol):
    async def serve(self, conn: Connection) -> None:
        """Serve the command phase of the authenticated connection ``conn`` until it ends."""
