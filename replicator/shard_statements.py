"""Statement analysis for shard routing (pure; no I/O): which shards one ingress statement concerns,
split INSERT rows per shard, or "needs the row form". The decision table is in
:mod:`replicator.shard_routing`'s docstring; :class:`~replicator.shard_routing.ShardRouter` uses this."""

from __future__ import annotations

import itertools
import logging
import re
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from typing import Any

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from dbmux.sqllex import LexError, Token, scan_with_markers
from replicator.mysql_sql import interpolate
from shardmap import ShardMapError

__all__ = ["Decision", "route_statement", "ShardMapError"]

log = logging.getLogger(__name__)


_MAP_ERRORS = (ShardMapError, LookupError, ValueError)
_SLOT = "__dbmux_v"
_DML_VERBS = frozenset({"INSERT", "REPLACE", "UPDATE", "DELETE"})
_DML_MODIFIERS = frozenset({"LOW_PRIORITY", "DELAYED", "HIGH_PRIORITY", "QUICK", "IGNORE"})
_INT_TEXT = re.compile(r"[0-9]+\Z")
_DECIMAL_TEXT = re.compile(r"[0-9]+\.[0-9]*\Z")
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
class _Part:
    sql: str
    params: tuple | None
    rows: int


@dataclass(frozen=True, slots=True)
class _Split:
    """A statement divided between shards: each gets its own text (shards without rows are absent)."""

    parts: dict[str, _Part]
    total: int
    reason: str


def _row_form(reason: str) -> Decision:
    return Decision(None, reason)


# ------------------------------------------------------------------------------------------ key values


def _key_value(value: Any) -> tuple[bool, Any]:
    """(usable, value) of a statement's key value; see the module docstring for what is refused."""
    if isinstance(value, bool):
        return True, int(value)
    if isinstance(value, int):
        return True, value
    if isinstance(value, Decimal):
        if value.is_finite() and value.as_tuple().exponent >= 0:  # type: ignore[operator]
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


# ------------------------------------------------------------------------------------------ text


@dataclass(frozen=True, slots=True)
class _Skel:
    """A statement's text as parsed: comment-free, ``?`` and simple literals replaced by numbered
    variables. ``slots[n]`` is ``(True, param index)`` or ``(False, literal value)``."""

    text: str
    slots: tuple[tuple[bool, Any], ...]
    n_params: int
    replace: bool = False  # REPLACE, parsed as INSERT
    ignore: bool = False  # the IGNORE modifier (removed before parsing, like LOW_PRIORITY/QUICK/DELAYED)


def _literal(tokens: list[Token], i: int) -> tuple[bool, Any]:
    """Can token i be a slot, and its value: numbers and plain strings after an operator."""
    tok = tokens[i]
    prev = tokens[i - 1] if i else None
    if prev is None or prev.type != "op" or prev.text == ".":
        return False, None
    if tok.type == "number":
        if _INT_TEXT.match(tok.text):
            return True, int(tok.text)
        if _DECIMAL_TEXT.match(tok.text):
            return True, Decimal(tok.text)
        return False, None
    if tok.type == "string":
        quote, inner = tok.text[0], tok.text[1:-1]
        if "\\" in inner or quote in inner:
            return False, None
        if i + 1 < len(tokens) and tokens[i + 1].type == "string":  # 'a' 'b' is one literal
            return False, None
        return True, inner
    return False, None


def _skeleton(tokens: list[Token], *, slot_literals: bool) -> _Skel:
    verb = tokens[0].upper
    dml = verb in _DML_VERBS
    out: list[str] = []
    slots: list[tuple[bool, Any]] = []
    n_params = 0
    replace = ignore = False
    modifiers = dml
    prev: Token | None = None
    for i, tok in enumerate(tokens):
        text = tok.text
        if i and modifiers and tok.type == "word" and tok.upper in _DML_MODIFIERS:
            ignore = ignore or tok.upper == "IGNORE"
            continue
        if i:
            modifiers = False
        if tok.type == "param":
            slots.append((True, n_params))
            n_params += 1
            text = f"@{_SLOT}{len(slots) - 1}"
        elif i == 0 and verb == "REPLACE":
            replace, text = True, "INSERT"
        elif (verb in ("INSERT", "REPLACE") and tok.upper == "VALUE" and tok.type == "word" and i + 1 < len(tokens)
              and tokens[i + 1].text == "("):  # INSERT ... VALUE (..): sqlglot knows VALUES only
            text = "VALUES"
        elif dml and slot_literals and tok.type in ("number", "string"):
            ok, value = _literal(tokens, i)
            if ok:
                slots.append((False, value))
                text = f"@{_SLOT}{len(slots) - 1}"
        # x'0a', b'01', N'x', _utf8mb4'x': keep a word glued to its string
        glue = prev is not None and prev.end == tok.start and prev.type == "word" and tok.type == "string"
        if out and not glue:
            out.append(" ")
        out.append(text)
        prev = tok
    return _Skel("".join(out), tuple(slots), n_params, replace, ignore)


# ------------------------------------------------------------------------------------------ shapes
# A shape is what a statement's text says, independent of values, the shard map and the schema.

_Name = tuple[str | None, str]  # (db or None, table), lower case


@dataclass(frozen=True, slots=True)
class _NeedRows:
    reason: str


@dataclass(frozen=True, slots=True)
class _Session:
    use_db: str | None = None


@dataclass(frozen=True, slots=True)
class _Skip:
    reason: str


@dataclass(frozen=True, slots=True)
class _Ddl:
    tables: tuple[_Name, ...] = ()
    every_shard: bool = False
    create_pk: tuple[str, ...] | None = None  # CREATE TABLE: the primary key it declares
    pk_from: tuple[_Name | None, ...] = ()  # per table: whose primary key a new name takes (LIKE, RENAME)
    items: tuple[tuple[int, int, tuple[int, ...]], ...] = ()  # DROP/RENAME lists: (start, end, table indexes)


@dataclass(frozen=True, slots=True)
class _Slot:
    index: int
    negate: bool = False


@dataclass(frozen=True, slots=True)
class _Const:
    value: Any


class _Opaque:
    """A value that is not a literal (expression, DEFAULT)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


_EXPR = _Opaque("expression")
_DEFAULT = _Opaque("DEFAULT")


@dataclass(frozen=True, slots=True)
class _Dml:
    verb: str  # insert | update | delete
    table: _Name
    alias: str
    written: tuple[_Name, ...]
    read: tuple[_Name, ...]
    compound: str  # why the statement reads more than its own rows ("" if it does not)
    columns: tuple[str, ...] | None = None
    rows: tuple[tuple[Any, ...], ...] = ()
    assigned: frozenset[str] = frozenset()  # UPDATE SET / ON DUPLICATE KEY UPDATE columns
    odku: bool = False
    pins: tuple[tuple[str, tuple[Any, ...]], ...] = ()  # WHERE conjuncts column = value(s)
    order_limit: bool = False
    assigns_variables: bool = False  # @v := ... evaluated row by row


_Shape = _NeedRows | _Session | _Skip | _Ddl | _Dml


_CACHED_CHARS = 8192  # longer texts (bulk inserts) are analysed each time rather than filling the caches


def _analyze(sql: str) -> tuple[_Shape, _Skel | None]:
    """The shape of one statement and its skeleton (for DML and SET); cached by text."""
    return _analyze_cached(sql) if len(sql) <= _CACHED_CHARS else _analyze_text(sql)


@lru_cache(maxsize=8192)
def _analyze_cached(sql: str) -> tuple[_Shape, _Skel | None]:
    return _analyze_text(sql)


def _analyze_text(sql: str) -> tuple[_Shape, _Skel | None]:
    try:
        tokens, markers = scan_with_markers(sql)
    except LexError as e:
        return _NeedRows(f"unparsed: {e}"), None
    while tokens and tokens[-1].text == ";":
        tokens.pop()
    if not tokens:
        return _NeedRows("unparsed: empty statement"), None
    if any(t.type == "op" and t.text == ";" for t in tokens):
        return _NeedRows("unparsed: several statements in one"), None
    if tokens[0].type != "word":
        return _NeedRows(f"unparsed: statement starting with {tokens[0].text!r}"), None
    w = [t.upper if t.type == "word" else t.text for t in tokens]
    verb = w[0]
    if verb in _DML_VERBS:
        skel = _skeleton(tokens, slot_literals=True)
        shape = _dml_shape(skel.text, len(skel.slots))
        if isinstance(shape, _NeedRows) and any(not is_param for is_param, _ in skel.slots):
            skel = _skeleton(tokens, slot_literals=False)  # a literal in a structural place
            shape = _dml_shape(skel.text, len(skel.slots))
        return shape, skel
    if verb in ("CREATE", "ALTER", "DROP", "TRUNCATE", "RENAME"):
        return _ddl_shape(tokens, w, bool(markers)), None
    if verb == "USE" and len(tokens) == 2 and tokens[1].type in ("word", "ident"):
        return _Session(use_db=tokens[1].name.lower()), None
    if w in (["BEGIN"], ["BEGIN", "WORK"], ["COMMIT"], ["COMMIT", "WORK"]) or w[:2] == ["START", "TRANSACTION"]:
        return _Skip("transaction boundary: the applier's own"), None
    if verb == "SET":
        skel = _skeleton(tokens, slot_literals=False)
        return _set_shape(skel.text, w), skel
    return _NeedRows(f"unparsed: {verb} statement"), None


def _parse(text: str) -> exp.Expression | _NeedRows:
    try:
        trees = [t for t in sqlglot.parse(text, read="mysql") if t is not None]
    except (SqlglotError, RecursionError, ValueError) as e:
        return _NeedRows(f"unparsed: {str(e).splitlines()[0][:120] if str(e) else type(e).__name__}")
    if len(trees) != 1 or isinstance(trees[0], exp.Command):
        return _NeedRows("unparsed: sqlglot has no AST for it")
    return trees[0]


def _slot_index(node: exp.Expression) -> int | None:
    if isinstance(node, exp.Parameter):
        name = node.name
        if name.startswith(_SLOT) and name[len(_SLOT):].isdigit():
            return int(name[len(_SLOT):])
    return None


def _table_name(tbl: exp.Table) -> _Name | None:
    if tbl.args.get("catalog") is not None or not tbl.name:
        return None
    return (tbl.db.lower() or None, tbl.name.lower())


def _spec(node: exp.Expression) -> Any:
    """A VALUES/WHERE value as a spec: _Slot, _Const, _DEFAULT or _EXPR."""
    while isinstance(node, exp.Paren):
        node = node.this
    if isinstance(node, exp.Parameter):
        i = _slot_index(node)
        return _EXPR if i is None else _Slot(i)
    if isinstance(node, exp.Neg):
        inner = _spec(node.this)
        if isinstance(inner, _Slot):
            return _Slot(inner.index, not inner.negate)
        if isinstance(inner, _Const) and isinstance(inner.value, (int, Decimal)):
            return _Const(-inner.value)
        return _EXPR
    if isinstance(node, exp.Literal):
        if node.is_string:
            return _EXPR if "\\" in node.this else _Const(node.this)
        if _INT_TEXT.match(node.this):
            return _Const(int(node.this))
        try:
            return _Const(Decimal(node.this))
        except ArithmeticError:
            return _EXPR
    if isinstance(node, exp.Null):
        return _Const(None)
    if isinstance(node, exp.Var) and node.name.upper() == "DEFAULT":
        return _DEFAULT
    return _EXPR


def _conjuncts(node: exp.Expression):
    while isinstance(node, exp.Paren):
        node = node.this
    if isinstance(node, exp.And):
        yield from _conjuncts(node.this)
        yield from _conjuncts(node.expression)
    else:
        yield node


def _pins(where: exp.Expression | None, names: set[str]) -> tuple[tuple[str, tuple[Any, ...]], ...]:
    """Column -> value specs for each ``col = v``/``v = col``/``col <=> v``/``col IN (..)`` conjunct
    (the smallest set when a column is pinned twice: every conjunct holds for every matched row)."""
    if where is None:
        return ()
    found: dict[str, tuple[Any, ...]] = {}

    def column(n: exp.Expression) -> str | None:
        while isinstance(n, exp.Paren):
            n = n.this
        if isinstance(n, exp.Column) and (not n.table or n.table.lower() in names):
            return n.name.lower()
        return None

    for c in _conjuncts(where.this):
        col, specs = None, ()
        if isinstance(c, (exp.EQ, exp.NullSafeEQ)):
            for a, b in ((c.this, c.expression), (c.expression, c.this)):
                if (col := column(a)) is not None:
                    specs = (_spec(b),)
                    break
        elif isinstance(c, exp.In) and not c.args.get("query") and not c.args.get("unnest"):
            col = column(c.this)
            specs = tuple(_spec(e) for e in c.expressions)
        if col is None or not specs or any(s is _EXPR or s is _DEFAULT for s in specs):
            continue
        if col not in found or len(specs) < len(found[col]):
            found[col] = specs
    return tuple(found.items())


def _dml_shape(text: str, n_slots: int) -> _Shape:
    """The shape of a DML skeleton; cached (a skeleton is shared by every execution of a statement)."""
    return _dml_shape_cached(text, n_slots) if len(text) <= 8 * _CACHED_CHARS else _dml_shape_text(text, n_slots)


@lru_cache(maxsize=4096)
def _dml_shape_cached(text: str, n_slots: int) -> _Shape:
    return _dml_shape_text(text, n_slots)


def _dml_shape_text(text: str, n_slots: int) -> _Shape:
    node = _parse(text)
    if isinstance(node, _NeedRows):
        return node
    if not isinstance(node, (exp.Insert, exp.Update, exp.Delete)):
        return _NeedRows(f"unparsed: {type(node).__name__} statement")
    if sorted(i for p in node.find_all(exp.Parameter) if (i := _slot_index(p)) is not None) != list(range(n_slots)):
        return _NeedRows("unparsed: a value was lost in parsing")
    target = node.this.this if isinstance(node, exp.Insert) and isinstance(node.this, exp.Schema) else node.this
    if not isinstance(target, exp.Table) or (table := _table_name(target)) is None:
        return _NeedRows("unparsed: no single target table")
    tables = list(node.find_all(exp.Table))
    names = [_table_name(t) for t in tables]
    if any(n is None for n in names):
        return _NeedRows("unparsed: table name")
    written = [table]
    if isinstance(node, exp.Update):  # UPDATE t1 JOIN t2 SET t2.x = ...: any of them may be written
        written.extend(n for n in names if n not in written)
    for t in node.args.get("tables") or ():  # DELETE t1, t2 FROM ...
        if isinstance(t, exp.Table) and (n := _table_name(t)) is not None and n not in written:
            written.append(n)
    read = tuple(dict.fromkeys(n for n in names if n not in written))
    compound = ""
    if node.args.get("with") is not None:
        compound = "WITH clause"
    elif isinstance(node, exp.Insert) and not isinstance(node.expression, exp.Values):
        compound = "INSERT ... SELECT"
    elif any(True for _ in node.find_all(exp.Select, exp.Subquery, exp.Union)):
        compound = "subquery"
    elif len(tables) > 1:
        compound = "multi-table statement"
    alias = target.alias.lower()
    common = dict(table=table, alias=alias, written=tuple(written), read=read, compound=compound,
                  assigns_variables=any(True for _ in node.find_all(exp.PropertyEQ)))
    if isinstance(node, exp.Insert):
        columns = None
        if isinstance(node.this, exp.Schema):
            columns = tuple(c.name.lower() for c in node.this.expressions)
        rows: tuple[tuple[Any, ...], ...] = ()
        if isinstance(node.expression, exp.Values):
            if not all(isinstance(t, exp.Tuple) for t in node.expression.expressions):
                return _NeedRows("unparsed: VALUES row form")
            rows = tuple(tuple(_spec(e) for e in t.expressions) for t in node.expression.expressions)
        conflict = node.args.get("conflict")
        assigned: set[str] = set()
        if conflict is not None:
            for eq in conflict.expressions or ():
                if not (isinstance(eq, exp.EQ) and isinstance(eq.this, exp.Column)):
                    return _NeedRows("unparsed: ON DUPLICATE KEY UPDATE form")
                assigned.add(eq.this.name.lower())
        return _Dml("insert", columns=columns, rows=rows, assigned=frozenset(assigned),
                    odku=conflict is not None, **common)
    where_names = {table[1]} | ({alias} if alias else set())
    pins = _pins(node.args.get("where"), where_names)
    order_limit = bool(node.args.get("order") or node.args.get("limit"))
    if isinstance(node, exp.Update):
        assigned = set()
        for eq in node.expressions:
            if not (isinstance(eq, exp.EQ) and isinstance(eq.this, exp.Column)):
                return _NeedRows("unparsed: UPDATE SET form")
            assigned.add(eq.this.name.lower())
        return _Dml("update", assigned=frozenset(assigned), pins=pins, order_limit=order_limit, **common)
    return _Dml("delete", pins=pins, order_limit=order_limit, **common)


_SET_REFUSED = frozenset({"GLOBAL", "PERSIST", "PERSIST_ONLY", "PASSWORD", "ROLE", "DEFAULT", "STATEMENT"})


def _set_shape(text: str, w: list[str]) -> _Shape:
    """SET of session or user variables, NAMES, CHARACTER SET, TRANSACTION: a session statement."""
    if len(w) > 1 and w[1] in _SET_REFUSED:
        return _NeedRows(f"unparsed: SET {w[1]}")
    node = _parse(text)
    if isinstance(node, _NeedRows):
        return node
    if not isinstance(node, exp.Set):
        return _NeedRows("unparsed: SET form")
    for item in node.expressions:
        kind = (item.args.get("kind") or "").upper()
        if kind not in ("", "SESSION", "LOCAL", "NAMES", "CHARACTER SET", "CHARSET", "TRANSACTION"):
            return _NeedRows(f"unparsed: SET {kind}")
        if any(True for _ in item.find_all(exp.Select, exp.Subquery)):
            return _NeedRows("SET from a subquery reads other shards' rows")
        for sp in item.find_all(exp.SessionParameter):
            if (sp.args.get("kind") or "").lower() not in ("", "session", "local"):
                return _NeedRows("unparsed: SET of a global variable")
    return _Session()


# --------------------------------------------------------------------------------------------- DDL


def _qualified(tokens: list[Token], i: int) -> tuple[_Name | None, int]:
    """``name`` or ``db.name`` at tokens[i] (lower case); (None, i) if there is none."""
    if i >= len(tokens) or tokens[i].type not in ("word", "ident"):
        return None, i
    if i + 2 < len(tokens) and tokens[i + 1].text == "." and tokens[i + 2].type in ("word", "ident"):
        return (tokens[i].name.lower(), tokens[i + 2].name.lower()), i + 3
    return (None, tokens[i].name.lower()), i + 1


def _skip(w: list[str], i: int, *words: str) -> int:
    return i + len(words) if w[i:i + len(words)] == list(words) else i


def _create_pk(tokens: list[Token], w: list[str], i: int) -> tuple[str, ...]:
    """The primary key a CREATE TABLE definition (starting at tokens[i] == '(') declares."""
    if w[i:i + 1] != ["("]:
        return ()
    depth, item_start = 0, i + 1
    for j in range(i, len(tokens)):
        if w[j] == "(":
            depth += 1
        elif w[j] == ")":
            depth -= 1
        if (depth == 1 and w[j] == ",") or depth == 0:
            item = list(range(item_start, j))
            words = [w[k] for k in item]
            if "PRIMARY" in words and words[words.index("PRIMARY") + 1:][:1] == ["KEY"]:
                p = words.index("PRIMARY")
                if p == 0 or words[0] == "CONSTRAINT":  # table constraint: PRIMARY KEY (a, b(10) DESC)
                    cols, d, expect = [], 0, True
                    for k in item[p + 2:]:
                        if w[k] == "(":
                            d += 1
                            continue
                        if w[k] == ")":
                            d -= 1
                            continue
                        if d == 1 and w[k] == ",":
                            expect = True
                        elif d == 1 and expect and tokens[k].type in ("word", "ident"):
                            cols.append(tokens[k].name.lower())
                            expect = False
                    return tuple(cols)
                return (tokens[item[0]].name.lower(),)  # column definition ... PRIMARY KEY
            item_start = j + 1
            if depth == 0:
                break
    return ()


def _name_list(tokens: list[Token], i: int, pairs: bool) -> tuple[list[_Name], list[tuple[int, int, tuple[int, ...]]],
                                                                 int]:
    """``a, db.b`` (or ``a TO b, c TO d``) from tokens[i]: names, items (offsets, name indexes), end."""
    names: list[_Name] = []
    items = []
    while True:
        start = i
        name, i = _qualified(tokens, i)
        if name is None:
            return [], [], i
        names.append(name)
        idx = [len(names) - 1]
        if pairs:
            if i >= len(tokens) or tokens[i].upper != "TO":
                return [], [], i
            name, i = _qualified(tokens, i + 1)
            if name is None:
                return [], [], i
            names.append(name)
            idx.append(len(names) - 1)
        items.append((tokens[start].start, tokens[i - 1].end, tuple(idx)))
        if i < len(tokens) and tokens[i].text == ",":
            i += 1
            continue
        return names, items, i


def _ddl_shape(tokens: list[Token], w: list[str], markers: bool) -> _Shape:
    verb = w[0]
    unparsed = _NeedRows(f"unparsed: {' '.join(w[:3])}")
    if verb == "TRUNCATE":
        name, i = _qualified(tokens, _skip(w, 1, "TABLE"))
        return _Ddl(tables=(name,)) if name is not None and i == len(tokens) else unparsed
    if verb == "RENAME":
        if w[1:2] not in (["TABLE"], ["TABLES"]):
            return unparsed
        names, items, end = _name_list(tokens, 2, pairs=True)
        if not names or end != len(tokens):
            return unparsed
        pk_from = tuple(names[k - 1] if k % 2 else None for k in range(len(names)))  # a TO b: b has a's key
        return _Ddl(tables=tuple(names), pk_from=pk_from, items=() if markers else tuple(items))
    i = 1
    if verb == "CREATE":
        i = _skip(w, i, "OR", "REPLACE")
    temporary = w[i:i + 1] == ["TEMPORARY"]
    i += temporary
    while w[i:i + 1] and w[i] in ("ONLINE", "OFFLINE", "IGNORE", "UNIQUE", "FULLTEXT", "SPATIAL"):
        i += 1
    obj = w[i] if i < len(w) else ""
    if obj in ("DATABASE", "SCHEMA"):
        return _Ddl(every_shard=True)
    if obj in ("TABLE", "TABLES") and temporary:
        return _NeedRows("temporary table: its effects reach targets as rows")
    if obj in ("INDEX", "KEY") and verb in ("CREATE", "DROP"):
        for j in range(i + 1, len(tokens)):
            if w[j] == "ON":
                name, _ = _qualified(tokens, j + 1)
                return _Ddl(tables=(name,)) if name is not None else unparsed
        return unparsed
    if obj not in ("TABLE", "TABLES") or (obj == "TABLES" and verb != "DROP"):
        return unparsed
    i += 1
    if verb == "DROP":
        names, items, end = _name_list(tokens, _skip(w, i, "IF", "EXISTS"), pairs=False)
        if not names or w[end:] not in ([], ["RESTRICT"], ["CASCADE"]):
            return unparsed
        return _Ddl(tables=tuple(names), items=() if markers else tuple(items))
    i = _skip(w, i, "IF", "NOT", "EXISTS") if verb == "CREATE" else _skip(w, i, "IF", "EXISTS")
    name, i = _qualified(tokens, i)
    if name is None:
        return unparsed
    if verb == "ALTER":
        tables = [name]
        depth = 0
        for j in range(i, len(tokens)):  # ALTER TABLE t ..., RENAME [TO|AS] u
            depth += (w[j] == "(") - (w[j] == ")")
            if depth == 0 and w[j] == "RENAME" and w[j + 1:j + 2] not in (["COLUMN"], ["INDEX"], ["KEY"]):
                new, _ = _qualified(tokens, j + 2 if w[j + 1:j + 2] in (["TO"], ["AS"]) else j + 1)
                if new is None:
                    return unparsed
                tables.append(new)
        return _Ddl(tables=tuple(tables), pk_from=(None,) + (name,) * (len(tables) - 1))
    depth = 0
    for j in range(i, len(tokens)):
        depth += (w[j] == "(") - (w[j] == ")")
        if w[j] == "SELECT" or (depth == 0 and w[j] in ("AS", "TABLE")):  # CREATE TABLE t [AS] SELECT ...
            return _NeedRows("CREATE TABLE ... SELECT: its rows reach targets as rows")
    if w[i:i + 1] == ["LIKE"] or w[i:i + 2] == ["(", "LIKE"]:
        like, _ = _qualified(tokens, i + 1 if w[i] == "LIKE" else i + 2)
        return _Ddl(tables=(name,), pk_from=(like,)) if like is not None else unparsed
    return _Ddl(tables=(name,), create_pk=_create_pk(tokens, w, i))


# ------------------------------------------------------------------------------------------ routing


@dataclass
class _Ctx:
    shard_map: Any
    schema: Any
    db: str | None
    params: tuple | None
    insert_id: int
    skel: _Skel | None

    def info(self, name: _Name):
        tables = getattr(self.schema, "tables", None) or {}
        return tables.get(self.qualify(name))

    def qualify(self, name: _Name) -> tuple[str, str]:
        return (name[0] or self.db or "", name[1])

    def rule(self, name: _Name, primary_key: tuple[str, ...] | None = None):
        db, table = self.qualify(name)
        if primary_key is None:
            info = self.info(name)
            primary_key = tuple(info.primary_key) if info is not None else ()
        return self.shard_map.rule(db, table, primary_key)

    def owners(self, rule) -> frozenset[str]:
        return frozenset(self.shard_map.owners(rule))

    def value(self, spec: Any) -> tuple[bool, Any]:
        if isinstance(spec, _Const):
            return True, spec.value
        if isinstance(spec, _Slot) and self.skel is not None:
            is_param, x = self.skel.slots[spec.index]
            value = self.params[x] if is_param else x  # type: ignore[index]
            if spec.negate:
                if isinstance(value, bool) or not isinstance(value, (int, Decimal)):
                    return False, None
                value = -value
            return True, value
        return False, None


def _route_dml(shape: _Dml, ctx: _Ctx, sql: str) -> Decision | _Split:
    if any(n[0] is None for n in (*shape.written, *shape.read)) and not ctx.db:
        return _row_form("no database selected for an unqualified table")
    for name in (*shape.written, *shape.read):
        if ctx.info(name) is None:
            return _row_form(f"table {'.'.join(ctx.qualify(name))} unknown to the source schema")
    try:
        rules = {n: ctx.rule(n) for n in (*shape.written, *shape.read)}
    except _MAP_ERRORS as e:
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
    return _route_modify(shape, ctx, key, rule)


def _route_modify(shape: _Dml, ctx: _Ctx, key: tuple[str, ...], rule) -> Decision:
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
                ok, v = _key_value(v) if ok else (False, None)
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
            except _MAP_ERRORS as e:
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


def _route_insert(shape: _Dml, ctx: _Ctx, sql: str, key: tuple[str, ...], info) -> Decision | _Split:
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
            spec = row[position[auto]] if auto in position else _DEFAULT
            ok, v = ctx.value(spec)
            generated_other = generated_other or spec is _DEFAULT or (ok and (v is None or _is_zero(v)))
        combo = []
        for k in key:
            spec = row[position[k]] if k in position else _DEFAULT
            ok, v = ctx.value(spec)
            if k == auto and (spec is _DEFAULT or (ok and (v is None or _is_zero(v)))):
                if len(shape.rows) > 1:
                    return _row_form("multi-row INSERT with generated auto-increment keys")
                if ctx.insert_id <= 0:
                    return _row_form("generated auto-increment key without an insert_id")
                combo.append(ctx.insert_id)
                continue
            if spec is _DEFAULT:
                return _row_form(f"shard-key column {k} takes its default")
            ok, v = _key_value(v) if ok else (False, None)
            if not ok:
                return _row_form(f"shard-key column {k} is not a literal exact key")
            combo.append(v)
        try:
            owners.append(ctx.shard_map.locate(*ctx.qualify(shape.table), tuple(combo)))
        except _MAP_ERRORS as e:
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
    return _Split(parts, len(owners), f"INSERT split over {len(shards)} shards by {', '.join(key)}")


def _split_values(sql: str, params: tuple | None, owners: list[str]) -> dict[str, _Part] | None:
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
    head_params = params[:groups[0][2]] if params is not None else None
    tail_params = params[groups[-1][2] + groups[-1][3]:] if params is not None else None
    parts = {}
    for shard in dict.fromkeys(owners):
        mine = [g for g, o in zip(groups, owners) if o == shard]
        text = head + ", ".join(sql[s:e] for s, e, _, _ in mine) + tail
        p = None
        if params is not None:
            p = tuple(head_params) + tuple(v for _, _, f, n in mine for v in params[f:f + n]) + tuple(tail_params)
        parts[shard] = _Part(text, p, len(mine))
    return parts


def _route_ddl(shape: _Ddl, ctx: _Ctx, sql: str) -> Decision | _Split:
    if shape.every_shard:
        return Decision(frozenset(ctx.shard_map.shards), "database DDL: every shard")
    if any(n[0] is None for n in shape.tables) and not ctx.db:
        return _row_form("DDL on an unqualified table with no database selected")
    owners: list[frozenset[str]] = []
    try:
        for i, n in enumerate(shape.tables):
            pk = None
            if ctx.info(n) is None:  # a table this statement creates (or renames into)
                source = shape.pk_from[i] if i < len(shape.pk_from) else None
                info = ctx.info(source) if source is not None else None
                pk = tuple(info.primary_key) if info is not None else (shape.create_pk or ())
            owners.append(ctx.owners(ctx.rule(n, pk)))
    except _MAP_ERRORS as e:
        return _row_form(f"shard map: {e}")
    union = frozenset().union(*owners)
    if shape.items and len(set(owners)) > 1:
        first, last = shape.items[0], shape.items[-1]
        parts = {}
        for shard in sorted(union):
            mine = [it for it in shape.items if any(shard in owners[t] for t in it[2])]
            if mine:
                text = sql[:first[0]] + ", ".join(sql[s:e] for s, e, _ in mine) + sql[last[1]:]
                parts[shard] = _Part(text, None, len(mine))
        return _Split(parts, len(shape.items), "DDL list split by the shards owning each table")
    names = ", ".join(".".join(ctx.qualify(n)) for n in shape.tables)
    return Decision(union, f"DDL on {names}: owning shards")


def _route(sql: str, params: tuple | None, insert_id: int, db: str | None, shard_map, schema,
           sql_mode: str | None) -> Decision | _Split | _Session:
    mode = (sql_mode or "").upper()
    if "NO_BACKSLASH_ESCAPES" in mode and "\\" in sql:
        return _row_form("unparsed: NO_BACKSLASH_ESCAPES text with backslashes")
    if "ANSI_QUOTES" in mode and '"' in sql:
        return _row_form('unparsed: ANSI_QUOTES text with "')
    shape, skel = _analyze(sql)
    if isinstance(shape, _NeedRows):
        return _row_form(shape.reason)
    if skel is not None and skel.n_params != (len(params) if params is not None else 0):
        return _row_form(f"unparsed: {skel.n_params} placeholders for "
                         f"{len(params) if params is not None else 'no'} parameters")
    if isinstance(shape, _Session):
        return shape
    if isinstance(shape, _Skip):
        return Decision(frozenset(), shape.reason)
    ctx = _Ctx(shard_map, schema, db.lower() if db else None, params, insert_id, skel)
    if isinstance(shape, _Ddl):
        return _route_ddl(shape, ctx, sql)
    return _route_dml(shape, ctx, sql)


def route_statement(sql: str, db: str | None, shard_map, schema, params: tuple | None = None,
                    insert_id: int = 0, *, sql_mode: str | None = None) -> dict[str, str] | Decision:
    """Route one statement. A split comes back as ``{shard: SQL text}`` (bound params interpolated)
    for the shards that get rows; otherwise a :class:`Decision` (``shards`` None: needs the row form).
    A session statement comes back as every shard with ``session=True``: :class:`ShardRouter` keeps it
    only where the event has other statements."""
    res = _route(sql, params, insert_id, db, shard_map, schema, sql_mode)
    if isinstance(res, _Session):
        return Decision(frozenset(shard_map.shards), "session statement", session=True)
    if isinstance(res, _Split):
        return {s: (p.sql if p.params is None else interpolate(p.sql, p.params)) for s, p in res.parts.items()}
    return res
