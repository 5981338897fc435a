"""MariaDB UUID, BINARY(n) and spatial columns reach PostgreSQL shard targets and MariaDB replicas equal
to the primary (found running SQLAlchemy's and PyMySQL's own test suites through the ingress: every shard
halted on ``column type UUID`` and on a LINESTRING table with a SPATIAL KEY sqlglot could not parse).

UUID columns are PostgreSQL ``uuid``; MariaDB packs them in row images like a BINARY(16) without trailing
zero bytes (the nil UUID as an empty string), so the values below end in zero bytes and include the nil
UUID. TIME is INTERVAL (MySQL's whole range; PostgreSQL TIME ends at 24:00; '1234' is 00:12:34 in MySQL:
row form). Spatial columns are BYTEA holding MySQL's internal form (SRID + WKB); SPATIAL keys are hash
indexes.
Rows go both ways: straight to the primary (row images) and through the ingress (statements, and the
row form for what they cannot carry faithfully, e.g. ``ST_GeomFromText``); then ``dbmux verify`` must
pass on both shards, the shard replicators must not halt, and the values are read back from PostgreSQL.
Generated columns (VIRTUAL, MariaDB's PERSISTENT): row images carry their values, which a MariaDB
target computes itself (given them: error 1906 in strict mode, else a warning); PostgreSQL holds them as
plain columns, filled from the row form. The MariaDB replicas stored a row image's UUID ending in zero
bytes as the nil UUID (a warning, then a duplicate-key halt; 1292 in strict mode) and a BINARY(n) value
without its trailing zero bytes, until the binlog reader padded them back as MySQL's own replicas do.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import uuid

from .conftest import (
    assert_targets_equal,
    pipeline_config,
    start_binlog_reader,
    stop_processes,
)
from .test_replicator_mysql import _conn, _start_replicator
from .test_shard_targets import shard_pipeline

UUIDS = ["11223344-5566-7788-99aa-bb0000000000", "00000000-0000-0000-0000-000000000000",
         "ffffffff-ffff-ffff-ffff-ffffffffffff", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
         "01890a5d-ac96-774b-bcce-b30209000000"]


async def _pg_rows(dsn, sql: str) -> list[tuple]:
    import asyncpg

    conn = await asyncpg.connect(host=dsn.host, port=dsn.port, user=dsn.user, password=dsn.password,
                                 database=dsn.database)
    try:
        return [tuple(r) for r in await conn.fetch(sql)]
    finally:
        await conn.close()


def _all_rows(shards, sql: str) -> list[tuple]:
    """``sql``'s rows from every shard, sorted."""
    return sorted(r for s in shards.values() for r in asyncio.run(_pg_rows(s, sql)))


def test_uuid_and_spatial_columns_reach_pg_shards(stack, tmp_path):
    with shard_pipeline(stack, tmp_path, "sgu") as (db, shards, cfg, logs, ing):
        c = _conn(stack.primary)
        c.autocommit(True)
        try:
            with c.cursor() as cur:
                cur.execute(f"CREATE DATABASE {db}")
                cur.execute(f"CREATE TABLE {db}.u (id UUID PRIMARY KEY, v UUID, n INT)")
                cur.execute(f"CREATE TABLE {db}.g (id INT PRIMARY KEY, p POINT NOT NULL, l LINESTRING, "
                            "SPATIAL KEY sp (p)) ENGINE=InnoDB")
                cur.execute(f"CREATE TABLE {db}.tm (id INT PRIMARY KEY, t TIME(3))")  # PostgreSQL INTERVAL(3)
                cur.execute(f"INSERT INTO {db}.tm VALUES (1, '100:00:00.5'), (2, '-05:00:01'), (3, '838:59:59')")
                cur.execute(f"CREATE TABLE {db}.gen (id INT PRIMARY KEY, n VARCHAR(10), "
                            "v VARCHAR(20) AS (CONCAT(n, '!')) VIRTUAL, s VARCHAR(20) AS (CONCAT(n, '?')) PERSISTENT)")
                cur.execute(f"INSERT INTO {db}.gen (id, n) VALUES (1, 'a'), (2, 'b')")
                cur.execute(f"UPDATE {db}.gen SET n = 'c' WHERE id = 2")
                # MariaDB INET4/INET6 (SQLAlchemy's suite halted both shards on them): PostgreSQL inet
                cur.execute(f"CREATE TABLE {db}.ip (id INT PRIMARY KEY, a INET4, b INET6)")
                cur.execute(f"INSERT INTO {db}.ip VALUES (1, '10.0.0.1', '::ffff:1.2.3.4'), (2, NULL, '2001:db8::1'), "
                            "(3, '255.255.255.0', '::')")
                # straight to the primary: row images only
                for i, u in enumerate(UUIDS):
                    cur.execute(f"INSERT INTO {db}.u VALUES (%s, %s, %s)", (u, UUIDS[-1 - i], i))
                cur.execute(f"INSERT INTO {db}.g VALUES (1, ST_GeomFromText('POINT(1 2)'), "
                            "ST_GeomFromText('LINESTRING(0 0, 1 1, 2 0)')), (2, POINT(-3.5, 4), NULL)")
                cur.execute(f"UPDATE {db}.u SET v = NULL WHERE n = 1")
            i = _conn(ing.dsn(stack.primary))
            i.autocommit(True)
            with i.cursor() as cur:  # through the ingress: statements where they are faithful
                cur.execute(f"USE {db}")
                cur.execute("INSERT INTO u VALUES ('5b6d0f5e-1f2a-4c1e-9d3b-0a0b0c000000', NULL, 10)")
                cur.execute("INSERT INTO u VALUES (%s, %s, %s)", ("6ccf5d9e-2f3a-4d2e-8e4c-1b2c3d4e5f60", UUIDS[0], 11))
                cur.execute("UPDATE u SET v = '00000000-0000-0000-0000-000000000000' WHERE n = 0")
                cur.execute("DELETE FROM u WHERE n = 2")
                cur.execute("INSERT INTO g VALUES (3, ST_GeomFromText('POINT(5 6)', 4326), NULL)")
                cur.execute("UPDATE g SET l = ST_GeomFromText('LINESTRING(1 1, 2 2)') WHERE id = 2")
                cur.execute("DELETE FROM g WHERE id = 1")
                cur.execute("DROP INDEX sp ON g")
                cur.execute("CREATE SPATIAL INDEX sp2 ON g (p)")
                cur.execute("INSERT INTO tm VALUES (4, '-838:59:59'), (5, '12:34'), (6, '1234'), (7, 1234)")
                cur.execute("UPDATE tm SET t = ADDTIME(t, '30:00:00') WHERE id = 2")
                cur.execute("INSERT INTO gen (id, n) VALUES (3, 'x')")  # generated columns: the row form
                cur.execute("UPDATE gen SET n = 'y' WHERE id = 1")
                cur.execute("INSERT INTO ip VALUES (4, '192.168.1.1', 'fe80::1'), (5, %s, NULL)", ("0.0.0.0",))
                cur.execute("UPDATE ip SET b = '::1' WHERE id = 2")
            i.close()
            assert_targets_equal(cfg, logs, 2)
            with c.cursor() as cur:
                cur.execute(f"SELECT id, v, n FROM {db}.u ORDER BY n")
                want_u = [(uuid.UUID(a), uuid.UUID(b) if b else None, n) for a, b, n in cur.fetchall()]
                cur.execute(f"SELECT id, p, l FROM {db}.g ORDER BY id")
                want_g = [tuple(r) for r in cur.fetchall()]
                cur.execute(f"SELECT id, t FROM {db}.tm ORDER BY id")
                want_tm = [tuple(r) for r in cur.fetchall()]
            got_u = sorted((r for s in shards.values() for r in asyncio.run(_pg_rows(
                s, f'SELECT id, v, n FROM "{db}"."u"'))), key=lambda r: r[2])
            got_g = _all_rows(shards, f'SELECT id, p, l FROM "{db}"."g"')
            assert [(uuid.UUID(str(a)), uuid.UUID(str(b)) if b else None, n) for a, b, n in got_u] == want_u
            assert got_g == want_g and len(want_g) == 2
            got_tm = _all_rows(shards, f'SELECT id, t FROM "{db}"."tm"')
            assert got_tm == want_tm and want_tm[5][1] == want_tm[6][1] == dt.timedelta(minutes=12, seconds=34)
            assert want_u[0][1] == uuid.UUID(int=0) and len(want_u) == 6
            with c.cursor() as cur:
                cur.execute(f"SELECT id, a, b FROM {db}.ip ORDER BY id")
                want_ip = [(n, a and ipaddress.ip_address(a), b and ipaddress.ip_address(b))
                           for n, a, b in cur.fetchall()]
            got_ip = _all_rows(shards, f'SELECT id, a, b FROM "{db}"."ip"')
            assert got_ip == want_ip and len(want_ip) == 5
        finally:
            c.close()


def test_uuids_and_binary_values_ending_in_zero_bytes_reach_mariadb_replicas(stack, tmp_path):
    tag = uuid.uuid4().hex[:8]
    db = f"sgr_{tag}"
    targets = {f"r{tag}{i}": dsn for i, dsn in enumerate(stack.replicas[:2])}
    topic = f"dbmux.sgr{tag}.txn"
    cfg = pipeline_config(tmp_path / "sgr.toml", stack, topic, targets, tables=f"{db}.*")
    logs = {"binlog": tmp_path / "binlog.log", **{n: tmp_path / f"{n}.log" for n in targets}}
    procs = [start_binlog_reader(cfg, logs["binlog"])]
    procs += [_start_replicator(cfg, n, logs[n]) for n in targets]
    c = _conn(stack.primary)
    c.autocommit(True)
    try:
        with c.cursor() as cur:  # straight to the primary: only row images carry these
            cur.execute(f"CREATE DATABASE {db}")
            cur.execute(f"CREATE TABLE {db}.u (id UUID PRIMARY KEY, b4 BINARY(4), vb VARBINARY(4), n INT)")
            cur.execute(f"CREATE TABLE {db}.gen (id INT PRIMARY KEY, n VARCHAR(10), v VARCHAR(20) AS (CONCAT(n, '!')) "
                        "VIRTUAL, s VARCHAR(20) AS (CONCAT(n, '?')) PERSISTENT)")
            cur.execute(f"INSERT INTO {db}.gen (id, n) VALUES (1, 'a'), (2, 'b')")
            cur.execute(f"UPDATE {db}.gen SET n = 'c' WHERE id = 2")
            for i, u in enumerate(UUIDS):
                cur.execute(f"INSERT INTO {db}.u VALUES (%s, %s, %s, %s)", (u, bytes([i]) + bytes(i % 4), b"v\0", i))
            cur.execute(f"UPDATE {db}.u SET b4 = x'00000000', n = n + 10 WHERE id = %s", (UUIDS[0],))
        assert_targets_equal(cfg, logs, 2)
        with c.cursor() as cur:
            cur.execute(f"SELECT id, b4, vb, n FROM {db}.u ORDER BY n")
            want = cur.fetchall()
        for dsn in targets.values():
            r = _conn(dsn)
            with r.cursor() as cur:
                cur.execute(f"SELECT id, b4, vb, n FROM {db}.u ORDER BY n")
                assert cur.fetchall() == want
            r.close()
        assert want[-1][1] == bytes(4) and any(row[0] == UUIDS[1] for row in want)
    finally:
        stop_processes(procs)
        with c.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {db}")
        c.close()
