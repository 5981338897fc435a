"""The real-traffic suite (issue 12 deliver #13): one run of what real clients send, through the ingress
and straight to the primary, then every target -- two MariaDB replicas and two PostgreSQL shard
targets -- at the primary's GTID with ``dbmux verify`` passing, and no password anywhere.

What runs (the short form here, in CI; ``DBMUX_REAL_TRAFFIC_LONG=1`` adds 64 and 256 MiB transactions
and 1,000,000 rows): transactions of 2 and 16 MiB through the ingress and 16 MiB around it, 100,000
rows in one transaction, ``COM_STMT_SEND_LONG_DATA``, a multi-statement request, autocommit off with
implicit commits (DDL in the middle of a transaction), latin1 and binary SQL, account and routine
statements with a password, a table dropped and re-created with other column types (row events carry
their table's types: issue 12 #8), and 500 simultaneous connects through the ingress.
"""

from __future__ import annotations

import asyncio
import io
import os
import re
import secrets
import uuid

import mysql.connector
import pymysql
from pymysql.constants import CLIENT

from .conftest import run_dbmux, start_binlog_reader, start_ingress, stop_ingress, stop_processes, verify_until_equal
from .test_ingress_backlog import connect_burst, primary_connections  # noqa: F401 - the fixture, used below
from .test_passwords import _raw_records, _sql_quote
from .test_replicator_mysql import _conn, _start_replicator
from .test_shard_targets import _drop_history

MIB = 1024 * 1024
LONG = os.environ.get("DBMUX_REAL_TRAFFIC_LONG") == "1"
CONNECTS = 500


def _config(tmp, stack, topic: str, db: str, dbr: str, names: dict[str, str]) -> object:
    body = f"""
[kafka]
bootstrap = "{stack.kafka}"
topic = "{topic}"
[primary]
url = "{stack.primary.url()}"
binlog_url = "{stack.binlog.url()}"
[replicator]
batch_linger_ms = 5
[shardmap]
shards = ["{names['sa']}", "{names['sb']}"]
"""
    for key, dsn in (("r1", stack.replicas[0]), ("r2", stack.replicas[1])):
        body += f'[targets.{names[key]}]\nurl = "{dsn.url()}"\ntables = ["{db}.*", "{dbr}.*"]\n'
    for key, dsn in (("sa", stack.shards[0]), ("sb", stack.shards[1])):
        body += f'[targets.{names[key]}]\nurl = "{dsn.url()}"\ntables = ["{db}.*", "{dbr}.*"]\nshard = "{names[key]}"\n'
    path = tmp / "real.toml"
    path.write_text(body)
    return path


def _big(cur, conn, db: str, first_id: int, mib: int, verb: str = "INSERT") -> None:
    """One transaction of ``mib`` MiB: 2 MiB text values, one statement each."""
    conn.begin()
    for i in range(mib // 2):
        if verb == "INSERT":
            cur.execute(f"INSERT INTO {db}.blobs VALUES (%s, %s)", (first_id + i, secrets.token_hex(MIB)))
        else:
            cur.execute(f"UPDATE {db}.blobs SET b = %s WHERE id = %s", (secrets.token_hex(MIB), first_id + i))
    conn.commit()


def _rows(cur, conn, db: str, n: int) -> None:
    conn.begin()
    for start in range(0, n, 20_000):
        values = ",".join(f"({i}, {i % 97})" for i in range(start, start + 20_000))
        cur.execute(f"INSERT INTO {db}.many VALUES {values}")
    conn.commit()


def _long_data(dsn, db: str) -> None:
    conn = mysql.connector.connect(host=dsn.host, port=dsn.port, user=dsn.user, password=dsn.password,
                                   autocommit=True, use_pure=True)
    try:
        ps = conn.cursor(prepared=True)
        ps.execute(f"INSERT INTO {db}.blobs VALUES (?, ?)", (900, io.BytesIO(("long ☃ " * 60_000).encode())))
    finally:
        conn.close()


def _session_habits(via, db: str, dbr: str, password: str, user: str) -> None:
    multi = pymysql.connect(host=via.host, port=via.port, user=via.user, password=via.password, autocommit=True,
                            client_flag=CLIENT.MULTI_STATEMENTS)
    with multi.cursor() as cur:
        cur.execute(f"INSERT INTO {db}.kv VALUES (1, 'one'); UPDATE {db}.kv SET v = 'uno' WHERE k = 1; "
                    f"INSERT INTO {db}.kv VALUES (2, 'two'); DELETE FROM {db}.kv WHERE k = 2")
        while cur.nextset():
            pass
    multi.close()
    c = pymysql.connect(host=via.host, port=via.port, user=via.user, password=via.password, autocommit=False)
    with c.cursor() as cur:  # autocommit off: DDL commits what came before it, as its own transaction
        cur.execute(f"INSERT INTO {db}.kv VALUES (3, 'before ddl')")
        cur.execute(f"CREATE TABLE {db}.made_midway (id INT PRIMARY KEY)")
        cur.execute(f"INSERT INTO {db}.made_midway VALUES (1)")
        cur.execute(f"UPDATE {db}.kv SET v = 'after ddl' WHERE k = 3")
        cur.execute("BEGIN")  # commits the INSERT and UPDATE above
        cur.execute(f"INSERT INTO {db}.kv VALUES (4, 'in begin')")
        c.commit()
        cur.execute("SET NAMES latin1")
        cur.execute(f"INSERT INTO {db}.kv VALUES (5, 'caf\xc3\xa9')")  # bytes valid in latin1 and UTF-8
        cur.execute(f"INSERT INTO {db}.bin VALUES (1, %s, X'C3A9FF')", (b"\xff\x00\x80",))  # a _binary literal
        c.commit()
        cur.execute("SET NAMES utf8mb4")
        cur.execute(f"CREATE USER '{user}'@'%' IDENTIFIED BY {_sql_quote(password)}")
        cur.execute(f"GRANT SELECT ON {db}.* TO '{user}'@'%'")
        cur.execute(f"CREATE PROCEDURE {db}.bump() BEGIN UPDATE {db}.kv SET v = CONCAT(v, '!') WHERE k = 1; END")
        cur.execute(f"CALL {db}.bump()")
        cur.execute(f"DROP PROCEDURE {db}.bump")
        c.commit()
        # a table dropped and re-created with other column types (old events typed by the types they carry)
        cur.execute(f"CREATE TABLE {dbr}.r (id INT PRIMARY KEY, v INT)")
        cur.execute(f"INSERT INTO {dbr}.r VALUES (1, 42)")
        c.commit()
        cur.execute(f"DROP TABLE {dbr}.r")
        cur.execute(f"CREATE TABLE {dbr}.r (id INT PRIMARY KEY, v VARCHAR(20), w DATE)")
        cur.execute(f"INSERT INTO {dbr}.r VALUES (1, 'a string', '2026-12-05')")
        c.commit()
    c.close()


def test_real_traffic_reaches_every_target(stack, tmp_path, primary_connections):  # noqa: F811
    tag = uuid.uuid4().hex[:8]
    db, dbr = f"rt_{tag}", f"rtr_{tag}"
    names = {"r1": f"rt1{tag}", "r2": f"rt2{tag}", "sa": f"rta{tag}", "sb": f"rtb{tag}"}
    token = secrets.token_hex(6)
    password, user = f"Rt-{token}'q", f"rt_{tag}"
    ing = start_ingress(stack, tmp_path)
    _drop_history(stack.primary, list(stack.shards))
    cfg = _config(tmp_path, stack, ing.topic, db, dbr, names)
    logs = {"binlog": tmp_path / "binlog.log", **{n: tmp_path / f"{n}.log" for n in names.values()}}
    procs = [start_binlog_reader(cfg, logs["binlog"])]
    try:
        procs += [_start_replicator(cfg, n, logs[n]) for n in names.values()]
        via = ing.dsn(stack.primary)
        app = _conn(via, max_allowed_packet=64 * MIB)
        direct = _conn(stack.primary, max_allowed_packet=64 * MIB)
        with app.cursor() as cur:
            cur.execute(f"CREATE DATABASE {db}")
            cur.execute(f"CREATE DATABASE {dbr}")
            cur.execute(f"CREATE TABLE {db}.blobs (id INT PRIMARY KEY, b LONGTEXT NOT NULL)")
            cur.execute(f"CREATE TABLE {db}.many (id INT PRIMARY KEY, v INT NOT NULL)")
            cur.execute(f"CREATE TABLE {db}.kv (k INT PRIMARY KEY, v VARCHAR(40))")
            cur.execute(f"CREATE TABLE {db}.bin (id INT PRIMARY KEY, a VARBINARY(8), b VARBINARY(8))")
            _big(cur, app, db, 1, 2)
            _big(cur, app, db, 100, 16)
            for mib, first in ((64, 1000), (256, 2000)) if LONG else ():
                _big(cur, app, db, first, mib)
            _rows(cur, app, db, 1_000_000 if LONG else 100_000)
        with direct.cursor() as cur:
            _big(cur, direct, db, 100, 16, verb="UPDATE")
            cur.execute(f"INSERT INTO {db}.kv VALUES (50, 'around the ingress')")
        _long_data(via, db)
        _session_habits(via, db, dbr, password, user)
        failures = asyncio.run(connect_burst(via, CONNECTS))
        assert not failures, f"{len(failures)} of {CONNECTS} connects through the ingress failed: {failures[:3]}"
        app.close()
        direct.close()

        res = verify_until_equal(cfg, 900)
        tails = "".join(f"\n--- {n}\n{p.read_text(errors='replace')[-2000:]}" for n, p in logs.items())
        if res.returncode != 0:  # what differs, for the failure message
            for where in (stack.primary, *stack.replicas):
                with _conn(where).cursor() as cur:
                    cur.execute(f"SELECT k, HEX(v) FROM {db}.kv ORDER BY k")
                    tails += f"\n{where.port} kv: {cur.fetchall()}"
        assert res.returncode == 0 and "all 4 targets equal and caught up" in res.stdout, \
            res.stdout + res.stderr + tails
        events = run_dbmux("events", "-c", str(cfg), "--last", "100000")
        places = {"dbmux events": events.stdout, "ingress log": ing.log(),
                  **{f"{n} log": p.read_text(errors="replace") for n, p in logs.items()}}
        places["topic"] = b"".join(v for v, _ in asyncio.run(_raw_records(stack.kafka, ing.topic))).decode("latin1")
        for where, text in places.items():
            assert token not in text, f"the password is in {where}"
        assert all("HALTED" not in places[f"{n} log"] for n in names.values())
        for n in names.values():  # the big transactions were applied part by part (bounded memory), shards too
            assert re.search(r"applied \S+ from \S+ in \d+ parts", places[f"{n} log"]), places[f"{n} log"][-2000:]
    finally:
        stop_processes(procs)
        stop_ingress(ing)
        with _conn(stack.primary).cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {db}")
            cur.execute(f"DROP DATABASE IF EXISTS {dbr}")
            cur.execute(f"DROP USER IF EXISTS '{user}'@'%'")
        for replica in stack.replicas:
            with _conn(replica).cursor() as cur:
                cur.execute(f"DROP USER IF EXISTS '{user}'@'%'")
        _drop_history(stack.primary, list(stack.shards))
