"""The change event's wire codec: :class:`~dbmux.core.events.ChangeEvent` <-> bytes.

Wire format (orjson, UTF-8 JSON object), envelope version 2::

    {"v": 2, "gtid": "0-1-42", "source": "ingress"|"binlog", "ts_ms": 1700000000000, "db": "shop"|null,
     "statements": [{"sql": "..."|{"$b": "<base64>"}, "params": [...]|null, "insert_id": 0,
                     "last_insert_id": 0, "unsafe": false, "kind": "dml"|"ddl"|"other",
                     "charset": "latin1"|null}],
     "rows": [{"table": "t", "db": "shop", "op": "insert"|"update"|"delete",
               "before": {...}|null, "after": {...}|null}],
     "session": {"user": ..., "client_addr": ..., "connection_id": ..., "db": ..., "sql_mode": ...,
                 "time_zone": ..., "charset": ..., "timestamp_us": ...(binlog DDL only)}|null,
     "tables": [{"db": "shop", "table": "t", "columns": ["id", "v"],
                 "types": ["int unsigned", "varchar charset utf8mb4"], "pk": ["id"]|null}]}

``tables`` (binlog events) is the schema of each table the event's rows change, once per table, not
per row: its columns' names and types as the binlog table map described them at that GTID, in the
compact text form of :class:`~dbmux.core.events.ColumnType` (``kind[(args)][ unsigned][ charset
NAME]``), and its primary key (``[]``: the table has none; ``null``: not known). It is an optional
field of version 2, written only when an event has tables: events without it (ingress events, and
every event written before it existed) decode with ``tables`` empty, and a decoder that does not know
the field ignores it (it types row values by the source's current schema, as before). Likewise
``"no_fk_checks": true`` (binlog events whose rows the primary changed with ``foreign_key_checks = 0``;
absent: false), and ``"snapshot": {"id", "table", "part", "position", "chunk", "create_sql",
"primary_key", "rows_total"}`` (``"source": "snapshot"`` events only, :class:`~dbmux.core.events.SnapshotPart`).

Statements travel byte-exact (:mod:`dbmux.core.charsets`). ``sql`` is a JSON string when the
statement's bytes are that string's UTF-8 (UTF-8 text in a UTF-8 character set, or ASCII in any: the
common case, no copy and no base64), else ``{"$b": "<base64>"}``: its exact bytes, whose text the
decoder derives (:func:`~dbmux.core.charsets.sql_text`). A statement's ``charset`` (the session's
``character_set_client`` it was sent in) is written only when it differs from ``session.charset``;
absent, it is the session's.

Version 1 (what dbmux wrote before) has the same shape with ``"v": 1``, ``sql`` always a string and no
statement ``charset``; it still decodes, its statements with ``charset`` None (unknown: appliers use
utf8mb4, as they did for it). Decoders accept unknown extra keys (so a same-version producer may add
optional fields) and reject a ``v`` above :data:`VERSION`.

Values (column images and prepared-statement params)
----------------------------------------------------
JSON cannot tell a DECIMAL from a string or a DATETIME from a string, so every value that is not a
JSON-native ``None``/``bool``/``int``/``float``/``str`` is written as a *tagged single-key object*:

=====================  ====================================================  =========================
Python type            JSON                                                  notes
=====================  ====================================================  =========================
bytes (bytearray,      ``{"$b": "<base64>"}``                                decodes to ``bytes``
memoryview)
decimal.Decimal        ``{"$d": "12.30"}``                                   ``str(d)``: exact digits,
                                                                             scale and sign (``-0.00``)
datetime.datetime      ``{"$dt": "2024-01-02T03:04:05.123456"}``             ISO 8601; tz offset kept
                                                                             if aware
datetime.date          ``{"$date": "2024-01-02"}``
datetime.time          ``{"$time": "03:04:05.000001"}``
datetime.timedelta     ``{"$td": -1500000}``                                 total microseconds (MySQL
                                                                             TIME as drivers give it);
                                                                             a decimal string beyond
                                                                             int64
int outside            ``{"$i": "-9223372036854775809"}``                    orjson only does
[-2**63, 2**64-1]                                                            int64/uint64
float nan/inf/-inf     ``{"$f": "nan"|"inf"|"-inf"}``                        JSON has no such numbers
=====================  ====================================================  =========================

Ints within int64/uint64 (including unsigned BIGINT up to 2**64-1) stay plain JSON numbers.

``dict`` and ``list`` values are **rejected** with :class:`EnvelopeError`: MySQL JSON columns reach
producers as ``str``/``bytes`` (the document text), so a real dict never needs to travel, and rejecting
it means a tagged object can never be confused with a user dict. Any other type is rejected too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from dbmux.core.codec_values import decode_value, encode_image, encode_value, encode_values, tag_bytes
from dbmux.core.events import (
    SOURCES,
    STATEMENT_KINDS,
    ChangeEvent,
    ColumnType,
    EnvelopeError,
    RowChange,
    SessionContext,
    SnapshotPart,
    Statement,
    TableSchema,
)
from dbmux.core.gtid import Gtid, GtidError

__all__ = [
    "VERSION",
    "encode_event",
    "decode_event",
    "encode_value",
    "decode_value",
]

VERSION = 2
"""The envelope version this code writes; it reads this one and every one before it."""

# --------------------------------------------------------------------------------------------- encode

# TableSchema -> its JSON, pre-serialised: a producer hands the same TableSchema object to every event
# of a table (the binlog reader keeps one per table map), so each is serialised once. Keyed by identity
# (the entry holds the object, so its id is not reused while cached); bounded.
_TABLE_WIRE: dict[int, tuple[TableSchema, orjson.Fragment]] = {}
_TABLE_WIRE_MAX = 1024


def _table_wire(ts: TableSchema) -> orjson.Fragment:
    hit = _TABLE_WIRE.get(id(ts))
    if hit is not None and hit[0] is ts:
        return hit[1]
    if type(ts) is not TableSchema:
        raise EnvelopeError(f"tables: expected TableSchema, got {type(ts).__name__}")
    doc = {"db": ts.db, "table": ts.table, "columns": list(ts.columns), "types": [t.text for t in ts.types],
           "pk": list(ts.primary_key) if ts.primary_key is not None else None}
    try:
        wire = orjson.Fragment(orjson.dumps(doc))
    except (TypeError, orjson.JSONEncodeError) as e:
        raise EnvelopeError(f"table {ts.db}.{ts.table}: cannot encode: {e}") from None
    if len(_TABLE_WIRE) >= _TABLE_WIRE_MAX:
        _TABLE_WIRE.clear()
    _TABLE_WIRE[id(ts)] = (ts, wire)
    return wire


def encode_event(ev: ChangeEvent) -> bytes:
    """Serialise an event to its orjson bytes. Raises :class:`EnvelopeError` on unsupported values."""
    if not isinstance(ev, ChangeEvent):
        raise EnvelopeError(f"encode_event needs a ChangeEvent, got {type(ev).__name__}")
    statements = []
    session_charset = ev.session.charset if ev.session is not None else None
    for i, st in enumerate(ev.statements):
        params = None
        if st.params is not None:
            params = encode_values(st.params, lambda i=i: f"statements[{i}].params")
        doc_st = {
            "sql": st.sql if st.raw is None else tag_bytes(st.raw),
            "params": params,
            "insert_id": st.insert_id,
            "last_insert_id": st.last_insert_id,
            "unsafe": st.unsafe,
            "kind": st.kind,
        }
        if st.charset != session_charset:
            doc_st["charset"] = st.charset
        statements.append(doc_st)
    rows = [
        {
            "table": r.table,
            "db": r.db,
            "op": r.op,
            "before": encode_image(r.before, i, "before"),
            "after": encode_image(r.after, i, "after"),
        }
        for i, r in enumerate(ev.rows)
    ]
    session = None
    if ev.session is not None:
        s = ev.session
        session = {
            "user": s.user,
            "client_addr": s.client_addr,
            "connection_id": s.connection_id,
            "db": s.db,
            "sql_mode": s.sql_mode,
            "time_zone": s.time_zone,
            "charset": s.charset,
        }
        if s.timestamp_us is not None:
            session["timestamp_us"] = s.timestamp_us
    doc = {
        "v": VERSION,
        "gtid": str(ev.gtid),
        "source": ev.source,
        "ts_ms": ev.ts_ms,
        "db": ev.db,
        "statements": statements,
        "rows": rows,
        "session": session,
    }
    if ev.tables:
        doc["tables"] = [_table_wire(ts) for ts in ev.tables]
    if ev.no_fk_checks:
        doc["no_fk_checks"] = True
    if ev.snapshot is not None:
        doc["snapshot"] = snapshot_wire(ev.snapshot)
    try:
        return orjson.dumps(doc)
    except (TypeError, orjson.JSONEncodeError) as e:
        raise EnvelopeError(f"event {ev.gtid}: cannot encode: {e}") from None


# --------------------------------------------------------------------------------------------- decode

_MISSING = object()


def _field(obj: dict[str, Any], key: str, types: tuple[type, ...], where: str, *, optional: bool = False) -> Any:
    value = obj.get(key, _MISSING)
    if value is _MISSING:
        if optional:
            return None
        raise EnvelopeError(f"{where}: missing field {key!r}")
    if value is None and optional:
        return None
    # bool is an int subclass: never accept it where an int is expected, and vice versa.
    if bool in types:
        ok = type(value) is bool
    elif int in types:
        ok = isinstance(value, int) and type(value) is not bool
    else:
        ok = isinstance(value, types)
    if not ok:
        names = "/".join(t.__name__ for t in types) + (" or null" if optional else "")
        raise EnvelopeError(f"{where}: field {key!r} must be {names}, got {type(value).__name__}")
    return value


_JSON_SCALARS = frozenset({str, int, float, bool, type(None)})  # decode to themselves


def _scalars_only(image: dict[str, Any]) -> bool:
    """Does ``image`` hold only values that decode to themselves?"""
    return _JSON_SCALARS.issuperset(map(type, image.values()))


def _decode_image(raw: Any, where: str) -> dict[str, Any] | None:
    if raw is None:
        return None
    if type(raw) is not dict:
        raise EnvelopeError(f"{where}: row image must be an object, got {type(raw).__name__}")
    if _scalars_only(raw):
        return raw  # all JSON scalars: orjson's own fresh dict is the image
    return {col: decode_value(val, f"{where}.{col}") for col, val in raw.items()}  # tagged values (or garbage)


def _decode_statement(raw: Any, where: str, version: int, session_charset: str | None) -> Statement:
    if not isinstance(raw, dict):
        raise EnvelopeError(f"{where}: must be an object, got {type(raw).__name__}")
    params_raw = _field(raw, "params", (list,), where, optional=True)
    params = None
    if params_raw is not None:
        params = tuple(decode_value(p, f"{where}.params[{j}]") for j, p in enumerate(params_raw))
    kind = _field(raw, "kind", (str,), where)
    if kind not in STATEMENT_KINDS:
        raise EnvelopeError(f"{where}: kind must be one of {sorted(STATEMENT_KINDS)}, got {kind!r}")
    charset: str | None = None
    data: bytes | None = None
    if version >= 2:
        charset = raw.get("charset", session_charset)  # absent: the session's
        if charset is not None and type(charset) is not str:
            raise EnvelopeError(f"{where}: field 'charset' must be str or null, got {type(charset).__name__}")
    sql = raw.get("sql")
    if type(sql) is not str:
        sql = _field(raw, "sql", (str,) if version < 2 else (str, dict), where)  # (raises unless a v2 dict)
        data = decode_value(sql, f"{where}.sql")
        if type(data) is not bytes:
            raise EnvelopeError(f"{where}: field 'sql' must be a string or {{\"$b\": <base64>}}")
    fields = {
        "params": params,
        "insert_id": _field(raw, "insert_id", (int,), where),
        "last_insert_id": _field(raw, "last_insert_id", (int,), where),
        "unsafe": _field(raw, "unsafe", (bool,), where),
        "kind": kind,
    }
    try:
        if data is not None:
            return Statement.from_raw(data, charset, **fields)  # its text: derived from its bytes
        return Statement(sql, charset=charset, **fields)
    except EnvelopeError as e:
        raise EnvelopeError(f"{where}: {e}") from None


def _decode_row(raw: Any, where: str) -> RowChange:
    if not isinstance(raw, dict):
        raise EnvelopeError(f"{where}: must be an object, got {type(raw).__name__}")
    return RowChange(
        table=_field(raw, "table", (str,), where),
        db=_field(raw, "db", (str,), where),
        op=_field(raw, "op", (str,), where),
        before=_decode_image(raw.get("before"), f"{where}.before"),
        after=_decode_image(raw.get("after"), f"{where}.after"),
    )


def _decode_rows(rows_raw: list[Any], where: str) -> tuple[RowChange, ...]:
    """The rows of an event. Well-formed rows whose images hold only JSON scalars take a fast path
    (orjson's dicts used as they are, no error text built); anything else goes through
    :func:`_decode_row`, which decodes tagged values and names the offending field."""
    out = []
    needs = _OP_NEEDS
    scalars_only = _scalars_only
    for i, raw in enumerate(rows_raw):
        if type(raw) is dict:
            get: Callable[[str], Any] = raw.get  # (JSON values: the checks below narrow them)
            table, db, op, before, after = get("table"), get("db"), get("op"), get("before"), get("after")
            need = needs.get(op) if type(op) is str else None
            if (need is not None and type(table) is str and type(db) is str
                    and (type(before) is dict and scalars_only(before) if need[0] else before is None)
                    and (type(after) is dict and scalars_only(after) if need[1] else after is None)):
                out.append(_new_row_change(table, db, op, before, after))
                continue
        out.append(_decode_row(raw, f"{where} rows[{i}]"))
    return tuple(out)


# op -> (needs a before image, needs an after image): what RowChange.__post_init__ checks
_OP_NEEDS = {"insert": (False, True), "update": (True, True), "delete": (True, False)}


def _slot_setters(cls: type, names: str) -> tuple[Callable[[Any, Any], None], ...]:
    """The ``__set__`` of each named slot of a frozen slotted dataclass: the decoder fills objects whose
    invariants it has checked without the dataclass ``__init__`` (and its ``__post_init__`` checks)."""
    return tuple(cls.__dict__[n].__set__ for n in names.split())


_ROW_SET = _slot_setters(RowChange, "table db op before after")
_EVENT_SET = _slot_setters(ChangeEvent, "gtid source ts_ms db statements rows session tables no_fk_checks snapshot")
_new = object.__new__


def _new_row_change(table: str, db: str, op: str, before: Any, after: Any) -> RowChange:
    """A RowChange whose invariants the caller has checked (skips the dataclass __init__ checks)."""
    row = _new(RowChange)
    s_table, s_db, s_op, s_before, s_after = _ROW_SET
    s_table(row, table)
    s_db(row, db)
    s_op(row, op)
    s_before(row, before)
    s_after(row, after)
    return row


def _new_change_event(*values: Any) -> ChangeEvent:
    """A ChangeEvent from its fields in declaration order, checked by the caller as ``__post_init__``
    would (a known source, a snapshot part exactly for a snapshot event, a Gtid, tuples)."""
    ev = _new(ChangeEvent)
    for put, value in zip(_EVENT_SET, values, strict=True):
        put(ev, value)
    return ev


def _str_list(raw: dict[str, Any], key: str, where: str, *, optional: bool = False) -> tuple[str, ...] | None:
    value = _field(raw, key, (list,), where, optional=optional)
    if value is None:
        return None
    if not all(type(v) is str for v in value):
        raise EnvelopeError(f"{where}: field {key!r} must be a list of strings")
    return tuple(value)


# Tables decoded before, by their wire content: every event of a table carries the same one, so it is
# checked and built once, and consumers get the same TableSchema object for each. Bounded.
_TABLES_SEEN: dict[tuple[Any, ...], TableSchema] = {}
_TABLES_SEEN_MAX = 1024


def _decode_tables(raw: Any, where: str) -> tuple[TableSchema, ...]:
    if raw is None:
        return ()
    if type(raw) is not list:
        raise EnvelopeError(f"{where}: field 'tables' must be a list, got {type(raw).__name__}")
    out = []
    seen = _TABLES_SEEN
    for i, t in enumerate(raw):
        if type(t) is dict:
            get: Callable[[str], Any] = t.get
            columns, types, pk = get("columns"), get("types"), get("pk")
            if type(columns) is list and type(types) is list and (pk is None or type(pk) is list):
                key = (get("db"), get("table"), tuple(columns), tuple(types), pk if pk is None else tuple(pk))
                try:
                    hit = seen.get(key)
                except TypeError:  # (something unhashable inside: not a table; the checks below say why)
                    hit = None
                if hit is not None:
                    out.append(hit)
                    continue
                ts = _decode_table(t, f"{where} tables[{i}]")
                if len(seen) >= _TABLES_SEEN_MAX:
                    seen.clear()
                seen[key] = ts
                out.append(ts)
                continue
        out.append(_decode_table(t, f"{where} tables[{i}]"))
    return tuple(out)


def _decode_table(t: Any, at: str) -> TableSchema:
    if type(t) is not dict:
        raise EnvelopeError(f"{at}: must be an object, got {type(t).__name__}")
    columns = _str_list(t, "columns", at)
    types = _str_list(t, "types", at)
    try:
        return TableSchema(db=_field(t, "db", (str,), at), table=_field(t, "table", (str,), at),
                           columns=columns or (), types=tuple(map(ColumnType.parse, types or ())),
                           primary_key=_str_list(t, "pk", at, optional=True))
    except EnvelopeError as e:
        raise EnvelopeError(f"{at}: {e}") from None


def _decode_session(raw: Any) -> SessionContext | None:
    if raw is None:
        return None
    where = "session"
    if not isinstance(raw, dict):
        raise EnvelopeError(f"session must be an object or null, got {type(raw).__name__}")
    return SessionContext(
        user=_field(raw, "user", (str,), where, optional=True),
        client_addr=_field(raw, "client_addr", (str,), where, optional=True),
        connection_id=_field(raw, "connection_id", (int,), where, optional=True),
        db=_field(raw, "db", (str,), where, optional=True),
        sql_mode=_field(raw, "sql_mode", (str,), where, optional=True),
        time_zone=_field(raw, "time_zone", (str,), where, optional=True),
        charset=_field(raw, "charset", (str,), where, optional=True),
        timestamp_us=_field(raw, "timestamp_us", (int,), where, optional=True),
    )


def decode_event(data: bytes | bytearray | memoryview | str) -> ChangeEvent:
    """Parse event bytes. Every problem raises :class:`EnvelopeError` naming the offending field.

    The fields of a well-formed event are checked inline (a consumer decodes every event of the topic);
    a field that fails its check goes through :func:`_field`, which raises the error naming it."""
    try:
        doc = orjson.loads(data)
    except (orjson.JSONDecodeError, TypeError) as e:
        raise EnvelopeError(f"event is not valid JSON: {e}") from None
    if type(doc) is not dict:
        raise EnvelopeError(f"event must be a JSON object, got {type(doc).__name__}")
    get: Callable[[str], Any] = doc.get
    version = get("v")
    if type(version) is not int:
        version = _field(doc, "v", (int,), "event")  # (raises)
    if version < 1:
        raise EnvelopeError(f"event: invalid envelope version {version}")
    if version > VERSION:
        raise EnvelopeError(
            f"event: envelope version {version} is newer than supported version {VERSION}; upgrade dbmux"
        )
    gtid_text = get("gtid")
    if type(gtid_text) is not str:
        gtid_text = _field(doc, "gtid", (str,), "event")  # (raises)
    try:
        gtid = Gtid.parse(gtid_text)
    except GtidError as e:
        raise EnvelopeError(f"event: bad gtid: {e}") from None
    where = f"event {gtid_text}"
    source, ts_ms, db = get("source"), get("ts_ms"), get("db")
    statements_raw, rows_raw, no_fk_checks = get("statements"), get("rows"), get("no_fk_checks")
    if not (type(source) is str and source in SOURCES and type(ts_ms) is int and (db is None or type(db) is str)
            and (statements_raw is None or type(statements_raw) is list)
            and (rows_raw is None or type(rows_raw) is list)
            and (no_fk_checks is None or type(no_fk_checks) is bool)):
        _fields_checked(doc, where)  # (raises, naming the field)
    session = _decode_session(get("session"))
    session_charset = session.charset if session is not None else None
    statements = tuple(_decode_statement(s, f"{where} statements[{i}]", version, session_charset)
                       for i, s in enumerate(statements_raw)) if statements_raw else ()
    rows = _decode_rows(rows_raw, where) if rows_raw else ()
    tables = _decode_tables(get("tables"), where)
    snapshot = _decode_snapshot(_field(doc, "snapshot", (dict,), where, optional=True), where)
    if (source == "snapshot") != (snapshot is not None):
        raise EnvelopeError(f"{where}: a snapshot event (and only one) carries its snapshot part")
    return _new_change_event(gtid, source, ts_ms, db, statements, rows, session, tables, no_fk_checks or False,
                             snapshot)


def _fields_checked(doc: dict[str, Any], where: str) -> None:
    """The top-level fields of an event, each checked by :func:`_field` (which raises naming the first
    that is wrong)."""
    source = _field(doc, "source", (str,), where)
    if source not in SOURCES:
        raise EnvelopeError(f"{where}: source must be one of {sorted(SOURCES)}, got {source!r}")
    _field(doc, "ts_ms", (int,), where)
    _field(doc, "db", (str,), where, optional=True)
    _field(doc, "statements", (list,), where, optional=True)
    _field(doc, "rows", (list,), where, optional=True)
    _field(doc, "no_fk_checks", (bool,), where, optional=True)


def snapshot_wire(sp: SnapshotPart) -> dict[str, Any]:
    return {"id": sp.id, "table": sp.table, "part": sp.part, "position": sp.position, "chunk": sp.chunk,
            "create_sql": sp.create_sql, "primary_key": list(sp.primary_key), "rows_total": sp.rows_total}


def _decode_snapshot(raw: dict[str, Any] | None, where: str) -> SnapshotPart | None:
    if raw is None:
        return None
    at = f"{where} snapshot"
    return SnapshotPart(
        id=_field(raw, "id", (str,), at), table=_field(raw, "table", (str,), at), part=_field(raw, "part", (str,), at),
        position=_field(raw, "position", (str,), at), chunk=_field(raw, "chunk", (int,), at),
        create_sql=_field(raw, "create_sql", (str,), at, optional=True),
        primary_key=_str_list(raw, "primary_key", at) or (),
        rows_total=_field(raw, "rows_total", (int,), at, optional=True))
