"""Shard map model: rules, locate, owners, placements (jump, ring, range) and adding a shard."""

from __future__ import annotations

from decimal import Decimal

import pytest

from dbmux.core.config import parse_config
from dbmux.shardmap import ShardMap, ShardMapError, TableRule, shard_hash
from dbmux.shardmap.hashing import jump_hash

KEYS = [(i,) for i in range(10_000)]


def smap(**kw) -> ShardMap:
    kw.setdefault("version", 1)
    kw.setdefault("shards", ("a", "b"))
    return ShardMap(**kw)


def moved(old: ShardMap, new: ShardMap, keys=KEYS) -> list[tuple[tuple, str, str]]:
    out = []
    for k in keys:
        before, after = old.locate("db", "t", k), new.locate("db", "t", k)
        if before != after:
            out.append((k, before, after))
    return out


# -- rule() decision table ---------------------------------------------------------------------------
RULES = dict(reference_tables=("shop.countries", "ref.*"), tables={"shop.orders": ["Customer_ID"],
                                                                      "Shop.Lines": ["order_id", "line"]})


@pytest.mark.parametrize("kw, db, table, pk, expected", [
    # reference patterns win over everything (case-insensitive)
    ({}, "shop", "countries", ("id",), TableRule("reference")),
    ({}, "SHOP", "Countries", (), TableRule("reference")),
    ({}, "ref", "anything", ("id",), TableRule("reference")),
    # explicit [shardmap.tables] entry: sharded by that key, lower-case, whatever the PK
    ({}, "shop", "orders", ("id",), TableRule("sharded", ("customer_id",))),
    ({}, "shop", "ORDERS", (), TableRule("sharded", ("customer_id",))),
    ({}, "shop", "lines", ("id",), TableRule("sharded", ("order_id", "line"))),
    # default_rule primary_key: sharded by the PK (lower-cased)
    ({}, "shop", "users", ("ID",), TableRule("sharded", ("id",))),
    ({}, "shop", "pairs", ("a", "b"), TableRule("sharded", ("a", "b"))),
    # no PK: single on the default shard, or reference with unsharded = all
    ({}, "shop", "log", (), TableRule("single", shard="a")),
    ({"default_shard": "b"}, "shop", "log", (), TableRule("single", shard="b")),
    ({"unsharded": "all"}, "shop", "log", (), TableRule("reference")),
    # default_rule none: only explicit entries are sharded
    ({"default_rule": "none"}, "shop", "users", ("id",), TableRule("single", shard="a")),
    ({"default_rule": "none", "unsharded": "all"}, "shop", "users", ("id",), TableRule("reference")),
    ({"default_rule": "none"}, "shop", "orders", ("id",), TableRule("sharded", ("customer_id",))),
    ({"default_rule": "none"}, "shop", "countries", ("id",), TableRule("reference")),
])
def test_rule_decision_table(kw, db, table, pk, expected):
    m = smap(**RULES, **kw)
    assert m.rule(db, table, pk) == expected


@pytest.mark.parametrize("rule, owners", [
    (TableRule("sharded", ("id",)), ("a", "b", "c")),
    (TableRule("reference"), ("a", "b", "c")),
    (TableRule("single", shard="b"), ("b",)),
])
def test_owners(rule, owners):
    assert smap(shards=("a", "b", "c")).owners(rule) == owners


def test_owners_of_a_shard_not_in_the_map():
    with pytest.raises(ShardMapError, match="'z'"):
        smap().owners(TableRule("single", shard="z"))


@pytest.mark.parametrize("kind, key, shard", [
    ("bogus", (), None), ("sharded", (), None), ("reference", ("id",), None), ("single", (), None),
    ("reference", (), "a"),
])
def test_table_rule_is_checked(kind, key, shard):
    with pytest.raises(ShardMapError):
        TableRule(kind, key, shard)


# -- locate -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("placement, extra", [("jump", {}), ("ring", {}), ("range", {"ranges": (0, 5000)})])
def test_locate_is_deterministic_and_type_blind(placement, extra):
    m1 = smap(placement=placement, **extra)
    m2 = smap(placement=placement, **extra)
    for i in (0, 5, 17, 4999, 5000, 123456):
        owners = {m.locate("db", "t", k) for m in (m1, m2)
                  for k in ((i,), (str(i),), (Decimal(f"{i}.00"),), (float(i),))}
        assert len(owners) == 1, (placement, i, owners)


def test_five_string_five_and_decimal_five_agree_on_every_placement():
    for m in (smap(shards=tuple("abcdefg")), smap(shards=tuple("abcdefg"), placement="ring")):
        assert len({m.locate("db", "t", k) for k in ((5,), ("5",), (Decimal("5.00"),))}) == 1


def test_locate_jump_is_jump_hash_of_shard_hash():
    m = smap(shards=("s0", "s1", "s2", "s3"))
    for k in KEYS[:200]:
        assert m.locate("db", "t", k) == m.shards[jump_hash(shard_hash(k), 4)]


def test_locate_follows_the_rules_it_can_decide_without_the_schema():
    m = smap(**RULES)
    with pytest.raises(ShardMapError, match="reference table"):
        m.locate("shop", "countries", (1,))
    with pytest.raises(ShardMapError, match="expected 2 key value"):
        m.locate("shop", "lines", (1,))
    assert m.locate("shop", "lines", (1, 2)) in ("a", "b")
    assert smap(default_rule="none", default_shard="b").locate("x", "y", (1,)) == "b"
    with pytest.raises(ShardMapError, match="non-empty tuple"):
        m.locate("shop", "users", ())


@pytest.mark.parametrize("db, table", [("", "t"), ("db", "")])
def test_locate_needs_a_table_name(db, table):
    with pytest.raises(ShardMapError, match="db.table|database and a table"):
        smap().locate(db, table, (1,))


def test_distribution_is_roughly_even():
    for placement in ("jump", "ring"):
        m = smap(shards=("a", "b", "c", "d"), placement=placement)
        counts = {s: 0 for s in m.shards}
        for k in KEYS:
            counts[m.locate("db", "t", k)] += 1
        assert all(1800 < c < 3200 for c in counts.values()), (placement, counts)


# -- adding a shard: stability -------------------------------------------------------------------------
@pytest.mark.parametrize("placement, n, low, high", [
    ("jump", 2, 0.25, 0.42),  # 2 -> 3: expected 1/3
    ("jump", 4, 0.16, 0.24),  # 4 -> 5: expected 1/5
    ("ring", 2, 0.18, 0.50),
    ("ring", 4, 0.12, 0.30),
])
def test_adding_a_shard_moves_about_one_in_n_and_only_to_it(placement, n, low, high):
    old = smap(shards=tuple(f"s{i}" for i in range(n)), placement=placement)
    new = old.with_shard("new")
    assert new.version == old.version + 1
    assert new.shards == old.shards + ("new",)
    moves = moved(old, new)
    assert low < len(moves) / len(KEYS) < high, len(moves)
    assert {to for _, _, to in moves} == {"new"}
    assert {frm for _, frm, _ in moves} == set(old.shards)  # taken from every old shard


def test_with_shard_rejects_duplicates_and_stray_bounds():
    m = smap()
    with pytest.raises(ShardMapError, match="already"):
        m.with_shard("a")
    with pytest.raises(ShardMapError, match="only applies to placement 'range'"):
        m.with_shard("c", lower_bound=10)
    with pytest.raises(ShardMapError):
        m.with_shard("")


def test_with_shard_keeps_the_rules():
    m = smap(**RULES, default_shard="b", vnodes=16, placement="ring", version=7)
    n = m.with_shard("c")
    assert (n.version, n.tables, n.reference_tables, n.default_shard, n.vnodes, n.placement) == \
        (8, m.tables, m.reference_tables, "b", 16, "ring")


# -- range placement ------------------------------------------------------------------------------------
def test_range_placement_and_split():
    m = smap(shards=("a", "b", "c"), placement="range", ranges=(0, 1000, 5000))
    cases = {-10**12: "a", -1: "a", 0: "a", 999: "a", 1000: "b", 4999: "b", 5000: "c", 10**15: "c"}
    for key, shard in cases.items():
        assert m.locate("db", "t", (key,)) == shard
        assert m.locate("db", "t", (str(key),)) == shard
    with pytest.raises(ShardMapError, match="split"):
        m.with_shard("d")
    with pytest.raises(ShardMapError, match="already shard 'b'"):
        m.with_shard("d", lower_bound=1000)
    split = m.with_shard("d", lower_bound=2500)  # splits b: [1000, 2500) stays, [2500, 5000) moves to d
    assert split.shards == ("a", "b", "c", "d") and split.ranges == (0, 1000, 5000, 2500)
    keys = [(k,) for k in range(-100, 6000, 7)]
    moves = moved(m, split, keys)
    assert moves and all(f == "b" and t == "d" and 2500 <= k[0] < 5000 for k, f, t in moves)
    assert len(moves) == len([k for k in keys if 2500 <= k[0] < 5000])


def test_range_split_below_the_first_bound_takes_the_low_end():
    m = smap(placement="range", ranges=(0, 100))
    low = m.with_shard("z", lower_bound=-50)
    assert low.locate("db", "t", (-1000,)) == "z"
    assert low.locate("db", "t", (-50,)) == "z"
    assert low.locate("db", "t", (-1,)) == "z"
    assert low.locate("db", "t", (0,)) == "a"


@pytest.mark.parametrize("key", [("abc",), ("5.5",), ("05",), ("5\n",), ("-0",), (1.5,), (None,),
                                 (Decimal("2.5"),), (1, 2)])
def test_range_needs_one_integer_key_and_names_the_table(key):
    m = smap(placement="range", ranges=(0, 100))
    with pytest.raises(ShardMapError, match="shop.orders"):
        m.locate("shop", "orders", key)


def test_range_rule_refuses_a_composite_primary_key():
    m = smap(placement="range", ranges=(0, 100))
    assert m.rule("shop", "users", ("id",)) == TableRule("sharded", ("id",))
    with pytest.raises(ShardMapError, match="shop.pairs"):
        m.rule("shop", "pairs", ("a", "b"))


@pytest.mark.parametrize("kw, fragment", [
    ({"shards": ()}, "no shards"),
    ({"shards": ("a", "a")}, "twice"),
    ({"version": 0}, "version"),
    ({"placement": "modulo"}, "placement"),
    ({"default_shard": "z"}, "default shard"),
    ({"vnodes": 0}, "vnodes"),
    ({"placement": "range"}, "one lower bound per shard"),
    ({"placement": "range", "ranges": (5, 5)}, "distinct"),
    ({"ranges": (0, 5)}, "only apply to placement 'range'"),
    ({"placement": "range", "ranges": (0, 5), "tables": {"a.b": ["x", "y"]}}, "exactly one"),
    ({"tables": {"nodot": ["x"]}}, "db.table"),
    ({"tables": {"a.b": []}}, "at least one"),
])
def test_invalid_maps_raise(kw, fragment):
    with pytest.raises(ShardMapError, match=fragment):
        smap(**kw)


def test_from_config_and_describe():
    cfg = parse_config({"primary": {"url": "mysql://u:p@h:1"},
                        "shardmap": {"shards": ["x", "y"], "version": 3, "placement": "range", "ranges": [0, 10],
                                     "reference_tables": ["shop.countries"], "unsharded": "all",
                                     "tables": {"shop.orders": ["customer_id"]}}}, {})
    m = ShardMap.from_config(cfg.shardmap)
    assert (m.version, m.shards, m.placement, m.ranges, m.unsharded, m.default_shard) == \
        (3, ("x", "y"), "range", (0, 10), "all", "x")
    assert m.rule("shop", "orders", ()) == TableRule("sharded", ("customer_id",))
    text = "\n".join(m.describe())
    for fragment in ("version: 3", "placement: range", "x: keys -inf .. 9", "y: keys 10 .. +inf",
                     "shop.countries: reference", "shop.orders: sharded by (customer_id)"):
        assert fragment in text
    with pytest.raises(ShardMapError, match="no shards"):
        ShardMap.from_config(parse_config({"primary": {"url": "mysql://u:p@h:1"}}, {}).shardmap)


def test_maps_are_values():
    assert smap() == smap() and hash(smap()) == hash(smap())
    assert smap().with_shard("c") == smap(shards=("a", "b", "c"), version=2)


def test_map_round_trips_through_its_recorded_form():
    m = ShardMap(version=3, shards=("a", "b", "c"), placement="ring", reference_tables=("d.ref*",),
                 tables={"d.orders": ("customer_id",)}, vnodes=16)
    again = ShardMap.from_dict(m.to_dict())
    assert again == m and again.to_dict() == m.to_dict()
    assert [again.locate("d", "t", (k,)) for k in range(50)] == [m.locate("d", "t", (k,)) for k in range(50)]


def test_the_map_history_table_is_a_reference_table():
    m = ShardMap(version=1, shards=("a", "b"))
    assert m.rule("dbmux_shardmap", "versions", ("version",)).kind == "reference"
