"""ResponseReader: a sans-IO parser for the server's response to ONE client command.

Feed it the server's payloads (from :class:`~ingress.protocol.framing.FrameReader`) with ``feed()``; it
classifies each packet, parses the ones that carry state (OK, ERR, EOF, column definitions, prepare OK)
and says when the response is ``complete``. Rows are only recognised, never decoded; the proxy forwards
them raw. ``results`` holds the final OK/ERR/EOF of each statement of a multi-result response, in order,
which is where the proxy reads insert ids, status flags and session-state (GTID) data.

Two exchanges need packets from the client in the middle of a response; pass those to
``feed_client()`` while ``awaiting_client`` is true: LOCAL INFILE data (after an 0xFB request, ends with an
empty packet) and the authentication exchange of COM_CHANGE_USER.
"""

from __future__ import annotations

import enum
from typing import NamedTuple, Union

from . import constants as c
from .commands import CommandEvent, ComStmtExecute, command_code
from .errors import MalformedPacket
from .generic_packets import (
    EofPacket,
    ErrPacket,
    OkPacket,
    ProgressReport,
    is_eof_packet,
    is_progress_report,
    is_result_terminator,
    parse_generic_response,
    parse_terminator,
)
from .handshake import AuthMoreData, AuthSwitchResponse, parse_auth_server_packet
from .resultset import ColumnCount, ColumnDefinition41, LocalInfileRequest, StmtPrepareOk

StatementResult = Union[OkPacket, ErrPacket, EofPacket]


class PacketKind(enum.Enum):
    OK = "ok"
    ERR = "err"
    EOF = "eof"  # an EOF packet, or a CLIENT_DEPRECATE_EOF OK terminator
    PROGRESS = "progress"
    COLUMN_COUNT = "column_count"
    COLUMN_DEFINITION = "column_definition"
    ROW = "row"
    LOCAL_INFILE_REQUEST = "local_infile_request"
    PREPARE_OK = "prepare_ok"
    PARAM_DEFINITION = "param_definition"
    AUTH = "auth"  # AuthSwitchRequest / AuthMoreData / AuthNextFactor
    BINLOG_EVENT = "binlog_event"
    OTHER = "other"  # e.g. the COM_STATISTICS string
    CLIENT_DATA = "client_data"  # a client packet passed to feed_client()


class Phase(enum.Enum):
    FIRST_PACKET = "first_packet"  # OK / ERR / 0xFB / column count
    COLUMNS = "columns"
    COLUMNS_EOF = "columns_eof"
    ROWS = "rows"
    LOCAL_INFILE_DATA = "local_infile_data"  # the client is sending the file
    PREPARE_FIRST = "prepare_first"
    PREPARE_PARAMS = "prepare_params"
    PREPARE_PARAMS_EOF = "prepare_params_eof"
    PREPARE_COLUMNS = "prepare_columns"
    PREPARE_COLUMNS_EOF = "prepare_columns_eof"
    FIELD_LIST = "field_list"
    AUTH = "auth"
    BINLOG_STREAM = "binlog_stream"
    SIMPLE = "simple"  # OK / ERR / EOF only
    ANY_ONE = "any_one"  # exactly one packet of any content
    DONE = "done"


class ResponsePacket(NamedTuple):
    kind: PacketKind
    event: object | None  # the parsed packet, or None for rows and raw packets


_ROW = ResponsePacket(PacketKind.ROW, None)
# In the rows phase, a packet is a row unless its first byte is one of these (or it is an EOF-sized
# 0xFE terminator, or spans frames); see ResponseReader.in_rows / feed_rows.
NOT_ROW_HEADERS = bytes((c.EOF_HEADER, c.ERR_HEADER))


_CURSOR_FLAGS = c.CURSOR_TYPE_READ_ONLY | c.CURSOR_TYPE_FOR_UPDATE | c.CURSOR_TYPE_SCROLLABLE
_NO_RESPONSE = frozenset({c.COM_QUIT, c.COM_STMT_CLOSE, c.COM_STMT_SEND_LONG_DATA})
_SIMPLE = frozenset(
    {
        c.COM_INIT_DB, c.COM_PING, c.COM_RESET_CONNECTION, c.COM_STMT_RESET, c.COM_SET_OPTION, c.COM_DEBUG,
        c.COM_REFRESH, c.COM_PROCESS_KILL, c.COM_CREATE_DB, c.COM_DROP_DB, c.COM_SHUTDOWN,
        c.COM_REGISTER_SLAVE,
    }
)  # fmt: skip
_FIRST_PHASE = {
    c.COM_STMT_PREPARE: Phase.PREPARE_FIRST,
    c.COM_FIELD_LIST: Phase.FIELD_LIST,
    c.COM_CHANGE_USER: Phase.AUTH,
    c.COM_BINLOG_DUMP: Phase.BINLOG_STREAM,
    c.COM_BINLOG_DUMP_GTID: Phase.BINLOG_STREAM,
    c.COM_STMT_FETCH: Phase.ROWS,
    c.COM_STATISTICS: Phase.ANY_ONE,
}


class ResponseReader:
    """Incremental reader of one command's response.

    ``capabilities`` are the negotiated flags (CLIENT_DEPRECATE_EOF, CLIENT_SESSION_TRACK,
    CLIENT_PROTOCOL_41, CLIENT_OPTIONAL_RESULTSET_METADATA); ``mariadb_ext_caps`` the negotiated MariaDB
    extended capabilities. ``cursor`` is true for a COM_STMT_EXECUTE that opened a cursor (its rows
    then come through COM_STMT_FETCH). Commands this reader does not know are read like COM_QUERY.

    ``decode_metadata=False`` is for relaying: column and parameter definitions and the EOF packets
    that end them are only recognised, like rows (their events are None and ``columns`` and
    ``prepare_params`` stay empty); what carries state is decoded either way.
    """

    def __init__(self, command: int, capabilities: int, mariadb_ext_caps: int = 0, cursor: bool = False, *,
                 decode_metadata: bool = True) -> None:
        self.command = command
        self.capabilities = capabilities
        self.mariadb_ext_caps = mariadb_ext_caps
        self.cursor = cursor
        self.decode_metadata = decode_metadata
        self.results: list[StatementResult] = []
        self.columns: list[ColumnDefinition41] = []  # of the current (or last) result set
        self.prepare_ok: StmtPrepareOk | None = None
        self.prepare_params: list[ColumnDefinition41] = []
        self.awaiting_client = False
        self.packets_seen = 0
        self._columns_left = 0
        self.expects_response = command not in _NO_RESPONSE
        if not self.expects_response:
            self.phase = Phase.DONE
        elif command in _SIMPLE:
            self.phase = Phase.SIMPLE
        else:
            self.phase = _FIRST_PHASE.get(command, Phase.FIRST_PACKET)

    @classmethod
    def for_command(cls, event: CommandEvent, capabilities: int, mariadb_ext_caps: int = 0) -> ResponseReader:
        """Reader for the response to a parsed command event."""
        cursor = isinstance(event, ComStmtExecute) and bool(event.flags & _CURSOR_FLAGS)
        return cls(command_code(event), capabilities, mariadb_ext_caps, cursor)

    # ---- state -----------------------------------------------------------------------------------
    @property
    def complete(self) -> bool:
        return self.phase is Phase.DONE

    @property
    def final_result(self) -> StatementResult | None:
        return self.results[-1] if self.results else None

    @property
    def is_error(self) -> bool:
        return isinstance(self.final_result, ErrPacket)

    @property
    def status_flags(self) -> int | None:
        """Status flags of the last OK/EOF seen, or None."""
        for result in reversed(self.results):
            if not isinstance(result, ErrPacket):
                return result.status_flags
        return None

    # ---- input -----------------------------------------------------------------------------------
    @property
    def in_rows(self) -> bool:
        """True while rows are expected: then every single-frame packet whose payload does not start with
        a byte in ``NOT_ROW_HEADERS`` is a row, which a caller may account for with ``feed_rows``."""
        return self.phase is Phase.ROWS

    def feed(self, payload: bytes) -> ResponsePacket:
        """Account for one server payload; returns its kind and parsed event (None for rows)."""
        phase = self.phase
        if phase is Phase.DONE:
            raise MalformedPacket(f"server sent a packet after the response to command 0x{self.command:02X} was complete")
        if self.awaiting_client and phase is Phase.LOCAL_INFILE_DATA:
            raise MalformedPacket("server sent a packet while the client was sending LOCAL INFILE data")
        if not payload:
            raise MalformedPacket("empty server packet inside a response")
        self.packets_seen += 1
        return _HANDLERS[phase._value_](self, payload)  # keyed by value: Enum.__hash__ is slow Python

    def feed_rows(self, count: int) -> None:
        """Account for ``count`` row packets the caller recognised without feeding them (see ``in_rows``)."""
        if self.phase is not Phase.ROWS:
            raise MalformedPacket(f"rows fed in phase {self.phase.value}")
        self.packets_seen += count

    def feed_client(self, payload: bytes) -> ResponsePacket:
        """Account for one client payload sent in the middle of the response."""
        if not self.awaiting_client:
            raise MalformedPacket(f"client sent a packet while the server response (phase {self.phase.value}) was pending")
        if self.phase is Phase.LOCAL_INFILE_DATA:
            if not payload:  # end of file: the server answers with OK/ERR (maybe MORE_RESULTS)
                self.awaiting_client = False
                self.phase = Phase.FIRST_PACKET
            return ResponsePacket(PacketKind.CLIENT_DATA, None)
        self.awaiting_client = False  # authentication exchange
        return ResponsePacket(PacketKind.CLIENT_DATA, AuthSwitchResponse(bytes(payload)))

    # ---- phases ------------------------------------------------------------------------------------
    def _statement_done(self, result: StatementResult) -> None:
        self.results.append(result)
        more = not isinstance(result, ErrPacket) and result.status_flags & c.SERVER_MORE_RESULTS_EXISTS
        self.phase = Phase.FIRST_PACKET if more else Phase.DONE

    def _error(self, payload: bytes) -> ResponsePacket:
        if is_progress_report(payload):
            return ResponsePacket(PacketKind.PROGRESS, ProgressReport.parse(payload))
        err = ErrPacket.parse(payload, self.capabilities)
        self.results.append(err)
        self.phase = Phase.DONE
        return ResponsePacket(PacketKind.ERR, err)

    def _on_first_packet(self, payload: bytes) -> ResponsePacket:
        header = payload[0]
        if header == c.ERR_HEADER:
            return self._error(payload)
        if header == c.OK_HEADER:
            ok = OkPacket.parse(payload, self.capabilities)
            self._statement_done(ok)
            return ResponsePacket(PacketKind.OK, ok)
        if header == c.LOCAL_INFILE_HEADER:
            request = LocalInfileRequest.parse(payload)
            self.phase, self.awaiting_client = Phase.LOCAL_INFILE_DATA, True
            return ResponsePacket(PacketKind.LOCAL_INFILE_REQUEST, request)
        if header == c.EOF_HEADER:
            raise MalformedPacket("0xFE packet where OK, ERR, LOCAL INFILE or a column count was expected")
        count = ColumnCount.parse(payload, self.capabilities, self.mariadb_ext_caps)
        self.columns = []
        self._columns_left = count.count if count.metadata_follows is not False else 0
        if self._columns_left:
            self.phase = Phase.COLUMNS
        else:  # metadata skipped (optional/cached metadata); the end-of-metadata EOF is still sent
            self.phase = Phase.ROWS if self._deprecate_eof() else Phase.COLUMNS_EOF
        return ResponsePacket(PacketKind.COLUMN_COUNT, count)

    def _deprecate_eof(self) -> bool:
        return bool(self.capabilities & c.CLIENT_DEPRECATE_EOF)

    def _definition(self, payload: bytes, into: list[ColumnDefinition41]) -> ColumnDefinition41 | None:
        """A column or parameter definition, appended to ``into``; None when metadata is not decoded."""
        if not self.decode_metadata:
            return None
        column = ColumnDefinition41.parse(payload, self.mariadb_ext_caps, self.capabilities)
        into.append(column)
        return column

    def _metadata_eof(self, payload: bytes) -> EofPacket | None:
        """The EOF packet after definitions; checked but not decoded when metadata is not decoded."""
        if self.decode_metadata or self.cursor:
            return EofPacket.parse(payload, self.capabilities)
        if not is_eof_packet(payload):
            raise MalformedPacket("EOF packet must start with 0xFE and be shorter than 9 bytes")
        return None

    def _on_columns(self, payload: bytes) -> ResponsePacket:
        column = self._definition(payload, self.columns)
        self._columns_left -= 1
        if self._columns_left == 0:
            self.phase = Phase.ROWS if self._deprecate_eof() else Phase.COLUMNS_EOF
        return ResponsePacket(PacketKind.COLUMN_DEFINITION, column)

    def _on_columns_eof(self, payload: bytes) -> ResponsePacket:
        eof = self._metadata_eof(payload)
        if self.cursor and eof is not None and eof.status_flags & c.SERVER_STATUS_CURSOR_EXISTS:
            self.results.append(eof)  # rows will come through COM_STMT_FETCH
            self.phase = Phase.DONE
        else:
            self.phase = Phase.ROWS
        return ResponsePacket(PacketKind.EOF, eof)

    def _on_rows(self, payload: bytes) -> ResponsePacket:
        header = payload[0]
        if header == c.EOF_HEADER and is_result_terminator(payload, self.capabilities):
            terminator = parse_terminator(payload, self.capabilities)
            self._statement_done(terminator)
            return ResponsePacket(PacketKind.EOF, terminator)
        if header == c.ERR_HEADER:
            return self._error(payload)
        return _ROW

    def _on_local_infile_data(self, payload: bytes) -> ResponsePacket:  # pragma: no cover - guarded in feed
        raise MalformedPacket("server sent a packet while the client was sending LOCAL INFILE data")

    def _on_prepare_first(self, payload: bytes) -> ResponsePacket:
        if payload[0] == c.ERR_HEADER:
            return self._error(payload)
        ok = StmtPrepareOk.parse(payload, self.capabilities)
        self.prepare_ok = ok
        with_defs = ok.metadata_follows is not False
        self._columns_left = ok.num_params if with_defs else 0
        if self._columns_left:
            self.phase = Phase.PREPARE_PARAMS
        else:
            self._enter_prepare_columns()
        return ResponsePacket(PacketKind.PREPARE_OK, ok)

    def _enter_prepare_columns(self) -> None:
        ok = self.prepare_ok
        assert ok is not None
        self._columns_left = ok.num_columns if ok.metadata_follows is not False else 0
        self.columns = []
        self.phase = Phase.PREPARE_COLUMNS if self._columns_left else Phase.DONE

    def _on_prepare_params(self, payload: bytes) -> ResponsePacket:
        param = self._definition(payload, self.prepare_params)
        self._columns_left -= 1
        if self._columns_left == 0:
            if self._deprecate_eof():
                self._enter_prepare_columns()
            else:
                self.phase = Phase.PREPARE_PARAMS_EOF
        return ResponsePacket(PacketKind.PARAM_DEFINITION, param)

    def _on_prepare_params_eof(self, payload: bytes) -> ResponsePacket:
        eof = self._metadata_eof(payload)
        self._enter_prepare_columns()
        return ResponsePacket(PacketKind.EOF, eof)

    def _on_prepare_columns(self, payload: bytes) -> ResponsePacket:
        column = self._definition(payload, self.columns)
        self._columns_left -= 1
        if self._columns_left == 0:
            self.phase = Phase.DONE if self._deprecate_eof() else Phase.PREPARE_COLUMNS_EOF
        return ResponsePacket(PacketKind.COLUMN_DEFINITION, column)

    def _on_prepare_columns_eof(self, payload: bytes) -> ResponsePacket:
        eof = self._metadata_eof(payload)
        self.phase = Phase.DONE
        return ResponsePacket(PacketKind.EOF, eof)

    def _on_field_list(self, payload: bytes) -> ResponsePacket:
        if payload[0] == c.ERR_HEADER:
            return self._error(payload)
        if is_result_terminator(payload, self.capabilities):
            terminator = parse_terminator(payload, self.capabilities)
            self.results.append(terminator)
            self.phase = Phase.DONE
            return ResponsePacket(PacketKind.EOF, terminator)
        column = self._definition(payload, self.columns)
        return ResponsePacket(PacketKind.COLUMN_DEFINITION, column)

    def _on_auth(self, payload: bytes) -> ResponsePacket:
        if is_progress_report(payload):
            return ResponsePacket(PacketKind.PROGRESS, ProgressReport.parse(payload))
        packet = parse_auth_server_packet(payload, self.capabilities)
        if isinstance(packet, (OkPacket, ErrPacket)):
            self.results.append(packet)
            self.phase, self.awaiting_client = Phase.DONE, False
            return ResponsePacket(PacketKind.OK if isinstance(packet, OkPacket) else PacketKind.ERR, packet)
        # caching_sha2 "fast auth success" (0x01 0x03) is followed by the server's OK, not a client packet
        self.awaiting_client = not (isinstance(packet, AuthMoreData) and packet.data == b"\x03")
        return ResponsePacket(PacketKind.AUTH, packet)

    def _on_binlog_stream(self, payload: bytes) -> ResponsePacket:
        header = payload[0]
        if header == c.ERR_HEADER:
            return self._error(payload)
        if is_eof_packet(payload):
            eof = EofPacket.parse(payload, self.capabilities)
            self.results.append(eof)
            self.phase = Phase.DONE
            return ResponsePacket(PacketKind.EOF, eof)
        if header != c.OK_HEADER:
            raise MalformedPacket(f"binlog stream packet starts with 0x{header:02X}, expected 0x00")
        return ResponsePacket(PacketKind.BINLOG_EVENT, None)

    def _on_simple(self, payload: bytes) -> ResponsePacket:
        if payload[0] == c.EOF_HEADER and is_result_terminator(payload, self.capabilities):
            result: StatementResult = parse_terminator(payload, self.capabilities)
        else:
            parsed = parse_generic_response(payload, self.capabilities)
            if isinstance(parsed, ProgressReport):
                return ResponsePacket(PacketKind.PROGRESS, parsed)
            result = parsed
        self.results.append(result)
        self.phase = Phase.DONE
        kind = {OkPacket: PacketKind.OK, ErrPacket: PacketKind.ERR}.get(type(result), PacketKind.EOF)
        return ResponsePacket(kind, result)

    def _on_any_one(self, payload: bytes) -> ResponsePacket:
        if payload[0] == c.ERR_HEADER:
            return self._error(payload)
        self.phase = Phase.DONE
        return ResponsePacket(PacketKind.OTHER, None)


# Phase value -> handler of a server packet in that phase (DONE has none: feed() refuses).
_HANDLERS = {phase.value: getattr(ResponseReader, "_on_" + phase.value) for phase in Phase if phase is not Phase.DONE}
