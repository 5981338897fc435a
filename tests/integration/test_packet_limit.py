"""A MySQL target's ``max_allowed_packet`` (replicator/packet_limit.py).

Found by go-sql-driver/mysql's own suite through the ingress: its TestLongData inserts a value just
under the primary's ``max_allowed_packet``; the row copy, hex-encoded, was twice that; the replica
dropped the connection (error 2013) and the replicator retried the same GTID for ever, "transient",
while ``dbmux status`` showed the target merely behind. Here replica 2's limit is lowered to 1 MiB
for the test: five 300 KiB blobs in five transactions (each fits alone; together one group-commit
request would not) must reach the target, and a 700 KiB blob (1.4 MiB hex-encoded) must halt it at
once with its GTID and the fix; with the limit raised, a restarted replicator finishes and ``dbmux
verify`` passes.
"""

from __future__ import annotations

import os
import subprocess
import uuid

from .conftest import (
    pipeline_config,
    start_binlog_reader,
    start_ingress,
    stop_ingress,
    stop_processes,
    verify_until_equal,
)
from .test_big_transactions import _gtid
from .test_replicator_mysql import _conn, _start_replicator

KIB = 1024


def _global_packet(dsn, value: int | None = None) -> int:
    with _conn(dsn).cursor() as cur:
        if value is not None:
            cur.execute(f"SET GLOBAL max_allowed_packet = {value}")
        cur.execute("SELECT @@GLOBAL.max_allowed_packet")
        return cur.fetchone()[0]


def test_a_statement_over_the_targets_packet_limit_halts_naming_the_fix(stack, tmp_path):
    replica = stack.replicas[1]
    ing = start_ingress(stack, tmp_path)  # for its topic; the writes go straight to the primary (row copies)
    db = f"pkt_{uuid.uuid4().hex[:8]}"
    cfg = pipeline_config(tmp_path / "pkt.toml", stack, ing.topic, {"pkt": replica}, tables=f"{db}.*")
    log = tmp_path / "pkt.log"
    procs: list = [start_binlog_reader(cfg, tmp_path / "binlog.log")]
    was = _global_packet(replica)
    try:
        assert _global_packet(replica, 1024 * KIB) == 1024 * KIB
        direct = _conn(stack.primary)
        with direct.cursor() as cur:
            cur.execute(f"CREATE DATABASE {db}")
            cur.execute(f"CREATE TABLE {db}.b (id INT PRIMARY KEY, v LONGBLOB NOT NULL)")
            for i in range(5):
                cur.execute(f"INSERT INTO {db}.b VALUES (%s, %s)", (i, os.urandom(300 * KIB)))
            cur.execute(f"INSERT INTO {db}.b VALUES (99, %s)", (os.urandom(700 * KIB),))
            big = _gtid(direct)
        procs.append(_start_replicator(cfg, "pkt", log))
        try:
            code = procs[-1].wait(120)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the replicator did not halt:\n{log.read_text()[-3000:]}") from None
        text = log.read_text()
        assert code == 3, text[-3000:]
        assert f"gtid {big} offset" in text and f"table {db}.b: a statement of 1,4" in text, text[-3000:]
        assert "max_allowed_packet (1,048,576 bytes): raise it on the target: SET GLOBAL max_allowed_packet = " \
               "2097152" in text, text[-3000:]
        assert "transient failure" not in text, text[-3000:]  # never the endless retry
        with _conn(replica).cursor() as cur:  # everything before it was applied (statement by statement)
            cur.execute(f"SELECT id, LENGTH(v) FROM {db}.b ORDER BY id")
            assert cur.fetchall() == tuple((i, 300 * KIB) for i in range(5))

        _global_packet(replica, was)
        procs.append(_start_replicator(cfg, "pkt", log))
        res = verify_until_equal(cfg, 120)
        assert res.returncode == 0 and "all 1 targets equal" in res.stdout, res.stdout + res.stderr
    finally:
        _global_packet(replica, was)
        stop_processes(procs)
        stop_ingress(ing)
        with _conn(stack.primary).cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {db}")
        with _conn(replica).cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {db}")
