"""MySQL → PostgreSQL translation for the PostgreSQL applier (pure: no I/O; sqlglot's one boundary here).

A PostgreSQL target holds MySQL database ``X`` as schema ``X``; table and column names are the same,
lowercased. Two entry points:

- :func:`translate_statement` — an ingress statement (rewritten MySQL text, optional ``?`` params) →
  PostgreSQL statements with ``$n`` placeholders. Constructs that cannot be translated faithfully raise
  :class:`Untranslatable` (never retriable); the applier then halts or uses the row form.
- :func:`row_statement` — a binlog row image → one idempotent statement.

Statement coverage and decisions:

- INSERT [IGNORE] ... VALUES/SELECT; IGNORE → ``ON CONFLICT DO NOTHING`` (only duplicate-key errors are
  ignored on the target; MySQL IGNORE also downgrades other errors — such rows fail loudly here).
- ``ON DUPLICATE KEY UPDATE`` → ``ON CONFLICT (<pk>) DO UPDATE`` (``VALUES(c)`` → ``EXCLUDED.c``); needs
  the primary key from :class:`SchemaInfo`. A conflict on another UNIQUE key fails loudly on the target.
  An assignment reading a column assigned earlier in the list is Untranslatable (MySQL assigns left to
  right, PostgreSQL reads the old row). The same rule applies to UPDATE ... SET.
- REPLACE → ``INSERT ... ON CONFLICT (<pk>) DO UPDATE SET`` every column: listed columns from EXCLUDED,
  unlisted columns (from :meth:`SchemaInfo.columns`) back to DEFAULT, as MySQL's delete+insert would.
- Auto-increment: when the source generated ids (``insert_id`` > 0) and the INSERT omits the
  AUTO_INCREMENT column (or gives NULL/0), the ids ``insert_id, insert_id+1, ...`` are written explicitly
  (auto_increment_increment = 1 assumed); the target never generates ids itself.
- Server-computed columns: an INSERT omitting a column with a ``CURRENT_TIMESTAMP`` default, or an UPDATE
  not assigning an ``ON UPDATE CURRENT_TIMESTAMP`` column (as reported by :class:`SchemaInfo`), is
  Untranslatable: the target would compute a different time; apply the row form.
- Also Untranslatable (the row form holds what MySQL computed): writing a table with triggers on the
  source, or one the source schema (today's) does not have; writing a column whose MySQL type PostgreSQL
  holds differently (BLOB/BINARY, BIT, JSON, ENUM, SET, YEAR: :data:`~replicator.pg_types.RETYPED`) with
  anything but a plain value (:func:`~replicator.pg_types.unfaithful_value`); a function sqlglot does not
  know (a stored function, ``INET_ATON``, ...: it would fail or differ) and character set introducers.
- Single-table UPDATE/DELETE only; ORDER BY/LIMIT, multi-table forms, user/system variables → Untranslatable.
- Session/transaction statements return ``[]`` (the applier handles session context and transaction
  boundaries): ``USE``, ``BEGIN``, ``START TRANSACTION``, ``COMMIT``, ``ROLLBACK``, ``SET NAMES``, ``SET
  CHARACTER SET``, ``SET TRANSACTION ...`` and ``SET [SESSION] <v> = ...`` for
  :data:`IGNORED_SESSION_VARIABLES`; any other SET (``@user``, ``insert_id``, GLOBAL) is Untranslatable.
- Everything else (SELECT, stored programs, triggers, GRANT, LOCK TABLES, LOAD DATA, CALL, XA,
  SAVEPOINT, INSERT ... SET, ...) → Untranslatable (the applier never asks for pg_types.not_applied ones).

Sequences: :mod:`replicator.pg_sequences`; views: :mod:`replicator.pg_views`.

Hex literals (``X'0AFF'``) become ``DECODE('0aff', 'hex')`` (PostgreSQL's ``x'..'`` is a bit string); names
(tables, columns, aliases) are lowercased and double-quoted. DDL: :mod:`replicator.pg_ddl`; types: pg_types.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any

import sqlglot
from sqlglot import exp
from sqlglot.errors import ErrorLevel, SqlglotError
from sqlglot.tokens import TokenType

from dbmux.replicator.pg_ddl import (
    parseable_ddl,
    pg_expr,
    split_top_level,
    tokens,
    translate_alter,
    translate_create_index,
    translate_create_table,
    translate_drop_index,
    translate_drop_table,
    translate_rename,
)
from dbmux.replicator.pg_sequences import translate_sequence_ddl
from dbmux.replicator.pg_types import (
    PgStatement,
    Untranslatable,
    check_written,
    column_ident,
    pg_column_type,
    qualified,
    quote_ident,
    spelled_as,
    to_pg_value,
)
from dbmux.replicator.pg_views import translate_view_ddl
from dbmux.replicator.schema_info import SchemaInfo, StaticSchema

__all__ = ["Untranslatable", "PgStatement", "SchemaInfo", "StaticSchema", "translate_statement", "row_statement",
           "to_pg_value", "quote_ident", "qualified", "pg_column_type", "IGNORED_SESSION_VARIABLES"]

IGNORED_SESSION_VARIABLES = frozenset({
    "sql_mode", "time_zone", "names", "character_set_client", "character_set_connection",
    "character_set_results", "collation_connection", "autocommit", "foreign_key_checks", "unique_checks",
    "sql_notes", "sql_safe_updates", "transaction_isolation", "tx_isolation", "wait_timeout",
    "net_write_timeout", "net_read_timeout", "interactive_timeout", "sql_auto_is_null", "sql_select_limit",
    "max_execution_time", "lock_wait_timeout", "innodb_lock_wait_timeout", "session_track_schema",
    "session_track_state_change", "session_track_system_variables", "group_concat_max_len",
})
"""Session variables whose SET means nothing to the target (the applier sets its own session)."""

_PARAM_PREFIX = "__dbmux_p"
_OBJECT_WORDS = frozenset({"VIEW", "TABLE", "INDEX", "(", "SEQUENCE", "TRIGGER", "PROCEDURE", "FUNCTION", "EVENT",
                           "DATABASE", "SCHEMA", "USER", "ROLE", "SERVER", "AS", "SELECT"})


# ------------------------------------------------------------------------------------------ statements


def translate_statement(sql: str, default_db: str | None, params: tuple | None = None, *,
                        schema: SchemaInfo | None = None, insert_id: int = 0) -> list[PgStatement]:
    """Translate one MySQL statement into zero or more PostgreSQL statements (see the module docstring).

    ``params`` are the bound values of ``?`` placeholders, in order; ``insert_id`` the first
    auto-increment id the statement generated on the source (``Statement.insert_id``).
    """
    try:
        return _translate(sql, default_db, params, schema, insert_id)
    except Untranslatable as e:
        if e.statement:
            raise
        raise Untranslatable(e.construct, sql) from None


def _translate(sql: str, default_db: str | None, params: tuple | None, schema: SchemaInfo | None,
               insert_id: int) -> list[PgStatement]:
    toks = [t for t in tokens(sql) if t.token_type != TokenType.SEMICOLON]
    if not toks:
        return []
    w = [" ".join(t.text.upper().split()) for t in toks]
    placeholders = [t for t in toks if t.token_type == TokenType.PLACEHOLDER]
    n_params = len(params) if params is not None else 0
    if len(placeholders) != n_params:
        raise Untranslatable(f"{len(placeholders)} placeholders but {n_params} parameters", sql)
    if placeholders and w[0] not in ("INSERT", "REPLACE", "UPDATE", "DELETE"):
        raise Untranslatable("placeholders outside DML", sql)

    if w[0] in ("USE", "BEGIN", "COMMIT") or w[:2] == ["START", "TRANSACTION"] or (
            w[0] == "ROLLBACK" and "TO" not in w):
        return []
    if w[0] in ("SAVEPOINT", "RELEASE", "XA", "LOCK TABLES", "UNLOCK TABLES", "HANDLER", "PREPARE", "EXECUTE"):
        raise Untranslatable(f"{w[0]} statement", sql)
    if w[0] == "SET":
        return _translate_set(sql, toks, w)
    if w[:2] in (["CREATE", "DATABASE"], ["CREATE", "SCHEMA"], ["DROP", "DATABASE"], ["DROP", "SCHEMA"]):
        return _translate_database(sql, toks, w)
    if w[:2] == ["ALTER", "TABLE"]:
        return translate_alter(sql, toks, default_db)
    if w[:2] == ["RENAME", "TABLE"]:
        return translate_rename(sql, toks, default_db)
    if w[:2] == ["DROP", "INDEX"]:
        return translate_drop_index(sql, toks, default_db)
    if w[:2] in (["DROP", "TABLE"], ["DROP", "TEMPORARY"]):
        return translate_drop_table(sql, toks, default_db)
    if "SEQUENCE" in w[1:4] and w[0] in ("CREATE", "ALTER", "DROP"):
        return translate_sequence_ddl(sql, toks, default_db)
    if w[0] in ("CREATE", "ALTER", "DROP") and next((x for x in w[1:] if x in _OBJECT_WORDS), None) == "VIEW":
        return translate_view_ddl(sql, toks, default_db, _prepare_dml)

    # Number the placeholders by text position: each ? becomes a unique @variable before parsing.
    text = sql
    for n, tok in reversed(list(enumerate(placeholders, 1))):
        text = text[:tok.start] + f"@{_PARAM_PREFIX}{n}" + text[tok.end + 1:]
    replace = w[0] == "REPLACE"
    if replace:
        text = text[:toks[0].start] + "INSERT" + text[toks[0].end + 1:]
    try:
        node = sqlglot.parse_one(parseable_ddl(_unpartitioned(text, w)) if w[0] == "CREATE" else text, read="mysql",
                                 error_level=ErrorLevel.RAISE)
    except SqlglotError as e:
        raise Untranslatable(f"statement sqlglot cannot parse ({str(e).splitlines()[0]})", sql) from None
    args = tuple(to_pg_value(p) for p in (params or ()))

    if isinstance(node, exp.Command):
        raise Untranslatable(f"{node.name.upper()} statement", sql)
    if isinstance(node, exp.Create):
        kind = (node.args.get("kind") or "").upper()
        if kind == "TABLE":
            return translate_create_table(node, default_db, sql)
        if kind == "INDEX":
            return translate_create_index(node, default_db, sql)
        raise Untranslatable(f"CREATE {kind}", sql)
    if isinstance(node, exp.TruncateTable):
        if len(node.expressions) != 1:
            raise Untranslatable("TRUNCATE of several tables", sql)
        schema_name, table = _qualify(node.expressions[0], default_db, sql)
        return [PgStatement(f"TRUNCATE TABLE {qualified(schema_name, table)}")]
    if isinstance(node, (exp.Insert, exp.Update, exp.Delete)):
        _prepare_dml(node, default_db, sql)
        if isinstance(node, exp.Insert):
            _insert(node, sql, schema, insert_id, replace, params or ())
        elif isinstance(node, exp.Update):
            _update(node, sql, schema, params or ())
        else:
            _delete(node, sql, schema)
        return [PgStatement(pg_expr(node, sql), args)]
    raise Untranslatable(f"{type(node).__name__.upper()} statement", sql)


def _unpartitioned(text: str, w: list[str]) -> str:
    """CREATE TABLE without its ``PARTITION BY ...`` clause (MySQL's physical layout, like ENGINE: a
    PostgreSQL target holds the table whole). ``w``: the words of ``text`` (no placeholders in DDL)."""
    if not any(x.startswith("PARTITION") for x in w) or "TABLE" not in w[1:4]:
        return text
    depth = 0
    for t in tokens(text):
        depth += (t.token_type == TokenType.L_PAREN) - (t.token_type == TokenType.R_PAREN)
        if depth == 0 and t.text.upper().startswith("PARTITION") and t.token_type != TokenType.IDENTIFIER:
            return text[:t.start]
    return text


def _translate_set(sql: str, toks: list, w: list[str]) -> list[PgStatement]:
    if w[1:2] in (["NAMES"], ["CHARACTER SET"], ["CHARSET"]):
        return []
    if w[1:2] == ["TRANSACTION"] or w[1:3] == ["SESSION", "TRANSACTION"]:
        return []
    for item in split_top_level(sql, toks[1:]):
        it = tokens(item)
        words = [t.text.lower() for t in it]
        if words[0] in ("session", "local"):
            words = words[1:]
        if words and words[0] == "@@":
            words = words[1:]
        name = words[0] if words else ""
        if name.startswith("@@"):
            name = name[2:]
        if name.startswith(("session.", "local.")):
            name = name.split(".", 1)[1]
        if len(words) > 2 and words[1] == "." and words[0] in ("session", "local"):
            name = words[2]
        if name not in IGNORED_SESSION_VARIABLES:
            raise Untranslatable(f"SET {item[:60]}", sql)
    return []


def _translate_database(sql: str, toks: list, w: list[str]) -> list[PgStatement]:
    create = w[0] == "CREATE"
    i = 2
    exists = False
    if w[2:4] == (["IF", "NOT"] if create else ["IF", "EXISTS"]):
        exists = True
        i = 5 if create else 4
    if i >= len(toks):
        raise Untranslatable("database statement form", sql)
    name = quote_ident(toks[i].text.lower())
    rest = w[i + 1:]
    if create:
        allowed = {"DEFAULT", "CHARACTER SET", "CHARSET", "COLLATE", "=", "ENCRYPTION"}
        if any(x not in allowed and toks[i + 1 + k].token_type not in (TokenType.VAR, TokenType.STRING,
                                                                      TokenType.IDENTIFIER)
               for k, x in enumerate(rest)):
            raise Untranslatable("CREATE DATABASE option", sql)
        return [PgStatement(f"CREATE SCHEMA {'IF NOT EXISTS ' if exists else ''}{name}")]
    if rest:
        raise Untranslatable("DROP DATABASE form", sql)
    return [PgStatement(f"DROP SCHEMA {'IF EXISTS ' if exists else ''}{name} CASCADE")]


def _qualify(tbl: exp.Table, default_db: str | None, sql: str) -> tuple[str, str]:
    db = tbl.args.get("db")
    if tbl.args.get("catalog") is not None:
        raise Untranslatable("three-part table name", sql)
    if db is None:
        if not default_db:
            raise Untranslatable("table name without a database and no current database", sql)
        tbl.set("db", exp.to_identifier(default_db.lower()))
    return tbl.db.lower(), tbl.name.lower()


def _prepare_dml(node: exp.Expression, default_db: str | None, sql: str) -> None:
    """Qualify tables, lowercase identifiers, turn our @params into $n, refuse variables."""
    for p in list(node.find_all(exp.Parameter, exp.SessionParameter)):
        name = p.name if isinstance(p, exp.Parameter) else ""
        if isinstance(p, exp.Parameter) and name.startswith(_PARAM_PREFIX):
            p.replace(exp.Parameter(this=exp.Literal.number(int(name[len(_PARAM_PREFIX):]))))
        else:
            raise Untranslatable(f"variable {p.sql('mysql')}", sql)
    for hx in list(node.find_all(exp.HexString, exp.Anonymous, exp.Introducer)):
        if isinstance(hx, exp.Introducer):
            raise Untranslatable(f"character set introducer {hx.sql('mysql')[:40]}", sql)
        if isinstance(hx, exp.Anonymous):
            if hx.name.upper() != "VALUES":  # (ON DUPLICATE KEY UPDATE's VALUES(c): see _insert)
                raise Untranslatable(f"function {hx.name}() unknown to the translator (a stored function?)", sql)
            continue
        # X'..'/0x.. are bytes here; PostgreSQL x'..' is a bit string
        digits = hx.this if len(hx.this) % 2 == 0 else "0" + hx.this
        hx.replace(exp.Anonymous(this="DECODE", expressions=[exp.Literal.string(digits.lower()),
                                                              exp.Literal.string("hex")]))
    ctes = {c.alias_or_name.lower() for c in node.find_all(exp.CTE)}
    for tbl in node.find_all(exp.Table):
        if tbl.name.lower() not in ctes or tbl.args.get("db") is not None:
            _qualify(tbl, default_db, sql)
    for ident in node.find_all(exp.Identifier):
        ident.set("this", ident.this.lower())


def _target(node: exp.Expression, sql: str, schema: SchemaInfo | None) -> exp.Table:
    tbl = node.this
    if isinstance(tbl, exp.Schema):
        tbl = tbl.this
    if not isinstance(tbl, exp.Table) or node.args.get("joins") or tbl.args.get("joins"):
        raise Untranslatable("multi-table statement", sql)
    why = schema.needs_rows(tbl.db, tbl.name) if schema is not None else None
    if why:
        raise Untranslatable(f"writing {tbl.db}.{tbl.name}, which {why}", sql)
    return tbl


def _check_written(schema: SchemaInfo | None, tbl: exp.Table, pairs: Iterable[tuple[str, exp.Expression]],
                   params: tuple, sql: str) -> None:
    if schema is not None:
        check_written(schema.retyped_columns(tbl.db, tbl.name), pairs, params, sql)


def _check_sequential(assignments: list[exp.Expression], sql: str, what: str) -> list[str]:
    """Column names assigned; refuse reading a column assigned earlier in the same list."""
    assigned: list[str] = []
    for eq in assignments:
        if not isinstance(eq, exp.EQ) or not isinstance(eq.this, exp.Column):
            raise Untranslatable(f"{what} assignment {eq.sql('mysql')}", sql)
        rhs = eq.expression
        reads = {c.name for c in rhs.find_all(exp.Column) if c.table.lower() not in ("excluded",)}
        if not (isinstance(rhs, exp.Anonymous) and rhs.name.upper() == "VALUES"):
            hit = reads & set(assigned)
            if hit:
                raise Untranslatable(f"{what} reading column {sorted(hit)[0]} assigned earlier in the same "
                                     "statement (MySQL assigns left to right)", sql)
        eq.this.set("table", None)
        eq.this.set("db", None)
        assigned.append(eq.this.name)
    return assigned


def _no_order_limit(node: exp.Expression, sql: str, what: str) -> None:
    if node.args.get("order") or node.args.get("limit"):
        raise Untranslatable(f"{what} with ORDER BY/LIMIT", sql)


def _update(node: exp.Update, sql: str, schema: SchemaInfo | None, params: tuple) -> None:
    tbl = _target(node, sql, schema)
    if node.args.get("from"):
        raise Untranslatable("multi-table UPDATE", sql)
    _no_order_limit(node, sql, "UPDATE")
    assigned = _check_sequential(node.expressions, sql, "UPDATE SET")
    _check_written(schema, tbl, ((eq.this.name, eq.expression) for eq in node.expressions), params, sql)
    if schema is not None:
        missing = schema.on_update_columns(tbl.db, tbl.name) - set(assigned)
        if missing:
            raise Untranslatable(f"UPDATE leaves ON UPDATE CURRENT_TIMESTAMP column {sorted(missing)[0]} to the "
                                 "server clock (apply the row form)", sql)


def _delete(node: exp.Delete, sql: str, schema: SchemaInfo | None) -> None:
    if node.args.get("tables") or node.args.get("using"):
        raise Untranslatable("multi-table DELETE", sql)
    _target(node, sql, schema)
    _no_order_limit(node, sql, "DELETE")


def _is_auto_value(v: exp.Expression) -> bool:
    return isinstance(v, exp.Null) or (isinstance(v, exp.Literal) and not v.is_string and v.this == "0")


def _insert(node: exp.Insert, sql: str, schema: SchemaInfo | None, insert_id: int, replace: bool,
            params: tuple) -> None:
    tbl = _target(node, sql, schema)
    db, table = tbl.db, tbl.name
    if node.args.get("returning") or node.args.get("partition") or node.args.get("overwrite"):
        raise Untranslatable("INSERT option", sql)
    cols = [c.name for c in node.this.expressions] if isinstance(node.this, exp.Schema) else None
    values = node.expression
    rows = values.expressions if isinstance(values, exp.Values) else None
    all_cols = schema.columns(db, table) if schema is not None else None
    if cols is None:
        cols_known = list(all_cols) if all_cols else None
    else:
        cols_known = cols
    conflict = node.args.get("conflict")
    ignore = bool(node.args.get("ignore"))
    written: Iterable[tuple[str, exp.Expression]]  # (generators: nothing is built for a table without such columns)
    if rows and cols_known:
        written = ((c, v) for row in rows for c, v in zip(cols_known, row.expressions, strict=False))
    else:  # INSERT ... SELECT writes an expression into every column
        written = ((c, values) for c in cols_known or ())
    _check_written(schema, tbl, written, params, sql)
    # auto-increment ids generated by the source
    if insert_id > 0:
        auto = schema.auto_increment_column(db, table) if schema is not None else None
        if auto is None or cols_known is None or rows is None:
            raise Untranslatable("INSERT generating auto-increment ids without a known AUTO_INCREMENT column "
                                 "and VALUES list", sql)
        if (ignore or conflict is not None or replace) and len(rows) > 1:
            raise Untranslatable("multi-row INSERT IGNORE/ON DUPLICATE KEY/REPLACE generating auto-increment ids",
                                 sql)
        if auto not in cols_known:
            node.this.expressions.append(exp.to_identifier(auto)) if isinstance(node.this, exp.Schema) else None
            if not isinstance(node.this, exp.Schema):
                raise Untranslatable("INSERT without a column list on a table with AUTO_INCREMENT", sql)
            for k, row in enumerate(rows):
                row.append("expressions", exp.Literal.number(insert_id + k))
            cols_known = cols_known + [auto]
        else:
            pos = cols_known.index(auto)

            def generates(v: exp.Expression) -> bool:
                if isinstance(v, exp.Parameter):  # a bound value: explicit unless NULL or 0
                    bound = params[int(v.this.this) - 1]
                    return bound is None or bound == 0 or bound == "0"
                return _is_auto_value(v)

            # MySQL reports an explicitly given AUTO_INCREMENT value as the insert id too
            generated = [k for k, row in enumerate(rows) if generates(row.expressions[pos])]
            if any(isinstance(rows[k].expressions[pos], exp.Parameter) for k in generated):
                raise Untranslatable("auto-increment value generated from a NULL/0 placeholder", sql)
            if len(generated) != len(rows) and len(generated) > 1:
                raise Untranslatable("INSERT mixing explicit and generated auto-increment ids", sql)
            for k, idx in enumerate(generated):
                rows[idx].expressions[pos].replace(exp.Literal.number(insert_id + k))
    if schema is not None and cols_known is not None:
        missing = schema.time_default_columns(db, table) - set(cols_known)
        if missing:
            raise Untranslatable(f"INSERT leaves CURRENT_TIMESTAMP default column {sorted(missing)[0]} to the "
                                 "server clock (apply the row form)", sql)
    if not (replace or conflict is not None):
        node.set("ignore", None)
        if ignore:
            node.set("conflict", exp.OnConflict(action=exp.var("DO NOTHING")))
        return
    pk = schema.primary_key(db, table) if schema is not None else None
    what = "REPLACE" if replace else "ON DUPLICATE KEY UPDATE"
    if not pk:
        raise Untranslatable(f"{what} on a table whose primary key is unknown", sql)
    if replace:
        if cols_known is None:
            raise Untranslatable("REPLACE without a column list on a table whose columns are unknown", sql)
        sets = [exp.EQ(this=exp.column(c), expression=exp.column(c, table="excluded")) for c in cols_known
                if c not in pk]
        if all_cols:
            sets += [exp.EQ(this=exp.column(c), expression=exp.var("DEFAULT")) for c in all_cols
                     if c not in cols_known and c not in pk]
        elif cols is not None:
            raise Untranslatable("REPLACE with a column list on a table whose columns are unknown "
                                 "(unlisted columns must be reset to their defaults)", sql)
        action = "DO UPDATE" if sets else "DO NOTHING"
    else:
        assert conflict is not None  # (not a REPLACE, so an ON DUPLICATE KEY UPDATE: checked above)
        assignments = list(conflict.expressions)
        _check_sequential(assignments, sql, "ON DUPLICATE KEY UPDATE")
        _check_written(schema, tbl, ((eq.this.name, eq.expression) for eq in assignments if not (
            isinstance(eq.expression, exp.Anonymous) and eq.expression.name.upper() == "VALUES"
            and [a.name for a in eq.expression.expressions] == [eq.this.name])), params, sql)
        for eq in assignments:
            for fn in list(eq.expression.find_all(exp.Anonymous)):
                if fn.name.upper() == "VALUES" and len(fn.expressions) == 1:
                    fn.replace(exp.column(fn.expressions[0].name, table="excluded"))
            for col in eq.expression.find_all(exp.Column):
                if not col.table:
                    col.set("table", exp.to_identifier(table))
                elif col.table.lower() != "excluded":
                    col.set("db", None)
        sets, action = assignments, "DO UPDATE"
    node.set("ignore", None)
    node.set("conflict", exp.OnConflict(
        action=exp.var(action), conflict_keys=[exp.to_identifier(c) for c in pk],
        expressions=sets if action == "DO UPDATE" else None))


# ------------------------------------------------------------------------------------------ row form


def _match(cols: list[str], start: int, *, null_safe: bool) -> str:
    op = "IS NOT DISTINCT FROM" if null_safe else "="
    return " AND ".join(f"{column_ident(c)} {op} ${start + i}" for i, c in enumerate(cols))


def row_statement(schema: str, table: str, op: str, before: dict[str, Any] | None, after: dict[str, Any] | None,
                  pk: tuple[str, ...], pg_types: Mapping[str, str] | None = None) -> PgStatement:
    """One idempotent statement for a binlog row change (``pg_types``: optional column → PostgreSQL type,
    used by :func:`to_pg_value`).

    insert → INSERT ... ON CONFLICT (pk) DO UPDATE (DO NOTHING without a pk is impossible: without a pk
    the insert is plain); update → UPDATE ... WHERE pk = before's key; delete → DELETE ... WHERE pk.
    Without a pk, update/delete match one row on every before-image column with IS NOT DISTINCT FROM,
    through ``ctid = (SELECT ctid ... LIMIT 1)``.

    The text depends only on the row's shape (table, op, columns, key), so it is built once per shape
    (:func:`_row_shape`); per row only the arguments are converted.
    """
    if op == "insert":
        return PgStatement(*insert_row(schema, table, after, pk, pg_types))
    types = pg_types or {}
    if pk and before:
        pk = spelled_as(before, pk)
    if op not in ("update", "delete"):
        raise Untranslatable(f"row op {op!r}")
    if not before:
        raise Untranslatable(f"{op} row on {schema}.{table} without a before image")
    if op == "update" and not after:
        raise Untranslatable(f"update row on {schema}.{table} without an after image")
    if pk:
        missing = [c for c in pk if c not in before]
        if missing:
            raise Untranslatable(f"before image of {schema}.{table} lacks primary key column {missing[0]}")
    sql, (set_cols, where_cols) = _row_shape(schema, table, op, tuple(after) if op == "update" and after else (),
                                             tuple(before) if not pk else (), pk)
    args = [to_pg_value(after[c], types.get(c)) for c in set_cols] if after is not None and set_cols else []
    return PgStatement(sql, tuple(args) + tuple(to_pg_value(before[c], types.get(c)) for c in where_cols))


def insert_row(schema: str, table: str, after: dict[str, Any] | None, pk: tuple[str, ...],
               pg_types: Mapping[str, str] | None = None) -> tuple[str, tuple[Any, ...]]:
    """:func:`row_statement` of a row insert as ``(sql, args)`` (the applier's per-row path)."""
    if not after:
        raise Untranslatable(f"insert row on {schema}.{table} without an after image")
    pk = spelled_as(after, pk)
    sql = _row_shape(schema, table, "insert", tuple(after), (), pk)[0]  # its columns: after's own order
    if pg_types:
        return sql, tuple([to_pg_value(after[c], pg_types.get(c)) for c in after])
    # without column types, ints, floats, NULLs and strings other than zero dates convert to themselves
    # (to_pg_value): only when another value is there is each converted
    values = tuple(after.values())
    for v in values:
        t = type(v)
        if not (t is int or v is None or t is float or (t is str and not v.startswith("0000-00-00"))):
            return sql, tuple([to_pg_value(x) for x in values])
    return sql, values


@lru_cache(maxsize=4096)
def _row_shape(schema: str, table: str, op: str, after_cols: tuple[str, ...], before_cols: tuple[str, ...],
               pk: tuple[str, ...]) -> tuple[str, tuple[tuple[str, ...], tuple[str, ...]]]:
    """SQL text of one row-change shape, and the columns its arguments come from: (after image columns,
    before image columns), in placeholder order."""
    q = qualified(schema, table)
    if op == "insert":
        cols = list(after_cols)
        names = ", ".join(column_ident(c) for c in cols)
        ph = ", ".join(f"${i}" for i in range(1, len(cols) + 1))
        sql = f"INSERT INTO {q} ({names}) VALUES ({ph})"
        if pk:
            rest = [c for c in cols if c not in pk]
            sets = ", ".join(f"{column_ident(c)} = EXCLUDED.{column_ident(c)}" for c in rest)
            keys = ", ".join(column_ident(c) for c in pk)
            sql += f" ON CONFLICT ({keys}) " + (f"DO UPDATE SET {sets}" if sets else "DO NOTHING")
        return sql, (tuple(cols), ())
    set_cols = list(after_cols) if op == "update" else []
    head = f"DELETE FROM {q}"
    if op == "update":
        head = f"UPDATE {q} SET " + ", ".join(f"{column_ident(c)} = ${i}" for i, c in enumerate(set_cols, 1))
    if pk:
        return f"{head} WHERE {_match(list(pk), len(set_cols) + 1, null_safe=False)}", (tuple(set_cols), pk)
    where = _match(list(before_cols), len(set_cols) + 1, null_safe=True)
    return (f"{head} WHERE ctid = (SELECT ctid FROM {q} WHERE {where} LIMIT 1)",
            (tuple(set_cols), before_cols))

