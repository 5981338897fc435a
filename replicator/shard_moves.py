"""Rows that move between PostgreSQL shards together with the children their foreign keys cascade to.

A row whose shard key changes may belong to another shard afterwards: the router (``shard_routing``)
gives the shard that had it a ``delete`` that still carries the after image (a *move out*) and the shard
that gets it an ``insert`` that still carries the before image (a *move in*). Alone that is a delete
and an insert. But a child table keyed by exactly the columns that reference its parent's shard key
lives with its parent and keeps its ``FOREIGN KEY`` (``shard_fks``); with ``ON UPDATE CASCADE`` the
primary changes the children's keys too, and the binlog carries none of those changes (each server
runs its own cascades). The children then belong to the new shard as well, and only the old shard has
them, exactly as they are at that GTID.

So, when the moving row's table has such children on the target (its own catalog says so: the foreign
keys kept there), the old shard updates the row in place (PostgreSQL cascades to the children, and
theirs), reads every row that now carries the new key (``row_to_json``: PostgreSQL's own text for each
value), writes them to its hand-over table, ``dbmux_meta.shard_handoff``, named by GTID, table and new
key, in a transaction of its own (the same rows again if the apply is retried), and deletes them,
children first. The new shard inserts the row from its event, then waits for the hand-over on the
other shard targets' databases and inserts the children from it (``json_populate_record``: the same
values, typed by the table). Hand-overs are kept for :data:`KEEP`; a shard that has not applied the
transaction yet makes the other wait (a retriable error after :data:`WAIT_S`, logged, then a retry).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import Any, NamedTuple

import asyncpg
import orjson

from dbmux.core.dsn import Dsn
from dbmux.core.events import RowChange
from dbmux.replicator.errors import ApplyError
from dbmux.replicator.pg_sql import PgStatement, row_statement
from dbmux.replicator.positions import META_SCHEMA

log = logging.getLogger(__name__)

MOVE = "-- dbmux: a row moving between shards (replicator.shard_moves)"  # the pending step's text
HANDOFF = f"{META_SCHEMA}.shard_handoff"
HANDOFF_DDL = (f"CREATE TABLE IF NOT EXISTS {HANDOFF} (gtid TEXT NOT NULL, tbl TEXT NOT NULL, key TEXT NOT NULL, "
               "rows TEXT NOT NULL, written_at TIMESTAMPTZ NOT NULL DEFAULT now(), PRIMARY KEY (gtid, tbl, key))")
KEEP = "7 days"
WAIT_S = 60.0
POLL_S = 0.2

# foreign keys that cascade key changes into a table: (child schema, child table, child columns, parent columns)
_CASCADING = """
SELECT cn.nspname AS schema, c.relname AS table,
       ARRAY(SELECT a.attname FROM unnest(con.conkey) WITH ORDINALITY k(n, i)
             JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.n ORDER BY k.i)::text[] AS cols,
       ARRAY(SELECT a.attname FROM unnest(con.confkey) WITH ORDINALITY k(n, i)
             JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.n ORDER BY k.i)::text[] AS refs
FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid JOIN pg_namespace cn ON cn.oid = c.relnamespace
WHERE con.contype = 'f' AND con.confupdtype = 'c' AND con.conrelid <> con.confrelid
  AND con.confrelid = to_regclass(quote_ident($1) || '.' || quote_ident($2))
ORDER BY 1, 2, con.conname
"""
_INSERTABLE = """
SELECT a.attname FROM pg_attribute a
WHERE a.attrelid = to_regclass(quote_ident($1) || '.' || quote_ident($2)) AND a.attnum > 0
  AND NOT a.attisdropped AND a.attgenerated = '' ORDER BY a.attnum
"""


class Move(NamedTuple):
    """One moving row, as the applier's pending step (``args[0]`` of a :data:`MOVE` step)."""

    direction: str  # "out": this shard had the row; "in": it gets it
    schema: str
    table: str
    gtid: str
    key: str  # the row's new key, as its event holds it: names the hand-over
    plain: PgStatement | None = None  # out, without cascading children: the delete by the old key
    update: PgStatement | None = None  # out: the row updated in place (the children follow)
    delete_new: PgStatement | None = None  # out: the row by its new key (its WHERE selects it)


class _Edge(NamedTuple):
    schema: str
    table: str
    cols: tuple[str, ...]  # the child's columns
    parent: int  # index of the parent in the closure (0: the moving row's table)
    refs: tuple[str, ...]  # the parent's columns


def is_move(row: RowChange) -> bool:
    """A routed row change that moves the row between shards (see the module text)."""
    return (row.op == "delete" and row.after is not None) or (row.op == "insert" and row.before is not None)


def move_steps(schema: str, table: str, row: RowChange, pk: tuple[str, ...], pg_types: Mapping[str, str] | None,
               gtid: str) -> list[tuple[str, tuple]]:
    """The applier's steps (sql, args) for a moving row (:func:`is_move`)."""
    assert row.before is not None and row.after is not None
    key = move_key(pk, row.after)
    if row.op == "insert":
        st = row_statement(schema, table, "insert", None, row.after, pk, pg_types)
        return [(st.sql, tuple(st.args)), (MOVE, (Move("in", schema, table, gtid, key),))]
    return [(MOVE, (Move("out", schema, table, gtid, key,
                         plain=row_statement(schema, table, "delete", row.before, None, pk, pg_types),
                         update=row_statement(schema, table, "update", row.before, row.after, pk, pg_types),
                         delete_new=row_statement(schema, table, "delete", row.after, None, pk, pg_types)),))]


def move_key(pk: tuple[str, ...], after: Mapping[str, Any]) -> str:
    """The hand-over's name for a row's new key (both shards compute it from the same event)."""
    lowered = {c.lower(): v for c, v in after.items()}
    return orjson.dumps([repr(lowered.get(c.lower())) for c in pk]).decode()


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _cols(names: tuple[str, ...]) -> str:
    return "(" + ", ".join(_q(c) for c in names) + ")"


class ShardMoves:
    """Runs :class:`Move` steps for one PostgreSQL shard target (``peers``: the other shard targets)."""

    def __init__(self, target: str, own: Dsn, peers: Mapping[str, Dsn]) -> None:
        self.target, self.own, self.peers = target, own, dict(peers)
        self._conns: dict[str, asyncpg.Connection] = {}
        self._closures: dict[tuple[str, str], list[_Edge]] = {}

    def forget_schema(self) -> None:
        """After DDL: foreign keys may have changed."""
        self._closures.clear()

    async def close(self) -> None:
        for conn in self._conns.values():
            await conn.close()
        self._conns.clear()

    async def run(self, conn: asyncpg.Connection, move: Move) -> None:
        closure = await self._closure(conn, move.schema, move.table)
        if move.direction == "out":
            if not closure:
                assert move.plain is not None
                await conn.execute(move.plain.sql, *move.plain.args)
            else:
                await self._out(conn, move, closure)
        elif closure:
            await self._in(conn, move, closure)

    async def _closure(self, conn: asyncpg.Connection, schema: str, table: str) -> list[_Edge]:
        """The tables the moving row's key cascades into, parents before children."""
        cached = self._closures.get((schema, table))
        if cached is not None:
            return cached
        out: list[_Edge] = []
        seen = {(schema, table)}
        queue = [(schema, table, 0)]
        while queue:
            s, t, at = queue.pop(0)
            for r in await conn.fetch(_CASCADING, s, t):
                if (r["schema"], r["table"]) in seen:
                    continue
                seen.add((r["schema"], r["table"]))
                out.append(_Edge(r["schema"], r["table"], tuple(r["cols"]), at, tuple(r["refs"])))
                queue.append((r["schema"], r["table"], len(out)))
        self._closures[(schema, table)] = out
        return out

    @staticmethod
    def _selects(move: Move, closure: list[_Edge]) -> list[str]:
        """Per closure table, a query of its rows that carry the new key (after the in-place update)."""
        assert move.delete_new is not None
        where = move.delete_new.sql.split(" WHERE ", 1)[1]
        sel = [f"SELECT * FROM {_q(move.schema)}.{_q(move.table)} WHERE {where}"]
        for e in closure:
            sel.append(f"SELECT * FROM {_q(e.schema)}.{_q(e.table)} WHERE {_cols(e.cols)} IN "
                       f"(SELECT {', '.join(map(_q, e.refs))} FROM ({sel[e.parent]}) p{len(sel)})")
        return sel

    async def _out(self, conn: asyncpg.Connection, move: Move, closure: list[_Edge]) -> None:
        assert move.update is not None and move.delete_new is not None
        await conn.execute(move.update.sql, *move.update.args)  # PostgreSQL cascades it to the children
        sel = self._selects(move, closure)
        args = move.delete_new.args
        rows: list[list[str]] = []
        for e, q in zip(closure, sel[1:], strict=True):
            for r in await conn.fetch(f"SELECT row_to_json(x)::text FROM ({q}) x", *args):
                rows.append([e.schema, e.table, r[0]])
        own = await self._peer(self.target, self.own)
        await own.execute(f"INSERT INTO {HANDOFF} (gtid, tbl, key, rows) VALUES ($1, $2, $3, $4) "
                          "ON CONFLICT (gtid, tbl, key) DO UPDATE SET rows = EXCLUDED.rows, written_at = now()",
                          move.gtid, f"{move.schema}.{move.table}", move.key, orjson.dumps(rows).decode())
        await own.execute(f"DELETE FROM {HANDOFF} WHERE written_at < now() - interval '{KEEP}'")
        for e, q in reversed(list(zip(closure, sel[1:], strict=True))):  # children first
            await conn.execute(f"DELETE FROM {_q(e.schema)}.{_q(e.table)} WHERE {_cols(e.cols)} IN "
                               f"(SELECT {', '.join(map(_q, e.cols))} FROM ({q}) d)", *args)
        await conn.execute(move.delete_new.sql, *args)
        log.info("target %s gtid %s: %s.%s key %s moved to another shard with %d cascaded rows (handed over)",
                 self.target, move.gtid, move.schema, move.table, move.key, len(rows))

    async def _in(self, conn: asyncpg.Connection, move: Move, closure: list[_Edge]) -> None:
        found = await self._handoff(move)
        columns: dict[tuple[str, str], list[str]] = {}
        for schema, table, row in orjson.loads(found):
            cols = columns.get((schema, table))
            if cols is None:
                cols = columns[(schema, table)] = [r[0] for r in await conn.fetch(_INSERTABLE, schema, table)]
            names = ", ".join(map(_q, cols))
            name = f"{_q(schema)}.{_q(table)}"
            await conn.execute(f"INSERT INTO {name} ({names}) OVERRIDING SYSTEM VALUE SELECT {names} "
                               f"FROM json_populate_record(NULL::{name}, $1::json)", row)
        log.info("target %s gtid %s: %s.%s key %s moved here with %d cascaded rows (handed over)",
                 self.target, move.gtid, move.schema, move.table, move.key, len(orjson.loads(found)))

    async def _handoff(self, move: Move) -> str:
        """The hand-over of ``move`` from whichever other shard had the row (waits for it)."""
        deadline = time.monotonic() + WAIT_S
        while True:
            for name, dsn in self.peers.items():
                try:
                    peer = await self._peer(name, dsn)
                    got = await peer.fetchval(f"SELECT rows FROM {HANDOFF} WHERE gtid = $1 AND tbl = $2 AND key = $3",
                                              move.gtid, f"{move.schema}.{move.table}", move.key)
                except (OSError, asyncpg.PostgresError) as exc:
                    stale = self._conns.pop(name, None)
                    if stale is not None:
                        stale.terminate()
                    if isinstance(exc, asyncpg.UndefinedTableError):
                        continue  # that shard never handed anything over
                    raise ApplyError(f"reading the hand-over of {move.schema}.{move.table} from shard target {name}: "
                                     f"{type(exc).__name__}: {exc}", gtid=move.gtid, retriable=True) from exc
                if got is not None:
                    return str(got)
            if time.monotonic() >= deadline:
                raise ApplyError(f"{move.schema}.{move.table}: a row moving here (key {move.key}) has foreign-key "
                                 f"children only the shard it comes from has, and none of the shard targets "
                                 f"{', '.join(self.peers) or '(none configured)'} has handed them over yet (it has "
                                 "not applied this transaction): retrying", gtid=move.gtid, retriable=True)
            await asyncio.sleep(POLL_S)  # polling another database: nothing to wait on

    async def _peer(self, name: str, dsn: Dsn) -> asyncpg.Connection:
        conn = self._conns.get(name)
        if conn is None or conn.is_closed():
            conn = self._conns[name] = await asyncpg.connect(host=dsn.host, port=dsn.port, user=dsn.user,
                                                              password=dsn.password,
                                                              database=dsn.database or "postgres")
        return conn
