"""Routing statements to shards (pure; no I/O): which shards one ingress statement concerns, its INSERT
rows (or DROP/RENAME TABLE items) split per shard, or "needs the row form", from its
:mod:`~replicator.shard_analysis` shape, the shard map and the source schema. The decision table is in
:mod:`replicator.shard_routing`'s docstring; :class:`~replicator.shard_routing.ShardRouter` uses this."""

from __future__ import annotations

import itertools
import logging
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from dbmux.core.sqllex import LexError, ansi_names_backquoted, scan, scan_with_markers
from dbmux.replicator.mysql_sql import interpolate
from dbmux.replicator.schema_info import StaticSchema, TableInfo
from dbmux.replicator.shard_analysis import analyze
from dbmux.replicator.shard_shapes import DEFAULT, Const, Ddl, Dml, NeedRows, SessionStatement, Skip, Slot, TableName
from dbmux.replicator.shard_skeleton import Skeleton
from dbmux.shardmap import ShardMap, ShardMapError, TableRule

__all__ = ["MAP_ERRORS", "Decision", "Split", "SplitPart", "plan_statement", "route_statement", "ShardMapError"]

log = logging.getLogger(__name__)


MAP_ERRORS = (ShardMapError, LookupError, ValueError)
"""What a shard-map lookup (rule, owners, locate) raises for a table or key it cannot place."""
_CANONICAL_INT = re.compile(r"-?(?:0|[1-9][0-9]*)\Z")
_NUMERIC_START = re.compile(r"\s*[+-]?\.?[0-9]")
_MAX_PIN_KEYS = 256  # more key combinations than this in a WHERE: scatter instead


# ------------------------------------------------------------------------------------------ results


@dataclass(frozen=True, slots=True)
class Decision:
    """Where one statement goes. ``shards`` None: it needs the row form. ``session``: a session
    statement (SET/USE), kept on the shards that get another statement of the same event."""

    shards: frozenset[str] | None
    reason: str
    session: bool = False


@dataclass(frozen=True, slots=True)
class SplitPart:
    """One shard's part of a split statement: its text, its params and how many rows (or items) it has."""

    sql: str
    params: tuple[Any, ...] | None
    rows: int


@dataclass(frozen=True, slots=True)
class Split:
    """A statement divided between shards: each gets its own text (shards without rows are absent)."""

    parts: dict[str, SplitPart]
    total: int
    reason: str


def drop_table_if_exists(sql: str) -> str:
    """``DROP [TEMPORARY] TABLE[S] ...`` with ``IF EXISTS`` (unchanged if it has it, or is something else)."""
    toks = scan(sql)
    w = [t.upper if t.type == "word" else "" for t in toks]
    i = 1 + (w[1:2] == ["TEMPORARY"])
    if w[:1] != ["DROP"] or w[i:i + 1] not in (["TABLE"], ["TABLES"]) or w[i + 1:i + 3] == ["IF", "EXISTS"]:
        return sql
    return sql[:toks[i].end] + " IF EXISTS" + sql[toks[i].end:]


def _row_form(reason: str) -> Decision:
    return Decision(None, reason)


# ------------------------------------------------------------------------------------------ key values


def uuid_key(value: Any) -> tuple[bool, Any]:
    """(usable, canonical text) of a MariaDB UUID key value: the text the primary shows (lower case,
    hyphens; what ``dbmux verify`` places rows by), from any text MariaDB takes, or a row image's 16 bytes
    (fewer: an image written before the binlog reader padded BINARY(16) back)."""
    try:
        if isinstance(value, uuid.UUID):  # read back from a PostgreSQL shard (resharding)
            return True, str(value)
        if isinstance(value, (bytes, bytearray, memoryview)) and len(value) <= 16:
            return True, str(uuid.UUID(bytes=bytes(value).ljust(16, b"\0")))
        if isinstance(value, (bytes, bytearray)):
            value = bytes(value).decode("ascii")
        if isinstance(value, str):
            return True, str(uuid.UUID(value) if value else uuid.UUID(int=0))
    except (ValueError, UnicodeDecodeError):
        pass
    return False, None


def typed_key_values(columns: tuple[str, ...], values: tuple[Any, ...] | list[Any], uuids: frozenset[str]) -> tuple:
    """Key values as the shard map hashes them: a UUID column's as its canonical text (:func:`uuid_key`;
    one it cannot read as it is), the rest as they are."""
    if not uuids:
        return tuple(values)
    out = []
    for c, v in zip(columns, values, strict=True):
        ok, text = uuid_key(v) if c in uuids and v is not None else (False, None)
        out.append(text if ok else v)
    return tuple(out)


def _typed_key(column: str, value: Any, info: TableInfo) -> tuple[bool, Any]:
    """_key_value, or uuid_key for a UUID column."""
    return uuid_key(value) if column in info.uuids else _key_value(value)


def _key_value(value: Any) -> tuple[bool, Any]:
    """(usable, value) of a statement's key value; :mod:`replicator.shard_routing`'s docstring
    (Key values) says what is refused."""
    if isinstance(value, bool):
        return True, int(value)
    if isinstance(value, int):
        return True, value
    if isinstance(value, Decimal):
        if value.is_finite() and value.as_tuple().exponent >= 0:  # type: ignore[operator]  # int once finite
            return True, int(value)
        return False, None
    if isinstance(value, (bytes, bytearray, memoryview)):
        try:  # string params arrive as bytes; the map hashes bytes and their text alike
            value = bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            return True, bytes(value)  # binary: compared byte for byte
    if isinstance(value, str):
        if _CANONICAL_INT.match(value):
            return value != "-0", value
        if value != value.strip() or _NUMERIC_START.match(value):
            return False, None
        return True, value
    return False, None  # NULL, float, dates and times, ...


def _is_zero(value: Any) -> bool:
    ok, v = _key_value(value)
    return ok and (v == 0 or v == "0")


# ------------------------------------------------------------------------------------------ routing


@dataclass
class _Ctx:
    shard_map: ShardMap
    schema: StaticSchema
    db: str | None
    params: tuple[Any, ...] | None
    insert_id: int
    skel: Skeleton | None

    def info(self, name: TableName) -> TableInfo | None:
        tables: Mapping[tuple[str, str], TableInfo] = getattr(self.schema, "tables", None) or {}
        return tables.get(self.qualify(name))

    def qualify(self, name: TableName) -> tuple[str, str]:
        return (name[0] or self.db or "", name[1])

    def rule(self, name: TableName, primary_key: tuple[str, ...] | None = None) -> TableRule:
        db, table = self.qualify(name)
        if primary_key is None:
            info = self.info(name)
            primary_key = tuple(info.primary_key) if info is not None else ()
        return self.shard_map.rule(db, table, primary_key)

    def owners(self, rule: TableRule) -> frozenset[str]:
        return frozenset(self.shard_map.owners(rule))

    def value(self, spec: Any) -> tuple[bool, Any]:
        if isinstance(spec, Const):
            return True, spec.value
        if isinstance(spec, Slot) and self.skel is not None:
            is_param, x = self.skel.slots[spec.index]
            value = self.params[x] if is_param else x  # type: ignore[index]  # params given: counts checked
            if spec.negate:
                if isinstance(value, bool) or not isinstance(value, (int, Decimal)):
                    return False, None
                value = -value
            return True, value
        return False, None


def _route_dml(shape: Dml, ctx: _Ctx, sql: str) -> Decision | Split:
    if any(n[0] is None for n in (*shape.written, *shape.read)) and not ctx.db:
        return _row_form("no database selected for an unqualified table")
    for name in (*shape.written, *shape.read):
        if ctx.info(name) is None:
            return _row_form(f"table {'.'.join(ctx.qualify(name))} unknown to the source schema")
    try:
        rules = {n: ctx.rule(n) for n in (*shape.written, *shape.read)}
    except MAP_ERRORS as e:
        return _row_form(f"shard map: {e}")
    if shape.compound or len(rules) > 1:
        why = shape.compound or "multi-table statement"
        if any(r.kind == "sharded" for r in rules.values()):
            return _row_form(f"{why} on a sharded table")
        targets = frozenset().union(*(ctx.owners(rules[n]) for n in shape.written))
        for n, r in rules.items():
            if r.kind == "single" and targets != {r.shard}:
                return _row_form(f"{why}: table {n[1]} exists only on shard {r.shard}")
            if r.kind not in ("single", "reference"):
                return _row_form(f"{why}: unknown rule kind {r.kind!r}")
        return Decision(targets, f"{why} on unsharded tables")
    rule = rules[shape.table]
    if rule.kind in ("reference", "single"):
        return Decision(ctx.owners(rule), f"{rule.kind} table")
    if rule.kind != "sharded":
        return _row_form(f"unknown rule kind {rule.kind!r}")
    key = tuple(rule.key)
    info = ctx.info(shape.table)
    assert info is not None  # (every table of the statement is known: checked above)
    conflict = (ctx.skel is not None and (ctx.skel.ignore or ctx.skel.replace)) or shape.odku
    if conflict and not set(key) <= set(info.primary_key):
        return _row_form("IGNORE/REPLACE/ON DUPLICATE KEY with a shard key outside the primary key "
                         "(the conflicting row may live on another shard)")
    if shape.assigns_variables:
        return _row_form("assigns user variables (:=) row by row: each shard would see other rows")
    if shape.assigned & set(key):
        return _row_form(f"assigns shard-key column {sorted(shape.assigned & set(key))[0]} (rows may move shards)")
    if shape.verb == "insert":
        return _route_insert(shape, ctx, sql, key, info)
    return _route_modify(shape, ctx, key, rule, info)


def _route_modify(shape: Dml, ctx: _Ctx, key: tuple[str, ...], rule: TableRule, info: TableInfo) -> Decision:
    verb = shape.verb.upper()
    pins = dict(shape.pins)
    why = ""
    if not all(k in pins for k in key):
        why = f"WHERE does not pin {', '.join(k for k in key if k not in pins)}"
    else:
        choices = []
        for k in key:
            values = []
            for spec in pins[k]:
                ok, v = ctx.value(spec)
                ok, v = _typed_key(k, v, info) if ok else (False, None)
                if not ok:
                    why = f"value of {k} is not an exact key"
                    break
                values.append(v)
            if why:
                break
            choices.append(values)
        if not why and _product_size(choices) > _MAX_PIN_KEYS:
            why = "too many pinned keys"
        if not why:
            try:
                shards = frozenset(ctx.shard_map.locate(*ctx.qualify(shape.table), combo)
                                   for combo in itertools.product(*choices))
            except MAP_ERRORS as e:
                shards, why = frozenset(), f"shard map: {e}"
            if not why:
                if len(shards) > 1 and shape.order_limit:
                    return _row_form(f"ORDER BY/LIMIT on a {verb} over {len(shards)} shards")
                return Decision(shards, f"{verb} pinned by {', '.join(key)} to {len(shards)} shard(s)")
    if shape.order_limit:
        return _row_form(f"ORDER BY/LIMIT on a scattered {verb} ({why})")
    return Decision(ctx.owners(rule), f"{verb} scatter: {why}")


def _product_size(choices: list[list[Any]]) -> int:
    n = 1
    for c in choices:
        n *= len(c)
    return n


def _route_insert(shape: Dml, ctx: _Ctx, sql: str, key: tuple[str, ...], info: TableInfo) -> Decision | Split:
    columns = shape.columns if shape.columns is not None else tuple(info.columns)
    if not columns:
        return _row_form("INSERT without a column list and the table's columns are unknown")
    if any(len(row) != len(columns) for row in shape.rows):
        return _row_form("VALUES rows do not match the column list")
    position = {c: i for i, c in enumerate(columns)}
    auto = (info.auto_increment or "").lower() or None
    owners: list[str] = []
    generated_other = False
    for row in shape.rows:
        if auto is not None and auto not in key:
            spec = row[position[auto]] if auto in position else DEFAULT
            ok, v = ctx.value(spec)
            generated_other = generated_other or spec is DEFAULT or (ok and (v is None or _is_zero(v)))
        combo: list[Any] = []
        for k in key:
            spec = row[position[k]] if k in position else DEFAULT
            ok, v = ctx.value(spec)
            if k == auto and (spec is DEFAULT or (ok and (v is None or _is_zero(v)))):
                if len(shape.rows) > 1:
                    return _row_form("multi-row INSERT with generated auto-increment keys")
                if ctx.insert_id <= 0:
                    return _row_form("generated auto-increment key without an insert_id")
                combo.append(ctx.insert_id)
                continue
            if spec is DEFAULT:
                return _row_form(f"shard-key column {k} takes its default")
            ok, v = _typed_key(k, v, info) if ok else (False, None)
            if not ok:
                return _row_form(f"shard-key column {k} is not a literal exact key")
            combo.append(v)
        try:
            owners.append(ctx.shard_map.locate(*ctx.qualify(shape.table), tuple(combo)))
        except MAP_ERRORS as e:
            return _row_form(f"shard map: {e}")
    shards = frozenset(owners)
    if len(shards) <= 1:
        note = " (key from insert_id)" if ctx.insert_id and auto in key else ""
        return Decision(shards, f"INSERT of {len(owners)} row(s) on one shard{note}")
    if generated_other:
        return _row_form("split INSERT would generate auto-increment ids on several shards")
    parts = _split_values(sql, ctx.params, owners)
    if parts is None:
        return _row_form("cannot split the VALUES text")
    return Split(parts, len(owners), f"INSERT split over {len(shards)} shards by {', '.join(key)}")


def _split_values(sql: str, params: tuple[Any, ...] | None, owners: list[str]) -> dict[str, SplitPart] | None:
    """Per shard, the original text with only its VALUES rows (and their params); exact bytes."""
    try:
        tokens, markers = scan_with_markers(sql)
    except LexError:
        return None
    if markers:
        return None
    depth = 0
    i = None
    for j, t in enumerate(tokens):
        depth += (t.text == "(") - (t.text == ")")
        if depth == 0 and t.type == "word" and t.upper in ("VALUES", "VALUE"):
            i = j + 1
            break
    if i is None:
        return None
    groups: list[tuple[int, int, int, int]] = []  # (start offset, end offset, first param, params)
    param_no = sum(1 for t in tokens[:i] if t.type == "param")
    while True:
        j = i + 1 if i < len(tokens) and tokens[i].upper == "ROW" else i
        if j >= len(tokens) or tokens[j].text != "(":
            return None
        depth, k, first = 0, j, param_no
        while k < len(tokens):
            depth += (tokens[k].text == "(") - (tokens[k].text == ")")
            param_no += tokens[k].type == "param"
            if depth == 0:
                break
            k += 1
        if k == len(tokens):
            return None
        groups.append((tokens[i].start, tokens[k].end, first, param_no - first))
        i = k + 1
        if i < len(tokens) and tokens[i].text == ",":
            i += 1
            continue
        break
    if len(groups) != len(owners):
        return None
    head, tail = sql[:groups[0][0]], sql[groups[-1][1]:]
    head_params = params[:groups[0][2]] if params is not None else ()
    tail_params = params[groups[-1][2] + groups[-1][3]:] if params is not None else ()
    parts = {}
    for shard in dict.fromkeys(owners):
        mine = [g for g, o in zip(groups, owners, strict=True) if o == shard]
        text = head + ", ".join(sql[s:e] for s, e, _, _ in mine) + tail
        p = None
        if params is not None:
            p = tuple(head_params) + tuple(v for _, _, f, n in mine for v in params[f:f + n]) + tuple(tail_params)
        parts[shard] = SplitPart(text, p, len(mine))
    return parts


def _route_ddl(shape: Ddl, ctx: _Ctx, sql: str) -> Decision | Split:
    if shape.every_shard:
        return Decision(frozenset(ctx.shard_map.shards), "database DDL: every shard")
    if shape.drop:
        # every shard, IF EXISTS (a shard that never had the table must not halt): where a table's rows
        # are depends on the key it had when created, which the source schema -- today's, or loaded
        # before the table was dropped and created again otherwise -- may not say (SQLAlchemy's suite:
        # a re-created table's DROP went by a stale keyless definition to one shard, and the next
        # CREATE TABLE halted the other: 'relation already exists')
        text = drop_table_if_exists(sql)
        return Split({s: SplitPart(text, None, len(shape.tables)) for s in ctx.shard_map.shards},
                     len(shape.tables), "DROP TABLE: every shard, IF EXISTS")
    if any(n[0] is None for n in shape.tables) and not ctx.db:
        return _row_form("DDL on an unqualified table with no database selected")
    owners: list[frozenset[str]] = []
    try:
        for i, n in enumerate(shape.tables):
            pk = None
            # (a CREATE TABLE of a name the schema knows is placed as the schema says: rows of the table are
            # routed by the same schema -- placing it by its own key sent a keyless table's rows, routed by a
            # stale keyed definition, to a shard that never got the table)
            source = shape.pk_from[i] if i < len(shape.pk_from) else None
            if ctx.info(n) is None:  # a table this statement creates (or renames into)
                info = ctx.info(source) if source is not None else None
                pk = tuple(info.primary_key) if info is not None else (shape.create_pk or ())
            owners.append(ctx.owners(ctx.rule(n, pk)))
            if shape.create_pk is not None and source is None and pk is None:
                # and where its own key places it: the schema's definition may be an older table of that name
                # (go-sql-driver's suite: `test (value BOOL)`, keyless, on the default shard, when `test (id ...
                # PRIMARY KEY (id))` was created), and its rows, routed by the key their events carry, go there
                # (a shard without rows of it keeps an empty table, which `dbmux verify` accepts)
                owners[-1] |= ctx.owners(ctx.rule(n, shape.create_pk))
    except MAP_ERRORS as e:
        return _row_form(f"shard map: {e}")
    union = frozenset().union(*owners)
    if shape.items and len(set(owners)) > 1:
        first, last = shape.items[0], shape.items[-1]
        parts = {}
        for shard in sorted(union):
            mine = [it for it in shape.items if any(shard in owners[t] for t in it[2])]
            if mine:
                text = sql[:first[0]] + ", ".join(sql[s:e] for s, e, _ in mine) + sql[last[1]:]
                parts[shard] = SplitPart(text, None, len(mine))
        return Split(parts, len(shape.items), "DDL list split by the shards owning each table")
    names = ", ".join(".".join(ctx.qualify(n)) for n in shape.tables)
    return Decision(union, f"DDL on {names}: owning shards")


def plan_statement(sql: str, params: tuple[Any, ...] | None, insert_id: int, db: str | None,
                   shard_map: ShardMap, schema: StaticSchema, sql_mode: str | None
                   ) -> Decision | Split | SessionStatement:
    """Where one statement goes, unflattened: a :class:`Decision`, a :class:`Split` (each shard's text
    with its own params), or the :class:`~replicator.shard_shapes.SessionStatement` itself (a USE names
    its database). :func:`route_statement` is the flattened form."""
    mode = (sql_mode or "").upper()
    if "NO_BACKSLASH_ESCAPES" in mode and "\\" in sql:
        return _row_form("unparsed: NO_BACKSLASH_ESCAPES text with backslashes")
    sql = ansi_names_backquoted(sql, sql_mode)  # (the router passes it so: splits slice this text)
    shape, skel = analyze(sql)
    if isinstance(shape, NeedRows):
        return _row_form(shape.reason)
    if skel is not None and skel.n_params != (len(params) if params is not None else 0):
        return _row_form(f"unparsed: {skel.n_params} placeholders for "
                         f"{len(params) if params is not None else 'no'} parameters")
    if isinstance(shape, SessionStatement):
        return shape
    if isinstance(shape, Skip):
        return Decision(frozenset(), shape.reason)
    ctx = _Ctx(shard_map, schema, db.lower() if db else None, params, insert_id, skel)
    if isinstance(shape, Ddl):
        return _route_ddl(shape, ctx, sql)
    return _route_dml(shape, ctx, sql)


def route_statement(sql: str, db: str | None, shard_map: ShardMap, schema: StaticSchema,
                    params: tuple[Any, ...] | None = None, insert_id: int = 0, *,
                    sql_mode: str | None = None) -> dict[str, str] | Decision:
    """Route one statement. A split comes back as ``{shard: SQL text}`` (bound params interpolated)
    for the shards that get rows; otherwise a :class:`Decision` (``shards`` None: needs the row form).
    A session statement comes back as every shard with ``session=True``: :class:`ShardRouter` keeps it
    only where the event has other statements."""
    res = plan_statement(sql, params, insert_id, db, shard_map, schema, sql_mode)
    if isinstance(res, SessionStatement):
        return Decision(frozenset(shard_map.shards), "session statement", session=True)
    if isinstance(res, Split):
        return {s: (p.sql if p.params is None else interpolate(p.sql, p.params)) for s, p in res.parts.items()}
    return res
