"""The proxy's view of one client connection as a transition table (h11 ``_state.py`` style).

``TRANSITIONS[(state, event type)] -> next state``; anything not in the table is illegal: it raises
:class:`IllegalTransition` (a ProtocolError: the session that sent it ends, no other) and leaves the
machine in ``ERROR``. The table is coarse on purpose: the packets inside one command's response
(columns, rows, EOFs, multi-results, the authentication round trips) are tracked by
:class:`~ingress.protocol.response.ResponseReader`, whose completion is fed here as ``ResponseComplete``.

The live session drives it: the connection phase (``ingress.connection``) up to ``COMMAND``, the
command relay (``ingress.relay``) between ``COMMAND`` and ``AWAIT_RESPONSE`` -- one command in flight
at a time is this machine's ``AWAIT_RESPONSE`` -- and ``ConnectionClosed`` when the session ends.
Events are applied by type (:meth:`ConnectionStateMachine.process_type`, ``process_command`` for a
command byte), so the relay builds no event object for a command it forwards raw; a transition is one
dict lookup on the current state's row and allocates nothing.

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
from typing import NoReturn, TypeAlias

from dbmux.ingress.protocol import events as ev
from dbmux.ingress.protocol.commands import COMMAND_TYPES
from dbmux.ingress.protocol.errors import IllegalTransition


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
_AUTH_ROUND_TRIP = (ev.AuthSwitchRequest, ev.OldAuthSwitchRequest, ev.AuthMoreData, ev.AuthNextFactor,
                    ev.AuthSwitchResponse)

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


# TRANSITIONS by state, for the live session: _ROWS[state][event type] = (next state, _ROWS[next state]);
# a state that takes commands also has every command byte as a key (process_command: one lookup).
_Row: TypeAlias = "dict[type | int, tuple[ConnectionState, _Row]]"
_ROWS: dict[ConnectionState, _Row] = {s: {} for s in ConnectionState}
for (_state, _event_type), _target in TRANSITIONS.items():
    _ROWS[_state][_event_type] = (_target, _ROWS[_target])
_BYTE_TYPES = [(code, COMMAND_TYPES.get(code, ev.UnknownCommand)) for code in range(256)]
for _row in _ROWS.values():
    _row.update({code: _row[t] for code, t in _BYTE_TYPES if t in _row})
del _state, _event_type, _target, _row, _BYTE_TYPES
_ERROR_ROW = _ROWS[S.ERROR]


class ConnectionStateMachine:
    """Tracks one connection through :data:`TRANSITIONS`."""

    __slots__ = ("state", "_row")

    def __init__(self, state: ConnectionState = ConnectionState.CONNECTING) -> None:
        self.state = state
        self._row = _ROWS[state]  # what the current state allows

    def can_process(self, event: object) -> bool:
        return type(event) in self._row

    def can_process_type(self, event_type: type) -> bool:
        return event_type in self._row

    def process(self, event: object) -> ConnectionState:
        """Apply ``event``; returns the new state or raises IllegalTransition (state becomes ERROR)."""
        return self.process_type(type(event))

    def process_type(self, event_type: type) -> ConnectionState:
        """Apply an event of type ``event_type`` (for callers that need not build the event)."""
        step = self._row.get(event_type)
        if step is None:
            self._illegal(event_type)
        self.state, self._row = step
        return step[0]

    def process_command(self, code: int) -> ConnectionState:
        """Apply the client command whose payload starts with byte ``code`` (the relay's per-command path:
        the same transition as ``process_type`` of the command's event type, without building it)."""
        step = self._row.get(code)
        if step is None:
            self._illegal(COMMAND_TYPES.get(code, ev.UnknownCommand))
        self.state, self._row = step
        return step[0]

    def _illegal(self, event_type: type) -> NoReturn:
        previous, self.state, self._row = self.state, ConnectionState.ERROR, _ERROR_ROW
        raise IllegalTransition(previous, event_type.__name__)
