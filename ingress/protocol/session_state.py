"""Session-state-change information carried by OK packets (CLIENT_SESSION_TRACK).

The server sends it when ``SERVER_SESSION_STATE_CHANGED`` is set: a length-encoded block of entries,
each ``type<1> data<lenenc>``. Text inside is decoded as UTF-8 with ``surrogateescape`` so decoding never
fails and :func:`encode_session_state` gives back the same bytes.

The proxy reads GTIDs from here: MariaDB reports ``last_gtid`` as a SESSION_TRACK_SYSTEM_VARIABLES
change (when ``session_track_system_variables`` includes it); MySQL 8 sends SESSION_TRACK_GTIDS (when
``session_track_gtids`` is OWN_GTID or ALL_GTIDS).
"""

from __future__ import annotations

from dataclasses import dataclass

from dbmux.ingress.protocol.constants import (
    SESSION_TRACK_GTIDS,
    SESSION_TRACK_SCHEMA,
    SESSION_TRACK_STATE_CHANGE,
    SESSION_TRACK_SYSTEM_VARIABLES,
    SESSION_TRACK_TRANSACTION_CHARACTERISTICS,
    SESSION_TRACK_TRANSACTION_STATE,
)
from dbmux.ingress.protocol.encoding import read_fixed_int, read_lenenc_str, write_lenenc_str
from dbmux.ingress.protocol.errors import MalformedPacket


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def _raw(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


@dataclass(frozen=True, slots=True)
class SystemVariableChange:
    """``SET`` of a tracked system variable, e.g. ``("last_gtid", "0-1-42")`` on MariaDB."""

    name: str
    value: str


@dataclass(frozen=True, slots=True)
class SchemaChange:
    """The default schema changed (``USE db``)."""

    schema: str


@dataclass(frozen=True, slots=True)
class StateChange:
    """Session state changed in a way the client may want to know (``value`` is ``"1"``)."""

    value: str

    @property
    def changed(self) -> bool:
        return self.value == "1"


@dataclass(frozen=True, slots=True)
class GtidsChange:
    """MySQL SESSION_TRACK_GTIDS: the GTID set text, e.g. ``"3E11FA47-...:23"``."""

    gtids: str
    encoding_spec: int = 0


@dataclass(frozen=True, slots=True)
class TransactionCharacteristicsChange:
    """SQL that would restore the transaction characteristics (SESSION_TRACK_TRANSACTION_CHARACTERISTICS)."""

    statements: str


@dataclass(frozen=True, slots=True)
class TransactionStateChange:
    """The 8-character transaction state string (SESSION_TRACK_TRANSACTION_STATE), e.g. ``"T_______"``."""

    state: str


@dataclass(frozen=True, slots=True)
class UnknownSessionChange:
    """An entry of a type this codec does not decode; kept raw so it re-encodes unchanged."""

    change_type: int
    data: bytes


SessionChange = (
    SystemVariableChange
    | SchemaChange
    | StateChange
    | GtidsChange
    | TransactionCharacteristicsChange
    | TransactionStateChange
    | UnknownSessionChange
)
# the entry types whose data is one length-encoded string
_OneStringChange = SchemaChange | StateChange | TransactionCharacteristicsChange | TransactionStateChange
_ONE_STRING_CHANGES: dict[int, type[_OneStringChange]] = {
    SESSION_TRACK_SCHEMA: SchemaChange,
    SESSION_TRACK_STATE_CHANGE: StateChange,
    SESSION_TRACK_TRANSACTION_CHARACTERISTICS: TransactionCharacteristicsChange,
    SESSION_TRACK_TRANSACTION_STATE: TransactionStateChange,
}


def _decode_entry(change_type: int, data: bytes) -> list[SessionChange]:
    if change_type == SESSION_TRACK_SYSTEM_VARIABLES:
        out: list[SessionChange] = []
        pos = 0
        while pos < len(data):  # one pair per entry in practice; accept several
            name, pos = read_lenenc_str(data, pos)
            value, pos = read_lenenc_str(data, pos)
            out.append(SystemVariableChange(_text(name), _text(value)))
        if not out:
            raise MalformedPacket("empty SESSION_TRACK_SYSTEM_VARIABLES entry")
        return out
    if change_type == SESSION_TRACK_GTIDS:
        spec, pos = read_fixed_int(data, 0, 1)
        gtids, pos = read_lenenc_str(data, pos)
        _check_end(data, pos, "SESSION_TRACK_GTIDS")
        return [GtidsChange(_text(gtids), spec)]
    simple = _ONE_STRING_CHANGES.get(change_type)
    if simple is None:
        return [UnknownSessionChange(change_type, data)]
    value, pos = read_lenenc_str(data, 0)
    _check_end(data, pos, simple.__name__)
    return [simple(_text(value))]


def _check_end(data: bytes, pos: int, what: str) -> None:
    if pos != len(data):
        raise MalformedPacket(f"session state entry {what} has {len(data) - pos} trailing bytes")


def decode_session_state(block: bytes) -> tuple[SessionChange, ...]:
    """Decode the session-state block (the content of the OK packet's ``session_state_info``)."""
    changes: list[SessionChange] = []
    pos = 0
    while pos < len(block):
        change_type, pos = read_fixed_int(block, pos, 1)
        data, pos = read_lenenc_str(block, pos)
        changes.extend(_decode_entry(change_type, data))
    return tuple(changes)


def _encode_entry(change: SessionChange) -> bytes:
    if isinstance(change, SystemVariableChange):
        kind = SESSION_TRACK_SYSTEM_VARIABLES
        data = write_lenenc_str(_raw(change.name)) + write_lenenc_str(_raw(change.value))
    elif isinstance(change, GtidsChange):
        kind = SESSION_TRACK_GTIDS
        data = bytes((change.encoding_spec,)) + write_lenenc_str(_raw(change.gtids))
    elif isinstance(change, SchemaChange):
        kind, data = SESSION_TRACK_SCHEMA, write_lenenc_str(_raw(change.schema))
    elif isinstance(change, StateChange):
        kind, data = SESSION_TRACK_STATE_CHANGE, write_lenenc_str(_raw(change.value))
    elif isinstance(change, TransactionCharacteristicsChange):
        kind = SESSION_TRACK_TRANSACTION_CHARACTERISTICS
        data = write_lenenc_str(_raw(change.statements))
    elif isinstance(change, TransactionStateChange):
        kind, data = SESSION_TRACK_TRANSACTION_STATE, write_lenenc_str(_raw(change.state))
    else:
        kind, data = change.change_type, change.data
    return bytes((kind,)) + write_lenenc_str(data)


def encode_session_state(changes: tuple[SessionChange, ...]) -> bytes:
    """Encode changes into a session-state block (one entry per change)."""
    return b"".join(_encode_entry(c) for c in changes)
