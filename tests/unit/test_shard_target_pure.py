"""Shard targets' pure parts: reading a map switch out of a change event; chunks isolate switches."""

from __future__ import annotations

import orjson
import pytest

from dbmux.core.events import ChangeEvent, RowChange
from dbmux.core.gtid import Gtid
from dbmux.replicator.positions import PartitionKey
from dbmux.replicator.shard_target import switch_map
from dbmux.replicator.units import chunks_for_commit
from dbmux.shardmap import ShardMap

V1 = ShardMap(version=1, shards=("a", "b"))
V2 = V1.with_shard("c")


def _ev(seq: int, *rows: RowChange) -> ChangeEvent:
    return ChangeEvent(Gtid.parse(f"0-1-{seq}"), "binlog", 0, rows=rows)


def _version_row(m: ShardMap, db: str = "dbmux_shardmap", table: str = "versions", op: str = "insert",
                 as_bytes: bool = False) -> RowChange:
    doc = orjson.dumps(m.to_dict())
    return RowChange(table, db, op, before={"version": 0, "map": "{}"} if op != "insert" else None,
                     after={"version": m.version, "MAP": doc if as_bytes else doc.decode()})


@pytest.mark.parametrize("rows, expected", [
    ((_version_row(V2),), V2),
    ((_version_row(V2, as_bytes=True),), V2),                       # LONGTEXT may arrive as bytes
    ((_version_row(V1), _version_row(V2)), V2),                     # the newest of the event
    ((_version_row(V2, db="shop"),), None),                          # another table of that name
    ((RowChange("t", "shop", "insert", after={"id": 1}),), None),
])
def test_switch_map_reads_the_recorded_version(rows, expected):
    assert switch_map(_ev(5, *rows)) == expected


def test_a_switch_is_committed_alone():
    key = PartitionKey("t", 0)
    items = [(_ev(i, RowChange("t", "shop", "insert", after={"id": i})), key, i) for i in range(1, 4)]
    items.insert(2, (_ev(9, _version_row(V2)), key, 9))
    chunks = chunks_for_commit(items, 100, alone=lambda ev: switch_map(ev) is not None)
    assert [[off for _, _, off in c] for c in chunks] == [[1, 2], [9], [3]]
