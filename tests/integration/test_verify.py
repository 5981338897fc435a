"""verify against the real stack: the same data written directly to the primary, replica1 and a PostgreSQL
shard server; verify says equal; then one changed row on the replica and one deleted row on PostgreSQL
are found, by table and by key."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import uuid
from decimal import Decimal

import asyncpg
import pymysql
import pytest

from dbmux.cli.main import main
from dbmux.cli.render import format_report
from dbmux.core.config import parse_config
from dbmux.replicator.verify import Status, verify

pytestmark = pytest.mark.integration

ITEMS = 3000  # > 2.5 chunks of 1000
# target names of their own: verify also reads a target's stored replication state, and other tests run
# replicators named replica1 etc. on the same servers; these targets were never replicated
_RUN = uuid.uuid4().hex[:6]
R1, R2, PG, GONE = f"vr1_{_RUN}", f"vr2_{_RUN}", f"vpg_{_RUN}", f"vgone_{_RUN}"

MYSQL_DDL = [
    """CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(50) NOT NULL, price DECIMAL(10,2) NOT NULL,
       created DATETIME(6) NOT NULL, day DATE, data BLOB, note VARCHAR(20) NULL, flag TINYINT(1) NOT NULL,
       ratio DOUBLE, code CHAR(4))""",
    "CREATE TABLE pairs (a INT NOT NULL, b VARCHAR(10) NOT NULL, v INT NULL, PRIMARY KEY (a, b))",
    "CREATE TABLE events (id BIGINT PRIMARY KEY, at DATETIME(6) NOT NULL, payload JSON)",
    "CREATE TABLE nopk (x INT, y VARCHAR(10))",
]
PG_DDL = [
    """CREATE TABLE items (id integer PRIMARY KEY, name varchar(50) NOT NULL, price numeric(10,2) NOT NULL,
       created timestamp(6) NOT NULL, day date, data bytea, note varchar(20), flag boolean NOT NULL,
       ratio double precision, code char(4))""",
    "CREATE TABLE pairs (a integer NOT NULL, b varchar(10) NOT NULL, v integer, PRIMARY KEY (a, b))",
    "CREATE TABLE events (id bigint PRIMARY KEY, at timestamp(6) NOT NULL, payload jsonb)",
    "CREATE TABLE nopk (x integer, y varchar(10))",
]


def _items():
    base = dt.datetime(2024, 1, 1, 0, 0, 0)
    for i in range(1, ITEMS + 1):
        yield (i, f"item-{i}-ü", Decimal(i % 1000) + Decimal("0.50"), base + dt.timedelta(seconds=i, microseconds=i),
               dt.date(2024, 1, 1) + dt.timedelta(days=i % 365), bytes([i % 256, 0, 255]) if i % 7 else None,
               None if i % 3 else f"n{i}", i % 2, i / 7, "ab" if i % 5 else None)


PAIRS = [(a, f"k{b}", None if (a + b) % 4 == 0 else a * b) for a in range(10) for b in range(5)]
EVENTS = [(i, dt.datetime(2024, 2, 1, 12, 0, 0, i), json.dumps({"n": i, "tags": ["x", "y"], "ok": True}))
          for i in range(1, 21)]
NOPK = [(i % 3, f"y{i}") for i in range(7)]


def _mysql(dsn, db=None):
    return pymysql.connect(host=dsn.host, port=dsn.port, user=dsn.user, password=dsn.password, database=db,
                           autocommit=True, charset="utf8mb4")


def _fill_mysql(dsn, db: str, *, no_binlog: bool) -> None:
    conn = _mysql(dsn)
    try:
        with conn.cursor() as cur:
            if no_binlog:
                try:  # keep concurrently running binlog readers from replicating this test's data
                    cur.execute("SET SESSION sql_log_bin = 0")
                except pymysql.MySQLError:
                    pass
            cur.execute(f"CREATE DATABASE `{db}`")
            cur.execute(f"USE `{db}`")
            for ddl in MYSQL_DDL:
                cur.execute(ddl)
            cur.executemany("INSERT INTO items VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)", list(_items()))
            cur.executemany("INSERT INTO pairs VALUES (%s,%s,%s)", PAIRS)
            cur.executemany("INSERT INTO events VALUES (%s,%s,%s)", EVENTS)
            cur.executemany("INSERT INTO nopk VALUES (%s,%s)", NOPK)
    finally:
        conn.close()


async def _pg(dsn):
    return await asyncpg.connect(host=dsn.host, port=dsn.port, user=dsn.user, password=dsn.password,
                                 database=dsn.database)


async def _fill_pg(dsn, schema: str) -> None:
    conn = await _pg(dsn)
    try:
        await conn.execute(f'CREATE SCHEMA "{schema}"')
        await conn.execute(f'SET search_path TO "{schema}"')
        for ddl in PG_DDL:
            await conn.execute(ddl)
        items = [r[:7] + (bool(r[7]),) + r[8:] for r in _items()]
        await conn.copy_records_to_table("items", records=items, schema_name=schema)
        await conn.copy_records_to_table("pairs", records=PAIRS, schema_name=schema)
        await conn.executemany("INSERT INTO events VALUES ($1, $2, $3::jsonb)", EVENTS)
        await conn.copy_records_to_table("nopk", records=NOPK, schema_name=schema)
    finally:
        await conn.close()


async def _pg_exec(dsn, sql: str) -> None:
    conn = await _pg(dsn)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def _mysql_exec(dsn, db: str, sql: str) -> None:
    conn = _mysql(dsn, db)
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
    finally:
        conn.close()


@pytest.fixture(scope="module")
def verify_db(stack):
    db = f"vt_{uuid.uuid4().hex[:10]}"
    replica, shard = stack.replicas[0], stack.shards[0]
    try:
        _fill_mysql(stack.primary, db, no_binlog=True)
        _fill_mysql(replica, db, no_binlog=False)
        asyncio.run(_fill_pg(shard, db))
        yield db
    finally:
        for dsn, no_binlog in ((stack.primary, True), (replica, False)):
            conn = _mysql(dsn)
            with conn.cursor() as cur:
                if no_binlog:
                    try:
                        cur.execute("SET SESSION sql_log_bin = 0")
                    except pymysql.MySQLError:
                        pass
                cur.execute(f"DROP DATABASE IF EXISTS `{db}`")
            conn.close()
        asyncio.run(_pg_exec(shard, f'DROP SCHEMA IF EXISTS "{db}" CASCADE'))


def _config(stack, db: str, *, shard: bool = False, extra_targets: dict | None = None):
    pg = {"url": stack.shards[0].url(), "tables": [f"{db}.*"]}
    if shard:
        pg["shard"] = "shard_a"
    targets = {R1: {"url": stack.replicas[0].url(), "tables": [f"{db}.*"]}, PG: pg}
    targets.update(extra_targets or {})
    return parse_config({"primary": {"url": stack.primary.url()}, "shardmap": {"shards": ["shard_a"]},
                         "targets": targets}, {})


def _by_table(report):
    return {t.name: {r.table.split(".", 1)[1]: r for r in t.tables} for t in report.targets}


def test_verify_equal_then_finds_changed_and_deleted_rows(stack, verify_db, tmp_path, capsys):
    db = verify_db
    cfg = _config(stack, db)
    report = asyncio.run(verify(cfg))
    text = format_report(report)
    assert report.exit_code == 0, text
    tables = _by_table(report)
    for target in (R1, PG):
        assert set(tables[target]) == {"items", "pairs", "events", "nopk"}, text
        items = tables[target]["items"]
        assert (items.status, items.rows_primary, items.rows_target, items.chunks) == (Status.EQUAL, ITEMS, ITEMS, 3)
        assert tables[target]["pairs"].status is Status.EQUAL
        assert tables[target]["events"].status is Status.EQUAL
        assert tables[target]["nopk"].status is Status.NOT_VERIFIABLE and not tables[target]["nopk"].failed
    assert "all 2 targets equal" in text

    _mysql_exec(stack.replicas[0], db, "UPDATE items SET price = price + 1 WHERE id = 1234")
    asyncio.run(_pg_exec(stack.shards[0], f"DELETE FROM \"{db}\".pairs WHERE a = 7 AND b = 'k3'"))

    report = asyncio.run(verify(cfg))
    text = format_report(report, details=True)
    assert report.exit_code == 1, text
    tables = _by_table(report)
    assert {n for n, r in tables[R1].items() if r.failed} == {"items"}, text
    assert {n for n, r in tables[PG].items() if r.failed} == {"pairs"}, text
    assert tables[R1]["items"].status is Status.DIFFERENT
    assert tables[PG]["pairs"].status is Status.DIFFERENT
    assert tables[PG]["pairs"].rows_target == len(PAIRS) - 1
    assert "changed: key (1234)" in text
    assert "differing key range: (1000) < key <= (2000)" in text
    assert "missing on target: key (7, k3)" in text

    # the CLI entry point, from a TOML file, with --details and --target
    cfg_file = tmp_path / "verify.toml"
    cfg_file.write_text(
        f'[primary]\nurl = "{stack.primary.url()}"\n'
        f'[targets.{R1}]\nurl = "{stack.replicas[0].url()}"\ntables = ["{db}.*"]\n')
    code = main(["verify", "-c", str(cfg_file), "--target", R1, "--details", "--chunk-rows", "500"])
    out = capsys.readouterr().out
    assert code == 1, out
    assert "changed: key (1234)" in out and "DIFFERENT" in out
    assert stack.replicas[0].password not in out

    # rows only on the target: past the primary's last key, and between two primary keys
    _mysql_exec(stack.replicas[0], db, "INSERT INTO events VALUES (999, '2024-01-01', NULL)")
    report = asyncio.run(verify(cfg, target=R1))
    text = format_report(report, details=True)
    assert {n for n, r in _by_table(report)[R1].items() if r.failed} == {"items", "events"}, text
    assert "extra on target: key (999)" in text


def test_verify_shard_modes(stack, verify_db):
    db = verify_db
    cfg = _config(stack, db, shard=True)
    # the row deleted on the PostgreSQL side in the previous test (if it ran) is fine in subset mode…
    asyncio.run(_pg_exec(stack.shards[0], f"DELETE FROM \"{db}\".pairs WHERE a = 9 AND b = 'k4'"))
    report = asyncio.run(verify(cfg, target=PG, owners={}))  # no predicate: subset mode
    pairs = _by_table(report)[PG]["pairs"]
    assert report.targets[0].mode == "subset"
    assert pairs.status is Status.EQUAL and pairs.rows_target < len(PAIRS), format_report(report)
    # by default the shard map decides: its only shard owns every row, so the deleted row is missing
    report = asyncio.run(verify(cfg, target=PG))
    assert report.targets[0].mode == "owned" and _by_table(report)[PG]["pairs"].status is not Status.EQUAL
    # …and not when the shard is said to own every row
    report = asyncio.run(verify(cfg, target=PG, owners={PG: lambda d, t, pk: True}))
    assert report.targets[0].mode == "owned"
    assert _by_table(report)[PG]["pairs"].status is Status.DIFFERENT, format_report(report)
    # owning only the odd items: the shard's extra even rows are "extra on target"
    report = asyncio.run(verify(cfg, target=PG, owners={PG: lambda d, t, pk: t != "items" or pk[0] % 2}))
    items = _by_table(report)[PG]["items"]
    assert items.status is Status.DIFFERENT and items.rows_primary == ITEMS // 2
    # a changed value is a difference in subset mode too
    asyncio.run(_pg_exec(stack.shards[0], f"UPDATE \"{db}\".events SET payload = '{{\"n\": -1}}' WHERE id = 3"))
    report = asyncio.run(verify(cfg, target=PG))
    text = format_report(report, details=True)
    assert _by_table(report)[PG]["events"].status is Status.DIFFERENT, text
    assert "changed: key (3)" in text


def test_unreachable_target_is_an_error_naming_it_without_password(stack, verify_db, tmp_path, capsys,
                                                                     monkeypatch):
    monkeypatch.delenv("DBMUX_PRIMARY_URL", raising=False)  # the environment overrides the file
    cfg_file = tmp_path / "verify.toml"
    cfg_file.write_text(
        f'[primary]\nurl = "{stack.primary.url()}"\n'
        f'[targets.{GONE}]\nurl = "mysql://dbmux:sup3r-secret@127.0.0.1:1"\n'
        f'tables = ["{verify_db}.*"]\n'
        f'[targets.{R2}]\nurl = "{stack.replicas[1].url()}"\ntables = ["{verify_db}.*"]\n')
    code = main(["verify", "-c", str(cfg_file)])
    captured = capsys.readouterr()
    assert code == 2
    assert f"cannot read target '{GONE}' at mysql://dbmux:***@127.0.0.1:1" in captured.out
    assert "missing on target" in captured.out  # replica2 was still verified: it lacks the database
    assert "sup3r-secret" not in captured.out + captured.err

    cfg_file.write_text('[primary]\nurl = "mysql://dbmux:sup3r-secret@127.0.0.1:1"\n'
                        '[targets.gone]\nurl = "mysql://dbmux:x@127.0.0.1:1"\n')
    code = main(["verify", "-c", str(cfg_file)])
    captured = capsys.readouterr()
    assert code == 2 and "cannot read the primary at mysql://dbmux:***@127.0.0.1:1" in captured.err
    assert "sup3r-secret" not in captured.out + captured.err


def test_tables_without_primary_key_follow_the_shard_rules(stack):
    """Finding 10: a table without a primary key lives on the default shard only ('single'); on another
    shard it is not missing. On its shard it must be a whole copy, elsewhere it must hold nothing."""
    db = f"vn_{uuid.uuid4().hex[:10]}"
    shard_a, shard_b = f"vsa_{_RUN}", f"vsb_{_RUN}"
    conn = _mysql(stack.primary)
    try:
        with conn.cursor() as cur:
            cur.execute("SET SESSION sql_log_bin = 0")
            cur.execute(f"CREATE DATABASE `{db}`")
            cur.execute(f"CREATE TABLE `{db}`.nopk (x INT, y VARCHAR(10))")
            cur.executemany(f"INSERT INTO `{db}`.nopk VALUES (%s,%s)", NOPK)
        create = f'CREATE SCHEMA "{db}"; CREATE TABLE "{db}".nopk (x integer, y varchar(10))'
        rows = ", ".join(f"({x}, '{y}')" for x, y in NOPK)
        asyncio.run(_pg_exec(stack.shards[0], f'{create}; INSERT INTO "{db}".nopk VALUES {rows}'))
        places = ((shard_a, stack.shards[0], "shard_a"), (shard_b, stack.shards[1], "shard_b"))
        targets = {name: {"url": dsn.url(), "tables": [f"{db}.*"], "shard": shard} for name, dsn, shard in places}
        cfg = parse_config({"primary": {"url": stack.primary.url()}, "shardmap": {"shards": ["shard_a", "shard_b"]},
                            "targets": targets}, {})
        report = asyncio.run(verify(cfg, wait_s=0))
        text = format_report(report)
        assert report.exit_code == 0, text
        tables = _by_table(report)
        assert tables[shard_a]["nopk"].status is Status.NOT_VERIFIABLE and tables[shard_a]["nopk"].rows_target == 7
        assert tables[shard_b]["nopk"].status is Status.NOT_ON_SHARD, text
        assert "not on this shard" in text and "missing" not in text

        # the default shard lost a row: its copy is not whole
        asyncio.run(_pg_exec(stack.shards[0], f"DELETE FROM \"{db}\".nopk WHERE y = 'y3'"))
        report = asyncio.run(verify(cfg, wait_s=0))
        assert report.exit_code == 1 and _by_table(report)[shard_a]["nopk"].note == "row counts differ"
        assert not _by_table(report)[shard_b]["nopk"].failed

        # the other shard holds rows of it: they do not belong there
        asyncio.run(_pg_exec(stack.shards[1], f"{create}; INSERT INTO \"{db}\".nopk VALUES (1, 'stray')"))
        report = asyncio.run(verify(cfg, target=shard_b, wait_s=0))
        text = format_report(report)
        nopk = _by_table(report)[shard_b]["nopk"]
        assert report.exit_code == 1 and nopk.failed and "1 rows on a shard that does not hold this table" in text
    finally:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{db}`")
        conn.close()
        for dsn in stack.shards[:2]:
            asyncio.run(_pg_exec(dsn, f'DROP SCHEMA IF EXISTS "{db}" CASCADE'))
