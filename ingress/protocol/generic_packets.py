"""Generic response packets: OK, ERR, EOF, and MariaDB progress reports.

Parsing needs the negotiated capability flags (``CLIENT_PROTOCOL_41``, ``CLIENT_TRANSACTIONS``,
``CLIENT_SESSION_TRACK``) passed as an argument.
"""

from __future__ import annotations

from dataclasses import dataclass

from dbmux.ingress.protocol.constants import (
    CLIENT_DEPRECATE_EOF,
    CLIENT_PROTOCOL_41,
    CLIENT_SESSION_TRACK,
    CLIENT_TRANSACTIONS,
    EOF_HEADER,
    EOF_MAX_PAYLOAD_BYTES,
    ERR_HEADER,
    MAX_CHUNK_BYTES,
    OK_HEADER,
    PROGRESS_REPORT_ERRNO,
    SERVER_MORE_RESULTS_EXISTS,
    SERVER_SESSION_STATE_CHANGED,
    SERVER_STATUS_AUTOCOMMIT,
    SERVER_STATUS_IN_TRANS,
)
from dbmux.ingress.protocol.encoding import (
    read_eof_str,
    read_fixed_int,
    read_fixed_str,
    read_lenenc_int,
    read_lenenc_str,
    require_end,
    write_fixed_int,
    write_lenenc_int,
    write_lenenc_str,
)
from dbmux.ingress.protocol.errors import MalformedPacket
from dbmux.ingress.protocol.session_state import (
    GtidsChange,
    SessionChange,
    SystemVariableChange,
    decode_session_state,
    encode_session_state,
)

DEFAULT_CAPABILITIES = CLIENT_PROTOCOL_41 | CLIENT_TRANSACTIONS


def _first_byte(payload: bytes, what: str) -> int:
    if not payload:
        raise MalformedPacket(f"empty payload where {what} was expected")
    return payload[0]


def _info_without_session_track(payload: bytes, pos: int) -> bytes:
    """The OK packet's human-readable info when CLIENT_SESSION_TRACK is not negotiated.

    The protocol documentation calls it ``string<EOF>``, but MariaDB and MySQL servers write it as
    ``string<lenenc>`` (when not empty) and libmysql reads it so; a client that does not (PyMySQL) sees
    the length byte as its first character: ``b'(Rows matched: 1  Changed: 1  Warnings: 0'``. The rest
    of the payload is taken as one length-encoded string when it is exactly that, else whole (what
    another server may send); :meth:`OkPacket.encode` writes the length-encoded form.
    """
    if pos >= len(payload):
        return b""
    try:
        info, end = read_lenenc_str(payload, pos)
    except MalformedPacket:
        end = -1
    if end == len(payload):
        return info
    return read_eof_str(payload, pos)[0]


@dataclass(frozen=True, slots=True)
class OkPacket:
    """OK_Packet. ``header`` is 0x00, or 0xFE when it terminates a result set under CLIENT_DEPRECATE_EOF.

    ``info`` is the text without its length prefix (``Rows matched: 1  Changed: 1  Warnings: 0``),
    with or without CLIENT_SESSION_TRACK: the server writes it length-encoded either way.
    """

    affected_rows: int = 0
    last_insert_id: int = 0
    status_flags: int = 0
    warnings: int = 0
    info: bytes = b""
    session_state_changes: tuple[SessionChange, ...] = ()
    header: int = OK_HEADER

    @classmethod
    def parse(cls, payload: bytes, capabilities: int = DEFAULT_CAPABILITIES) -> OkPacket:
        header = _first_byte(payload, "an OK packet")
        if header not in (OK_HEADER, EOF_HEADER):
            raise MalformedPacket(f"OK packet starts with 0x{header:02X}, expected 0x00 or 0xFE")
        affected_rows, pos = read_lenenc_int(payload, 1)
        last_insert_id, pos = read_lenenc_int(payload, pos)
        status_flags = warnings = 0
        if capabilities & CLIENT_PROTOCOL_41:
            status_flags, pos = read_fixed_int(payload, pos, 2)
            warnings, pos = read_fixed_int(payload, pos, 2)
        elif capabilities & CLIENT_TRANSACTIONS:
            status_flags, pos = read_fixed_int(payload, pos, 2)
        changes: tuple[SessionChange, ...] = ()
        if capabilities & CLIENT_SESSION_TRACK:
            info = b""
            if pos < len(payload):
                info, pos = read_lenenc_str(payload, pos)
            if status_flags & SERVER_SESSION_STATE_CHANGED and pos < len(payload):
                block, pos = read_lenenc_str(payload, pos)
                changes = decode_session_state(block)
            require_end(payload, pos, "OK packet")
        else:
            info = _info_without_session_track(payload, pos)
        return cls(affected_rows, last_insert_id, status_flags, warnings, info, changes, header)

    def encode(self, capabilities: int = DEFAULT_CAPABILITIES) -> bytes:
        out = bytearray((self.header,))
        out += write_lenenc_int(self.affected_rows) + write_lenenc_int(self.last_insert_id)
        if capabilities & CLIENT_PROTOCOL_41:
            out += write_fixed_int(self.status_flags, 2) + write_fixed_int(self.warnings, 2)
        elif capabilities & CLIENT_TRANSACTIONS:
            out += write_fixed_int(self.status_flags, 2)
        if capabilities & CLIENT_SESSION_TRACK:
            has_state = bool(self.status_flags & SERVER_SESSION_STATE_CHANGED and self.session_state_changes)
            if self.info or has_state:
                out += write_lenenc_str(self.info)
            if has_state:
                out += write_lenenc_str(encode_session_state(self.session_state_changes))
        elif self.info:
            out += write_lenenc_str(self.info)  # as servers write it (see _info_without_session_track)
        return bytes(out)

    @property
    def in_transaction(self) -> bool:
        return bool(self.status_flags & SERVER_STATUS_IN_TRANS)

    @property
    def autocommit(self) -> bool:
        return bool(self.status_flags & SERVER_STATUS_AUTOCOMMIT)

    @property
    def more_results(self) -> bool:
        return bool(self.status_flags & SERVER_MORE_RESULTS_EXISTS)

    @property
    def system_variables(self) -> dict[str, str]:
        """Tracked system variables reported by this packet (last value wins)."""
        return {c.name: c.value for c in self.session_state_changes if isinstance(c, SystemVariableChange)}

    @property
    def gtid(self) -> str | None:
        """The GTID the server reported: MariaDB ``last_gtid`` or MySQL SESSION_TRACK_GTIDS; else None."""
        found = None
        for change in self.session_state_changes:
            if isinstance(change, GtidsChange):
                found = change.gtids
            elif isinstance(change, SystemVariableChange) and change.name == "last_gtid" and change.value:
                found = change.value
        return found


@dataclass(frozen=True, slots=True)
class ErrPacket:
    """ERR_Packet. ``sqlstate`` is None when the packet has no ``#xxxxx`` marker (pre-4.1 or early errors).

    ``capabilities`` is accepted for symmetry with the other packets; the ``#`` marker alone decides.
    """

    errno: int
    sqlstate: str | None = "HY000"
    message: str = ""

    @classmethod
    def parse(cls, payload: bytes, capabilities: int = DEFAULT_CAPABILITIES) -> ErrPacket:
        header = _first_byte(payload, "an ERR packet")
        if header != ERR_HEADER:
            raise MalformedPacket(f"ERR packet starts with 0x{header:02X}, expected 0xFF")
        errno, pos = read_fixed_int(payload, 1, 2)
        sqlstate = None
        # Like libmysql: the '#' marker, not the capability flag, decides (servers send ERR before
        # capabilities are negotiated).
        if pos < len(payload) and payload[pos] == 0x23:
            raw_state, pos = read_fixed_str(payload, pos + 1, 5)
            sqlstate = raw_state.decode("latin-1")
        message, pos = read_eof_str(payload, pos)
        return cls(errno, sqlstate, message.decode("utf-8", "surrogateescape"))

    def encode(self, capabilities: int = DEFAULT_CAPABILITIES) -> bytes:
        out = b"\xff" + write_fixed_int(self.errno, 2)
        if self.sqlstate is not None:  # presence mirrors parse(), which follows the '#' marker
            state = self.sqlstate.encode("latin-1", "replace")
            if len(state) != 5:
                raise ValueError(f"sqlstate must be 5 characters, got {self.sqlstate!r}")
            out += b"#" + state
        return out + self.message.encode("utf-8", "surrogateescape")


@dataclass(frozen=True, slots=True)
class EofPacket:
    """EOF_Packet (0xFE, shorter than 9 bytes)."""

    warnings: int = 0
    status_flags: int = 0

    @classmethod
    def parse(cls, payload: bytes, capabilities: int = DEFAULT_CAPABILITIES) -> EofPacket:
        if not is_eof_packet(payload):
            raise MalformedPacket("EOF packet must start with 0xFE and be shorter than 9 bytes")
        if capabilities & CLIENT_PROTOCOL_41:
            warnings, pos = read_fixed_int(payload, 1, 2)
            status_flags, pos = read_fixed_int(payload, pos, 2)
            return cls(warnings, status_flags)
        return cls()

    def encode(self, capabilities: int = DEFAULT_CAPABILITIES) -> bytes:
        if capabilities & CLIENT_PROTOCOL_41:
            return b"\xfe" + write_fixed_int(self.warnings, 2) + write_fixed_int(self.status_flags, 2)
        return b"\xfe"

    @property
    def more_results(self) -> bool:
        return bool(self.status_flags & SERVER_MORE_RESULTS_EXISTS)


@dataclass(frozen=True, slots=True)
class ProgressReport:
    """MariaDB progress report (an ERR-headed packet with errno 0xFFFF); not a final result."""

    stage: int
    max_stage: int
    progress_per_mille: int
    state: bytes

    @classmethod
    def parse(cls, payload: bytes) -> ProgressReport:
        if not is_progress_report(payload):
            raise MalformedPacket("progress report must start with 0xFF 0xFF 0xFF")
        # after errno: number_of_strings<1> stage<1> max_stage<1> progress<3> state<lenenc>
        stage, pos = read_fixed_int(payload, 4, 1)
        max_stage, pos = read_fixed_int(payload, pos, 1)
        progress, pos = read_fixed_int(payload, pos, 3)
        state, pos = read_lenenc_str(payload, pos)
        return cls(stage, max_stage, progress, state)

    def encode(self) -> bytes:
        return (
            b"\xff\xff\xff\x01"
            + bytes((self.stage, self.max_stage))
            + write_fixed_int(self.progress_per_mille, 3)
            + write_lenenc_str(self.state)
        )


GenericResponse = OkPacket | ErrPacket | EofPacket | ProgressReport


def is_eof_packet(payload: bytes) -> bool:
    """True for an 0xFE-headed packet short enough to be EOF or a DEPRECATE_EOF OK terminator."""
    return bool(payload) and payload[0] == EOF_HEADER and len(payload) < EOF_MAX_PAYLOAD_BYTES


def is_progress_report(payload: bytes) -> bool:
    return len(payload) >= 3 and payload[0] == ERR_HEADER and payload[1] | payload[2] << 8 == PROGRESS_REPORT_ERRNO


def parse_generic_response(payload: bytes, capabilities: int = DEFAULT_CAPABILITIES) -> GenericResponse:
    """Parse an OK, ERR, EOF or progress-report payload; anything else raises MalformedPacket."""
    header = _first_byte(payload, "an OK/ERR/EOF packet")
    if header == OK_HEADER:
        return OkPacket.parse(payload, capabilities)
    if header == ERR_HEADER:
        if is_progress_report(payload):
            return ProgressReport.parse(payload)
        return ErrPacket.parse(payload, capabilities)
    if header == EOF_HEADER and len(payload) < EOF_MAX_PAYLOAD_BYTES:
        return EofPacket.parse(payload, capabilities)
    raise MalformedPacket(f"expected OK (0x00), ERR (0xFF) or EOF (0xFE), got 0x{header:02X}")


def is_result_terminator(payload: bytes, capabilities: int) -> bool:
    """True if ``payload`` ends a row or column-definition sequence.

    Without CLIENT_DEPRECATE_EOF that is an EOF packet (0xFE, < 9 bytes). With it, the terminator is an
    OK packet with an 0xFE header, which may be longer than 9 bytes when it carries session-state info;
    a row can only start with 0xFE if its first value is at least 2**24 bytes, i.e. the payload is at
    least 0xFFFFFF bytes (the same rule libmysql applies).
    """
    if not payload or payload[0] != EOF_HEADER:
        return False
    if capabilities & CLIENT_DEPRECATE_EOF:
        return len(payload) < MAX_CHUNK_BYTES
    return len(payload) < EOF_MAX_PAYLOAD_BYTES


def parse_terminator(payload: bytes, capabilities: int) -> OkPacket | EofPacket:
    """Parse a result terminator: an OkPacket under CLIENT_DEPRECATE_EOF, else an EofPacket."""
    if not is_result_terminator(payload, capabilities):
        raise MalformedPacket("expected a result-set terminator (0xFE header)")
    if capabilities & CLIENT_DEPRECATE_EOF:
        return OkPacket.parse(payload, capabilities)
    return EofPacket.parse(payload, capabilities)
