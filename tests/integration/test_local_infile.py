"""``LOAD DATA LOCAL INFILE`` through the ingress: the client's file is relayed to the primary, the
ingress's copy of the transaction is flagged unsafe (the file is on the client's host: no target could
run the statement), and targets apply the binlog reader's row copy.

Found missing by go-sql-driver/mysql's own suite: the ingress used to strip the capability, so every
``LOAD DATA LOCAL`` failed with "the used command is not allowed" through it, where it worked direct.
Here with PyMySQL (autocommit, and inside a transaction with an UPDATE), a file missing on the client
(the session goes on), and the ``mariadb`` command-line client; afterwards a MariaDB replica and a
PostgreSQL target equal the primary (``dbmux verify``).
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import uuid

import pymysql
import pytest

from .conftest import (
    pipeline_config,
    read_topic,
    start_binlog_reader,
    start_ingress,
    stop_ingress,
    stop_processes,
    verify_until_equal,
)
from .test_replicator_mysql import _start_replicator

ROWS = 60_000


def _conn(dsn, **kw):
    return pymysql.connect(host=dsn.host, port=dsn.port, user=dsn.user, password=dsn.password, autocommit=True,
                           local_infile=True, **kw)


def test_load_data_local_infile_through_the_ingress_reaches_every_target(stack, tmp_path):
    ing = start_ingress(stack, tmp_path)
    db = f"infile_{uuid.uuid4().hex[:8]}"
    cfg = pipeline_config(tmp_path / "infile.toml", stack, ing.topic,
                          {"inmy": stack.replicas[0], "inpg": stack.shards[0]}, tables=f"{db}.*")
    procs = [start_binlog_reader(cfg, tmp_path / "binlog.log")]
    big = tmp_path / "big.csv"  # ~3 MB: many packets of file data
    big.write_text("".join(f"{i},name {i} {'x' * (i % 50)}\n" for i in range(1, ROWS + 1)))
    small = tmp_path / "small.csv"
    small.write_text("".join(f"{i},cli {i}\n" for i in range(ROWS + 1, ROWS + 101)))
    via = ing.dsn(stack.primary)
    try:
        app = _conn(via)
        with app.cursor() as cur:
            cur.execute(f"CREATE DATABASE {db}")
            cur.execute(f"CREATE TABLE {db}.t (id INT PRIMARY KEY, name VARCHAR(100) NOT NULL, n INT NOT NULL "
                        "DEFAULT 0)")
            assert cur.execute(f"LOAD DATA LOCAL INFILE '{big}' INTO TABLE {db}.t FIELDS TERMINATED BY ',' "
                               "(id, name)") == ROWS
            app.begin()
            cur.execute(f"LOAD DATA LOCAL INFILE '{small}' INTO TABLE {db}.t FIELDS TERMINATED BY ',' (id, name)")
            cur.execute(f"UPDATE {db}.t SET n = 1 WHERE id > {ROWS}")
            app.commit()
            with pytest.raises(pymysql.err.OperationalError):  # no such file on the client: an error, nothing else
                cur.execute(f"LOAD DATA LOCAL INFILE '{tmp_path / 'missing.csv'}' INTO TABLE {db}.t")
            cur.execute(f"SELECT COUNT(*), SUM(n) FROM {db}.t")  # the same session goes on
            assert cur.fetchone() == (ROWS + 100, 100)

        cli = shutil.which("mariadb") or shutil.which("mysql")
        assert cli, "the mariadb command-line client is part of the stack's packages"
        more = tmp_path / "cli.csv"
        more.write_text("".join(f"{i},mariadb cli {i}\n" for i in range(ROWS + 101, ROWS + 201)))
        res = subprocess.run([cli, "--local-infile=1", "-h", via.host, "-P", str(via.port), "-u", via.user,
                              f"-p{via.password}", "-e",
                              f"LOAD DATA LOCAL INFILE '{more}' INTO TABLE {db}.t FIELDS TERMINATED BY ',' (id, name)"],
                             capture_output=True, text=True, timeout=60)
        assert res.returncode == 0, res.stderr

        for target in ("inmy", "inpg"):
            procs.append(_start_replicator(cfg, target, tmp_path / f"{target}.log"))
        res = verify_until_equal(cfg, 300)
        assert res.returncode == 0 and "all 2 targets equal" in res.stdout, res.stdout + res.stderr
        with _conn(stack.replicas[0]).cursor() as cur:
            cur.execute(f"SELECT COUNT(*), SUM(n) FROM {db}.t")
            assert cur.fetchone() == (ROWS + 200, 100)

        # the ingress published its copies, flagged unsafe: never applied as a statement anywhere
        events = asyncio.run(read_topic(stack.kafka, ing.topic, min_count=1))
        loads = [st for ev in events if ev.source == "ingress" for st in ev.statements
                 if "LOCAL INFILE" in (st.sql or "").upper()]
        assert len(loads) == 3 and all(st.unsafe for st in loads), loads
        assert "unpublished" not in ing.log(), ing.log()[-3000:]
    finally:
        stop_processes(procs)
        stop_ingress(ing)
        with _conn(stack.primary).cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {db}")
