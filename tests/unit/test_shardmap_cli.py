"""``dbmux shardmap`` locate/show/plan through dbmux.cli.main on a temporary config (no database)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dbmux.cli.main import main
from dbmux.shardmap import ShardMap

CONFIG = """
[primary]
url = "mysql://u:p@127.0.0.1:1"

[shardmap]
shards = ["shard_a", "shard_b", "shard_c"]
reference_tables = ["shop.countries"]

[shardmap.tables]
"shop.orders" = ["customer_id"]
"shop.lines" = ["order_id", "line_no"]
"""


@pytest.fixture
def config(tmp_path: Path) -> str:
    path = tmp_path / "dbmux.toml"
    path.write_text(CONFIG)
    return str(path)


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def expected_map() -> ShardMap:
    return ShardMap(1, ("shard_a", "shard_b", "shard_c"), reference_tables=("shop.countries",),
                    tables={"shop.orders": ["customer_id"], "shop.lines": ["order_id", "line_no"]})


@pytest.mark.parametrize("table, key", [
    ("shop.orders", ("5",)), ("shop.orders", ("-42",)), ("shop.users", ("abc",)), ("Shop.Orders", ("77",)),
    ("shop.lines", ("10", "2")),
])
def test_locate_prints_just_the_shard(capsys, config, table, key):
    code, out, err = run(capsys, "shardmap", "locate", "-c", config, "--offline", table, *key)
    db, tbl = table.split(".")
    assert (code, err) == (0, "")
    assert out == expected_map().locate(db, tbl, key) + "\n"


def test_integers_given_as_text_locate_like_integers(capsys, config):
    for i in range(40):
        code, out, _ = run(capsys, "shardmap", "locate", "-c", config, "--offline", "shop.orders", str(i))
        assert code == 0 and out.strip() == expected_map().locate("shop", "orders", (i,))


def test_locate_explain(capsys, config):
    code, out, err = run(capsys, "shardmap", "locate", "-c", config, "--offline", "shop.orders", "5", "--explain")
    assert code == 0 and out.strip() in ("shard_a", "shard_b", "shard_c")
    assert "map version 1" in err and "hash 0x4a015889636f9554" in err and "canonical 010000000135" in err
    code, out2, err2 = run(capsys, "-v", "shardmap", "locate", "-c", config, "--offline", "shop.orders", "5")
    assert code == 0 and out2 == out and "hash 0x4a015889636f9554" in err2


@pytest.mark.parametrize("argv, fragment", [
    (("shoporders", "5"), "not a table name of the form db.table"),
    (("shop.", "5"), "not a table name"),
    (("a.b.c", "5"), "not a table name"),
    (("shop.countries", "5"), "reference table"),
    (("shop.lines", "5"), "expected 2 key value"),
])
def test_locate_errors_exit_2(capsys, config, argv, fragment):
    code, out, err = run(capsys, "shardmap", "locate", "-c", config, "--offline", *argv)
    assert code == 2 and out == "" and fragment in err


def test_locate_with_a_bad_config_exits_2(capsys, tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text(CONFIG.replace('shards = ["shard_a", "shard_b", "shard_c"]',
                                   'shards = ["shard_a"]\ndefault_shard = "nope"'))
    code, _, err = run(capsys, "shardmap", "locate", "-c", str(path), "--offline", "shop.orders", "5")
    assert code == 2 and "shardmap.default_shard" in err


def test_show(capsys, config):
    code, out, _ = run(capsys, "shardmap", "show", "-c", config)
    assert code == 0
    for fragment in ("version: 1", "placement: jump", "0: shard_a", "2: shard_c", "shop.countries: reference",
                     "shop.lines: sharded by (order_id, line_no)", "sharded by the primary key"):
        assert fragment in out


def test_plan_add_shard(capsys, config):
    code, out, _ = run(capsys, "shardmap", "plan", "-c", config, "--offline", "--add-shard", "shard_d")
    assert code == 0
    assert "version: 1 -> 2" in out
    assert "shards: shard_a, shard_b, shard_c, shard_d" in out
    for s in ("shard_a", "shard_b", "shard_c"):
        assert f"{s} -> shard_d: 8.33%" in out
    assert "total: 25.00%" in out


def test_plan_range_needs_a_bound(capsys, tmp_path):
    path = tmp_path / "range.toml"
    path.write_text(CONFIG.replace('reference_tables', 'placement = "range"\nranges = [0, 100, 200]\n'
                                                       'reference_tables').replace(', "line_no"', ""))
    code, _, err = run(capsys, "shardmap", "plan", "-c", str(path), "--offline", "--add-shard", "shard_d")
    assert code == 2 and "lower bound" in err
    code, out, _ = run(capsys, "shardmap", "plan", "-c", str(path), "--offline", "--add-shard", "shard_d",
                       "--lower-bound", "150")
    assert code == 0 and "ranges = [0, 100, 200, 150]" in out and "depends on the data" in out
