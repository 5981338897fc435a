"""A unit's row changes to a PostgreSQL target as their net effect per primary key (issue 14 #2).

Row by row, a PostgreSQL target is sent one statement per row change: an OLTP backlog's update, delete
and insert of each transaction are each a statement of their own shape, so nothing groups them and the
catch-up is bound by one server round trip per row. A unit (group commit) is applied in one target
transaction, so readers of the target only see the state at its end either way; :class:`PgNet` reduces
the unit's row changes of one table to that state per key: the deletes of the table in one ``executemany``,
its updates in another, its inserts as one ``COPY`` run (the applier's).

Which tables (:func:`net_columns`, from the target's catalog): a primary key of integer columns (Python
equality is the server's), no other unique index (the order of changes could matter to it), no foreign
key to or from the table (checks and cascades in between), no trigger of its own. Which events (the
applier decides): row changes only (no statements, not applied with ``foreign_key_checks = 0``), full
after images (the table's column count), no rows moving between shards.

Per key, from its changes in order, each as row by row applies it (an insert is an upsert, an update
``UPDATE ... WHERE key``, a delete ``DELETE ... WHERE key``):

* last state absent (deleted, or updated after its delete: row by row that update matches nothing) ->
  ``DELETE`` by key;
* present through an insert -> the last image inserted, after a ``DELETE`` by key unless that insert was
  the key's first change (so the insert never meets the old row; a row there anyway -- a target that
  drifted -- makes the COPY fall back to the upsert, as row by row);
* present through updates only -> one ``UPDATE`` of every column to the last image.

A key-changing update is a delete of the old key and an insert of the new one. Per table: its deletes,
then its updates, then its inserts; tables in first-touched order.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import asyncpg

from dbmux.core.events import ChangeEvent, RowChange
from dbmux.replicator.pg_sql import Untranslatable, insert_row, row_statement
from dbmux.replicator.pg_types import bit_strings, spelled_as

__all__ = ["INSERTS", "MIXED", "KeyChanged", "NetUnknown", "PgNet", "net_columns", "net_kind", "net_statements"]

# (sql, args, tag, an insert's COPY target: (schema, table, its columns lowercase) or None)
_Statement = tuple[str, tuple, object, "tuple[str, str, tuple[str, ...]] | None"]
_DELETED, _UPDATED, _INSERTED = 0, 1, 2
INSERTS, MIXED = 1, 2  # net_kind: an event of row inserts only / of other row changes too


class NetUnknown(Exception):
    """A table not looked up yet (:func:`net_columns`); args: (db, table) as events name it."""


def net_kind(ev: ChangeEvent, columns: dict[tuple[str, str], int]) -> int:
    """0 when ``ev`` is applied on its own (statements, ``foreign_key_checks = 0``, a table that does not
    allow it, a partial after image, a row moving between shards), else :data:`INSERTS` or :data:`MIXED`.
    ``columns``: :func:`net_columns` per (db, table) as events name them; raises :class:`NetUnknown` for
    a table not in it."""
    if ev.statements or not ev.rows or ev.no_fk_checks:
        return 0
    kind = INSERTS
    for row in ev.rows:
        n = columns.get((row.db, row.table))
        if n is None:
            raise NetUnknown(row.db, row.table)
        op, after = row.op, row.after
        if not n or (after is not None and len(after) != n):
            return 0
        if op == "insert":
            if row.before is not None:  # (moving between shards)
                return 0
        elif op == "delete" and after is not None:
            return 0
        else:
            kind = MIXED
    return kind


# per table: its column count, its integer primary key, other unique indexes, foreign keys, triggers
_CATALOG = """
SELECT (SELECT count(*) FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped),
       (SELECT bool_and(a.atttypid IN ('int2'::regtype, 'int4'::regtype, 'int8'::regtype))
          FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
         WHERE i.indrelid = c.oid AND i.indisprimary),
       (SELECT count(*) FROM pg_index i WHERE i.indrelid = c.oid AND i.indisunique AND NOT i.indisprimary),
       (SELECT count(*) FROM pg_constraint f WHERE f.contype = 'f' AND (f.conrelid = c.oid OR f.confrelid = c.oid)),
       (SELECT count(*) FROM pg_trigger t WHERE t.tgrelid = c.oid AND NOT t.tgisinternal)
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')
"""


async def net_columns(conn: asyncpg.Connection, schema: str, table: str) -> int:
    """The column count of ``schema.table`` on the target when its row changes may be applied as their
    net effect (see the module text), else 0."""
    row = await conn.fetchrow(_CATALOG, schema, table)
    if row is None:
        return 0
    columns, integer_key, unique, fks, triggers = row
    return int(columns) if integer_key and not unique and not fks and not triggers else 0


class KeyChanged(Exception):
    """A table's rows in one run were keyed by two different primary keys (a schema change between them):
    the run is applied row by row instead."""


class _Table:
    """One table's keys: state, last image, whether the first change was an insert, the last change's
    tag (what a statement is reported as)."""

    __slots__ = ("pk", "pg_types", "where", "state", "image", "first_insert", "tag")

    def __init__(self, pk: tuple[str, ...], pg_types: Any, where: str) -> None:
        self.pk = pk
        self.pg_types = pg_types
        self.where = where  # schema.table, for errors
        self.state: dict[tuple, int] = {}
        self.image: dict[tuple, dict[str, Any] | None] = {}
        self.first_insert: dict[tuple, bool] = {}
        self.tag: dict[tuple, object] = {}

    def _set(self, key: tuple, state: int, image: dict[str, Any] | None, inserted: bool, tag: object) -> None:
        if key not in self.first_insert:
            self.first_insert[key] = inserted
        self.state[key] = state
        self.image[key] = image
        self.tag[key] = tag

    def add(self, row: RowChange, tag: object) -> None:
        pk, where, op = self.pk, self.where, row.op
        if op == "insert":
            assert row.after is not None
            self._set(_key(row.after, pk, where), _INSERTED, row.after, True, tag)
        elif op == "delete":
            assert row.before is not None
            self._set(_key(row.before, pk, where), _DELETED, None, False, tag)
        else:
            assert row.before is not None and row.after is not None
            old, new = _key(row.before, pk, where), _key(row.after, pk, where)
            if old != new:
                self._set(old, _DELETED, None, False, tag)
                self._set(new, _INSERTED, row.after, True, tag)  # (a key taken over: first seen as an insert)
                return
            state = self.state.get(new, _UPDATED)
            if state != _DELETED:  # (after its delete, row by row this update matches no row)
                self._set(new, state, row.after, False, tag)

    def statements(self, schema: str, table: str) -> list[_Statement]:
        pk = self.pk
        deletes: list[_Statement] = []
        updates: list[_Statement] = []
        inserts: list[_Statement] = []
        types = self.pg_types
        for key, state in self.state.items():
            tag = self.tag[key]
            if state == _DELETED or (state == _INSERTED and not self.first_insert[key]):
                st = row_statement(schema, table, "delete", dict(zip(pk, key, strict=True)), None, pk, types)
                deletes.append((st.sql, st.args, tag, None))
            image = self.image[key]
            if state == _UPDATED:
                st = row_statement(schema, table, "update", image, image, pk, types)
                updates.append((st.sql, st.args, tag, None))
            elif state == _INSERTED:
                assert image is not None
                sql, args = insert_row(schema, table, image, pk, types)
                inserts.append((sql, args, tag, (schema, table, tuple(c.lower() for c in image))))
        return deletes + updates + inserts


def _key(image: dict[str, Any], pk: tuple[str, ...], where: str) -> tuple:
    try:
        return tuple([image[c] for c in pk])
    except KeyError:
        spelled = spelled_as(image, pk)
        missing = [c for c in spelled if c not in image]
        if missing:
            raise Untranslatable(f"row image of {where} lacks primary key column {missing[0]}") from None
        return tuple([image[c] for c in spelled])


class PgNet:
    """Row changes of one unit, per table, reduced to their net effect (see the module text)."""

    __slots__ = ("_tables",)

    def __init__(self) -> None:
        self._tables: dict[tuple[str, str], _Table] = {}

    def add(self, schema: str, table: str, pk: tuple[str, ...], pg_types: Any, row: RowChange, tag: object) -> None:
        """One row change of ``schema.table`` (``pk``: its primary key; ``pg_types`` as for
        :func:`~replicator.pg_sql.row_statement`); ``tag``: what its statement is reported as. Raises
        :class:`KeyChanged` when the table was met with another primary key before."""
        t = self._tables.get((schema, table))
        if t is None:
            t = self._tables[(schema, table)] = _Table(pk, pg_types, f"{schema}.{table}")
        elif t.pk != pk:
            raise KeyChanged(schema, table)
        t.add(row, tag)

    def statements(self) -> list[_Statement]:
        """``(sql, args, tag, copy)`` per statement, in the order to run them; ``copy``: an insert's
        (schema, table, columns lowercase), None for the others."""
        return [s for (schema, table), t in self._tables.items() for s in t.statements(schema, table)]


# (pk, BIT widths, PostgreSQL types) of a row's table: PostgresApplier._row_typing(ev, row, schema, table)
_Typing = Callable[[ChangeEvent, RowChange, str, str],
                   tuple[tuple[str, ...], "Mapping[str, int] | None", "Mapping[str, str] | None"]]


def net_statements(run: list[tuple[ChangeEvent, int]], typing: _Typing,
                   copy_into: dict[str, tuple[str, str, tuple[str, ...]]]) -> list[tuple[str, tuple, ChangeEvent, int]]:
    """The applier's statements ``(sql, args, event, offset)`` for a run of events :func:`net_kind` allows:
    their net effect (each statement reported as the event of its key's last change); row inserts'
    COPY targets added to ``copy_into`` (sql -> (schema, table, columns))."""
    net = PgNet()
    for ev, offset in run:
        where: tuple[str, str] | None = None
        for row in ev.rows:
            if (row.db, row.table) != where:
                where = (row.db, row.table)
                schema, table = row.db.lower(), row.table.lower()
                pk, bits, pg_types = typing(ev, row, schema, table)
            if bits:
                row = RowChange(row.table, row.db, row.op, bit_strings(row.before, bits), bit_strings(row.after, bits))
            net.add(schema, table, pk, pg_types, row, (ev, offset))
    out: list[tuple[str, tuple, ChangeEvent, int]] = []
    for sql, args, tag, copy in net.statements():
        if copy is not None and sql not in copy_into:
            copy_into[sql] = copy
        ev, offset = tag  # type: ignore[misc]  # (the tags given above)
        out.append((sql, args, ev, offset))
    return out
