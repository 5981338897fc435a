"""The proxy's view of one client connection as a transition table (h11 ``_state.py`` style).

``TRANSITIONS[(state, event type)] -> next state``; anything not in the table is illegal: it raises
:class:`IllegalTransition` and leaves the machine in ``ERROR``. The table is coarse on purpose: the
packets inside one command's response (columns, rows, EOFs, multi-results) are tracked by
:class:`~ingress.protocol.response.ResponseReader`, whose completion is fed here as ``ResponseComplete``.

Drawn::

    CONNECTING --TransportConnected--> AWAIT_SERVER_GREETING --HandshakeV10--> AWAIT_CLIENT_HANDSHAKE
    AWAIT_CLIENT_HANDSHAKE --SSLRequest--> SSL_HANDSHAKE --TlsEstablished--> AWAIT_CLIENT_HANDSHAKE_TLS
    AWAIT_CLIENT_HANDSHAKE(_TLS) --HandshakeResponse41--> AUTHENTICATING
    AUTHENTICATING --AuthSwitchRequest/AuthMoreData/AuthNextFactor/AuthSwitchResponse--> AUTHENTICATING
    AUTHENTICATING --OkPacket--> COMMAND          AUTHENTICATING --ErrPacket--> CLOSED
    COMMAND --ComQuery, ComStmtExecute, ...--> AWAIT_RESPONSE --ResponseComplete--> COMMAND
    COMMAND --ComStmtClose/ComStmtSendLongData--> COMMAND (no response)
    COMMAND --ComQuit--> CLOSED                   any state --ConnectionClosed--> CLOSED
"""

from __future__ import annotations

import enum

from . import events as ev
from .errors import IllegalTransition


class ConnectionState(enum.Enum):
    CONNECTING = "connecting"
    AWAIT_SERVER_GREETING = "await_server_greeting"
    AWAIT_CLIENT_HANDSHAKE = "await_client_handshake"
    SSL_HANDSHAKE = "ssl_handshake"
    AWAIT_CLIENT_HANDSHAKE_TLS = "await_client_handshake_tls"
    AUTHENTICATING = "authenticating"
    COMMAND = "command"
    AWAIT_RESPONSE = "await_response"
    CLOSED = "closed"
    ERROR = "error"


S = ConnectionState

_RESPONDED_COMMANDS = (
    ev.ComQuery, ev.ComInitDb, ev.ComPing, ev.ComResetConnection, ev.ComFieldList, ev.ComChangeUser,
    ev.ComSetOption, ev.ComStmtPrepare, ev.ComStmtExecute, ev.ComStmtReset, ev.ComStmtFetch, ev.UnknownCommand,
)  # fmt: skip
_AUTH_ROUND_TRIP = (ev.AuthSwitchRequest, ev.OldAuthSwitchRequest, ev.AuthMoreData, ev.AuthNextFactor, ev.AuthSwitchResponse)

TRANSITIONS: dict[tuple[ConnectionState, type], ConnectionState] = {
    (S.CONNECTING, ev.TransportConnected): S.AWAIT_SERVER_GREETING,
    (S.AWAIT_SERVER_GREETING, ev.HandshakeV10): S.AWAIT_CLIENT_HANDSHAKE,
    (S.AWAIT_SERVER_GREETING, ev.ErrPacket): S.CLOSED,  # e.g. "Too many connections"
    (S.AWAIT_CLIENT_HANDSHAKE, ev.SSLRequest): S.SSL_HANDSHAKE,
    (S.AWAIT_CLIENT_HANDSHAKE, ev.HandshakeResponse41): S.AUTHENTICATING,
    (S.SSL_HANDSHAKE, ev.TlsEstablished): S.AWAIT_CLIENT_HANDSHAKE_TLS,
    (S.AWAIT_CLIENT_HANDSHAKE_TLS, ev.HandshakeResponse41): S.AUTHENTICATING,
    **{(S.AUTHENTICATING, t): S.AUTHENTICATING for t in _AUTH_ROUND_TRIP},
    (S.AUTHENTICATING, ev.OkPacket): S.COMMAND,
    (S.AUTHENTICATING, ev.ErrPacket): S.CLOSED,
    **{(S.COMMAND, t): S.AWAIT_RESPONSE for t in _RESPONDED_COMMANDS},
    (S.COMMAND, ev.ComStmtClose): S.COMMAND,
    (S.COMMAND, ev.ComStmtSendLongData): S.COMMAND,
    (S.COMMAND, ev.ComQuit): S.CLOSED,
    (S.AWAIT_RESPONSE, ev.ResponseComplete): S.COMMAND,
    **{(s, ev.ConnectionClosed): S.CLOSED for s in S if s not in (S.CLOSED, S.ERROR)},
}


class ConnectionStateMachine:
    """Tracks one connection through :data:`TRANSITIONS`."""

    def __init__(self, state: ConnectionState = ConnectionState.CONNECTING) -> None:
        self.state = state

    def can_process(self, event: object) -> bool:
        return (self.state, type(event)) in TRANSITIONS

    def process(self, event: object) -> ConnectionState:
        """Apply ``event``; returns the new state or raises IllegalTransition (state becomes ERROR)."""
        next_state = TRANSITIONS.get((self.state, type(event)))
        if next_state is None:
            previous, self.state = self.state, ConnectionState.ERROR
            raise IllegalTransition(previous, type(event).__name__)
        self.state = next_state
        return next_state
