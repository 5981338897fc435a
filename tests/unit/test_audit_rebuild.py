"""The pure parts of `dbmux snapshot` / `dbmux rebuild` (issue 18): the snapshot event's envelope, database
renaming in statements, and which base each table's rebuild starts from."""

from __future__ import annotations

import pytest

from dbmux.cli.history_index import SNAPSHOT_IDX, HistoryIndex
from dbmux.core.codec import decode_event, encode_event
from dbmux.core.events import ChangeEvent, EnvelopeError, RowChange, SnapshotPart
from dbmux.core.gtid import Gtid, parse_gtid_list
from dbmux.replicator.audit.rebuild import Base, Scan, TableSnapshot, Until, choose_bases
from dbmux.replicator.audit.rename import creates_table, parse_renames, renamed_sql
from dbmux.replicator.errors import BackfillError


def _snap_event(part: str, **kw) -> ChangeEvent:
    sp = SnapshotPart("abc", "shop.t", part, "0-1-41,1-1-7", **kw)
    rows = (RowChange("t", "shop", "insert", after={"id": 1, "v": b"\x00\xff"}),) if part == "rows" else ()
    return ChangeEvent(Gtid.parse("0-1-41"), "snapshot", 1_700_000_000_000, "shop", rows=rows, snapshot=sp)


@pytest.mark.parametrize("part,kw", [("begin", {"create_sql": "CREATE TABLE `t` (id INT)", "primary_key": ("id",)}),
                                     ("rows", {"chunk": 3}), ("end", {"chunk": 4, "rows_total": 2999})])
def test_snapshot_events_round_trip(part, kw):
    ev = _snap_event(part, **kw)
    assert decode_event(encode_event(ev)) == ev


@pytest.mark.parametrize("make,problem", [
    (lambda: SnapshotPart("a", "shop.t", "middle", ""), "snapshot part must be"),
    (lambda: SnapshotPart("a", "t", "rows", ""), "db.table"),
    (lambda: SnapshotPart("a", "shop.t", "begin", ""), "definition"),
    (lambda: SnapshotPart("a", "shop.t", "end", ""), "row count"),
    (lambda: ChangeEvent(Gtid.parse("0-1-1"), "snapshot", 0), "carries its snapshot part"),
    (lambda: ChangeEvent(Gtid.parse("0-1-1"), "binlog", 0, snapshot=SnapshotPart("a", "s.t", "rows", "")),
     "carries its snapshot part"),
])
def test_snapshot_part_invariants(make, problem):
    with pytest.raises(EnvelopeError, match=problem):
        make()


@pytest.mark.parametrize("sql,want", [
    ("ALTER TABLE shop.t ADD c INT", "ALTER TABLE `shop_r`.t ADD c INT"),
    ("ALTER TABLE `shop`.`t` ADD c INT", "ALTER TABLE `shop_r`.`t` ADD c INT"),
    ("ALTER TABLE t ADD c INT DEFAULT 'shop.t'", "ALTER TABLE t ADD c INT DEFAULT 'shop.t'"),  # a string
    ("RENAME TABLE shop.a TO shop.b, other.c TO other.d", "RENAME TABLE `shop_r`.a TO `shop_r`.b, other.c TO other.d"),
    ("ALTER TABLE x.shop ADD c INT", "ALTER TABLE x.shop ADD c INT"),  # a table named like the database
    ("CREATE TABLE shop.t (id INT) /* shop.t */", "CREATE TABLE `shop_r`.t (id INT) /* shop.t */"),
    ("SELECT 1 .5", "SELECT 1 .5"),
])
def test_renamed_sql(sql, want):
    assert renamed_sql(sql, {"shop": "shop_r"}) == want


def test_parse_renames():
    assert parse_renames(["shop=shop_r", " a = b "]) == {"shop": "shop_r", "a": "b"}
    for bad in (["shop"], ["=x"], ["a.b=c"], ["a=b", "a=c"]):
        with pytest.raises(BackfillError, match="rename-db"):
            parse_renames(bad)


@pytest.mark.parametrize("sql,want", [("CREATE TABLE t (id INT)", True), ("create or replace table t (a int)", True),
                                      ("CREATE TEMPORARY TABLE t (a INT)", False), ("ALTER TABLE t ADD x INT", False),
                                      ("CREATE TABLE IF NOT EXISTS t (a INT)", True)])
def test_creates_table(sql, want):
    assert creates_table(sql) is want


def _ts(name: str, pos: str, ts_ms: int) -> TableSnapshot:
    return TableSnapshot(name, "shop.t", parse_gtid_list(pos), ts_ms, 0, 0, 1, "CREATE TABLE t (id INT)", 0)


G = Gtid.parse


@pytest.mark.parametrize("snaps,created,until,want", [
    ([_ts("s1", "0-1-10", 100), _ts("s2", "0-1-20", 200)], [], Until(gtid=G("0-1-25")), "s2"),  # newest before
    ([_ts("s1", "0-1-10", 100), _ts("s2", "0-1-20", 200)], [], Until(gtid=G("0-1-15")), "s1"),
    ([_ts("s1", "0-1-10", 100)], [(G("0-1-5"), 50)], Until(gtid=G("0-1-15")), "s1"),  # snapshot after creation
    ([_ts("s1", "0-1-10", 100)], [(G("0-1-12"), 120)], Until(gtid=G("0-1-15")), "created 0-1-12"),  # recreated
    ([], [(G("0-1-3"), 30)], Until(ms=40), "created 0-1-3"),
    ([_ts("s1", "0-1-10", 100)], [], Until(ms=99), None),  # snapshot after the point: uncovered
    ([_ts("s1", "0-1-10", 100)], [], Until(gtid=G("0-1-9")), None),
])
def test_choose_bases(snaps, created, until, want):
    scan = Scan(snapshots={"shop.t": snaps} if snaps else {}, created={"shop.t": created} if created else {},
                seen_tables={"shop.t"})
    bases, uncovered = choose_bases(scan, until, ["shop.*"])
    if want is None:
        assert uncovered == ["shop.t"] and not bases
    elif want.startswith("created"):
        assert bases["shop.t"].created == G(want.split()[1])
    else:
        assert bases["shop.t"].snapshot is not None and bases["shop.t"].snapshot.id == want


def test_a_table_created_after_the_point_is_left_out_and_a_pattern_must_select():
    scan = Scan(created={"shop.late": [(G("0-1-30"), 300)]}, seen_tables={"shop.late"})
    assert choose_bases(scan, Until(gtid=G("0-1-20")), ["*"]) == ({}, [])
    with pytest.raises(BackfillError, match="selects no table"):
        choose_bases(scan, Until(gtid=G("0-1-20")), ["nope.*"])


@pytest.mark.parametrize("base,gtid,ts,replayed", [
    (Base(snapshot=_ts("s", "0-1-10,1-1-4", 100)), "0-1-10", 100, False),  # inside the snapshot
    (Base(snapshot=_ts("s", "0-1-10,1-1-4", 100)), "0-1-11", 100, True),
    (Base(snapshot=_ts("s", "0-1-10,1-1-4", 100)), "1-1-5", 90, True),  # by its own domain's position
    (Base(snapshot=_ts("s", "0-1-10", 100)), "2-1-1", 50, True),  # a domain the snapshot had not seen
    (Base(created=G("0-1-7"), created_ts_ms=70), "0-1-7", 70, False),  # the creation is applied as the base
    (Base(created=G("0-1-7"), created_ts_ms=70), "0-1-8", 70, True),
])
def test_base_decides_the_replay(base, gtid, ts, replayed):
    assert base.before(ChangeEvent(G(gtid), "binlog", ts)) is replayed


def test_history_indexes_snapshot_rows_after_their_gtid(tmp_path):
    index = HistoryIndex(tmp_path / "h.sqlite", lambda d, t: ("id",))
    index.add(_snap_event("begin", create_sql="CREATE TABLE t (id INT)"), 0, 5)  # no rows: nothing indexed
    index.add(_snap_event("rows"), 0, 6)
    index.add(ChangeEvent(G("0-1-41"), "binlog", 1, rows=(RowChange("t", "shop", "update", before={"id": 1},
                                                                       after={"id": 1}),)), 0, 2)
    got = index.changes("shop", "t", "1", None, None)
    assert [(seq, idx, off) for _, seq, idx, _, _, off in got] == [(41, 0, 2), (41, SNAPSHOT_IDX, 6)]


def test_each_command_is_registered_by_the_module_that_loads_it():
    import argparse
    import importlib

    from dbmux.cli.main import COMMAND_MODULES, build_parser

    for module in set(COMMAND_MODULES.values()):
        sub = argparse.ArgumentParser().add_subparsers()
        importlib.import_module(f"dbmux.cli.{module}").register(sub)
        assert set(sub.choices) == {c for c, m in COMMAND_MODULES.items() if m == module}, module
    full = build_parser()
    assert set(full._subparsers._group_actions[0].choices) == set(COMMAND_MODULES)  # type: ignore[union-attr]
    assert set(build_parser(["-v", "history", "x"])._subparsers._group_actions[0].choices) == {"history"}
