"""The backfill record (what ``dbmux_meta.backfill.doc`` holds) and the pure catch-up rule: which row
changes of a later transaction fall into what is already copied."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from dbmux.core.events import ChangeEvent, RowChange
from dbmux.core.gtid import Gtid
from dbmux.replicator.errors import BackfillError
from dbmux.replicator.filtering import statement_tables
from dbmux.replicator.verify_readers import TableShape

_INT_TYPES = frozenset({"tinyint", "smallint", "mediumint", "int", "integer", "bigint"})


@dataclass
class TableProgress:
    done: bool = False
    rows: int = 0
    last_key: list | None = None  # last copied key (integer keys only); None: not started / not resumable

    @property
    def started(self) -> bool:
        return self.done or self.rows > 0 or self.last_key is not None


@dataclass
class BackfillRecord:
    """What ``dbmux_meta.backfill.doc`` holds: the snapshot the copied data reflects, and per table progress."""

    snapshot: dict[str, str]  # domain -> GTID text; the copied rows reflect exactly this position
    snapshot_ts_ms: int
    tables: dict[str, TableProgress] = field(default_factory=dict)
    already_done: bool = False  # this run found the backfill done and copied nothing (not stored)

    def dumps(self) -> str:
        return orjson.dumps({"snapshot": self.snapshot, "snapshot_ts_ms": self.snapshot_ts_ms,
                             "tables": {k: {"done": v.done, "rows": v.rows, "last_key": v.last_key}
                                        for k, v in self.tables.items()}}).decode()

    @classmethod
    def loads(cls, text: str) -> BackfillRecord:
        d = orjson.loads(text)
        return cls(d["snapshot"], int(d["snapshot_ts_ms"]),
                   {k: TableProgress(bool(v["done"]), int(v["rows"]), v.get("last_key"))
                    for k, v in d["tables"].items()})

    def gtids(self) -> dict[str, Gtid]:
        return {d: Gtid.parse(g) for d, g in self.snapshot.items()}


def key_resumable(shape: TableShape) -> bool:
    """Can a partly copied table continue from its last key after a new snapshot? Only when the key
    compares the same in Python as on the primary: integer columns."""
    return bool(shape.pk) and all(shape.types[i] in _INT_TYPES for i in shape.pk)


def _image_key(image: dict[str, Any], names: tuple[str, ...]) -> tuple:
    lowered = None
    out = []
    for n in names:
        if n in image:
            out.append(image[n])
            continue
        if lowered is None:
            lowered = {k.lower(): v for k, v in image.items()}
        out.append(lowered[n.lower()])
    return tuple(out)


def catchup_rows(ev: ChangeEvent, shapes: dict[str, TableShape], progress: dict[str, TableProgress]
                 ) -> list[RowChange]:
    """The row changes of one binlog transaction that fall into what is already copied (pure).

    A finished table takes every change; the table in progress only changes whose key is at or below
    its last copied key; an update crossing that boundary becomes a delete (moved out) or an insert
    (moved in). DDL naming a copied table raises :class:`BackfillError`.
    """
    for st in ev.statements:
        if st.kind != "ddl":
            continue
        for db, table in statement_tables(st.sql) or ():
            name = f"{db or ev.db or ''}.{table}"
            if name in progress and progress[name].started:
                raise BackfillError(
                    f"DDL on {name} (GTID {ev.gtid}) after part of it was copied: its copy cannot be brought "
                    "forward; run 'dbmux backfill' again with --restart")
    out: list[RowChange] = []
    for r in ev.rows:
        name = f"{r.db}.{r.table}"
        prog = progress.get(name)
        if prog is None or not prog.started:
            continue
        if prog.done:
            out.append(r)
            continue
        shape = shapes[name]
        last = tuple(prog.last_key or ())
        names = shape.pk_names
        before_in = r.before is not None and _image_key(r.before, names) <= last
        after_in = r.after is not None and _image_key(r.after, names) <= last
        if r.op == "update":
            if before_in and after_in:
                out.append(r)
            elif before_in:
                out.append(RowChange(r.table, r.db, "delete", before=r.before))
            elif after_in:
                out.append(RowChange(r.table, r.db, "insert", after=r.after))
        elif (r.op == "insert" and after_in) or (r.op == "delete" and before_in):
            out.append(r)
    return out
