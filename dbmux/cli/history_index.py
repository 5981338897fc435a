"""The row-history index of ``dbmux history``: which topic messages changed which row.

An SQLite file per topic, kept by reading the topic from where it last stopped (so building it is a
one-off; later queries read only what was published since):

* ``changes``: one entry per row change of a **binlog** copy (the row images are the primary's truth,
  and there is exactly one binlog copy per GTID that counts: the first one read), and per row of a
  ``dbmux snapshot`` (op ``snapshot``), keyed by database, table and the row's primary-key values as
  text (``\\x1f``-joined, see :func:`key_text`), with the GTID, the commit time and the message's
  partition and offset (of its first fragment);
* ``sessions``: where the **ingress** copy of a GTID is, for who did it (user, client, statements);
* ``positions``: per partition, the next offset to index.

Primary keys come from the source schema when a table is first seen; a table the primary no longer
has is indexed by all of its columns' values in image order, which ``dbmux history`` cannot look up
by key (it says so). The index is a cache: delete the file and it is built again from the topic.
"""

from __future__ import annotations

import decimal
import sqlite3
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from dbmux.core.events import ChangeEvent

__all__ = ["HistoryIndex", "key_text", "SNAPSHOT_IDX"]

SNAPSHOT_IDX = 1 << 40
"""A snapshot event's rows are indexed at ``SNAPSHOT_IDX + i`` (op ``snapshot``): at its position's GTID,
after that transaction's own changes (the snapshot shows the row as it was after it)."""

SCHEMA = """
CREATE TABLE IF NOT EXISTS positions (part INTEGER PRIMARY KEY, next_offset INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS changes (db TEXT NOT NULL, tbl TEXT NOT NULL, key TEXT NOT NULL, domain TEXT NOT NULL,
    seq INTEGER NOT NULL, idx INTEGER NOT NULL, ts_ms INTEGER NOT NULL, part INTEGER NOT NULL, off INTEGER NOT NULL,
    PRIMARY KEY (db, tbl, key, domain, seq, idx)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS sessions (domain TEXT NOT NULL, seq INTEGER NOT NULL, part INTEGER NOT NULL,
    off INTEGER NOT NULL, PRIMARY KEY (domain, seq)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS keys (db TEXT NOT NULL, tbl TEXT NOT NULL, cols TEXT NOT NULL,
    PRIMARY KEY (db, tbl)) WITHOUT ROWID;
"""


def key_text(values: Iterable[Any]) -> str:
    """A row's key values as index text: the same for 5, "5" and Decimal("5"); bytes as UTF-8 when they are."""
    out = []
    for v in values:
        if isinstance(v, (bytes, bytearray, memoryview)):
            b = bytes(v)
            try:
                v = b.decode("utf-8")
            except UnicodeDecodeError:
                v = "0x" + b.hex()
        elif isinstance(v, decimal.Decimal) and v == v.to_integral_value():
            v = int(v)
        out.append(str(v))
    return "\x1f".join(out)


class HistoryIndex:
    def __init__(self, path: Path, primary_key: Callable[[str, str], tuple[str, ...] | None]) -> None:
        """``primary_key(db, table)``: the source table's key columns (None: not known)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(str(path))
        self.db.executescript(SCHEMA)
        self._primary_key = primary_key
        stored = self.db.execute("SELECT db, tbl, cols FROM keys").fetchall()
        self._keys: dict[tuple[str, str], tuple[str, ...]] = {
            (d, t): tuple(c.split("\x1f")) if c else () for d, t, c in stored}
        self.added = 0

    def positions(self) -> dict[int, int]:
        return dict(self.db.execute("SELECT part, next_offset FROM positions").fetchall())

    def key_columns(self, db: str, table: str) -> tuple[str, ...]:
        """The columns a table's rows are indexed by (looked up once, then kept in the index)."""
        name = (db.lower(), table.lower())
        cols = self._keys.get(name)
        if cols is None:
            cols = tuple(c.lower() for c in (self._primary_key(*name) or ()))
            self._keys[name] = cols
            self.db.execute("INSERT OR REPLACE INTO keys VALUES (?, ?, ?)", (*name, "\x1f".join(cols)))
        return cols

    def add(self, ev: ChangeEvent, part: int, offset: int) -> None:
        domain, seq = ev.gtid.domain, ev.gtid.seq
        if ev.source == "ingress":
            self.db.execute("INSERT OR IGNORE INTO sessions VALUES (?, ?, ?, ?)", (domain, seq, part, offset))
            return
        if ev.snapshot is not None and ev.snapshot.part != "rows":
            return
        base = SNAPSHOT_IDX if ev.snapshot is not None else 0
        rows: list[tuple[Any, ...]] = []
        for idx, r in enumerate(ev.rows, base):
            image = r.after if r.after is not None else r.before
            assert image is not None  # (RowChange checks its images)
            lower = {k.lower(): v for k, v in image.items()}
            cols = self.key_columns(r.db, r.table)
            values = [lower.get(c) for c in cols] if cols and all(c in lower for c in cols) else list(image.values())
            keys = {key_text(values)}
            if r.op == "update" and r.before is not None and r.after is not None and cols:  # a key change: both keys
                before = {k.lower(): v for k, v in r.before.items()}
                if all(c in before for c in cols):
                    keys.add(key_text([before[c] for c in cols]))
            rows.extend((r.db.lower(), r.table.lower(), k, domain, seq, idx, ev.ts_ms, part, offset) for k in keys)
        if rows:
            self.db.executemany("INSERT OR IGNORE INTO changes VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
            self.added += len(rows)

    def advance(self, positions: dict[int, int]) -> None:
        """Record how far the index has read (with what was added since the last call, atomically)."""
        self.db.executemany("INSERT OR REPLACE INTO positions VALUES (?, ?)", positions.items())
        self.db.commit()

    def changes(self, db: str, table: str, key: str, since_ms: int | None,
                until_ms: int | None) -> list[tuple[str, int, int, int, int, int]]:
        """(domain, seq, idx, ts_ms, part, off) of every indexed change of that row, in commit order."""
        sql = "SELECT domain, seq, idx, ts_ms, part, off FROM changes WHERE db = ? AND tbl = ? AND key = ?"
        args: list[Any] = [db.lower(), table.lower(), key]
        if since_ms is not None:
            sql += " AND ts_ms >= ?"
            args.append(since_ms)
        if until_ms is not None:
            sql += " AND ts_ms <= ?"
            args.append(until_ms)
        return self.db.execute(sql + " ORDER BY domain, seq, idx", args).fetchall()

    def session_of(self, domain: str, seq: int) -> tuple[int, int] | None:
        row = self.db.execute("SELECT part, off FROM sessions WHERE domain = ? AND seq = ?", (domain, seq)).fetchone()
        return (row[0], row[1]) if row else None

    def close(self) -> None:
        self.db.close()
