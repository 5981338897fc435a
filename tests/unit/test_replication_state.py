"""Where a target stands against the primary (issue 12, findings 10 and 11): `dbmux status` measures lag
against the primary's GTID position, not Kafka; `dbmux verify` fails while a target is halted, waiting for
a gap or behind; tables without a primary key follow the shard rules. Pure decisions, table-driven."""

from __future__ import annotations

import pytest

from dbmux.cli.main import build_parser
from dbmux.cli.render import format_report, render_status
from dbmux.core.gtid import Gtid, parse_gtid_list
from dbmux.replicator.status import (
    BEHIND,
    HALTED,
    NOT_STARTED,
    RETRYING,
    RUNNING,
    WAITING,
    StatusReport,
    TargetStatus,
    judge,
    read_state,
)
from dbmux.replicator.verify import BY_KEY, NONE, SUBSET, WHOLE, no_pk_note, replication, shard_expectation
from dbmux.replicator.verify_readers import AppliedGtid, ReplicationMeta
from dbmux.replicator.verify_report import Replication, Status, TableResult, TargetReport, VerifyReport
from dbmux.shardmap import ShardMap

NOW = 1_700_000_100.0  # the primary's clock, seconds


def _meta(applied: str = "", status: tuple[str, str] | None = ("running", ""), ts_s: float = NOW - 60,
          offsets: dict[int, int] | None = None) -> ReplicationMeta:
    gtids = parse_gtid_list(applied)
    return ReplicationMeta({d: AppliedGtid(g.seq, str(g), int(ts_s * 1000)) for d, g in gtids.items()},
                           offsets or {}, status)


GAP_DETAIL = "domain 0 waiting for seq 28 (505 held)"

# (primary position, target's stored state, Kafka backlog) -> (state, lag txns, lag s, in detail)
CASES = [
    # finding 11: every target behind a gap at 0-1-27, the primary at 0-1-533; nothing past it on the topic
    ("0-1-533", _meta("0-1-27"), 0, BEHIND, 506, 60.0, "506 transactions behind the primary"),
    ("0-1-533", _meta("0-1-27"), 0, BEHIND, 506, 60.0, "not published (is the binlog reader running?)"),
    ("0-1-533", _meta("0-1-27"), 505, BEHIND, 506, 60.0, "505 events on the topic past its position"),
    ("0-1-533", _meta("0-1-27", ("waiting for gap", GAP_DETAIL)), 505, WAITING, 506, 60.0, GAP_DETAIL),
    # caught up: running, lag 0, whatever an old gap row says (no gap can be open below the primary)
    ("0-1-533", _meta("0-1-533"), 0, RUNNING, 0, 0.0, ""),
    ("0-1-533", _meta("0-1-533", ("waiting for gap", GAP_DETAIL)), 0, RUNNING, 0, 0.0, ""),
    ("0-1-533", _meta("0-1-533", None), None, RUNNING, 0, 0.0, ""),
    ("", _meta("0-1-5"), 0, RUNNING, 0, 0.0, ""),  # (a primary with an empty binlog)
    # retrying: failing again and again (a lost connection, a lock wait): the error, and how far behind
    ("0-1-533", _meta("0-1-27", ("retrying", "3 attempts in a row failed; last: ApplyError: lost")), 505, RETRYING,
     506, 60.0, "3 attempts in a row failed; last: ApplyError: lost; 506 transactions behind the primary"),
    # halted: whatever the positions say
    ("0-1-533", _meta("0-1-27", ("halted", "Duplicate entry '100'")), 3, HALTED, 506, 60.0, "Duplicate entry"),
    ("0-1-533", _meta("0-1-533", ("halted", "undecodable event")), 3, HALTED, 0, 0.0, "undecodable event"),
    # per domain: behind in one is behind; a domain never applied counts from 0
    ("0-1-10,1-2-7", _meta("0-1-10,1-2-5"), None, BEHIND, 2, 60.0, "domain 1: applied 1-2-5, primary 1-2-7"),
    ("0-1-10,1-2-7", _meta("0-1-10"), None, BEHIND, 7, None, "domain 1: applied nothing, primary 1-2-7"),
    ("0-1-10", _meta("", ("running", "")), None, BEHIND, 10, None, "10 transactions behind"),
    ("0-1-10", _meta("0-1-9"), None, BEHIND, 1, 60.0, "1 transaction behind the primary"),
    # ahead of the primary (its binlog was reset): not behind, but said
    ("0-1-3", _meta("0-1-9"), 0, RUNNING, 0, 0.0, "ahead of the primary"),
    # MySQL GTID sets: the highest GTID per source UUID
    ("3e11fa47-71ca-11e1-9e33-c80aa9429562:1-20", _meta("3e11fa47-71ca-11e1-9e33-c80aa9429562:18"), None, BEHIND, 2,
     60.0, "2 transactions behind"),
]


@pytest.mark.parametrize("primary, meta, backlog, state, lag, lag_s, said", CASES)
def test_judge(primary, meta, backlog, state, lag, lag_s, said):
    j = judge(parse_gtid_list(primary), meta, now_s=NOW, kafka_backlog=backlog)
    assert (j.state, j.lag_txns) == (state, lag), j
    assert j.lag_s == (pytest.approx(lag_s) if lag_s is not None else None)
    assert said in j.detail
    assert j.caught_up == (state == RUNNING)


def test_judge_without_position_or_primary():
    j = judge(parse_gtid_list("0-1-5"), None)
    assert j.state == NOT_STARTED and j.lag_txns is None and not j.caught_up
    # the primary could not be read: the row's state, but never shown caught up
    j = judge(None, _meta("0-1-5"))
    assert j.state == RUNNING and j.lag_txns is None and not j.caught_up and "unknown" in j.detail
    assert judge(None, _meta("0-1-5", ("halted", "boom"))).state == HALTED


@pytest.mark.parametrize("max_lag, ts_behind_s, state", [
    (0.0, 0.5, BEHIND),  # default: any transaction behind is behind
    (5.0, 0.5, RUNNING),  # within --max-lag
    (5.0, 30.0, BEHIND),
])
def test_max_lag(max_lag, ts_behind_s, state):
    j = judge({"0": Gtid("0", "1", 12)}, _meta("0-1-10", ts_s=NOW - ts_behind_s), now_s=NOW, max_lag_s=max_lag)
    assert (j.state, j.lag_txns) == (state, 2)
    # never for a gap the replicator reported, or a halt
    gap = judge({"0": Gtid("0", "1", 12)}, _meta("0-1-10", ("waiting for gap", "x"), ts_s=NOW - ts_behind_s),
                now_s=NOW, max_lag_s=max_lag)
    assert gap.state == WAITING


def _status(*states: tuple[str, int | None]) -> StatusReport:
    return StatusReport("0-1-9", "", "", [TargetStatus(f"t{i}", "0-1-9", lag, 0.0, state, "")
                                          for i, (state, lag) in enumerate(states)])


@pytest.mark.parametrize("targets, code", [
    ([(RUNNING, 0), (RUNNING, 0)], 0),
    ([(RUNNING, 0), (BEHIND, 5)], 1),
    ([(WAITING, 5)], 1),
    ([(HALTED, 5)], 1),
    ([(NOT_STARTED, None)], 1),
    ([("unreachable", None)], 1),
    ([(RUNNING, None)], 1),  # the primary could not be read: caught up is not shown
    ([(RUNNING, 3)], 0),  # within --max-lag
])
def test_status_exit_code(targets, code):
    assert _status(*targets).exit_code == code


def test_render_status_keeps_the_columns():
    rep = StatusReport("0-1-533", "", "", [
        TargetStatus("replica1", "0-1-27", 506, 60.0, BEHIND, "506 transactions behind the primary", 0)])
    lines = render_status(rep).splitlines()
    assert lines[1].split()[:4] == ["replica1", "0-1-27", "506", "60.0"] and "behind: 506" in lines[1]
    assert lines[-1] == "primary at 0-1-533"
    rep = StatusReport("", "cannot read the primary at mysql://u:***@h:1: boom", "", [])
    assert render_status(rep).splitlines()[-1].startswith("cannot read the primary")


@pytest.mark.parametrize(("serves", "state", "reads"), [
    (True, RUNNING, "in rotation"), (True, BEHIND, "in rotation"), (True, HALTED, "out"), (True, WAITING, "out"),
    (True, "retrying", "out"), (True, "unreachable", "out"), (False, RUNNING, "-")])
def test_status_shows_each_targets_read_state(serves, state, reads):
    assert read_state(serves, state) == reads
    rep = StatusReport("0-1-5", "", "", [TargetStatus("replica1", "0-1-5", 0, 0.0, state, "", 0, reads)])
    lines = render_status(rep).splitlines()
    assert lines[0].split()[-2:] == ["reads", "state"] and lines[1][lines[0].index("reads"):].startswith(reads + " ")


SHARDS = ShardMap(1, ("shard_a", "shard_b"), reference_tables=("shop.ref_*",),
                  tables=(("shop.orders", ("customer_id",)),))
ALL_COPIES = ShardMap(1, ("shard_a", "shard_b"), unsharded="all")
NO_RULE = ShardMap(1, ("shard_a", "shard_b"), default_rule="none", default_shard="shard_b")


@pytest.mark.parametrize("smap, shard, table, pk, expected", [
    # finding 10: a table without a primary key lives on the default shard only
    (SHARDS, "shard_a", "logs", (), WHOLE),
    (SHARDS, "shard_b", "logs", (), NONE),
    (ALL_COPIES, "shard_b", "logs", (), WHOLE),  # unsharded = "all": a copy on every shard
    (NO_RULE, "shard_b", "items", ("id",), WHOLE),  # default_rule = none: single on the default shard
    (NO_RULE, "shard_a", "items", ("id",), NONE),
    (SHARDS, "shard_b", "ref_countries", (), WHOLE),  # reference
    (SHARDS, "shard_a", "items", ("id",), BY_KEY),
    (SHARDS, "shard_b", "orders", (), BY_KEY),  # explicit shard key, even without a primary key
])
def test_shard_expectation(smap, shard, table, pk, expected):
    assert shard_expectation(smap, shard, "shop", table, pk) == expected


@pytest.mark.parametrize("expects, primary, target, failed", [
    (WHOLE, 7, 7, False),
    (WHOLE, 7, 6, True),
    (WHOLE, 7, 8, True),
    (NONE, 7, 0, False),
    (NONE, 7, 1, True),
    (BY_KEY, 7, 3, False),
    (BY_KEY, 7, 8, True),
    (SUBSET, 7, 7, False),
])
def test_no_pk_note(expects, primary, target, failed):
    assert bool(no_pk_note(expects, primary, target)) == failed


def test_table_not_on_this_shard_is_not_a_failure():
    assert not TableResult("shop.logs", Status.NOT_ON_SHARD).failed
    assert TableResult("shop.logs", Status.NOT_ON_SHARD, 0, 1, note="1 rows on a shard that does not hold it").failed
    assert TableResult("shop.logs", Status.MISSING).failed


def _target(rep: Replication | None, *tables: TableResult, name: str = "r1") -> TargetReport:
    return TargetReport(name, "mysql://u:***@h:1", "full", list(tables), replication=rep)


EQUAL = TableResult("db.t", rows_primary=3, rows_target=3, chunks=1)


@pytest.mark.parametrize("rep, code, said", [
    (Replication("running", "", "0-1-533", "0-1-533", 0), 0, "all 1 targets equal and caught up"),
    (Replication("not started", "no position"), 0, "never replicated (compared by content only): r1"),
    # finding 10: equal tables, but the target is halted / behind / waiting: not "all equal"
    (Replication("halted", "Duplicate entry", "0-1-27", "0-1-533", 506), 1, "NOT CAUGHT UP on r1 (halted)"),
    (Replication("behind", "506 transactions behind", "0-1-27", "0-1-533", 506), 1,
     "NOT CAUGHT UP on r1 (behind by 506 transactions)"),
    (Replication("waiting for gap", "domain 0 waiting for seq 28", "0-1-27", "0-1-533", 506), 1,
     "NOT CAUGHT UP on r1 (waiting for gap)"),
    (Replication("running", "position unknown", "0-1-27", "", None), 1, "NOT CAUGHT UP on r1 (running)"),
])
def test_verify_fails_unless_caught_up(rep, code, said):
    report = VerifyReport([_target(rep, EQUAL)])
    text = format_report(report)
    assert report.exit_code == code, text
    assert said in text
    if code:
        assert "NOT CAUGHT UP" in text.splitlines()[0 + 1] and "all 1 targets" not in text


def test_verify_report_names_each_failure():
    lagging = _target(Replication("halted", "boom", "0-1-2", "0-1-3", 1), EQUAL, name="a")
    different = _target(Replication("running", "", "0-1-3", "0-1-3", 0), TableResult("db.u", Status.DIFFERENT),
                        name="b")
    both = _target(Replication("behind", "", "0-1-1", "0-1-3", 2), TableResult("db.u", Status.MISSING), name="c")
    text = format_report(VerifyReport([lagging, different, both]))
    assert text.splitlines()[-1] == ("verify: NOT CAUGHT UP on a (halted), c (behind by 2 transactions); "
                                     "DIFFERENT on b, c")
    broken = TargetReport("d", "mysql://u:***@h:1", "full", error="cannot read target 'd'")
    report = VerifyReport([lagging, broken])
    assert report.exit_code == 2 and format_report(report).splitlines()[-1] == (
        "verify: ERRORS on d; NOT CAUGHT UP on a (halted)")


def test_replication_from_judge():
    primary = parse_gtid_list("0-1-533")
    assert replication(primary, _meta("0-1-533")).caught_up
    rep = replication(primary, _meta("0-1-27", ("halted", "boom")))
    assert (rep.state, rep.applied, rep.primary, rep.behind, rep.caught_up) == ("halted", "0-1-27", "0-1-533", 506,
                                                                                False)
    assert replication(primary, None).caught_up  # never replicated: compared by content only
    assert not replication(None, _meta("0-1-27")).caught_up


def test_parser_options():
    args = build_parser().parse_args(["verify", "-c", "x.toml"])
    assert args.wait == 10.0
    assert build_parser().parse_args(["verify", "--wait", "0"]).wait == 0.0
    assert build_parser().parse_args(["status"]).max_lag == 0.0
    assert build_parser().parse_args(["status", "--max-lag", "2.5"]).max_lag == 2.5
    with pytest.raises(SystemExit):
        build_parser().parse_args(["verify", "--wait", "-1"])


def test_status_shows_the_result_cache_from_the_ingress_metrics():
    from dbmux.cli.render import render_cache

    text = """# HELP dbmux_ingress_cache_lookups_total Result cache lookups of cacheable reads
dbmux_ingress_cache_lookups_total{result="hit"} 90.0
dbmux_ingress_cache_lookups_total{result="miss"} 9.0
dbmux_ingress_cache_lookups_total{result="wait"} 1.0
dbmux_ingress_cache_evictions_total 3.0
dbmux_ingress_cache_bytes 1048576.0
dbmux_ingress_cache_entries 12.0
"""
    assert render_cache(text, 64 << 20) == ("result cache: 12 entries, 1.0 of 64 MiB, 90 hits of 100 lookups "
                                            "(90.0%), 3 evictions")
    assert "reports no cache" in render_cache("dbmux_other 1.0\n", 64 << 20)
