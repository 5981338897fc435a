"""Result-set and prepared-statement packets: column count, column definitions, rows, prepare OK,
and the LOCAL INFILE request.

The proxy forwards rows raw; these parsers exist for the packets it does read (column types for binary
rows, the prepare response's parameter count) and for tests.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

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
    read_lenenc_str_or_null,
    require_end,
    write_fixed_int,
    write_lenenc_int,
    write_lenenc_str,
)
from dbmux.ingress.protocol.errors import MalformedPacket

BINARY_ROW_BITMAP_OFFSET = 2


def has_metadata_flag(capabilities: int, mariadb_ext_caps: int = 0) -> bool:
    """Whether column-count and prepare-OK packets carry a ``metadata_follows`` byte."""
    return bool(
        capabilities & c.CLIENT_OPTIONAL_RESULTSET_METADATA
        or (not capabilities & c.CLIENT_MYSQL and mariadb_ext_caps & c.MARIADB_CLIENT_CACHE_METADATA)
    )


@dataclass(frozen=True, slots=True)
class ColumnCount:
    """First packet of a result set. ``metadata_follows`` is None unless optional/cached metadata is on."""

    count: int
    metadata_follows: bool | None = None

    @classmethod
    def parse(cls, payload: bytes, capabilities: int = 0, mariadb_ext_caps: int = 0) -> ColumnCount:
        count, pos = read_lenenc_int(payload, 0)
        if count == 0:
            raise MalformedPacket("column count 0 (a 0x00-headed packet is an OK packet, not a result set)")
        follows = None
        if has_metadata_flag(capabilities, mariadb_ext_caps):
            flag, pos = read_fixed_int(payload, pos, 1)
            follows = flag != c.RESULTSET_METADATA_NONE
        require_end(payload, pos, "column count")
        return cls(count, follows)

    def encode(self) -> bytes:
        out = write_lenenc_int(self.count)
        if self.metadata_follows is not None:
            out += bytes((1 if self.metadata_follows else 0,))
        return out


@dataclass(frozen=True, slots=True)
class ColumnDefinition41:
    """Protocol::ColumnDefinition41. Names are raw bytes in the result charset.

    ``extended_metadata`` is MariaDB's extended type info block (MARIADB_CLIENT_EXTENDED_METADATA);
    ``default_value`` appears only in COM_FIELD_LIST responses.
    """

    name: bytes
    type: int
    schema: bytes = b""
    table: bytes = b""
    org_table: bytes = b""
    org_name: bytes = b""
    charset: int = 63
    column_length: int = 0
    flags: int = 0
    decimals: int = 0
    catalog: bytes = b"def"
    extended_metadata: bytes | None = None
    default_value: bytes | None = None

    @property
    def param_type(self) -> ParamType:
        """The column's binary-protocol value type."""
        return ParamType(self.type, bool(self.flags & c.UNSIGNED_FLAG))

    @classmethod
    def parse(cls, payload: bytes, mariadb_ext_caps: int = 0, capabilities: int = c.CLIENT_MYSQL) -> ColumnDefinition41:
        catalog, pos = read_lenenc_str(payload, 0)
        schema, pos = read_lenenc_str(payload, pos)
        table, pos = read_lenenc_str(payload, pos)
        org_table, pos = read_lenenc_str(payload, pos)
        name, pos = read_lenenc_str(payload, pos)
        org_name, pos = read_lenenc_str(payload, pos)
        extended = None
        if not capabilities & c.CLIENT_MYSQL and mariadb_ext_caps & c.MARIADB_CLIENT_EXTENDED_METADATA:
            extended, pos = read_lenenc_str(payload, pos)
        fixed_len, pos = read_lenenc_int(payload, pos)
        if fixed_len < 0x0C:
            raise MalformedPacket(f"column definition fixed-fields length {fixed_len}, expected 12")
        fixed, pos = read_fixed_str(payload, pos, fixed_len)
        charset = int.from_bytes(fixed[0:2], "little")
        column_length = int.from_bytes(fixed[2:6], "little")
        type_code, flags, decimals = fixed[6], int.from_bytes(fixed[7:9], "little"), fixed[9]
        default = None
        if pos < len(payload):
            default, pos = read_lenenc_str(payload, pos)
        require_end(payload, pos, "column definition")
        return cls(
            name, type_code, schema, table, org_table, org_name, charset, column_length, flags, decimals,
            catalog, extended, default,
        )  # fmt: skip

    def encode(self) -> bytes:
        out = bytearray()
        for part in (self.catalog, self.schema, self.table, self.org_table, self.name, self.org_name):
            out += write_lenenc_str(part)
        if self.extended_metadata is not None:
            out += write_lenenc_str(self.extended_metadata)
        out += b"\x0c" + write_fixed_int(self.charset, 2) + write_fixed_int(self.column_length, 4)
        out += bytes((self.type,)) + write_fixed_int(self.flags, 2) + bytes((self.decimals,)) + b"\x00\x00"
        if self.default_value is not None:
            out += write_lenenc_str(self.default_value)
        return bytes(out)


@dataclass(frozen=True, slots=True)
class TextRow:
    """A text-protocol row: each value is bytes, or None for SQL NULL."""

    values: tuple[bytes | None, ...]

    @classmethod
    def parse(cls, payload: bytes, column_count: int | None = None) -> TextRow:
        values: list[bytes | None] = []
        pos = 0
        while pos < len(payload):
            value, pos = read_lenenc_str_or_null(payload, pos)
            values.append(value)
        if column_count is not None and len(values) != column_count:
            raise MalformedPacket(f"text row has {len(values)} values, the result set has {column_count} columns")
        return cls(tuple(values))

    def encode(self) -> bytes:
        return b"".join(b"\xfb" if v is None else write_lenenc_str(v) for v in self.values)


@dataclass(frozen=True, slots=True)
class BinaryRow:
    """A binary-protocol row (COM_STMT_EXECUTE results), decoded with the columns' types."""

    values: tuple[BinaryValue, ...]

    @classmethod
    def parse(cls, payload: bytes, column_types: Sequence[ParamType]) -> BinaryRow:
        header, pos = read_fixed_int(payload, 0, 1)
        if header != c.OK_HEADER:
            raise MalformedPacket(f"binary row starts with 0x{header:02X}, expected 0x00")
        bitmap, pos = read_fixed_str(payload, pos, null_bitmap_bytes(len(column_types), BINARY_ROW_BITMAP_OFFSET))
        values, pos = decode_binary_values(payload, pos, column_types, bitmap, BINARY_ROW_BITMAP_OFFSET)
        require_end(payload, pos, "binary row")
        return cls(values)

    def encode(self, column_types: Sequence[ParamType]) -> bytes:
        return (
            b"\x00"
            + build_null_bitmap(self.values, BINARY_ROW_BITMAP_OFFSET)
            + encode_binary_values(self.values, column_types)
        )


@dataclass(frozen=True, slots=True)
class StmtPrepareOk:
    """COM_STMT_PREPARE_OK: followed by ``num_params`` then ``num_columns`` column definitions."""

    statement_id: int
    num_columns: int
    num_params: int
    warnings: int = 0
    metadata_follows: bool | None = None

    @classmethod
    def parse(cls, payload: bytes, capabilities: int = 0) -> StmtPrepareOk:
        header, pos = read_fixed_int(payload, 0, 1)
        if header != c.OK_HEADER:
            raise MalformedPacket(f"COM_STMT_PREPARE_OK starts with 0x{header:02X}, expected 0x00")
        statement_id, pos = read_fixed_int(payload, pos, 4)
        num_columns, pos = read_fixed_int(payload, pos, 2)
        num_params, pos = read_fixed_int(payload, pos, 2)
        warnings = 0
        follows = None
        if pos < len(payload):
            pos += 1  # reserved filler
            warnings, pos = read_fixed_int(payload, pos, 2)
        if capabilities & c.CLIENT_OPTIONAL_RESULTSET_METADATA and pos < len(payload):
            flag, pos = read_fixed_int(payload, pos, 1)
            follows = flag != c.RESULTSET_METADATA_NONE
        require_end(payload, pos, "COM_STMT_PREPARE_OK")
        return cls(statement_id, num_columns, num_params, warnings, follows)

    def encode(self) -> bytes:
        out = (
            b"\x00"
            + write_fixed_int(self.statement_id, 4)
            + write_fixed_int(self.num_columns, 2)
            + write_fixed_int(self.num_params, 2)
            + b"\x00"
            + write_fixed_int(self.warnings, 2)
        )
        if self.metadata_follows is not None:
            out += bytes((1 if self.metadata_follows else 0,))
        return out


@dataclass(frozen=True, slots=True)
class LocalInfileRequest:
    """The server asks the client to send a file (LOAD DATA LOCAL INFILE): 0xFB filename<EOF>."""

    filename: bytes

    @classmethod
    def parse(cls, payload: bytes) -> LocalInfileRequest:
        header, pos = read_fixed_int(payload, 0, 1)
        if header != c.LOCAL_INFILE_HEADER:
            raise MalformedPacket(f"LOCAL INFILE request starts with 0x{header:02X}, expected 0xFB")
        filename, _ = read_eof_str(payload, pos)
        return cls(filename)

    def encode(self) -> bytes:
        return b"\xfb" + self.filename
