"""All protocol events in one namespace, plus the connection-level events that carry no packet.

Packet events live with their parsers (``handshake``, ``generic_packets``, ``commands``, ``resultset``,
``session_state``); this module re-exports them so callers can write ``from ingress.protocol.events
import OkPacket``. Every event is a frozen, slotted dataclass holding only what was on the wire.
"""

from __future__ import annotations

from dataclasses import dataclass

from dbmux.ingress.protocol.binary_values import ParamType
from dbmux.ingress.protocol.commands import (
    ComChangeUser,
    ComFieldList,
    ComInitDb,
    CommandEvent,
    ComPing,
    ComQuery,
    ComQuit,
    ComResetConnection,
    ComSetOption,
    ComStmtClose,
    ComStmtExecute,
    ComStmtFetch,
    ComStmtPrepare,
    ComStmtReset,
    ComStmtSendLongData,
    PreparedStatementInfo,
    QueryAttribute,
    UnknownCommand,
)
from dbmux.ingress.protocol.generic_packets import EofPacket, ErrPacket, OkPacket, ProgressReport
from dbmux.ingress.protocol.handshake import (
    AuthMoreData,
    AuthNextFactor,
    AuthSwitchRequest,
    AuthSwitchResponse,
    HandshakeResponse41,
    HandshakeV10,
    OldAuthSwitchRequest,
    SSLRequest,
)
from dbmux.ingress.protocol.resultset import (
    BinaryRow,
    ColumnCount,
    ColumnDefinition41,
    LocalInfileRequest,
    StmtPrepareOk,
    TextRow,
)
from dbmux.ingress.protocol.session_state import (
    GtidsChange,
    SchemaChange,
    SessionChange,
    StateChange,
    SystemVariableChange,
    TransactionCharacteristicsChange,
    TransactionStateChange,
    UnknownSessionChange,
)


@dataclass(frozen=True, slots=True)
class TransportConnected:
    """The proxy's connection to the primary is open; the greeting is next."""


@dataclass(frozen=True, slots=True)
class TlsEstablished:
    """The TLS handshake requested by an SSLRequest finished; the full handshake response is next."""


@dataclass(frozen=True, slots=True)
class ResponseComplete:
    """The ResponseReader for the current command reports ``complete``."""


@dataclass(frozen=True, slots=True)
class ConnectionClosed:
    """Either peer closed the transport."""


__all__ = [
    "AuthMoreData", "AuthNextFactor", "AuthSwitchRequest", "AuthSwitchResponse", "BinaryRow",
    "ColumnCount", "ColumnDefinition41", "ComChangeUser", "ComFieldList", "ComInitDb", "ComPing", "ComQuery",
    "ComQuit", "ComResetConnection", "ComSetOption", "ComStmtClose", "ComStmtExecute", "ComStmtFetch",
    "ComStmtPrepare", "ComStmtReset", "ComStmtSendLongData", "CommandEvent", "ConnectionClosed", "EofPacket",
    "ErrPacket", "GtidsChange", "HandshakeResponse41", "HandshakeV10", "LocalInfileRequest", "OkPacket",
    "OldAuthSwitchRequest", "ParamType", "PreparedStatementInfo", "ProgressReport", "QueryAttribute",
    "ResponseComplete", "SSLRequest", "SchemaChange", "SessionChange", "StateChange", "StmtPrepareOk",
    "SystemVariableChange", "TextRow", "TlsEstablished", "TransactionCharacteristicsChange",
    "TransactionStateChange", "TransportConnected", "UnknownCommand", "UnknownSessionChange",
]  # fmt: skip
