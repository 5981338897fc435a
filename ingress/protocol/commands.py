"""Client commands (the command phase): one event class per command the proxy looks inside.

``parse_command(payload, capabilities, statements)`` turns a command payload into an event; every event
re-encodes with ``encode(capabilities)``. Commands the proxy does not need to look inside become
:class:`UnknownCommand` and are forwarded raw. Decode context (capabilities, the prepared-statement
table) is passed as arguments and never stored in an event.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar, Self

from dbmux.ingress.protocol import constants as c
from dbmux.ingress.protocol.binary_values import (
    BinaryValue,
    ParamType,
    build_null_bitmap,
    decode_binary_values,
    encode_binary_values,
    null_bitmap_bytes,
)
from dbmux.ingress.protocol.encoding import (
    read_eof_str,
    read_fixed_int,
    read_fixed_str,
    read_lenenc_int,
    read_lenenc_str,
    read_nul_str,
    require_end,
    write_fixed_int,
    write_lenenc_int,
    write_lenenc_str,
    write_nul_str,
)
from dbmux.ingress.protocol.errors import MalformedPacket, UnknownStatement
from dbmux.ingress.protocol.handshake import _decode_attrs, encode_attrs


def _body(payload: bytes, code: int, name: str) -> None:
    if not payload or payload[0] != code:
        raise MalformedPacket(f"{name} payload must start with 0x{code:02X}")


@dataclass(frozen=True, slots=True)
class QueryAttribute:
    """A query attribute (MySQL 8.0.23+ CLIENT_QUERY_ATTRIBUTES) or named execute parameter."""

    name: bytes
    type: ParamType
    value: BinaryValue


def _decode_typed_block(
    payload: bytes, pos: int, count: int, with_names: bool, previous_types: tuple[ParamType, ...] | None,
    long_data: Mapping[int, BinaryValue] | None = None,
) -> tuple[bool, tuple[ParamType, ...], tuple[bytes, ...], tuple[BinaryValue, ...], int]:
    """null_bitmap, new_params_bind_flag, [types (+names)], values -> (new_bound, types, names, values, pos).

    ``long_data``: the values of parameters sent with COM_STMT_SEND_LONG_DATA, absent from the values."""
    bitmap, pos = read_fixed_str(payload, pos, null_bitmap_bytes(count))
    new_bound, pos = read_fixed_int(payload, pos, 1)
    names: list[bytes] = []
    if new_bound:
        types: list[ParamType] = []
        for _ in range(count):
            ptype, pos = ParamType.parse(payload, pos)
            types.append(ptype)
            if with_names:
                name, pos = read_lenenc_str(payload, pos)
                names.append(name)
        bound = tuple(types)
    else:
        if previous_types is None or len(previous_types) != count:
            raise MalformedPacket(
                f"parameters sent without types (new_params_bound_flag=0) but the {count} types of a previous "
                "execute are not known; pass previous_types from the last execute that bound them"
            )
        bound = previous_types
    values, pos = decode_binary_values(payload, pos, bound, bitmap, given=long_data)
    return bool(new_bound), bound, tuple(names), values, pos


def _encode_typed_block(
    types: tuple[ParamType, ...], names: tuple[bytes, ...], values: tuple[BinaryValue, ...], new_bound: bool,
    with_names: bool, long_data_params: tuple[int, ...] = (),
) -> bytes:  # fmt: skip
    out = bytearray(build_null_bitmap(values))
    out.append(1 if new_bound else 0)
    if new_bound:
        for i, ptype in enumerate(types):
            out += ptype.encode()
            if with_names:
                out += write_lenenc_str(names[i] if i < len(names) else b"")
    out += encode_binary_values(values, types, long_data_params)
    return bytes(out)


@dataclass(frozen=True, slots=True)
class ComQuery:
    """COM_QUERY. ``sql`` is raw bytes in the connection charset."""

    sql: bytes
    query_attributes: tuple[QueryAttribute, ...] = ()

    @classmethod
    def parse(cls, payload: bytes, capabilities: int = 0) -> ComQuery:
        attributes, pos = cls.parse_head(payload, capabilities)
        sql, _ = read_eof_str(payload, pos)
        return cls(sql, attributes)

    @staticmethod
    def parse_head(payload: bytes, capabilities: int = 0) -> tuple[tuple[QueryAttribute, ...], int]:
        """The query attributes and the offset where the SQL text starts (it runs to the end): for a
        caller that reads a big text in place (``payload[offset:]`` would be one more copy of it)."""
        _body(payload, c.COM_QUERY, "COM_QUERY")
        pos = 1
        attributes: tuple[QueryAttribute, ...] = ()
        if capabilities & c.CLIENT_QUERY_ATTRIBUTES:
            count, pos = read_lenenc_int(payload, pos)
            set_count, pos = read_lenenc_int(payload, pos)
            if set_count != 1:
                raise MalformedPacket(f"COM_QUERY parameter_set_count must be 1, got {set_count}")
            if count:
                _, types, names, values, pos = _decode_typed_block(payload, pos, count, True, None)
                attributes = tuple(QueryAttribute(n, t, v) for n, t, v in zip(names, types, values, strict=True))
        return attributes, pos

    def encode(self, capabilities: int = 0) -> bytes:
        out = bytearray((c.COM_QUERY,))
        if capabilities & c.CLIENT_QUERY_ATTRIBUTES:
            attrs = self.query_attributes
            out += write_lenenc_int(len(attrs)) + b"\x01"
            if attrs:
                out += _encode_typed_block(
                    tuple(a.type for a in attrs), tuple(a.name for a in attrs), tuple(a.value for a in attrs),
                    True, True,
                )  # fmt: skip
        elif self.query_attributes:
            raise ValueError("query attributes need CLIENT_QUERY_ATTRIBUTES")
        return bytes(out + self.sql)


@dataclass(frozen=True, slots=True)
class ComInitDb:
    schema: bytes

    @classmethod
    def parse(cls, payload: bytes, capabilities: int = 0) -> ComInitDb:
        _body(payload, c.COM_INIT_DB, "COM_INIT_DB")
        return cls(payload[1:])

    def encode(self, capabilities: int = 0) -> bytes:
        return bytes((c.COM_INIT_DB,)) + self.schema


@dataclass(frozen=True, slots=True)
class _NoArgCommand:
    """A command without arguments: the command byte alone (a subclass sets ``_code`` and ``_name``)."""

    _code: ClassVar[int]
    _name: ClassVar[str]

    @classmethod
    def parse(cls, payload: bytes, capabilities: int = 0) -> Self:
        _body(payload, cls._code, cls._name)
        require_end(payload, 1, cls._name)
        return cls()

    def encode(self, capabilities: int = 0) -> bytes:
        return bytes((self._code,))


class ComQuit(_NoArgCommand):
    """Close the connection; has no response."""

    __slots__ = ()
    _code, _name = c.COM_QUIT, "COM_QUIT"


class ComPing(_NoArgCommand):
    """Check the server is alive; answered by OK."""

    __slots__ = ()
    _code, _name = c.COM_PING, "COM_PING"


class ComResetConnection(_NoArgCommand):
    """Reset session state without re-authenticating; answered by OK or ERR."""

    __slots__ = ()
    _code, _name = c.COM_RESET_CONNECTION, "COM_RESET_CONNECTION"


@dataclass(frozen=True, slots=True)
class ComFieldList:
    table: bytes
    wildcard: bytes = b""

    @classmethod
    def parse(cls, payload: bytes, capabilities: int = 0) -> ComFieldList:
        _body(payload, c.COM_FIELD_LIST, "COM_FIELD_LIST")
        table, pos = read_nul_str(payload, 1)
        wildcard, _ = read_eof_str(payload, pos)
        return cls(table, wildcard)

    def encode(self, capabilities: int = 0) -> bytes:
        return bytes((c.COM_FIELD_LIST,)) + write_nul_str(self.table) + self.wildcard


@dataclass(frozen=True, slots=True)
class ComChangeUser:
    """COM_CHANGE_USER: re-authenticate on the same connection (followed by an auth exchange)."""

    user: bytes
    auth_response: bytes = b""
    schema: bytes = b""
    charset: int | None = None
    auth_plugin_name: str | None = None
    connect_attrs: dict[bytes, bytes] = field(default_factory=dict, hash=False)

    @classmethod
    def parse(cls, payload: bytes, capabilities: int = c.CLIENT_SECURE_CONNECTION) -> ComChangeUser:
        _body(payload, c.COM_CHANGE_USER, "COM_CHANGE_USER")
        user, pos = read_nul_str(payload, 1)
        if capabilities & c.CLIENT_SECURE_CONNECTION:
            auth_len, pos = read_fixed_int(payload, pos, 1)
            auth, pos = read_fixed_str(payload, pos, auth_len)
        else:
            auth, pos = read_nul_str(payload, pos)
        schema, pos = read_nul_str(payload, pos)
        charset = plugin = None
        attrs: dict[bytes, bytes] = {}
        if pos < len(payload):
            charset, pos = read_fixed_int(payload, pos, 2)
        if capabilities & c.CLIENT_PLUGIN_AUTH and pos < len(payload):
            raw_plugin, pos = read_nul_str(payload, pos)
            plugin = raw_plugin.decode("latin-1")
        if capabilities & c.CLIENT_CONNECT_ATTRS and pos < len(payload):
            block, pos = read_lenenc_str(payload, pos)
            attrs = _decode_attrs(block)
        require_end(payload, pos, "COM_CHANGE_USER")
        return cls(user, auth, schema, charset, plugin, attrs)

    def encode(self, capabilities: int = c.CLIENT_SECURE_CONNECTION) -> bytes:
        out = bytearray((c.COM_CHANGE_USER,)) + write_nul_str(self.user)
        if capabilities & c.CLIENT_SECURE_CONNECTION:
            out += write_fixed_int(len(self.auth_response), 1) + self.auth_response
        else:
            out += write_nul_str(self.auth_response)
        out += write_nul_str(self.schema)
        attrs = capabilities & c.CLIENT_CONNECT_ATTRS and (self.connect_attrs or self.auth_plugin_name is not None)
        plugin = capabilities & c.CLIENT_PLUGIN_AUTH and (self.auth_plugin_name is not None or attrs)
        if self.charset is None and not (plugin or attrs):
            return bytes(out)
        out += write_fixed_int(self.charset or 0, 2)
        if plugin:
            out += write_nul_str((self.auth_plugin_name or "").encode("latin-1"))
        if attrs:
            out += write_lenenc_str(encode_attrs(self.connect_attrs))
        return bytes(out)


@dataclass(frozen=True, slots=True)
class ComSetOption:
    option: int

    @classmethod
    def parse(cls, payload: bytes, capabilities: int = 0) -> ComSetOption:
        _body(payload, c.COM_SET_OPTION, "COM_SET_OPTION")
        option, pos = read_fixed_int(payload, 1, 2)
        require_end(payload, pos, "COM_SET_OPTION")
        return cls(option)

    def encode(self, capabilities: int = 0) -> bytes:
        return bytes((c.COM_SET_OPTION,)) + write_fixed_int(self.option, 2)


@dataclass(frozen=True, slots=True)
class ComStmtPrepare:
    sql: bytes

    @classmethod
    def parse(cls, payload: bytes, capabilities: int = 0) -> ComStmtPrepare:
        _body(payload, c.COM_STMT_PREPARE, "COM_STMT_PREPARE")
        return cls(payload[1:])

    def encode(self, capabilities: int = 0) -> bytes:
        return bytes((c.COM_STMT_PREPARE,)) + self.sql


@dataclass(frozen=True, slots=True)
class ComStmtSendLongData:
    """Appends ``data`` to parameter ``param_id`` before the next execute; has no response."""

    stmt_id: int
    param_id: int
    data: bytes

    @classmethod
    def parse(cls, payload: bytes, capabilities: int = 0) -> ComStmtSendLongData:
        _body(payload, c.COM_STMT_SEND_LONG_DATA, "COM_STMT_SEND_LONG_DATA")
        stmt_id, pos = read_fixed_int(payload, 1, 4)
        param_id, pos = read_fixed_int(payload, pos, 2)
        return cls(stmt_id, param_id, payload[pos:])

    def encode(self, capabilities: int = 0) -> bytes:
        return (
            bytes((c.COM_STMT_SEND_LONG_DATA,))
            + write_fixed_int(self.stmt_id, 4)
            + write_fixed_int(self.param_id, 2)
            + self.data
        )


@dataclass(frozen=True, slots=True)
class _StmtIdCommand:
    """A command whose only argument is a statement id (a subclass sets ``_code`` and ``_name``)."""

    _code: ClassVar[int]
    _name: ClassVar[str]
    stmt_id: int

    @classmethod
    def parse(cls, payload: bytes, capabilities: int = 0) -> Self:
        _body(payload, cls._code, cls._name)
        stmt_id, pos = read_fixed_int(payload, 1, 4)
        require_end(payload, pos, cls._name)
        return cls(stmt_id)

    def encode(self, capabilities: int = 0) -> bytes:
        return bytes((self._code,)) + write_fixed_int(self.stmt_id, 4)


class ComStmtClose(_StmtIdCommand):
    """Deallocate a prepared statement; has no response."""

    __slots__ = ()
    _code, _name = c.COM_STMT_CLOSE, "COM_STMT_CLOSE"


class ComStmtReset(_StmtIdCommand):
    """Reset a prepared statement's long data and cursor; answered by OK or ERR."""

    __slots__ = ()
    _code, _name = c.COM_STMT_RESET, "COM_STMT_RESET"


@dataclass(frozen=True, slots=True)
class ComStmtFetch:
    stmt_id: int
    num_rows: int

    @classmethod
    def parse(cls, payload: bytes, capabilities: int = 0) -> ComStmtFetch:
        _body(payload, c.COM_STMT_FETCH, "COM_STMT_FETCH")
        stmt_id, pos = read_fixed_int(payload, 1, 4)
        num_rows, pos = read_fixed_int(payload, pos, 4)
        require_end(payload, pos, "COM_STMT_FETCH")
        return cls(stmt_id, num_rows)

    def encode(self, capabilities: int = 0) -> bytes:
        return bytes((c.COM_STMT_FETCH,)) + write_fixed_int(self.stmt_id, 4) + write_fixed_int(self.num_rows, 4)


@dataclass(frozen=True, slots=True)
class PreparedStatementInfo:
    """Decode context for COM_STMT_EXECUTE: what the caller remembers about one prepared statement.

    ``num_params`` comes from the prepare response; ``param_types`` from the last execute that bound
    types (``new_params_bound``), needed when a later execute sends values without types;
    ``long_data`` what COM_STMT_SEND_LONG_DATA sent since the last execute (parameter index -> its
    chunks, joined once by the execute: appending costs no copy of what came before).
    """

    num_params: int
    param_types: tuple[ParamType, ...] | None = None
    long_data: Mapping[int, tuple[bytes, ...]] = field(default_factory=dict, compare=False, hash=False)

    def after_execute(self, event: ComStmtExecute) -> PreparedStatementInfo:
        """The info to keep after ``event`` was sent (remembers newly bound types; long data is used up)."""
        if event.new_params_bound:
            return PreparedStatementInfo(self.num_params, event.param_types)
        if self.long_data:
            return PreparedStatementInfo(self.num_params, self.param_types)
        return self

    def with_long_data(self, event: ComStmtSendLongData) -> PreparedStatementInfo:
        """The info after ``event``: its data appended to what its parameter received so far."""
        data = dict(self.long_data)
        data[event.param_id] = (*data.get(event.param_id, ()), event.data)
        return PreparedStatementInfo(self.num_params, self.param_types, data)


@dataclass(frozen=True, slots=True)
class ComStmtExecute:
    """COM_STMT_EXECUTE with decoded parameters.

    ``param_types`` are the types in effect (sent in this packet when ``new_params_bound``, else the
    ``previous_types`` passed to :meth:`parse`). ``param_names`` is non-empty only with
    CLIENT_QUERY_ATTRIBUTES. MariaDB's ``stmt_id == 0xFFFFFFFF`` means "the statement prepared just before".

    A parameter sent with COM_STMT_SEND_LONG_DATA before the execute is not in the execute's values at
    all (its NULL-bitmap bit is ignored; its type is still sent): :meth:`parse` needs the data the
    statement received (``long_data``: parameter index -> the chunks concatenated), which becomes that
    parameter's value; ``long_data_params`` lists those indices (:meth:`encode` leaves them out again).
    """

    stmt_id: int
    flags: int = 0
    iteration_count: int = 1
    new_params_bound: bool = False
    param_types: tuple[ParamType, ...] = ()
    param_values: tuple[BinaryValue, ...] = ()
    param_names: tuple[bytes, ...] = ()
    long_data_params: tuple[int, ...] = ()

    @property
    def null_bitmap(self) -> bytes:
        return build_null_bitmap(self.param_values)

    @staticmethod
    def peek_stmt_id(payload: bytes) -> int:
        """The statement id of an execute payload, to look up its :class:`PreparedStatementInfo`."""
        if len(payload) >= 5 and payload[0] == c.COM_STMT_EXECUTE:  # (every execute: checked inline)
            return payload[1] | payload[2] << 8 | payload[3] << 16 | payload[4] << 24
        _body(payload, c.COM_STMT_EXECUTE, "COM_STMT_EXECUTE")
        return read_fixed_int(payload, 1, 4)[0]

    @classmethod
    def parse(
        cls, payload: bytes, num_params: int, previous_types: tuple[ParamType, ...] | None = None,
        capabilities: int = 0, long_data: Mapping[int, bytes | bytearray] | None = None,
    ) -> ComStmtExecute:  # fmt: skip
        _body(payload, c.COM_STMT_EXECUTE, "COM_STMT_EXECUTE")
        stmt_id, pos = read_fixed_int(payload, 1, 4)
        flags, pos = read_fixed_int(payload, pos, 1)
        iteration_count, pos = read_fixed_int(payload, pos, 4)
        with_attrs = bool(capabilities & c.CLIENT_QUERY_ATTRIBUTES)
        count = num_params
        new_bound = False
        types: tuple[ParamType, ...] = ()
        names: tuple[bytes, ...] = ()
        values: tuple[BinaryValue, ...] = ()
        given: dict[int, BinaryValue] = {}  # the parameters sent as long data (query attributes never are)
        if num_params > 0 or (with_attrs and flags & c.PARAMETER_COUNT_AVAILABLE):
            if with_attrs:
                count, pos = read_lenenc_int(payload, pos)
                if count < num_params:  # (the statement's parameters come first, query attributes after)
                    raise MalformedPacket(f"COM_STMT_EXECUTE sends {count} parameters for a statement with "
                                          f"{num_params}")
            if count > len(payload):  # each parameter needs at least one bitmap bit and two type bytes
                raise MalformedPacket(f"COM_STMT_EXECUTE claims {count} parameters in a {len(payload)}-byte packet")
            if count:
                if long_data:
                    given = {i: bytes(v) for i, v in long_data.items() if 0 <= i < min(num_params, count)}
                new_bound, types, names, values, pos = _decode_typed_block(
                    payload, pos, count, with_attrs, previous_types, given
                )
        require_end(payload, pos, "COM_STMT_EXECUTE")
        return cls(stmt_id, flags, iteration_count, new_bound, types, values, names, tuple(sorted(given)))

    def encode(self, capabilities: int = 0) -> bytes:
        out = bytearray((c.COM_STMT_EXECUTE,))
        out += write_fixed_int(self.stmt_id, 4) + write_fixed_int(self.flags, 1)
        out += write_fixed_int(self.iteration_count, 4)
        with_attrs = bool(capabilities & c.CLIENT_QUERY_ATTRIBUTES)
        count = len(self.param_values)
        if count or (with_attrs and self.flags & c.PARAMETER_COUNT_AVAILABLE):
            if with_attrs:
                out += write_lenenc_int(count)
            if count:
                out += _encode_typed_block(
                    self.param_types, self.param_names, self.param_values, self.new_params_bound, with_attrs,
                    self.long_data_params,
                )
        return bytes(out)


@dataclass(frozen=True, slots=True)
class UnknownCommand:
    """A command this codec does not decode (COM_STATISTICS, COM_BINLOG_DUMP, ...), kept raw."""

    code: int
    payload: bytes

    def encode(self, capabilities: int = 0) -> bytes:
        return self.payload


CommandEvent = (
    ComQuery | ComInitDb | ComQuit | ComPing | ComResetConnection | ComFieldList | ComChangeUser | ComSetOption
    | ComStmtPrepare | ComStmtSendLongData | ComStmtClose | ComStmtReset | ComStmtFetch | ComStmtExecute
    | UnknownCommand
)  # fmt: skip

# the commands parse_command decodes from the payload alone: parse(payload, capabilities)
_SelfContainedCommand = (
    ComQuery | ComInitDb | ComQuit | ComPing | ComResetConnection | ComFieldList | ComChangeUser | ComSetOption
    | ComStmtPrepare | ComStmtSendLongData | ComStmtClose | ComStmtReset | ComStmtFetch
)  # fmt: skip

_PARSERS: dict[int, type[_SelfContainedCommand]] = {
    c.COM_QUERY: ComQuery,
    c.COM_INIT_DB: ComInitDb,
    c.COM_QUIT: ComQuit,
    c.COM_PING: ComPing,
    c.COM_RESET_CONNECTION: ComResetConnection,
    c.COM_FIELD_LIST: ComFieldList,
    c.COM_CHANGE_USER: ComChangeUser,
    c.COM_SET_OPTION: ComSetOption,
    c.COM_STMT_PREPARE: ComStmtPrepare,
    c.COM_STMT_SEND_LONG_DATA: ComStmtSendLongData,
    c.COM_STMT_CLOSE: ComStmtClose,
    c.COM_STMT_RESET: ComStmtReset,
    c.COM_STMT_FETCH: ComStmtFetch,
}


def parse_command(
    payload: bytes, capabilities: int = 0, statements: Mapping[int, PreparedStatementInfo] | None = None
) -> CommandEvent:
    """Parse one client command payload.

    COM_STMT_EXECUTE needs the statement's :class:`PreparedStatementInfo` from ``statements``; an id
    not in it raises :class:`UnknownStatement` (a ProtocolError the caller may answer by forwarding).
    """
    if not payload:
        raise MalformedPacket("empty command payload")
    code = payload[0]
    if code == c.COM_STMT_EXECUTE:
        stmt_id = ComStmtExecute.peek_stmt_id(payload)
        info = statements.get(stmt_id) if statements is not None else None
        if info is None:
            raise UnknownStatement(stmt_id)
        long_data = {i: b"".join(chunks) for i, chunks in info.long_data.items()}
        return ComStmtExecute.parse(payload, info.num_params, info.param_types, capabilities, long_data)
    parser = _PARSERS.get(code)
    if parser is None:
        return UnknownCommand(code, bytes(payload))
    return parser.parse(payload, capabilities)


# The event type of every command byte this codec decodes (any other byte is an UnknownCommand).
COMMAND_TYPES: dict[int, type] = {**_PARSERS, c.COM_STMT_EXECUTE: ComStmtExecute}
_CODES: dict[type, int] = {cls: code for code, cls in COMMAND_TYPES.items()}


def command_code(event: CommandEvent) -> int:
    """The command byte of a command event."""
    if isinstance(event, UnknownCommand):
        return event.code
    return _CODES[type(event)]
