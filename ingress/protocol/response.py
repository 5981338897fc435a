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
import re
from collections.abc import Callable
from typing import NamedTuple

from dbmux.ingress.protocol import constants as c
from dbmux.ingress.protocol.commands import CommandEvent, ComStmtExecute, command_code
from dbmux.ingress.protocol.errors import MalformedPacket
from dbmux.ingress.protocol.framing import HEADER_BYTES
from dbmux.ingress.protocol.generic_packets import (
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
from dbmux.ingress.protocol.handshake import AuthMoreData, AuthSwitchResponse, parse_auth_server_packet
from dbmux.ingress.protocol.resultset import ColumnCount, ColumnDefinition41, LocalInfileRequest, StmtPrepareOk

StatementResult = OkPacket | ErrPacket | EofPacket


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
# Phases as module globals for the hot paths (an Enum member looked up on its class costs ~80 ns).
_FIRST, _COLUMNS, _COLUMNS_EOF = Phase.FIRST_PACKET, Phase.COLUMNS, Phase.COLUMNS_EOF
_ROWS, _DONE = Phase.ROWS, Phase.DONE
_LOCAL_INFILE_DATA, _SIMPLE_PHASE = Phase.LOCAL_INFILE_DATA, Phase.SIMPLE
_K_OK, _K_ERR, _K_EOF, _K_COLUMN_COUNT = PacketKind.OK, PacketKind.ERR, PacketKind.EOF, PacketKind.COLUMN_COUNT
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

    __slots__ = ("command", "capabilities", "mariadb_ext_caps", "cursor", "decode_metadata", "results", "columns",
                 "prepare_ok", "prepare_params", "awaiting_client", "packets_seen", "_columns_left",
                 "expects_response", "phase")

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
            self.phase = _DONE
        elif command in _SIMPLE:
            self.phase = _SIMPLE_PHASE
        else:
            self.phase = _FIRST_PHASE.get(command, _FIRST)

    @classmethod
    def for_command(cls, event: CommandEvent, capabilities: int, mariadb_ext_caps: int = 0) -> ResponseReader:
        """Reader for the response to a parsed command event."""
        cursor = isinstance(event, ComStmtExecute) and bool(event.flags & _CURSOR_FLAGS)
        return cls(command_code(event), capabilities, mariadb_ext_caps, cursor)

    # ---- state -----------------------------------------------------------------------------------
    @property
    def complete(self) -> bool:
        return self.phase is _DONE

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
        return self.phase is _ROWS

    def feed(self, payload: bytes) -> ResponsePacket:
        """Account for one server payload; returns its kind and parsed event (None for rows)."""
        phase = self.phase
        if phase is _DONE:
            raise MalformedPacket(
                f"server sent a packet after the response to command 0x{self.command:02X} was complete"
            )
        if self.awaiting_client and phase is _LOCAL_INFILE_DATA:
            raise MalformedPacket("server sent a packet while the client was sending LOCAL INFILE data")
        if not payload:
            raise MalformedPacket("empty server packet inside a response")
        self.packets_seen += 1
        return _HANDLERS[phase._value_](self, payload)  # keyed by value: Enum.__hash__ is slow Python

    def feed_rows(self, count: int) -> None:
        """Account for ``count`` row packets the caller recognised without feeding them (see ``in_rows``)."""
        if self.phase is not _ROWS:
            raise MalformedPacket(f"rows fed in phase {self.phase.value}")
        self.packets_seen += count

    def skim(self, buf: bytes | bytearray, pos: int, end: int, max_length: int = c.MAX_CHUNK_BYTES - 1) -> int:
        """Account for the complete packets framed in ``buf[pos:end]`` that need no decoding; returns
        where the first other packet (or an incomplete one) starts. Packets longer than ``max_length``
        stop it too (multi-frame payloads, or too large for the caller).

        The relay's fast path, with ``decode_metadata=False``: a result set's column count, column
        definitions, the EOF after them, its rows and -- without CLIENT_DEPRECATE_EOF -- its EOF
        terminator (appended to ``results`` like :meth:`feed` does) change only the phase, counters
        and results, exactly as :meth:`feed` would. Anything else stops it -- OK and ERR packets, a
        DEPRECATE_EOF terminator (an OK packet), an EOF packet flagging SERVER_SESSION_STATE_CHANGED
        (the relay may rewrite its status), a packet :meth:`feed` would refuse, an empty or
        multi-frame payload, a rarer encoding -- and goes to :meth:`feed`. Only EOF packets are ever
        added to ``results`` here, so a caller that acts on OK/ERR results misses nothing.
        """
        if self.decode_metadata or self.cursor:
            return pos
        phase = self.phase
        rows, columns, columns_eof, first = _ROWS, _COLUMNS, _COLUMNS_EOF, _FIRST
        caps = self.capabilities
        deprecate_eof = caps & c.CLIENT_DEPRECATE_EOF
        after_columns = rows if deprecate_eof else columns_eof
        seen = 0
        last = end - HEADER_BYTES  # a packet with a payload starts before this
        while pos < last:
            if phase is rows:
                # The hot loop: hop over rows (complete single-frame packets not starting with 0xFE/0xFF);
                # whatever stops it is looked at below. Rows of one length (fixed-width columns: common)
                # are hopped over in bulk once two in a row had the same length (see _same_length_rows).
                previous, bulk = -1, True
                while pos < last:
                    length = buf[pos] | buf[pos + 1] << 8 | buf[pos + 2] << 16
                    nxt = pos + 4 + length
                    if nxt > end or buf[pos + 4] >= 0xFE or not 0 < length <= max_length:
                        break
                    if length == previous and bulk:
                        more = _same_length_rows(buf, nxt, end, length)
                        nxt += more * (length + 4)
                        seen += more
                        bulk = more >= 4  # (do not keep trying where lengths vary)
                    previous = length
                    pos = nxt
                    seen += 1
                else:
                    break
            length = buf[pos] | buf[pos + 1] << 8 | buf[pos + 2] << 16
            nxt = pos + HEADER_BYTES + length
            if nxt > end or not 0 < length <= max_length:
                break
            header = buf[pos + HEADER_BYTES]
            if phase is rows:
                if header == c.EOF_HEADER:
                    # the terminator: an EOF packet (status flags at payload[3:5]); as _on_rows would
                    if deprecate_eof or length >= c.EOF_MAX_PAYLOAD_BYTES or length < 5 \
                            or not caps & c.CLIENT_PROTOCOL_41:
                        break
                    p = pos + HEADER_BYTES
                    status = buf[p + 3] | buf[p + 4] << 8
                    if status & c.SERVER_SESSION_STATE_CHANGED:
                        break
                    self.results.append(EofPacket(buf[p + 1] | buf[p + 2] << 8, status))
                    pos = nxt
                    seen += 1
                    if not status & c.SERVER_MORE_RESULTS_EXISTS:
                        phase = _DONE
                        break
                    phase = first
                    continue
                if header == c.ERR_HEADER:
                    break
            elif phase is columns:
                self._columns_left -= 1
                if self._columns_left == 0:
                    phase = after_columns
            elif phase is columns_eof:
                if header != c.EOF_HEADER or length >= c.EOF_MAX_PAYLOAD_BYTES or (
                        length >= 5 and buf[pos + HEADER_BYTES + 4] & c.SERVER_SESSION_STATE_CHANGED >> 8):
                    break
                phase = rows
            elif phase is first:
                # a column count below 0xFB (one byte), then the metadata_follows flag where negotiated
                if header >= c.LOCAL_INFILE_HEADER or header == c.OK_HEADER:
                    break
                if caps & c.CLIENT_OPTIONAL_RESULTSET_METADATA or (  # has_metadata_flag(), inline
                        not caps & c.CLIENT_MYSQL and self.mariadb_ext_caps & c.MARIADB_CLIENT_CACHE_METADATA):
                    if length != 2:
                        break
                    left = header if buf[pos + HEADER_BYTES + 1] != c.RESULTSET_METADATA_NONE else 0
                elif length != 1:
                    break
                else:
                    left = header
                self.columns = []
                self._columns_left = left
                phase = columns if left else after_columns
            else:
                break
            pos = nxt
            seen += 1
        self.phase = phase
        self.packets_seen += seen
        return pos

    def feed_client(self, payload: bytes) -> ResponsePacket:
        """Account for one client payload sent in the middle of the response."""
        if not self.awaiting_client:
            raise MalformedPacket(
                f"client sent a packet while the server response (phase {self.phase.value}) was pending"
            )
        if self.phase is _LOCAL_INFILE_DATA:
            if not payload:  # end of file: the server answers with OK/ERR (maybe MORE_RESULTS)
                self.awaiting_client = False
                self.phase = _FIRST
            return ResponsePacket(PacketKind.CLIENT_DATA, None)
        self.awaiting_client = False  # authentication exchange
        return ResponsePacket(PacketKind.CLIENT_DATA, AuthSwitchResponse(bytes(payload)))

    # ---- phases ------------------------------------------------------------------------------------
    def _statement_done(self, result: StatementResult) -> None:
        self.results.append(result)
        more = not isinstance(result, ErrPacket) and result.status_flags & c.SERVER_MORE_RESULTS_EXISTS
        self.phase = _FIRST if more else _DONE

    def _error(self, payload: bytes) -> ResponsePacket:
        if is_progress_report(payload):
            return ResponsePacket(PacketKind.PROGRESS, ProgressReport.parse(payload))
        err = ErrPacket.parse(payload, self.capabilities)
        self.results.append(err)
        self.phase = _DONE
        return ResponsePacket(_K_ERR, err)

    def _on_first_packet(self, payload: bytes) -> ResponsePacket:
        header = payload[0]
        if header == c.ERR_HEADER:
            return self._error(payload)
        if header == c.OK_HEADER:
            ok = OkPacket.parse(payload, self.capabilities)
            self._statement_done(ok)
            return ResponsePacket(_K_OK, ok)
        if header == c.LOCAL_INFILE_HEADER:
            request = LocalInfileRequest.parse(payload)
            self.phase, self.awaiting_client = _LOCAL_INFILE_DATA, True
            return ResponsePacket(PacketKind.LOCAL_INFILE_REQUEST, request)
        if header == c.EOF_HEADER:
            raise MalformedPacket("0xFE packet where OK, ERR, LOCAL INFILE or a column count was expected")
        count = ColumnCount.parse(payload, self.capabilities, self.mariadb_ext_caps)
        self.columns = []
        self._columns_left = count.count if count.metadata_follows is not False else 0
        if self._columns_left:
            self.phase = _COLUMNS
        else:  # metadata skipped (optional/cached metadata); the end-of-metadata EOF is still sent
            self.phase = _ROWS if self._deprecate_eof() else _COLUMNS_EOF
        return ResponsePacket(_K_COLUMN_COUNT, count)

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
            self.phase = _ROWS if self._deprecate_eof() else _COLUMNS_EOF
        return ResponsePacket(PacketKind.COLUMN_DEFINITION, column)

    def _on_columns_eof(self, payload: bytes) -> ResponsePacket:
        eof = self._metadata_eof(payload)
        if self.cursor and eof is not None and eof.status_flags & c.SERVER_STATUS_CURSOR_EXISTS:
            self.results.append(eof)  # rows will come through COM_STMT_FETCH
            self.phase = _DONE
        else:
            self.phase = _ROWS
        return ResponsePacket(_K_EOF, eof)

    def _on_rows(self, payload: bytes) -> ResponsePacket:
        header = payload[0]
        if header == c.EOF_HEADER and is_result_terminator(payload, self.capabilities):
            terminator = parse_terminator(payload, self.capabilities)
            self._statement_done(terminator)
            return ResponsePacket(_K_EOF, terminator)
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
        self.phase = Phase.PREPARE_COLUMNS if self._columns_left else _DONE

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
        return ResponsePacket(_K_EOF, eof)

    def _on_prepare_columns(self, payload: bytes) -> ResponsePacket:
        column = self._definition(payload, self.columns)
        self._columns_left -= 1
        if self._columns_left == 0:
            self.phase = _DONE if self._deprecate_eof() else Phase.PREPARE_COLUMNS_EOF
        return ResponsePacket(PacketKind.COLUMN_DEFINITION, column)

    def _on_prepare_columns_eof(self, payload: bytes) -> ResponsePacket:
        eof = self._metadata_eof(payload)
        self.phase = _DONE
        return ResponsePacket(_K_EOF, eof)

    def _on_field_list(self, payload: bytes) -> ResponsePacket:
        if payload[0] == c.ERR_HEADER:
            return self._error(payload)
        if is_result_terminator(payload, self.capabilities):
            terminator = parse_terminator(payload, self.capabilities)
            self.results.append(terminator)
            self.phase = _DONE
            return ResponsePacket(_K_EOF, terminator)
        column = self._definition(payload, self.columns)
        return ResponsePacket(PacketKind.COLUMN_DEFINITION, column)

    def _on_auth(self, payload: bytes) -> ResponsePacket:
        if is_progress_report(payload):
            return ResponsePacket(PacketKind.PROGRESS, ProgressReport.parse(payload))
        packet = parse_auth_server_packet(payload, self.capabilities)
        if isinstance(packet, (OkPacket, ErrPacket)):
            self.results.append(packet)
            self.phase, self.awaiting_client = _DONE, False
            return ResponsePacket(_K_OK if isinstance(packet, OkPacket) else _K_ERR, packet)
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
            self.phase = _DONE
            return ResponsePacket(_K_EOF, eof)
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
        self.phase = _DONE
        kind = {OkPacket: _K_OK, ErrPacket: _K_ERR}.get(type(result), _K_EOF)
        return ResponsePacket(kind, result)

    def _on_any_one(self, payload: bytes) -> ResponsePacket:
        if payload[0] == c.ERR_HEADER:
            return self._error(payload)
        self.phase = _DONE
        return ResponsePacket(PacketKind.OTHER, None)


_ROW_HEADERS = re.compile(rb"[\x00-\xfd]*")  # payload first bytes a row may start with


def _same_length_rows(buf: bytes | bytearray, pos: int, end: int, length: int) -> int:
    """How many complete packets from ``pos`` on have a ``length``-byte payload starting with a byte
    below 0xFE (rows, in the rows phase), found without a Python loop per packet.

    If the packet at ``pos`` has that length, the next one starts exactly ``length + 4`` bytes later,
    and so on: the bytes at a stride of ``length + 4`` are then the length bytes (and the first payload
    bytes) of consecutive packets, which C-speed slicing can check all at once. The answer is exactly
    what walking the packets one by one (``ResponseReader.skim``) would count.
    """
    step = length + HEADER_BYTES
    count = (end - pos) // step  # packets of this length that fit in the buffer
    if count <= 0:
        return 0
    stop = pos + count * step
    count -= len(buf[pos:stop:step].lstrip(bytes((length & 0xFF,))))
    if count:
        count -= len(buf[pos + 1:pos + 1 + count * step:step].lstrip(bytes(((length >> 8) & 0xFF,))))
    if count:
        count -= len(buf[pos + 2:pos + 2 + count * step:step].lstrip(bytes((length >> 16,))))
    if count:
        headers = _ROW_HEADERS.match(buf[pos + 4:pos + 4 + count * step:step])
        assert headers is not None  # the pattern matches the empty string, so at any position
        count = headers.end()
    return count


# Phase value -> handler of a server packet in that phase (DONE has none: feed() refuses).
_HANDLERS: dict[str, Callable[[ResponseReader, bytes], ResponsePacket]] = {
    phase.value: getattr(ResponseReader, "_on_" + phase.value) for phase in Phase if phase is not Phase.DONE
}
