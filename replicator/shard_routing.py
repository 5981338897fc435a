"""Shard routing: the part of one change event that one shard target applies (pure; no I/O).

:class:`ShardRouter` takes an event off the topic and returns it as its shard must apply it, with the
same GTID, source, timestamp, session and database. An event left empty still advances the shard's
position. ``route`` never drops what it does not understand: a statement it understands and that does
not concern this shard is dropped; a statement it cannot route safely makes the *whole* ingress event
take the row form -- every statement is returned ``unsafe`` so :class:`~replicator.ordering.GtidOrderer`
holds the GTID until the binlog reader's row copy arrives (this needs ``dbmux binlog`` running; it is
part of ``dbmux up``). Row images are always routable.

Rows (binlog form)
==================  =====================================================================
reference table     every shard
sequence state row  every shard (MariaDB sequences: :mod:`replicator.pg_sequences`)
single table        ``rule.shard`` only
sharded, insert     owner of the after-image key; delete: owner of the before-image key
sharded, update     same owner: update there; key moved to another owner: ``delete`` (before image)
                    on the old owner, ``insert`` (after image) on the new one; each keeps the
                    other image too: a PostgreSQL shard moves cascaded children with the row
                    (:mod:`replicator.shard_moves`), other targets ignore it
==================  =====================================================================

Key columns are found in images case-insensitively. A row whose image lacks a key column, or that the
map cannot place, raises :class:`~replicator.errors.ApplyError` (permanent): never a silent skip. A row
of a table missing from ``schema`` raises a *retriable* ApplyError: its rule depends on its primary key,
so the router will not guess; the schema must be reloaded (after DDL, and on restart).

Statements (ingress form), per statement, with sqlglot (``read="mysql"``)
==========================================  ===================================================
INSERT/REPLACE ... VALUES, sharded table    rows split by the owner of their key; each shard
                                            gets a statement with only its rows (the original
                                            text sliced between rows, ``?`` and params kept);
                                            no rows: dropped. No column list: the schema's
                                            column order
  key column not a literal / param          row form
  key = AUTO_INCREMENT column, generated    single row: ``insert_id`` is the key; several rows:
  (missing, DEFAULT, NULL, 0)               row form
  other AUTO_INCREMENT column generated     all rows on one shard: kept whole; else row form
  IGNORE / ON DUPLICATE KEY / REPLACE       row form unless the shard key is part of the
                                            primary key (a conflict could be on another shard);
                                            ODKU assigning a key column: row form
UPDATE/DELETE on one sharded table          WHERE conjunction pinning every key column
                                            (``k = 5``, ``5 = k``, ``k <=> 5``, ``k IN (..)``):
                                            the owners of those keys; else every owner (scatter)
  SET assigns a key column                  row form (rows may move between shards)
  ORDER BY/LIMIT on more than one shard     row form (each shard would pick different rows)
  ``@v := ...`` in the statement            row form
INSERT ... SELECT, subqueries, CTEs, joins, row form when a sharded table is involved; with only
multi-table UPDATE/DELETE                   reference/single tables: their owners, when every
                                            table exists on every shard that must run it
reference / single table                    every shard / that shard
DDL on tables (CREATE/ALTER/TRUNCATE/       owners of the tables named (all shards for sharded
RENAME TABLE, CREATE/DROP INDEX)            and reference tables);
                                            RENAME TABLE lists naming tables of different shards
                                            are split
DROP TABLE                                  every shard, IF EXISTS
CREATE/ALTER/DROP DATABASE                  every shard
CREATE/ALTER VIEW (binlog copy)             every shard holding all the tables it reads
CREATE TABLE ... SELECT, TEMPORARY tables   row form (the binlog has their effect as rows)
SET (session or user variables), USE        kept on every shard that gets another statement
                                            of the event
BEGIN/COMMIT                                dropped (the applier owns transactions)
already ``unsafe``, unparsable, other verbs row form ("unparsed")
(CALL, DO, LOAD, SET GLOBAL, views, ...)
==========================================  ===================================================

Binlog events carry DDL (and rare non-row statements) as statements: they have no other form, so a
binlog statement the router cannot place goes to every shard (and a failure there halts loudly).

Key values
----------
The shard map hashes a canonical text form (the int 5, "5" and Decimal("5") are one key). Statement
keys are literals or bound params: ints, integral decimals, strings and bytes (string params arrive
as bytes; the map hashes bytes and their UTF-8 text alike). Values whose stored or compared form
depends on the column type, which the router does not know, are not used as keys: non-integer
numbers, floats, dates and times, strings that start like numbers but are not canonical integers
("05", "5.0", " 5", "1e3"), strings with surrounding whitespace. In an INSERT that means row form; in
a WHERE only scatter. Limitations: a string key is routed by its exact text, so with a case- or
accent-insensitive collation ``WHERE k = 'ABC'`` would also match a stored 'abc' owned by another
shard (applications must write such keys consistently), and an int literal compared with a string
key column (``WHERE code = 5`` matching '05') is routed as "5". A UNIQUE key other than the primary
key is only enforced per shard.

Speed: parses are cached by text. Before parsing, bound ``?`` and simple literals are replaced by
numbered variables (``@__dbmux_vN``), so ``UPDATE sbtest1 SET c=? WHERE id=?`` -- or the same text
with any literals -- parses once; each execution only reads its key from the params.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from typing import Any

from dbmux.core.events import ChangeEvent, RowChange, Statement
from dbmux.core.sqllex import ansi_names_backquoted
from dbmux.replicator.errors import ApplyError
from dbmux.replicator.filtering import statement_tables
from dbmux.replicator.pg_sequences import is_sequence_row
from dbmux.replicator.schema_info import StaticSchema, TableInfo
from dbmux.replicator.shard_analysis import analyze
from dbmux.replicator.shard_fks import ForeignKey, drop_foreign_key_if_exists, without_foreign_keys
from dbmux.replicator.shard_shapes import Ddl, SessionStatement
from dbmux.replicator.shard_statements import (
    MAP_ERRORS,
    Decision,
    Split,
    plan_statement,
    route_statement,
    typed_key_values,
)
from dbmux.shardmap import ShardMap, ShardMapError, TableRule

__all__ = ["Decision", "ShardRouter", "route_statement", "ShardMapError"]

log = logging.getLogger(__name__)


# ------------------------------------------------------------------------------------------ the router


_CREATED_MAX = 10_000  # what a router remembers of the DDL it routed (oldest forgotten first)


def _name(tdb: str | None, table: str, db: str | None) -> tuple[str, str]:
    """A table or view name as the router keys it: qualified by the session's database, lower case."""
    return ((tdb or db or "").lower(), table.lower())


def _remember(memo: dict, key: tuple[str, str], value: object) -> None:
    memo[key] = value
    while len(memo) > _CREATED_MAX:
        del memo[next(iter(memo))]

_VIEW_DDL = re.compile(r"\s*(?:CREATE|ALTER)\s(?:[^(;]*?\s)?VIEW\s", re.IGNORECASE)

class ShardRouter:
    """Routes change events for one shard target. ``shard_map`` and ``schema`` (``.tables[(db, table)]``
    -> TableInfo of the *source*, lower-case names, as :func:`replicator.source_schema.load_source_schema`
    returns) are plain attributes and may be swapped: reload the schema after DDL events. ``gone``: tables
    the primary no longer has (their rows are routed by the key their events carry, or as unsharded);
    only row routing looks there -- DDL naming them is routed as for a table the schema lacks (every
    shard, IF EXISTS), never as a keyless table's (one shard: the others kept a table dropped since)."""

    def __init__(self, shard_map: ShardMap, schema: StaticSchema, shard: str) -> None:
        if shard not in tuple(shard_map.shards):
            raise ValueError(f"shard {shard!r} is not in the shard map (shards: {', '.join(shard_map.shards)})")
        self.shard_map = shard_map
        self.schema = schema
        self.shard = shard
        self.gone: dict[tuple[str, str], TableInfo] = {}
        self._created_pk: dict[tuple[str, str], tuple[str, ...]] = {}  # CREATE TABLE routed: the key it declared
        self._views: dict[tuple[str, str], frozenset[str]] = {}  # CREATE/ALTER VIEW routed: the shards it went to

    def route(self, ev: ChangeEvent) -> ChangeEvent:
        rows = self._rows(ev) if ev.rows else ()
        statements = self._statements(ev) if ev.statements else ()
        if statements is None:  # the whole event takes the row form
            statements = tuple(s if s.unsafe else dataclasses.replace(s, unsafe=True) for s in ev.statements)
        if (len(rows) == len(ev.rows) and all(a is b for a, b in zip(rows, ev.rows, strict=True))
                and statements == ev.statements):
            return ev
        return dataclasses.replace(ev, rows=rows, statements=statements)

    # rows -------------------------------------------------------------------------------------

    def _rows(self, ev: ChangeEvent) -> tuple[RowChange, ...]:
        out: list[RowChange] = []
        rules: dict[tuple[str, str], tuple[TableRule, frozenset[str]]] = {}  # (rule, UUID columns)
        for r in ev.rows:
            if is_sequence_row(r.after):  # a sequence's state: every shard has the sequence (pg_sequences)
                out.append(r)
                continue
            name = (r.db.lower(), r.table.lower())
            known = rules.get(name)
            if known is not None:
                rule, uuids = known
            else:
                # the key as the table had it at that GTID (the event's schema), else the source schema's;
                # a table the source schema lacks is looked up again first (its key's column types: UUID)
                carried = ev.table_schema(r.db, r.table) if ev.tables else None
                info = (getattr(self.schema, "tables", None) or {}).get(name) or self.gone.get(name)
                if info is None:  # its rule depends on its primary key: never guess
                    raise ApplyError(f"cannot route rows of {r.db}.{r.table}: the table is unknown to the source "
                                     "schema (created after the schema was loaded?); retrying with a fresh schema",
                                     gtid=str(ev.gtid), table=f"{r.db}.{r.table}", retriable=True)
                if carried is not None and carried.primary_key is not None:
                    key = tuple(carried.primary_key)
                else:
                    key = tuple(info.primary_key)
                try:
                    rule, uuids = rules[name] = self.shard_map.rule(*name, key), info.uuids
                except MAP_ERRORS as e:
                    raise ApplyError(f"cannot route rows of {r.db}.{r.table}: shard map: {e}", gtid=str(ev.gtid),
                                     table=f"{r.db}.{r.table}") from e
            if rule.kind == "reference":
                out.append(r)
            elif rule.kind == "single":
                if rule.shard == self.shard:
                    out.append(r)
            elif rule.kind != "sharded":
                raise ApplyError(f"unknown shard rule kind {rule.kind!r}", gtid=str(ev.gtid), table=f"{r.db}.{r.table}")
            elif r.op == "insert":
                if self._owner(ev, r, r.after, rule, uuids) == self.shard:
                    out.append(r)
            elif r.op == "delete":
                if self._owner(ev, r, r.before, rule, uuids) == self.shard:
                    out.append(r)
            else:
                old, new = self._owner(ev, r, r.before, rule, uuids), self._owner(ev, r, r.after, rule, uuids)
                if old == new:
                    if old == self.shard:
                        out.append(r)
                elif old == self.shard:  # moves out: the other image stays (children may follow: shard_moves)
                    out.append(RowChange(r.table, r.db, "delete", before=r.before, after=r.after))
                elif new == self.shard:  # moves in
                    out.append(RowChange(r.table, r.db, "insert", before=r.before, after=r.after))
        log.debug("shard %s gtid %s rows: kept %d of %d", self.shard, ev.gtid, len(out), len(ev.rows))
        return tuple(out)

    def _owner(self, ev: ChangeEvent, r: RowChange, image: dict[str, Any] | None, rule: TableRule,
               uuids: frozenset[str]) -> str:
        assert image is not None
        values = []
        lower = None
        for col in rule.key:
            if col in image:
                values.append(image[col])
                continue
            if lower is None:
                lower = {k.lower(): v for k, v in image.items()}
            if col not in lower:
                raise ApplyError(f"cannot route a row of {r.db}.{r.table}: shard-key column {col!r} is not in its "
                                 "image", gtid=str(ev.gtid), table=f"{r.db}.{r.table}")
            values.append(lower[col])
        key = typed_key_values(rule.key, values, uuids)
        try:
            return self.shard_map.locate(r.db.lower(), r.table.lower(), key)
        except MAP_ERRORS as e:
            raise ApplyError(f"cannot route a row of {r.db}.{r.table}: shard map: {e}", gtid=str(ev.gtid),
                             table=f"{r.db}.{r.table}") from e

    # statements ---------------------------------------------------------------------------------

    def _shard_ddl(self, st: Statement, db: str | None) -> Statement | None:
        """``st`` as this shard runs it: without foreign keys whose parent rows are not all here
        (:mod:`dbmux.replicator.shard_fks`), ``DROP FOREIGN KEY`` with ``IF EXISTS``; None: nothing left."""
        def here(fk: ForeignKey) -> bool:
            assert fk.parent is not None  # (without_foreign_keys drops unreadable parents itself)
            rule = self._rule_of(*fk.parent, db)
            if rule is None:
                return False
            if rule.kind == "reference" or (rule.kind == "single" and rule.shard == self.shard):
                return True
            # a child sharded by exactly the key columns, referencing its parent's shard key: equal values,
            # one shard (natural keys: SQLAlchemy's person/manager, whose ON UPDATE CASCADE the shard must run)
            if rule.kind != "sharded" or not fk.columns or tuple(fk.references) != tuple(rule.key):
                return False
            shape, _ = analyze(st.sql)
            if not isinstance(shape, Ddl) or not shape.tables or shape.tables[0] is None:
                return False
            child = self._rule_of(*shape.tables[0], db, shape.create_pk)
            return child is not None and child.kind == "sharded" and tuple(child.key) == tuple(fk.columns)

        sql = without_foreign_keys(st.sql, here)
        if sql is None:
            return None
        sql = drop_foreign_key_if_exists(sql)
        return st if sql == st.sql else dataclasses.replace(st, sql=sql)

    def _statements(self, ev: ChangeEvent) -> tuple[Statement, ...] | None:
        """This shard's statements; None: the event must take the row form."""
        ingress = ev.source == "ingress"
        if ingress and ev.unsafe:
            i = next(i for i, s in enumerate(ev.statements) if s.unsafe)
            self._log(ev, i, "row form", "flagged unsafe by the ingress")
            return None
        db = ev.db or (ev.session.db if ev.session else None)
        sql_mode = ev.session.sql_mode if ev.session else None
        kept: list[tuple[Statement, bool]] = []  # (statement, is a session statement)
        for i, st in enumerate(ev.statements):
            if ingress and not st.is_utf8:  # routing reads UTF-8 text; only its bytes say what it writes
                self._log(ev, i, "row form", f"not UTF-8 text (character set {st.charset})")
                return None
            if st.raw is None and (named := ansi_names_backquoted(st.sql, sql_mode)) != st.sql:
                st = dataclasses.replace(st, sql=named)  # "t" is a name in this session: `t` in every one
            res = plan_statement(st.sql, st.params, st.insert_id, db, self.shard_map, self.schema, sql_mode)
            if isinstance(res, SessionStatement):
                db = res.use_db or db
                kept.append((st, True))
                self._log(ev, i, "session", "kept where the event has other statements")
                continue
            if isinstance(res, Decision) and res.shards is None:
                if ingress:
                    self._log(ev, i, "row form", res.reason)
                    return None
                # A binlog statement (DDL and the like) has no other form: every shard applies it (a view:
                # every shard that has all its tables)
                res = self._view_decision(st.sql, db) or Decision(frozenset(self.shard_map.shards),
                                                                  f"binlog statement, no row form: {res.reason}")
                if st.kind != "ddl":
                    log.warning("shard %s gtid %s stmt %d: %s -> every shard", self.shard, ev.gtid, i, res.reason)
            if isinstance(res, Split):
                part = res.parts.get(self.shard)
                if part is None:
                    self._log(ev, i, "skip", f"{res.reason}: no rows here")
                    continue
                kept.append((Statement(part.sql, params=part.params, insert_id=st.insert_id,
                                       last_insert_id=st.last_insert_id, kind=st.kind, charset=st.charset), False))
                self._log(ev, i, f"split {part.rows}/{res.total} {'rows' if st.kind == 'dml' else 'items'}",
                          res.reason)
                continue
            assert isinstance(res, Decision) and res.shards is not None
            if st.kind == "ddl":  # a CREATE TABLE (not ... LIKE): the key it declares (analyze caches by text)
                shape, _ = analyze(st.sql)
                if isinstance(shape, Ddl) and shape.create_pk is not None and shape.tables and not any(shape.pk_from):
                    t = shape.tables[0]
                    _remember(self._created_pk, _name(t[0], t[1], db), shape.create_pk)
            if self.shard not in res.shards:
                self._log(ev, i, "skip", res.reason)
                continue
            if st.kind == "ddl":
                mine = self._shard_ddl(st, db)
                if mine is None:
                    self._log(ev, i, "skip", "only foreign keys to tables not on this shard")
                    continue
                if mine is not st:
                    self._log(ev, i, "rewritten", "foreign keys to tables not on this shard left out")
                    st = mine
            kept.append((st, False))
            self._log(ev, i, "one shard" if len(res.shards) == 1 else "scatter", res.reason)
        if not any(not session for _, session in kept):
            return ()
        return tuple(st for st, _ in kept)

    def _rule_of(self, tdb: str | None, table: str, db: str | None,
                 pk: tuple[str, ...] | None = None) -> TableRule | None:
        """The rule of a table a DDL statement names (``pk``: the key it declares itself). One the schema
        does not know is placed by the key its CREATE TABLE declared when the router routed that, else only
        by a rule that needs no key (SQLAlchemy's suite: an unknown parent taken for a keyless table on the
        default shard kept a foreign key to a sharded table there). None: not certain."""
        name = _name(tdb, table, db)
        info = (getattr(self.schema, "tables", None) or {}).get(name)
        if pk is None:
            pk = tuple(info.primary_key) if info is not None else self._created_pk.get(name)
        try:
            return self.shard_map.rule(*name, pk) if pk is not None else self.shard_map.fixed_rule(*name)
        except MAP_ERRORS:
            return None

    def _view_decision(self, sql: str, db: str | None) -> Decision | None:
        """CREATE/ALTER VIEW: the shards holding every table it reads (reference and sharded tables: all;
        a single table: its shard; a name :meth:`_rule_of` cannot place, a CTE's say, does not narrow it).
        None: not such a statement."""
        if not _VIEW_DDL.match(sql) or (names := statement_tables(sql)) is None:
            return None
        shards = set(self.shard_map.shards)
        for tdb, table in names[1:]:  # (the view's own name first)
            over_view = self._views.get(_name(tdb, table, db))
            if over_view is not None:  # a view this router placed (node-mysql2's suite: a view over a view of
                shards &= over_view  # keyless tables went to every shard; the other shard had no such view)
                continue
            rule = self._rule_of(tdb, table, db)
            if rule is not None and rule.kind == "single":
                shards &= {rule.shard}
        if not shards:
            log.warning("shard %s: view over tables of different shards is created on none: %s", self.shard, sql[:200])
        _remember(self._views, _name(*names[0], db), frozenset(shards))
        return Decision(frozenset(shards), "view: the shards holding all its tables")

    def _log(self, ev: ChangeEvent, i: int, action: str, reason: str) -> None:
        log.debug("shard %s gtid %s stmt %d: %s (%s)", self.shard, ev.gtid, i, action, reason)
