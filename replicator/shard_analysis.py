"""Statement analysis for shard routing (pure; no I/O): what one statement's text says -- its verb, the
tables it writes and reads, its VALUES rows, the key values its WHERE pins, the tables a DDL names --
as a :mod:`~replicator.shard_shapes` shape. DML and SET are parsed with sqlglot (``read="mysql"``) from
their :mod:`~replicator.shard_skeleton`; DDL is read from its tokens. Shapes are cached by text.
:mod:`replicator.shard_statements` routes shapes to shards."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from decimal import Decimal
from functools import _CacheInfo, lru_cache
from typing import Any, TypedDict

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from dbmux.core.sqllex import LexError, Token, scan_with_markers
from dbmux.replicator.shard_shapes import (
    DEFAULT,
    EXPR,
    Const,
    Ddl,
    Dml,
    NeedRows,
    SessionStatement,
    Shape,
    Skip,
    Slot,
    TableName,
)
from dbmux.replicator.shard_skeleton import DML_VERBS, INT_TEXT, SLOT_PREFIX, Skeleton, skeleton, slot_number

__all__ = ["analyze", "shape_cache_info"]

_CACHED_CHARS = 8192  # longer texts (bulk inserts) are analysed each time rather than filling the caches


def analyze(sql: str) -> tuple[Shape, Skeleton | None]:
    """The shape of one statement and its skeleton (for DML and SET); cached by text."""
    return _analyze_cached(sql) if len(sql) <= _CACHED_CHARS else _analyze_text(sql)


@lru_cache(maxsize=8192)
def _analyze_cached(sql: str) -> tuple[Shape, Skeleton | None]:
    return _analyze_text(sql)


def _analyze_text(sql: str) -> tuple[Shape, Skeleton | None]:
    try:
        tokens, markers = scan_with_markers(sql)
    except LexError as e:
        return NeedRows(f"unparsed: {e}"), None
    while tokens and tokens[-1].text == ";":
        tokens.pop()
    if not tokens:
        return NeedRows("unparsed: empty statement"), None
    if any(t.type == "op" and t.text == ";" for t in tokens):
        return NeedRows("unparsed: several statements in one"), None
    if tokens[0].type != "word":
        return NeedRows(f"unparsed: statement starting with {tokens[0].text!r}"), None
    w = [t.upper if t.type == "word" else t.text for t in tokens]
    verb = w[0]
    if verb in DML_VERBS:
        skel = skeleton(tokens, slot_literals=True)
        shape = _dml_shape(skel.text, len(skel.slots))
        if isinstance(shape, NeedRows) and any(not is_param for is_param, _ in skel.slots):
            skel = skeleton(tokens, slot_literals=False)  # a literal in a structural place
            shape = _dml_shape(skel.text, len(skel.slots))
        return shape, skel
    if verb in ("CREATE", "ALTER", "DROP", "TRUNCATE", "RENAME"):
        return _ddl_shape(tokens, w, bool(markers)), None
    if verb == "USE" and len(tokens) == 2 and tokens[1].type in ("word", "ident"):
        return SessionStatement(use_db=tokens[1].name.lower()), None
    if w in (["BEGIN"], ["BEGIN", "WORK"], ["COMMIT"], ["COMMIT", "WORK"]) or w[:2] == ["START", "TRANSACTION"]:
        return Skip("transaction boundary: the applier's own"), None
    if verb == "SET":
        skel = skeleton(tokens, slot_literals=False)
        return _set_shape(skel.text, w), skel
    return NeedRows(f"unparsed: {verb} statement"), None


def _parse(text: str) -> exp.Expression | NeedRows:
    try:
        trees = [t for t in sqlglot.parse(text, read="mysql") if t is not None]
    except (SqlglotError, RecursionError, ValueError) as e:
        return NeedRows(f"unparsed: {str(e).splitlines()[0][:120] if str(e) else type(e).__name__}")
    if len(trees) != 1 or isinstance(trees[0], exp.Command):
        return NeedRows("unparsed: sqlglot has no AST for it")
    return trees[0]


def _slot_index(node: exp.Expression) -> int | None:
    return slot_number(node.name) if isinstance(node, exp.Parameter) else None


def _table_name(tbl: exp.Table) -> TableName | None:
    if tbl.args.get("catalog") is not None or not tbl.name:
        return None
    return (tbl.db.lower() or None, tbl.name.lower())


def _spec(node: exp.Expression) -> Any:
    """A VALUES/WHERE value as a spec: Slot, Const, DEFAULT or EXPR."""
    while isinstance(node, exp.Paren):
        node = node.this
    if isinstance(node, exp.Parameter):
        i = _slot_index(node)
        return EXPR if i is None else Slot(i)
    if isinstance(node, exp.Neg):
        inner = _spec(node.this)
        if isinstance(inner, Slot):
            return Slot(inner.index, not inner.negate)
        if isinstance(inner, Const) and isinstance(inner.value, (int, Decimal)):
            return Const(-inner.value)
        return EXPR
    if isinstance(node, exp.Literal):
        if node.is_string:
            return EXPR if "\\" in node.this else Const(node.this)
        if INT_TEXT.match(node.this):
            return Const(int(node.this))
        try:
            return Const(Decimal(node.this))
        except ArithmeticError:
            return EXPR
    if isinstance(node, exp.Null):
        return Const(None)
    if isinstance(node, exp.Var) and node.name.upper() == "DEFAULT":
        return DEFAULT
    return EXPR


def _conjuncts(node: exp.Expression) -> Iterator[exp.Expression]:
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
        col: str | None = None
        specs: tuple[Any, ...] = ()
        if isinstance(c, (exp.EQ, exp.NullSafeEQ)):
            for a, b in ((c.this, c.expression), (c.expression, c.this)):
                if (col := column(a)) is not None:
                    specs = (_spec(b),)
                    break
        elif isinstance(c, exp.In) and not c.args.get("query") and not c.args.get("unnest"):
            col = column(c.this)
            specs = tuple(_spec(e) for e in c.expressions)
        if col is None or not specs or any(s is EXPR or s is DEFAULT for s in specs):
            continue
        if col not in found or len(specs) < len(found[col]):
            found[col] = specs
    return tuple(found.items())


class _DmlCommon(TypedDict):
    """The :class:`Dml` fields every verb sets the same way."""

    table: TableName
    alias: str
    written: tuple[TableName, ...]
    read: tuple[TableName, ...]
    compound: str
    assigns_variables: bool


def _dml_shape(text: str, n_slots: int) -> Shape:
    """The shape of a DML skeleton; cached (a skeleton is shared by every execution of a statement)."""
    if len(text) <= 8 * _CACHED_CHARS:
        return _dml_shape_cached(text, n_slots)
    return _bulk_insert_shape(text, n_slots) or _dml_shape_text(text, n_slots)


_SLOT = f"@{SLOT_PREFIX}"
_VALUES_SLOTS = re.compile(rf"\bVALUES (?=\( {_SLOT}0 )", re.IGNORECASE)
_SLOT_TUPLE = re.compile(rf"\( ({_SLOT}\d+(?: , {_SLOT}\d+)*) \)")


def _bulk_insert_shape(text: str, n_slots: int) -> Shape | None:
    """A bulk ``INSERT ... VALUES (?, ?), (?, ?), ...`` (every row only values, the same width, nothing
    else numbered): the shape of its first row, cached, repeated for every row -- sqlglot took 2.5 s for
    one 20,000-row statement. None for any other statement (parsed whole)."""
    m = _VALUES_SLOTS.search(text)
    if m is None or _SLOT in text[:m.start()]:
        return None
    pos, slot, width, n_rows, first_end = m.end(), 0, 0, 0, 0
    while (t := _SLOT_TUPLE.match(text, pos)) is not None:
        items = t.group(1).split(" , ")
        width = width or len(items)
        if len(items) != width or items != [f"{_SLOT}{i}" for i in range(slot, slot + width)]:
            return None
        slot += width
        n_rows += 1
        pos = t.end()
        first_end = first_end or pos
        if not text.startswith(" , ", pos):
            break
        pos += 3
    suffix = text[pos:]
    if n_rows < 2 or slot != n_slots or _SLOT in suffix or (suffix and not suffix.startswith(" ")):
        return None
    one = _dml_shape(text[:first_end] + suffix, width)
    if not isinstance(one, Dml) or one.verb != "insert" or one.rows != (tuple(Slot(i) for i in range(width)),):
        return None
    return dataclasses.replace(one, rows=tuple(tuple(Slot(r * width + c) for c in range(width))
                                               for r in range(n_rows)))


@lru_cache(maxsize=4096)
def _dml_shape_cached(text: str, n_slots: int) -> Shape:
    return _dml_shape_text(text, n_slots)


def _dml_shape_text(text: str, n_slots: int) -> Shape:
    node = _parse(text)
    if isinstance(node, NeedRows):
        return node
    if not isinstance(node, (exp.Insert, exp.Update, exp.Delete)):
        return NeedRows(f"unparsed: {type(node).__name__} statement")
    if sorted(i for p in node.find_all(exp.Parameter) if (i := _slot_index(p)) is not None) != list(range(n_slots)):
        return NeedRows("unparsed: a value was lost in parsing")
    target = node.this.this if isinstance(node, exp.Insert) and isinstance(node.this, exp.Schema) else node.this
    if not isinstance(target, exp.Table) or (table := _table_name(target)) is None:
        return NeedRows("unparsed: no single target table")
    tables = list(node.find_all(exp.Table))
    found = [_table_name(t) for t in tables]
    names = [n for n in found if n is not None]
    if len(names) != len(found):
        return NeedRows("unparsed: table name")
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
    common = _DmlCommon(table=table, alias=alias, written=tuple(written), read=read, compound=compound,
                        assigns_variables=any(True for _ in node.find_all(exp.PropertyEQ)))
    if isinstance(node, exp.Insert):
        columns = None
        if isinstance(node.this, exp.Schema):
            columns = tuple(c.name.lower() for c in node.this.expressions)
        rows: tuple[tuple[Any, ...], ...] = ()
        if isinstance(node.expression, exp.Values):
            if not all(isinstance(t, exp.Tuple) for t in node.expression.expressions):
                return NeedRows("unparsed: VALUES row form")
            rows = tuple(tuple(_spec(e) for e in t.expressions) for t in node.expression.expressions)
        conflict = node.args.get("conflict")
        assigned: set[str] = set()
        if conflict is not None:
            for eq in conflict.expressions or ():
                if not (isinstance(eq, exp.EQ) and isinstance(eq.this, exp.Column)):
                    return NeedRows("unparsed: ON DUPLICATE KEY UPDATE form")
                assigned.add(eq.this.name.lower())
        return Dml("insert", columns=columns, rows=rows, assigned=frozenset(assigned),
                   odku=conflict is not None, **common)
    where_names = {table[1]} | ({alias} if alias else set())
    pins = _pins(node.args.get("where"), where_names)
    order_limit = bool(node.args.get("order") or node.args.get("limit"))
    if isinstance(node, exp.Update):
        assigned = set()
        for eq in node.expressions:
            if not (isinstance(eq, exp.EQ) and isinstance(eq.this, exp.Column)):
                return NeedRows("unparsed: UPDATE SET form")
            assigned.add(eq.this.name.lower())
        return Dml("update", assigned=frozenset(assigned), pins=pins, order_limit=order_limit, **common)
    return Dml("delete", pins=pins, order_limit=order_limit, **common)


_SET_REFUSED = frozenset({"GLOBAL", "PERSIST", "PERSIST_ONLY", "PASSWORD", "ROLE", "DEFAULT", "STATEMENT"})


def _set_shape(text: str, w: list[str]) -> Shape:
    """SET of session or user variables, NAMES, CHARACTER SET, TRANSACTION: a session statement."""
    if len(w) > 1 and w[1] in _SET_REFUSED:
        return NeedRows(f"unparsed: SET {w[1]}")
    node = _parse(text)
    if isinstance(node, NeedRows):
        return node
    if not isinstance(node, exp.Set):
        return NeedRows("unparsed: SET form")
    for item in node.expressions:
        kind = (item.args.get("kind") or "").upper()
        if kind not in ("", "SESSION", "LOCAL", "NAMES", "CHARACTER SET", "CHARSET", "TRANSACTION"):
            return NeedRows(f"unparsed: SET {kind}")
        if any(True for _ in item.find_all(exp.Select, exp.Subquery)):
            return NeedRows("SET from a subquery reads other shards' rows")
        for sp in item.find_all(exp.SessionParameter):
            if (sp.args.get("kind") or "").lower() not in ("", "session", "local"):
                return NeedRows("unparsed: SET of a global variable")
    return SessionStatement()


# --------------------------------------------------------------------------------------------- DDL


def _qualified(tokens: list[Token], i: int) -> tuple[TableName | None, int]:
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


def _name_list(tokens: list[Token], i: int,
               pairs: bool) -> tuple[list[TableName], list[tuple[int, int, tuple[int, ...]]], int]:
    """``a, db.b`` (or ``a TO b, c TO d``) from tokens[i]: names, items (offsets, name indexes), end."""
    names: list[TableName] = []
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


def _ddl_shape(tokens: list[Token], w: list[str], markers: bool) -> Shape:
    verb = w[0]
    unparsed = NeedRows(f"unparsed: {' '.join(w[:3])}")
    if verb == "TRUNCATE":
        name, i = _qualified(tokens, _skip(w, 1, "TABLE"))
        return Ddl(tables=(name,)) if name is not None and i == len(tokens) else unparsed
    if verb == "RENAME":
        if w[1:2] not in (["TABLE"], ["TABLES"]):
            return unparsed
        names, items, end = _name_list(tokens, 2, pairs=True)
        if not names or end != len(tokens):
            return unparsed
        pk_from = tuple(names[k - 1] if k % 2 else None for k in range(len(names)))  # a TO b: b has a's key
        return Ddl(tables=tuple(names), pk_from=pk_from, items=() if markers else tuple(items))
    i = 1
    if verb == "CREATE":
        i = _skip(w, i, "OR", "REPLACE")
    temporary = w[i:i + 1] == ["TEMPORARY"]
    i += temporary
    while w[i:i + 1] and w[i] in ("ONLINE", "OFFLINE", "IGNORE", "UNIQUE", "FULLTEXT", "SPATIAL"):
        i += 1
    obj = w[i] if i < len(w) else ""
    if obj in ("DATABASE", "SCHEMA"):
        return Ddl(every_shard=True)
    if obj in ("TABLE", "TABLES") and temporary:
        return NeedRows("temporary table: its effects reach targets as rows")
    if obj in ("INDEX", "KEY") and verb in ("CREATE", "DROP"):
        for j in range(i + 1, len(tokens)):
            if w[j] == "ON":
                name, _ = _qualified(tokens, j + 1)
                return Ddl(tables=(name,)) if name is not None else unparsed
        return unparsed
    if obj not in ("TABLE", "TABLES") or (obj == "TABLES" and verb != "DROP"):
        return unparsed
    i += 1
    if verb == "DROP":
        names, items, end = _name_list(tokens, _skip(w, i, "IF", "EXISTS"), pairs=False)
        if not names or w[end:] not in ([], ["RESTRICT"], ["CASCADE"]):
            return unparsed
        return Ddl(tables=tuple(names), items=() if markers else tuple(items), drop=True)
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
        return Ddl(tables=tuple(tables), pk_from=(None,) + (name,) * (len(tables) - 1))
    depth = 0
    for j in range(i, len(tokens)):
        depth += (w[j] == "(") - (w[j] == ")")
        if w[j] == "SELECT" or (depth == 0 and w[j] in ("AS", "TABLE")):  # CREATE TABLE t [AS] SELECT ...
            return NeedRows("CREATE TABLE ... SELECT: its rows reach targets as rows")
    if w[i:i + 1] == ["LIKE"] or w[i:i + 2] == ["(", "LIKE"]:
        like, _ = _qualified(tokens, i + 1 if w[i] == "LIKE" else i + 2)
        return Ddl(tables=(name,), pk_from=(like,)) if like is not None else unparsed
    return Ddl(tables=(name,), create_pk=_create_pk(tokens, w, i))



def shape_cache_info() -> _CacheInfo:
    """Hits and misses of the DML shape cache (one parse per skeleton), as ``functools.lru_cache`` counts."""
    return _dml_shape_cached.cache_info()
