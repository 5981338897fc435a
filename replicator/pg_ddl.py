"""MySQL DDL → PostgreSQL DDL (pure). Used by :func:`replicator.pg_sql.translate_statement`.

Decisions (documented for the README):

- A MySQL database is a PostgreSQL schema: ``CREATE DATABASE`` → ``CREATE SCHEMA``, ``DROP DATABASE`` →
  ``DROP SCHEMA ... CASCADE``; character set / collation options are dropped.
- Index names are per table in MySQL and per schema in PostgreSQL, so every index (KEY, UNIQUE KEY,
  CREATE INDEX) is named ``<table>_<name>`` (an unnamed key takes its first column's name, as MySQL
  does). ``DROP INDEX i ON t`` drops ``<t>_<i>``. After ``RENAME TABLE`` the old prefix stays.
- ``KEY``/``INDEX`` inside CREATE TABLE becomes a separate ``CREATE INDEX`` statement; UNIQUE keys stay
  in the table as ``CONSTRAINT "<table>_<name>" UNIQUE (...)``. Prefix lengths (``KEY (c(10))``) are
  dropped for plain indexes (the whole value is indexed) and Untranslatable for UNIQUE keys (uniqueness
  would change). A FULLTEXT key becomes a GIN index on ``to_tsvector('simple', col || ' ' || ...)`` of the
  same name (PostgreSQL text search; MySQL's MATCH ... AGAINST is not translated: reads are not replicated).
- Spatial columns (GEOMETRY, POINT, LINESTRING, POLYGON, MULTI..., GEOMETRYCOLLECTION) are BYTEA holding
  MySQL's internal form (what the row images carry: the SRID, 4 bytes little-endian, then the WKB, which
  PostGIS reads with ``ST_GeomFromWKB(substring(g from 5))``); MySQL 8's ``SRID n`` attribute is
  dropped (each value carries its SRID). A SPATIAL key becomes a hash index (equality only: PostgreSQL has
  no spatial index for BYTEA; a B-tree would refuse large values), keeping its name for DROP INDEX.
- ``ON UPDATE CURRENT_TIMESTAMP`` is dropped from the column: PostgreSQL has no such clause. Statement
  form stays faithful because :func:`replicator.pg_sql.translate_statement` refuses an UPDATE that does
  not assign such a column when the :class:`SchemaInfo` reports it (apply the row form instead, whose
  after image carries the value).
- COMMENT, CHARACTER SET, COLLATE, column positions (FIRST/AFTER) and table options (ENGINE,
  DEFAULT CHARSET, ROW_FORMAT, AUTO_INCREMENT=, COMMENT=, ALGORITHM=, LOCK=, and CREATE TABLE's ``PARTITION
  BY``: MySQL's physical layout) are dropped; ALTER TABLE's partition operations are Untranslatable (``DROP
  PARTITION`` deletes rows the binlog does not carry).
- ``MODIFY``/``CHANGE`` replace the whole column definition in MySQL: translated to ``ALTER COLUMN TYPE
  ... USING col::type`` plus SET/DROP NOT NULL and SET/DROP DEFAULT (and RENAME COLUMN for CHANGE).
"""

from __future__ import annotations

import sqlglot
from sqlglot import exp
from sqlglot.errors import ErrorLevel, SqlglotError
from sqlglot.tokens import Token, TokenType

from dbmux.replicator.pg_ddl_text import CREATE_KIND, parseable_ddl, tokens
from dbmux.replicator.pg_types import PgStatement, Untranslatable, pg_column_type, qualified, quote_ident

__all__ = ["translate_create_table", "translate_create_index", "translate_alter", "translate_rename",
           "translate_drop_index", "translate_drop_table", "pg_expr", "tokens", "split_top_level", "parseable_ddl",
           "read_qualified"]


def pg_expr(node: exp.Expression, sql: str) -> str:
    """Render one expression for PostgreSQL; anything sqlglot cannot express raises Untranslatable."""
    try:
        return node.sql(dialect="postgres", unsupported_level=ErrorLevel.RAISE, identify=True)
    except SqlglotError as e:
        raise Untranslatable(f"{node.sql('mysql')[:80]}: {e}", sql) from None


def split_top_level(sql: str, toks: list[Token]) -> list[str]:
    """Split the text covered by ``toks`` on commas outside parentheses."""
    parts, depth, start = [], 0, None
    for t in toks:
        if start is None:
            start = t.start
        if t.token_type == TokenType.L_PAREN:
            depth += 1
        elif t.token_type == TokenType.R_PAREN:
            depth -= 1
        elif t.token_type == TokenType.COMMA and depth == 0:
            parts.append(sql[start:t.start].strip())
            start = None
    if start is not None:
        parts.append(sql[start:toks[-1].end + 1].strip())
    return [p for p in parts if p]


def _name(node: exp.Expression | str | None) -> str:
    if node is None:
        return ""
    return (node if isinstance(node, str) else node.name).lower()


def index_name(table: str, name: str) -> str:
    return f"{table}_{name}"


def _table_ref(tbl: exp.Table, default_db: str | None, sql: str) -> tuple[str, str]:
    db = _name(tbl.args.get("db")) or (default_db or "").lower()
    if not db:
        raise Untranslatable("table name without a database and no current database", sql)
    return db, _name(tbl.this)


def _key_columns(cols: list[exp.Expression], sql: str, *, unique: bool) -> str:
    out = []
    for c in cols:
        desc = isinstance(c, exp.Ordered) and bool(c.args.get("desc"))
        node = c.this if isinstance(c, exp.Ordered) else c
        if isinstance(node, exp.Anonymous):  # c(10): a prefix length
            if unique:
                raise Untranslatable(f"UNIQUE key on a column prefix {node.sql('mysql')}", sql)
            name = _name(node.this)
        elif isinstance(node, (exp.Column, exp.Identifier)):
            name = _name(node)
        else:
            raise Untranslatable(f"index on expression {node.sql('mysql')}", sql)
        out.append(quote_ident(name) + (" DESC" if desc else ""))
    return ", ".join(out)


# ------------------------------------------------------------------------------------------ columns


def _generated(k: exp.Expression | None) -> bool:
    """A generated column's ``[GENERATED ALWAYS] AS (expr) [VIRTUAL|STORED|PERSISTENT]``."""
    return isinstance(k, exp.ComputedColumnConstraint) or (
        isinstance(k, exp.GeneratedAsIdentityColumnConstraint) and k.args.get("expression") is not None)


class _Column:
    def __init__(self, cdef: exp.ColumnDef, schema: str, table: str, sql: str) -> None:
        self.name, self.schema = _name(cdef.this), schema
        kind = cdef.args.get("kind")
        if not isinstance(kind, exp.DataType):
            raise Untranslatable(f"column {self.name} without a type", sql)
        self.kind = kind
        self.not_null: bool | None = None
        self.default: str | None = None
        self.auto_increment = False
        self.primary_key = False
        self.unique = False
        self.checks: list[str] = []
        for cc in cdef.args.get("constraints") or []:
            k = cc.args.get("kind")
            if isinstance(k, exp.NotNullColumnConstraint):
                self.not_null = not k.args.get("allow_null")
            elif isinstance(k, exp.AutoIncrementColumnConstraint):
                self.auto_increment = True
            elif isinstance(k, exp.PrimaryKeyColumnConstraint):
                self.primary_key = True
            elif isinstance(k, exp.UniqueColumnConstraint):
                self.unique = True
            elif isinstance(k, exp.DefaultColumnConstraint):
                self.default = self._default(k.this, sql)
            elif isinstance(k, exp.CheckColumnConstraint):
                self.checks.append(f"CHECK ({pg_expr(k.this, sql)})")
            elif isinstance(k, (exp.OnUpdateColumnConstraint, exp.CharacterSetColumnConstraint,
                                exp.CollateColumnConstraint, exp.CommentColumnConstraint)) or _generated(k):
                continue  # dropped on purpose (module docstring)
            else:
                raise Untranslatable(f"column attribute {cc.sql('mysql')}", sql)
        self.pg_type = pg_column_type(kind, auto_increment=self.auto_increment)
        if kind.this == exp.DataType.Type.ENUM:
            values = ", ".join(pg_expr(v, sql) for v in kind.expressions)
            self.checks.append(f"CHECK ({quote_ident(self.name)} IN ({values}))")
        if self.auto_increment:
            self.default = None
        self.table = table

    def _default(self, node: exp.Expression, sql: str) -> str:
        while isinstance(node, exp.Paren):  # DEFAULT (expr)
            node = node.this
        if isinstance(node, exp.Boolean):
            return "1" if node.this else "0"  # BOOL is SMALLINT on the target
        if isinstance(node, exp.Null):
            return "NULL"
        name = str(node.this).upper() if isinstance(node, (exp.Anonymous, exp.Column)) else ""
        if name in _CLOCKS and (isinstance(node, exp.Anonymous) or name.startswith("LOCAL")) or \
                isinstance(node, exp.CurrentTimestamp):  # NOW(3) and LOCALTIME are not PostgreSQL's
            p = node.expressions[0] if isinstance(node, exp.Anonymous) and node.expressions else node.this
            return f"CURRENT_TIMESTAMP({p.name})" if isinstance(p, exp.Literal) else "CURRENT_TIMESTAMP"
        if isinstance(node, exp.Anonymous) and str(node.this).upper() == "NEXTVAL" and len(node.expressions) == 1 \
                and isinstance(seq := node.expressions[0], exp.Column):  # a MariaDB sequence (pg_sequences)
            q = qualified((seq.table or self.schema).lower(), seq.name.lower())
            return "nextval('" + q.replace("'", "''") + "')"
        return pg_expr(node, sql)

    def definition(self) -> str:
        parts = [quote_ident(self.name), self.pg_type]
        if self.auto_increment:
            parts.append("GENERATED BY DEFAULT AS IDENTITY")
        if self.default is not None:
            parts.append(f"DEFAULT {self.default}")
        if self.not_null:
            parts.append("NOT NULL")
        elif self.not_null is False:
            parts.append("NULL")
        if self.primary_key:
            parts.append("PRIMARY KEY")
        if self.unique:
            parts.append(f"CONSTRAINT {quote_ident(index_name(self.table, self.name))} UNIQUE")
        parts.extend(self.checks)
        return " ".join(parts)


_CLOCKS = frozenset({"NOW", "LOCALTIME", "LOCALTIMESTAMP", "CURRENT_TIMESTAMP"})
def _parse_create(text: str, sql: str) -> exp.Create:
    try:
        node = sqlglot.parse_one(parseable_ddl(text), read="mysql", error_level=ErrorLevel.RAISE)
    except SqlglotError as e:
        raise Untranslatable(f"unparseable definition: {e}", sql) from None
    if not isinstance(node, exp.Create):
        raise Untranslatable("unparseable definition", sql)
    return node


def _elements(schema: str, table: str, elems: list[exp.Expression], sql: str, default_db: str | None,
              adding: bool = False) -> tuple[list[str], list[str], list[_Column]]:
    """Table elements → (inline definitions, follow-up statements, columns). An unnamed FOREIGN KEY gets
    InnoDB's name, ``<table>_ibfk_<n>`` (``ALTER TABLE ... DROP FOREIGN KEY`` names it so): n counts in a
    CREATE TABLE, and is one more than the highest the table has when ``adding`` (ALTER TABLE ADD)."""
    inline: list[str] = []
    after: list[str] = []
    columns: list[_Column] = []
    unnamed_fks = 0
    for el in elems:
        if isinstance(el, exp.ColumnDef):
            col = _Column(el, schema, table, sql)
            columns.append(col)
            inline.append(col.definition())
        elif isinstance(el, exp.PrimaryKey):
            inline.append(f"PRIMARY KEY ({_key_columns(el.expressions, sql, unique=True)})")
        elif isinstance(el, exp.UniqueColumnConstraint) or (
                isinstance(el, exp.Constraint) and len(el.expressions) == 1
                and isinstance(el.expressions[0], exp.UniqueColumnConstraint)):
            named = _name(el.this) if isinstance(el, exp.Constraint) else ""  # CONSTRAINT n UNIQUE (...)
            el = el.expressions[0] if isinstance(el, exp.Constraint) else el
            sch = el.this
            cols = sch.expressions if isinstance(sch, exp.Schema) else []
            name = named or (_name(sch.this) if isinstance(sch, exp.Schema) and sch.this else "")
            if not cols:
                raise Untranslatable(f"UNIQUE key {el.sql('mysql')}", sql)
            first = cols[0].this if isinstance(cols[0], exp.Ordered) else cols[0]
            name = name or _name(first.this if isinstance(first, exp.Anonymous) else first)
            inline.append(f"CONSTRAINT {quote_ident(index_name(table, name))} UNIQUE "
                          f"({_key_columns(cols, sql, unique=True)})")
        elif isinstance(el, exp.IndexColumnConstraint):
            kind = (el.args.get("kind") or "").upper()
            if kind not in ("", "SPATIAL", "FULLTEXT"):
                raise Untranslatable(f"{kind} index", sql)
            cols = el.expressions
            first = cols[0].this if isinstance(cols[0], exp.Ordered) else cols[0]
            name = _name(el.this) or _name(first.this if isinstance(first, exp.Anonymous) else first)
            using = {"": "", "SPATIAL": " USING hash", "FULLTEXT": " USING gin"}[kind]  # (module docstring)
            keys = _fulltext(cols, sql) if kind == "FULLTEXT" else _key_columns(cols, sql, unique=False)
            after.append(f"CREATE INDEX {quote_ident(index_name(table, name))} ON {qualified(schema, table)}{using} "
                         f"({keys})")
        elif isinstance(el, exp.Constraint) and len(el.expressions) == 1 and isinstance(
                el.expressions[0], (exp.ForeignKey, exp.PrimaryKey, exp.CheckColumnConstraint)):
            body = _table_constraint(el.expressions[0], sql, default_db or schema)
            inline.append(f"CONSTRAINT {quote_ident(_name(el.this))} {body}")
        elif isinstance(el, exp.ForeignKey) and adding:
            after.append(_add_next_ibfk(schema, table, _table_constraint(el, sql, default_db or schema)))
        elif isinstance(el, exp.ForeignKey):
            unnamed_fks += 1
            inline.append(f"CONSTRAINT {quote_ident(f'{table}_ibfk_{unnamed_fks}')} "
                          + _table_constraint(el, sql, default_db or schema))
        elif isinstance(el, exp.CheckColumnConstraint):
            inline.append(_table_constraint(el, sql, default_db or schema))
        else:
            raise Untranslatable(f"table element {el.sql('mysql')[:80]}", sql)
    return inline, after, columns


def _add_next_ibfk(schema: str, table: str, body: str) -> str:
    """``ALTER TABLE ... ADD CONSTRAINT <table>_ibfk_<highest + 1> <body>``, the number found when it runs."""
    prefix, name = (t.replace("'", "''") for t in (f"{table}_ibfk_", qualified(schema, table)))
    add = f"ALTER TABLE {qualified(schema, table)} ADD CONSTRAINT %I {body}".replace("'", "''")
    at = len(table) + 7  # (where the number starts in the name)
    return (f"DO $dbmux$ DECLARE n int; BEGIN SELECT coalesce(max(substr(conname, {at})::int), 0) + 1 INTO n "
            f"FROM pg_constraint WHERE conrelid = to_regclass('{name}') AND starts_with(conname, '{prefix}') "
            f"AND substr(conname, {at}) ~ '^[0-9]+$'; EXECUTE format('{add}', '{prefix}' || n); END $dbmux$")


def _table_constraint(node: exp.Expression, sql: str, default_db: str) -> str:
    if isinstance(node, exp.PrimaryKey):
        return f"PRIMARY KEY ({_key_columns(node.expressions, sql, unique=True)})"
    if isinstance(node, exp.CheckColumnConstraint):
        return f"CHECK ({pg_expr(node.this, sql)})"
    ref = node.args.get("reference")
    target = ref.this if ref is not None else None
    if ref is None or not isinstance(target, exp.Schema) or not isinstance(target.this, exp.Table):
        raise Untranslatable(f"foreign key {node.sql('mysql')}", sql)
    rdb, rtable = _table_ref(target.this, default_db, sql)
    cols = ", ".join(quote_ident(_name(c)) for c in node.expressions)
    rcols = ", ".join(quote_ident(_name(c)) for c in target.expressions)
    opts = " ".join(str(o).upper() for o in ref.args.get("options") or [])
    for word in ("MATCH", "SET DEFAULT"):
        if word in opts:
            raise Untranslatable(f"foreign key option {opts}", sql)
    # DEFERRABLE (checked at once unless deferred): rows the primary changed with foreign_key_checks = 0
    # (an ORM emptying a self-referencing table parent first) are applied with the checks deferred
    return (f"FOREIGN KEY ({cols}) REFERENCES {qualified(rdb, rtable)} ({rcols})" + (f" {opts}" if opts else "")
            + " DEFERRABLE INITIALLY IMMEDIATE")


# ------------------------------------------------------------------------------------------ statements

_DROPPED_TABLE_PROPERTIES = (exp.EngineProperty, exp.CharacterSetProperty, exp.CollateProperty,
                             exp.SchemaCommentProperty, exp.AutoIncrementProperty, exp.RowFormatProperty)
_PHYSICAL_OPTIONS = frozenset({"row_format", "comment", "avg_row_length", "max_rows", "min_rows", "pack_keys",
                               "stats_persistent", "stats_auto_recalc", "stats_sample_pages", "key_block_size",
                               "page_checksum", "transactional", "delay_key_write", "compression", "password",
                               "encrypted", "encryption", "encryption_key_id", "sequence"})


def translate_create_table(node: exp.Create, default_db: str | None, sql: str) -> list[PgStatement]:
    if not isinstance(node.this, exp.Schema) or node.args.get("expression") is not None:
        raise Untranslatable("CREATE TABLE ... LIKE / ... SELECT", sql)
    if node.args.get("temporary") or "TEMPORARY" in sql[:40].upper():
        raise Untranslatable("CREATE TEMPORARY TABLE", sql)
    properties = node.args.get("properties")
    for prop in (properties.expressions if properties else []):
        if isinstance(prop, exp.LikeProperty):
            raise Untranslatable("CREATE TABLE ... LIKE", sql)
        if not isinstance(prop, _DROPPED_TABLE_PROPERTIES) and not (
                isinstance(prop, exp.Property) and _name(prop.this) in _PHYSICAL_OPTIONS):
            raise Untranslatable(f"table option {prop.sql('mysql')}", sql)
    schema, table = _table_ref(node.this.this, default_db, sql)
    inline, after, _ = _elements(schema, table, node.this.expressions, sql, default_db)
    exists = "IF NOT EXISTS " if node.args.get("exists") else ""
    head = f"CREATE TABLE {exists}{qualified(schema, table)} ({', '.join(inline)})"
    if exists:
        after = [a.replace("CREATE INDEX ", "CREATE INDEX IF NOT EXISTS ", 1) for a in after]
    return [PgStatement(head)] + [PgStatement(a) for a in after]


def translate_create_index(node: exp.Create, default_db: str | None, sql: str) -> list[PgStatement]:
    idx = node.this
    if not isinstance(idx, exp.Index) or not isinstance(idx.args.get("table"), exp.Table):
        raise Untranslatable("CREATE INDEX form", sql)
    params = idx.args.get("params")
    cols = params.args.get("columns") if params else None
    if not cols or (params and any(params.args.get(k) for k in ("using", "where", "include", "with_storage"))):
        raise Untranslatable("CREATE INDEX options", sql)
    kind = (node.args.get("kind") or "").upper()
    if kind != "INDEX":
        raise Untranslatable(f"CREATE {kind}", sql)
    unique = bool(node.args.get("unique"))
    schema, table = _table_ref(idx.args["table"], default_db, sql)
    m = CREATE_KIND.match(sql)
    using = f" USING {'gin' if m[1].upper() == 'FULLTEXT' else 'hash'}" if m else ""  # (see the module docstring)
    keys = _fulltext(cols, sql) if m and m[1].upper() == "FULLTEXT" else _key_columns(cols, sql, unique=unique)
    return [PgStatement(f"CREATE {'UNIQUE ' if unique else ''}INDEX {quote_ident(index_name(table, _name(idx.this)))} "
                        f"ON {qualified(schema, table)}{using} ({keys})")]


def _fulltext(cols: list[exp.Expression], sql: str) -> str:
    """A FULLTEXT key's columns as one text search document (PostgreSQL: a GIN index on it)."""
    names = [c.this if isinstance(c, exp.Ordered) else c for c in cols]
    if not all(isinstance(n, exp.Column) for n in names):
        raise Untranslatable("FULLTEXT key on an expression", sql)
    doc = " || ' ' || ".join(f"coalesce({quote_ident(_name(n))}, '')" for n in names)
    return f"to_tsvector('simple', {doc})"


def _idents(toks: list[Token]) -> list[str]:
    """Dotted name → parts (lowercased)."""
    return [t.text.lower() for t in toks if t.token_type != TokenType.DOT]


def _read_name(toks: list[Token], i: int) -> tuple[list[str], int]:
    parts = [toks[i].text.lower()]
    i += 1
    while i + 1 < len(toks) and toks[i].token_type == TokenType.DOT:
        parts.append(toks[i + 1].text.lower())
        i += 2
    return parts, i


def _qualify_parts(parts: list[str], default_db: str | None, sql: str) -> tuple[str, str]:
    if len(parts) == 2:
        return parts[0], parts[1]
    if len(parts) == 1 and default_db:
        return default_db.lower(), parts[0]
    raise Untranslatable("table name without a database and no current database", sql)


def read_qualified(toks: list[Token], i: int, default_db: str | None, sql: str) -> tuple[str, int]:
    """The (dotted) name starting at ``toks[i]`` as ``"schema"."name"`` (the default database when it has
    none), and the index after it."""
    parts, i = _read_name(toks, i)
    return qualified(*_qualify_parts(parts, default_db, sql)), i


def _words(toks: list[Token]) -> list[str]:
    """Upper-cased keywords (multi-word keywords such as ``PRIMARY KEY`` stay one item); quoted names → '`'."""
    return [" ".join(t.text.upper().split()) if t.token_type != TokenType.IDENTIFIER else "`" for t in toks]


def translate_drop_table(sql: str, toks: list[Token], default_db: str | None) -> list[PgStatement]:
    w = _words(toks)
    i = 2
    if w[:2] != ["DROP", "TABLE"]:
        raise Untranslatable("DROP TEMPORARY TABLE" if "TEMPORARY" in w[:3] else "DROP statement", sql)
    exists = w[2:4] == ["IF", "EXISTS"]
    i = 4 if exists else 2
    names = []
    while i < len(toks):
        parts, i = _read_name(toks, i)
        names.append(qualified(*_qualify_parts(parts, default_db, sql)))
        if i < len(toks) and toks[i].token_type == TokenType.COMMA:
            i += 1
        elif i < len(toks):
            if w[i] in ("RESTRICT", "CASCADE") and i == len(toks) - 1:
                break
            raise Untranslatable(f"DROP TABLE option {toks[i].text}", sql)
    # CASCADE: a foreign key of another table that still references it goes with it (PostgreSQL refuses
    # otherwise; MySQL drops such a parent with foreign_key_checks = 0 and keeps the child as it is)
    return [PgStatement(f"DROP TABLE {'IF EXISTS ' if exists else ''}{', '.join(names)} CASCADE")]


def translate_drop_index(sql: str, toks: list[Token], default_db: str | None) -> list[PgStatement]:
    w = _words(toks)
    if len(toks) < 5 or w[3] != "ON":
        raise Untranslatable("DROP INDEX form", sql)
    name = toks[2].text.lower()
    parts, i = _read_name(toks, 4)
    if i != len(toks):
        raise Untranslatable(f"DROP INDEX option {toks[i].text}", sql)
    schema, table = _qualify_parts(parts, default_db, sql)
    if name == "primary":
        return [PgStatement(f"ALTER TABLE {qualified(schema, table)} DROP CONSTRAINT {quote_ident(table + '_pkey')}")]
    return [PgStatement(f"DROP INDEX {qualified(schema, index_name(table, name))}")]


def translate_rename(sql: str, toks: list[Token], default_db: str | None) -> list[PgStatement]:
    out = []
    i = 2
    while i < len(toks):
        src, i = _read_name(toks, i)
        if i >= len(toks) or toks[i].text.upper() != "TO":
            raise Untranslatable("RENAME TABLE form", sql)
        dst, i = _read_name(toks, i + 1)
        s_schema, s_table = _qualify_parts(src, default_db, sql)
        d_schema, d_table = _qualify_parts(dst, default_db, sql)
        if s_schema != d_schema:
            out.append(PgStatement(f"ALTER TABLE {qualified(s_schema, s_table)} SET SCHEMA {quote_ident(d_schema)}"))
        if s_table != d_table:
            out.append(PgStatement(f"ALTER TABLE {qualified(d_schema, s_table)} RENAME TO {quote_ident(d_table)}"))
        if i < len(toks):
            if toks[i].token_type != TokenType.COMMA:
                raise Untranslatable("RENAME TABLE form", sql)
            i += 1
    return out


_IGNORED_ALTER_OPTIONS = ("ENGINE", "ALGORITHM", "LOCK", "AUTO_INCREMENT", "ROW_FORMAT", "COMMENT", "DEFAULT",
                          "CHARSET", "COLLATE")
_ADD_ELEMENT_WORDS = ("INDEX", "KEY", "UNIQUE", "PRIMARY KEY", "CONSTRAINT", "FOREIGN KEY", "FULLTEXT", "SPATIAL",
                      "CHECK")


def _strip_position(text: str) -> str:
    t = tokens(text)
    if t and t[-1].text.upper() == "FIRST":
        return text[:t[-1].start].strip()
    if len(t) >= 2 and t[-2].text.upper() == "AFTER":
        return text[:t[-2].start].strip()
    return text


def _column_from_text(coldef: str, schema: str, table: str, sql: str) -> _Column:
    node = _parse_create(f"CREATE TABLE _dbmux_x ({_strip_position(coldef)})", sql)
    elems = node.this.expressions if isinstance(node.this, exp.Schema) else []
    if len(elems) != 1 or not isinstance(elems[0], exp.ColumnDef):
        raise Untranslatable(f"column definition {coldef[:80]}", sql)
    return _Column(elems[0], schema, table, sql)


def _modify(q: str, old: str, col: _Column, sql: str) -> list[str]:
    if col.auto_increment or col.primary_key or col.unique:
        raise Untranslatable("MODIFY/CHANGE with AUTO_INCREMENT/PRIMARY KEY/UNIQUE", sql)
    out = []
    if old != col.name:
        out.append(f"ALTER TABLE {q} RENAME COLUMN {quote_ident(old)} TO {quote_ident(col.name)}")
    c = quote_ident(col.name)
    out.append(f"ALTER TABLE {q} ALTER COLUMN {c} TYPE {col.pg_type} USING {c}::{col.pg_type}")
    out.append(f"ALTER TABLE {q} ALTER COLUMN {c} {'SET' if col.not_null else 'DROP'} NOT NULL")
    out.append(f"ALTER TABLE {q} ALTER COLUMN {c} " + (f"SET DEFAULT {col.default}" if col.default is not None
                                                      else "DROP DEFAULT"))
    for chk in col.checks:
        out.append(f"ALTER TABLE {q} ADD {chk}")
    return out


def translate_alter(sql: str, toks: list[Token], default_db: str | None) -> list[PgStatement]:
    if _words(toks)[:2] != ["ALTER", "TABLE"] or len(toks) < 4:
        raise Untranslatable("ALTER statement other than ALTER TABLE", sql)
    parts, i = _read_name(toks, 2)
    schema, table = _qualify_parts(parts, default_db, sql)
    q = qualified(schema, table)
    out: list[str] = []
    for action in split_top_level(sql, toks[i:]):
        at = tokens(action)
        w = _words(at)
        head = w[0]
        if head == "ADD":
            j = 2 if len(w) > 1 and w[1] == "COLUMN" else 1
            if w[j] in _ADD_ELEMENT_WORDS:
                node = _parse_create(f"CREATE TABLE _dbmux_x ({action[at[1].start:]})", sql)
                inline, after, _ = _elements(schema, table, node.this.expressions, sql, default_db, adding=True)
                out.extend(f"ALTER TABLE {q} ADD {d}" for d in inline)
                out.extend(after)
            elif w[j] == "(":
                raise Untranslatable("ALTER TABLE ADD (column list)", sql)
            else:
                col = _column_from_text(action[at[j].start:], schema, table, sql)
                if col.auto_increment:
                    raise Untranslatable("ADD COLUMN ... AUTO_INCREMENT (ids would differ from the source)", sql)
                out.append(f"ALTER TABLE {q} ADD COLUMN {col.definition()}")
        elif head == "DROP":
            if w[1] in ("INDEX", "KEY"):
                out.append(f"DROP INDEX {qualified(schema, index_name(table, at[2].text.lower()))}")
            elif w[1] == "PRIMARY KEY":
                out.append(f"ALTER TABLE {q} DROP CONSTRAINT {quote_ident(table + '_pkey')}")
            elif w[1] in ("FOREIGN KEY", "CONSTRAINT", "CHECK"):
                if_exists = [t.text.upper() for t in at[2:4]] == ["IF", "EXISTS"]  # (shard targets add it)
                name = at[4 if if_exists else 2].text.lower()
                out.append(f"ALTER TABLE {q} DROP CONSTRAINT {'IF EXISTS ' if if_exists else ''}{quote_ident(name)}")
            else:
                j = 2 if w[1] == "COLUMN" else 1
                if len(at) != j + 1:
                    raise Untranslatable(f"ALTER TABLE {action[:60]}", sql)
                out.append(f"ALTER TABLE {q} DROP COLUMN {quote_ident(at[j].text.lower())}")
        elif head == "MODIFY":
            j = 2 if w[1] == "COLUMN" else 1
            col = _column_from_text(action[at[j].start:], schema, table, sql)
            out.extend(_modify(q, col.name, col, sql))
        elif head == "CHANGE":
            j = 2 if w[1] == "COLUMN" else 1
            old = at[j].text.lower()
            col = _column_from_text(action[at[j + 1].start:], schema, table, sql)
            out.extend(_modify(q, old, col, sql))
        elif head == "RENAME":
            if w[1] == "COLUMN" and len(at) == 5 and w[3] == "TO":
                out.append(f"ALTER TABLE {q} RENAME COLUMN {quote_ident(at[2].text.lower())} "
                           f"TO {quote_ident(at[4].text.lower())}")
            elif w[1] in ("INDEX", "KEY") and len(at) == 5 and w[3] == "TO":
                out.append(f"ALTER INDEX {qualified(schema, index_name(table, at[2].text.lower()))} "
                           f"RENAME TO {quote_ident(index_name(table, at[4].text.lower()))}")
            else:
                j = 2 if w[1] in ("TO", "AS") else 1
                nparts, k = _read_name(at, j)
                if k != len(at):
                    raise Untranslatable(f"ALTER TABLE {action[:60]}", sql)
                nschema, ntable = _qualify_parts(nparts, default_db, sql)
                if nschema != schema:
                    raise Untranslatable("ALTER TABLE RENAME into another database", sql)
                out.append(f"ALTER TABLE {q} RENAME TO {quote_ident(ntable)}")
        elif head == "ALTER":
            j = 2 if w[1] == "COLUMN" else 1
            c = quote_ident(at[j].text.lower())
            rest = w[j + 1:]
            if rest == ["DROP", "DEFAULT"]:
                out.append(f"ALTER TABLE {q} ALTER COLUMN {c} DROP DEFAULT")
            elif rest[:2] == ["SET", "DEFAULT"] and len(at) > j + 3:
                lit = sqlglot.parse_one(f"SELECT {action[at[j + 3].start:]}", read="mysql").expressions[0]
                out.append(f"ALTER TABLE {q} ALTER COLUMN {c} SET DEFAULT {pg_expr(lit, sql)}")
            else:
                raise Untranslatable(f"ALTER TABLE {action[:60]}", sql)
        elif head in _IGNORED_ALTER_OPTIONS and head != "DEFAULT" or (
                head == "DEFAULT" and len(w) > 1 and w[1] in ("CHARSET", "CHARACTER SET", "COLLATE")):
            continue
        else:
            raise Untranslatable(f"ALTER TABLE {action[:60]}", sql)
    return [PgStatement(s) for s in out]
