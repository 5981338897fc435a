"""The source side of a backfill: one consistent snapshot of the primary and its GTID position, the
tables' definitions and row estimates."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from dbmux.core.gtid import Gtid, parse_gtid_list
from dbmux.replicator.errors import BackfillError
from dbmux.replicator.verify_readers import MySQLReader, TableShape

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Snapshot:
    gtids: dict[str, Gtid]  # domain -> last GTID inside the snapshot
    ts_ms: int

    def text(self) -> dict[str, str]:
        return {d: str(g) for d, g in self.gtids.items()}


async def open_snapshot(reader: MySQLReader) -> Snapshot:
    """Begin the consistent-snapshot transaction on ``reader`` and return its GTID position."""
    q = reader.rows  # the reader's own connection is the snapshot's
    await q("SET time_zone = '+00:00'", [])
    await q("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ", [])
    (version,), = await q("SELECT VERSION()", [])
    if "mariadb" in str(version).lower():
        await q("START TRANSACTION WITH CONSISTENT SNAPSHOT", [])
        status: dict[str, str] = dict(await q("SHOW SESSION STATUS LIKE 'binlog_snapshot_%%'", []))
        file = status.get("Binlog_snapshot_file")
        if not file:
            raise BackfillError("the primary reports no binlog_snapshot_file: is its binary log enabled (log_bin)?")
        pos = int(status["Binlog_snapshot_position"])  # (reported together with the file)
        (gtid_text,), = await q("SELECT BINLOG_GTID_POS(%s, %s)", [file, pos])
    else:
        try:
            await q("FLUSH TABLES WITH READ LOCK", [])
        except Exception as exc:  # noqa: BLE001 - reported with the fix
            raise BackfillError(f"FLUSH TABLES WITH READ LOCK failed on the primary ({exc}): MySQL needs it for a "
                                "moment to pair the snapshot with @@gtid_executed; grant RELOAD to the "
                                "primary.url user") from exc
        try:
            await q("START TRANSACTION WITH CONSISTENT SNAPSHOT", [])
            (gtid_text,), = await q("SELECT @@GLOBAL.gtid_executed", [])
        finally:
            await q("UNLOCK TABLES", [])
    (now,), = await q("SELECT UNIX_TIMESTAMP(NOW(6))", [])
    return Snapshot(parse_gtid_list(gtid_text or ""), int(float(now) * 1000))


async def create_sql(reader: MySQLReader, shape: TableShape) -> str:
    rows = await reader.rows(f"SHOW CREATE TABLE {reader.q(shape.db)}.{reader.q(shape.table)}", [])
    return rows[0][1]


async def estimated_rows(reader: MySQLReader, shapes: list[TableShape]) -> dict[str, int]:
    rows = await reader.rows(
        "SELECT TABLE_SCHEMA, TABLE_NAME, TABLE_ROWS FROM information_schema.TABLES "
        "WHERE TABLE_TYPE = 'BASE TABLE'", [])
    est = {f"{d}.{t}": int(n or 0) for d, t, n in rows}
    return {s.name: est.get(s.name, 0) for s in shapes}
