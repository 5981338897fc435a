"""[shardmap] config: every invalid value names its key; defaults; TOML tables; environment overrides."""

from __future__ import annotations

import pytest

from dbmux.core.config import load_config, parse_config
from dbmux.core.errors import ConfigError

PRIMARY = {"url": "mysql://app:s3cret@db1:3306"}


def raw(**shardmap) -> dict:
    shardmap.setdefault("shards", ["a", "b"])
    return {"primary": PRIMARY, "shardmap": shardmap}


@pytest.mark.parametrize("cfg, key, fragment", [
    (raw(version=0), "shardmap.version", "minimum 1"),
    (raw(version="2"), "shardmap.version", "expected an integer"),
    (raw(unsharded="some"), "shardmap.unsharded", "not one of default, all"),
    (raw(default_shard="z"), "shardmap.default_shard", "not in shardmap.shards"),
    (raw(vnodes=0), "shardmap.vnodes", "minimum 1"),
    (raw(placement="range"), "shardmap.ranges", "required when placement = 'range'"),
    (raw(placement="range", ranges=[0]), "shardmap.ranges", "1 bounds for 2 shards"),
    (raw(placement="range", ranges=[0, 0]), "shardmap.ranges", "twice"),
    (raw(placement="range", ranges=[0, "9"]), "shardmap.ranges", "list of integers"),
    (raw(placement="range", ranges=[0, True]), "shardmap.ranges", "list of integers"),
    (raw(ranges=[0, 10, 20]), "shardmap.ranges", "3 bounds for 2 shards"),
    (raw(tables=["shop.orders"]), "shardmap.tables", "expected a table"),
    (raw(tables={"shop.orders": "customer_id"}), 'shardmap.tables."shop.orders"', "list of strings"),
    (raw(tables={"orders": ["customer_id"]}), 'shardmap.tables."orders"', "exact db.table"),
    (raw(tables={"shop.*": ["customer_id"]}), 'shardmap.tables."shop.*"', "exact db.table"),
    (raw(tables={"a.b.c": ["x"]}), 'shardmap.tables."a.b.c"', "exact db.table"),
    (raw(tables={"shop.orders": []}), 'shardmap.tables."shop.orders"', "at least one key column"),
    (raw(tables={"shop.orders": ["a", "A"]}), 'shardmap.tables."shop.orders"', "twice"),
    (raw(tables={"shop.orders": ["a"], "Shop.Orders": ["b"]}), 'shardmap.tables."Shop.Orders"', "same table"),
    (raw(placement="range", ranges=[0, 9], tables={"s.t": ["a", "b"]}), 'shardmap.tables."s.t"', "exactly one"),
    (raw(reference_tables=["shop.*"], tables={"shop.orders": ["a"]}), 'shardmap.tables."shop.orders"',
     "reference_tables"),
    (raw(reference_tables=[""]), "shardmap.reference_tables", "empty pattern"),
    (raw(shards=["a", ""]), "shardmap.shards", "empty shard name"),
    (raw(shards=["a", "a"]), "shardmap.shards", "twice"),
    (raw(bogus=1), "shardmap.bogus", "unknown key"),
])
def test_errors_name_the_key(cfg, key, fragment):
    with pytest.raises(ConfigError) as info:
        parse_config(cfg, {})
    assert info.value.key == key
    assert fragment in str(info.value)
    assert "s3cret" not in str(info.value)


def test_defaults():
    sm = parse_config({"primary": PRIMARY}, {}).shardmap
    assert (sm.version, sm.tables, sm.unsharded, sm.default_shard, sm.vnodes, sm.ranges) == \
        (1, {}, "default", "", 128, ())


def test_toml_tables_section(tmp_path):
    path = tmp_path / "dbmux.toml"
    path.write_text('[primary]\nurl = "mysql://u:p@h:1"\n'
                    '[shardmap]\nshards = ["a", "b", "c"]\nversion = 4\nplacement = "range"\n'
                    'ranges = [-100, 0, 1000]\ndefault_shard = "b"\nunsharded = "all"\n'
                    '[shardmap.tables]\n"shop.orders" = ["customer_id"]\n"shop.lines" = ["order_id"]\n')
    sm = load_config(path, env={}).shardmap
    assert sm.tables == {"shop.orders": ("customer_id",), "shop.lines": ("order_id",)}
    assert (sm.version, sm.ranges, sm.default_shard, sm.unsharded) == (4, (-100, 0, 1000), "b", "all")


def test_ranges_need_not_be_sorted_after_a_split():
    # shard c was split off a at 50: the bound list follows the shard list, not the key order
    sm = parse_config(raw(shards=["a", "b", "c"], placement="range", ranges=[0, 100, 50]), {}).shardmap
    assert sm.ranges == (0, 100, 50)


@pytest.mark.parametrize("env, attr, expected", [
    ({"DBMUX_SHARDMAP_VERSION": "7"}, "version", 7),
    ({"DBMUX_SHARDMAP_VNODES": "16"}, "vnodes", 16),
    ({"DBMUX_SHARDMAP_UNSHARDED": "all"}, "unsharded", "all"),
    ({"DBMUX_SHARDMAP_DEFAULT_SHARD": "b"}, "default_shard", "b"),
    ({"DBMUX_SHARDMAP_PLACEMENT": "range", "DBMUX_SHARDMAP_RANGES": "0, 500"}, "ranges", (0, 500)),
    ({"DBMUX_SHARDMAP_TABLES": "shop.orders=customer_id; shop.lines=order_id,line"}, "tables",
     {"shop.orders": ("customer_id",), "shop.lines": ("order_id", "line")}),
    ({"DBMUX_SHARDMAP_SHARDS": "x,y,z"}, "shards", ("x", "y", "z")),
])
def test_environment_overrides(env, attr, expected):
    assert getattr(parse_config(raw(), env).shardmap, attr) == expected


@pytest.mark.parametrize("env, key", [
    ({"DBMUX_SHARDMAP_VERSION": "x"}, "shardmap.version (from $DBMUX_SHARDMAP_VERSION)"),
    ({"DBMUX_SHARDMAP_RANGES": "0,a"}, "shardmap.ranges (from $DBMUX_SHARDMAP_RANGES)"),
    ({"DBMUX_SHARDMAP_TABLES": "shop.orders"}, "shardmap.tables (from $DBMUX_SHARDMAP_TABLES)"),
])
def test_bad_environment_values_name_the_variable(env, key):
    with pytest.raises(ConfigError) as info:
        parse_config(raw(), env)
    assert info.value.key == key
