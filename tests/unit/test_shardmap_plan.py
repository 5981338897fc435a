"""Resharding plans: move() agrees with locate() on both versions; expected fractions are exact."""

from __future__ import annotations

import math

import pytest

from dbmux.shardmap import ShardMap, ShardMapError
from dbmux.shardmap.plan import Move, ReshardPlan, plan_add_shard

KEYS = [(i,) for i in range(10_000)]


def smap(shards=("a", "b"), **kw) -> ShardMap:
    return ShardMap(version=kw.pop("version", 1), shards=tuple(shards), **kw)


@pytest.mark.parametrize("placement, n", [("jump", 1), ("jump", 2), ("jump", 4), ("jump", 9), ("ring", 2), ("ring", 5)])
def test_move_agrees_with_locate_and_fractions_with_reality(placement, n):
    old = smap([f"s{i}" for i in range(n)], placement=placement)
    plan = plan_add_shard(old, "new")
    assert plan.old is old and plan.new == old.with_shard("new") and plan.added == ("new",)
    counts: dict[tuple[str, str], int] = {}
    for k in KEYS:
        before, after = old.locate("db", "t", k), plan.new.locate("db", "t", k)
        m = plan.move("db", "t", k)
        assert m == (None if before == after else Move(before, after))
        if m:
            counts[(m.from_shard, m.to_shard)] = counts.get((m.from_shard, m.to_shard), 0) + 1
    fractions = plan.expected_fractions()
    assert set(fractions) == {(s, "new") for s in old.shards}
    assert math.isclose(sum(fractions.values()), 1 / (n + 1), rel_tol=0.05 if placement == "ring" else 1e-12)
    for pair, share in fractions.items():  # observed within a few standard deviations of expected
        sd = math.sqrt(len(KEYS) * share * (1 - share))
        assert abs(counts.get(pair, 0) - share * len(KEYS)) < 5 * sd + 5, (pair, counts, fractions)


def test_jump_fractions_are_exact_per_shard():
    plan = plan_add_shard(smap(["a", "b", "c", "d"]), "e")
    assert plan.expected_fractions() == {(s, "e"): pytest.approx(1 / 20) for s in "abcd"}


def test_jump_fractions_for_several_added_shards_and_renames():
    plan = ReshardPlan(smap(["a", "b"]), smap(["a", "b", "c", "d"], version=3))
    assert plan.expected_fractions() == {(s, t): pytest.approx(1 / 8) for s in "ab" for t in "cd"}
    renamed = ReshardPlan(smap(["a", "b"]), smap(["a", "x"], version=2))
    assert renamed.expected_fractions() == {("b", "x"): pytest.approx(1 / 2)}


def test_reference_and_single_tables_do_not_move():
    old = smap(reference_tables=("shop.countries",), default_rule="none", tables={"shop.orders": ["cid"]})
    plan = plan_add_shard(old, "c")
    assert all(plan.move("shop", "countries", k) is None for k in KEYS[:100])
    assert all(plan.move("shop", "log", k) is None for k in KEYS[:100])  # single on the default shard
    assert any(plan.move("shop", "orders", k) for k in KEYS[:100])


def test_range_plan_moves_exactly_the_split_and_has_no_expected_fractions():
    old = smap(placement="range", ranges=(0, 100))
    plan = plan_add_shard(old, "c", lower_bound=50)
    assert plan.move("db", "t", (49,)) is None
    assert plan.move("db", "t", (50,)) == Move("a", "c")
    assert plan.move("db", "t", (99,)) == Move("a", "c")
    assert plan.move("db", "t", (100,)) is None
    with pytest.raises(ShardMapError, match="depends on the data"):
        plan.expected_fractions()
    with pytest.raises(ShardMapError, match="lower bound"):
        plan_add_shard(old, "c")


def test_plans_go_forward_with_one_placement():
    with pytest.raises(ShardMapError, match="later version"):
        ReshardPlan(smap(version=2), smap(version=2))
    with pytest.raises(ShardMapError, match="one placement"):
        ReshardPlan(smap(), smap(version=2, placement="ring")).expected_fractions()
