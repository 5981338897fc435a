"""Chaos (issue 17 #3, the short form run in CI): components SIGKILLed under a ledger workload, then
nothing lost and nothing applied twice on any target.

Workload: writers through the ingress and one straight to the primary, each transaction inserting a
ledger row and adding its amount to an account in the same transaction (text protocol, autocommit
off). A commit whose OK the client got is *acknowledged*; one cut off by a fault has an unknown
outcome and is not counted either way.

Faults, in turn at random moments while the writers run (``DBMUX_CHAOS_ROUNDS`` rounds, default 1):
the binlog reader, a MariaDB replica's replicator, the ingress (restarted on its port: the clients
reconnect), a MariaDB replica server, a PostgreSQL shard server (every process of it: a crash,
PostgreSQL recovers at start), a shard's replicator, the MariaDB primary (crash recovery at start; a
process crash: what the OS has of its redo log and binlog survives). Each is SIGKILLed and started again; dbmux's own
processes restart from their stored positions, the servers through ``dbmux stack up``.

Afterwards: ``dbmux verify`` passes for all four targets (two MariaDB replicas, two PostgreSQL shards:
equal to the primary, caught up); every acknowledged ledger row is on the primary and on every target
(the shards together); on every target each account's balance equals the sum of its ledger rows and
no ledger id appears twice -- a transaction applied twice or half would break one of them.

On a stack of three or more Kafka brokers (``dbmux stack up --kafka-brokers 3``) the topic is created
with replication factor 3 and ``min.insync.replicas`` 2, and the topic partition's leader broker is one
more fault: SIGKILLed (the JVM, no clean shutdown) and started again, while a follower takes over.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pymysql
from aiokafka.admin import AIOKafkaAdminClient

from dbmux.core.dsn import Dsn
from tests.integration.conftest import (
    StackEnv,
    run_dbmux,
    start_binlog_reader,
    start_ingress,
    stop_pipeline,
    verify_until_equal,
)
from tests.integration.test_pg_spatial_uuid import _pg_rows
from tests.integration.test_replicator_mysql import _start_replicator

ROUNDS = int(os.environ.get("DBMUX_CHAOS_ROUNDS", "1"))
ACCOUNTS = 20
WRITERS = 4  # through the ingress (and one more straight to the primary)
FAULTS = ("binlog reader", "replica replicator", "ingress", "replica server", "shard server", "shard replicator",
          "primary server")


def _connect(dsn: Dsn) -> pymysql.Connection:
    return pymysql.connect(host=dsn.host, port=dsn.port, user=dsn.user, password=dsn.password,
                           autocommit=False, connect_timeout=5, read_timeout=30, write_timeout=30)


class Ledger:
    """Writers adding ledger rows; ``acked``: the ids whose COMMIT got its OK."""

    def __init__(self, db: str) -> None:
        self.db = db
        self.acked: set[int] = set()
        self.failed = 0  # transactions cut off by a fault (outcome unknown)
        self.stop = threading.Event()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    def start(self, via: Dsn, direct: Dsn) -> None:
        for n in range(WRITERS + 1):
            dsn = direct if n == WRITERS else via
            t = threading.Thread(target=self._write, args=(dsn, n), daemon=True)
            t.start()
            self._threads.append(t)

    def _write(self, dsn: Dsn, n: int) -> None:
        rnd = random.Random(n)
        conn = None
        i = 0
        while not self.stop.is_set():
            i += 1
            lid, account, amount = n * 10_000_000 + i, rnd.randrange(ACCOUNTS), rnd.randrange(1, 1000)
            try:
                if conn is None:
                    conn = _connect(dsn)
                with conn.cursor() as cur:
                    cur.execute(f"INSERT INTO {self.db}.ledger (id, account, amount) VALUES (%s, %s, %s)",
                                (lid, account, amount))
                    cur.execute(f"UPDATE {self.db}.accounts SET balance = balance + %s WHERE id = %s",
                                (amount, account))
                conn.commit()
            except pymysql.Error:
                self.failed += 1
                if conn is not None:
                    try:
                        conn.close()
                    except pymysql.Error:
                        pass
                conn = None
                self.stop.wait(0.2)
                continue
            with self._lock:
                self.acked.add(lid)
        if conn is not None:
            conn.close()

    def finish(self) -> None:
        self.stop.set()
        for t in self._threads:
            t.join(60)


async def _leader(bootstrap: str, topic: str) -> int:
    """The node id of the broker leading partition 0 of ``topic``."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        (desc,) = await admin.describe_topics([topic])
        return next(int(p["leader"]) for p in desc["partitions"] if p["partition"] == 0)
    finally:
        await admin.close()


def _stack_dir(stack: StackEnv) -> Path:
    return stack.config.parent  # dbmux stack writes its config into its directory


def _server_pids(stack: StackEnv, service: str) -> list[int]:
    """Every process of a stack service (a PostgreSQL server is a postmaster and its children)."""
    out = run_dbmux("stack", "status", "--dir", str(_stack_dir(stack))).stdout.splitlines()[1:]
    (pid,) = [int(line.split()[2]) for line in out if line.split()[0] == service]
    children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    return [pid, *map(int, children)]


def _gone(pid: int) -> bool:
    """Has process ``pid`` ended and been reaped? A server the test session's own stack fixture started is
    a child of this process: reaped here (nothing else would, and PostgreSQL will not start while the old
    postmaster's pid exists, even as a zombie)."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:  # not ours: its parent (or init) reaps it
        pass
    return not Path(f"/proc/{pid}").exists()


def _crash_server(stack: StackEnv, service: str) -> None:
    """SIGKILL every process of ``service`` (children first: none outlives its parent), wait until they
    are gone (a server refuses to start while its old pid exists), then start it again."""
    pids = _server_pids(stack, service)
    for pid in reversed(pids):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 60
    while (alive := [p for p in pids if not _gone(p)]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive, f"{service}: processes {alive} still there a minute after SIGKILL"
    run_dbmux("stack", "up", "--dir", str(_stack_dir(stack)), timeout=180)


def _mysql_rows(dsn: Dsn, sql: str) -> list[tuple]:
    c = _connect(dsn)
    try:
        with c.cursor() as cur:
            cur.execute(sql)
            return list(cur.fetchall())
    finally:
        c.close()


def _check_ledger(where: str, ledger: list[tuple], accounts: list[tuple], acked: set[int]) -> None:
    ids = [r[0] for r in ledger]
    assert len(ids) == len(set(ids)), f"{where}: a ledger id appears twice"
    missing = acked - set(ids)
    assert not missing, f"{where}: {len(missing)} acknowledged transactions missing, e.g. {sorted(missing)[:5]}"
    sums: dict[int, int] = {}
    for _, account, amount in ledger:
        sums[int(account)] = sums.get(int(account), 0) + int(amount)
    balances = {int(a): int(b) for a, b in accounts}
    assert len(balances) == ACCOUNTS, f"{where}: {len(balances)} accounts"
    wrong = {a: (b, sums.get(a, 0)) for a, b in balances.items() if b != sums.get(a, 0)}
    assert not wrong, f"{where}: balance != sum of its ledger rows (balance, sum): {wrong}"


def test_components_killed_under_a_ledger_workload_lose_and_duplicate_nothing(stack, tmp_path):
    tag = uuid.uuid4().hex[:8]
    db = f"chaos_{tag}"
    names = {"r1": f"cr1{tag}", "r2": f"cr2{tag}", "sa": f"csa{tag}", "sb": f"csb{tag}"}
    topic = f"dbmux.chaos{tag}.txn"
    cfg = tmp_path / "chaos.toml"
    brokers = len(stack.kafka.split(","))
    faults = FAULTS + (("kafka leader",) if brokers >= 3 else ())
    replicated = "replication_factor = 3\nmin_insync_replicas = 2\n" if brokers >= 3 else ""
    body = (f'[kafka]\nbootstrap = "{stack.kafka}"\ntopic = "{topic}"\n{replicated}[primary]\n'
            f'url = "{stack.primary.url()}"\n'
            f'binlog_url = "{stack.binlog.url()}"\n[replicator]\nbatch_linger_ms = 5\n'
            f'[shardmap]\nshards = ["{names["sa"]}", "{names["sb"]}"]\n')
    for key, dsn in (("r1", stack.replicas[0]), ("r2", stack.replicas[1])):
        body += f'[targets.{names[key]}]\nurl = "{dsn.url()}"\ntables = ["{db}.*"]\n'
    for key, dsn in (("sa", stack.shards[0]), ("sb", stack.shards[1])):
        body += f'[targets.{names[key]}]\nurl = "{dsn.url()}"\ntables = ["{db}.*"]\nshard = "{names[key]}"\n'
    cfg.write_text(body)
    logs = {"binlog": tmp_path / "binlog.log", **{n: tmp_path / f"{n}.log" for n in names.values()}}

    reader = start_binlog_reader(cfg, logs["binlog"])
    replicators = {n: _start_replicator(cfg, n, logs[n]) for n in names.values()}
    port = free_port_outside_ephemeral()
    ing = start_ingress(stack, tmp_path, DBMUX_KAFKA_TOPIC=topic, DBMUX_INGRESS_LISTEN=f"127.0.0.1:{port}")
    ledger = Ledger(db)
    try:
        via = ing.dsn(stack.primary)
        c = _connect(via)
        with c.cursor() as cur:
            cur.execute(f"CREATE DATABASE {db}")
            cur.execute(f"CREATE TABLE {db}.accounts (id INT PRIMARY KEY, balance BIGINT NOT NULL)")
            cur.execute(f"CREATE TABLE {db}.ledger (id BIGINT PRIMARY KEY, account INT NOT NULL, amount INT NOT NULL)")
            cur.execute(f"INSERT INTO {db}.accounts VALUES " + ", ".join(f"({a}, 0)" for a in range(ACCOUNTS)))
        c.commit()
        c.close()
        ledger.start(via, stack.primary)
        rnd = random.Random(tag)
        done: list[str] = []
        for _ in range(ROUNDS):
            for fault in faults:
                ledger.stop.wait(rnd.uniform(2.0, 6.0))  # writers run meanwhile
                acked_before = len(ledger.acked)
                if fault == "binlog reader":
                    reader.kill()
                    reader.wait()
                    reader = start_binlog_reader(cfg, logs["binlog"])
                elif fault in ("replica replicator", "shard replicator"):
                    name = names["r1"] if fault == "replica replicator" else names["sb"]
                    replicators[name].kill()
                    replicators[name].wait()
                    replicators[name] = _start_replicator(cfg, name, logs[name])
                elif fault == "ingress":
                    ing.proc.kill()
                    ing.proc.wait()
                    ing = start_ingress(stack, tmp_path, DBMUX_KAFKA_TOPIC=topic,
                                        DBMUX_INGRESS_LISTEN=f"127.0.0.1:{port}")
                elif fault == "replica server":
                    _crash_server(stack, "mariadb-replica2")
                elif fault == "shard server":
                    _crash_server(stack, "pg-shard-a")
                elif fault == "kafka leader":
                    leader = asyncio.run(_leader(stack.kafka, topic))
                    _crash_server(stack, f"kafka-{leader}")
                    fault = f"kafka leader (broker {leader})"
                else:
                    _crash_server(stack, "mariadb-primary")
                done.append(fault)
                deadline = time.monotonic() + 60  # the writers go on after each fault
                while len(ledger.acked) < acked_before + 20 and time.monotonic() < deadline:
                    ledger.stop.wait(0.2)
                assert len(ledger.acked) >= acked_before + 20, f"the writers made no progress after: {fault}"
        ledger.finish()
        assert all(p.poll() is None for p in (reader, *replicators.values())), "a component exited on its own"

        res = verify_until_equal(cfg, 600)
        assert res.returncode == 0 and "all 4 targets equal and caught up" in res.stdout, \
            res.stdout + res.stderr + "".join(f"\n--- {n}\n{p.read_text(errors='replace')[-3000:]}"
                                             for n, p in logs.items())
        acked = set(ledger.acked)
        assert len(acked) > 100, len(acked)
        q_ledger, q_accounts = f"SELECT id, account, amount FROM {db}.ledger", f"SELECT id, balance FROM {db}.accounts"
        for where in (stack.primary, *stack.replicas):
            _check_ledger(f"{where.host}:{where.port}", _mysql_rows(where, q_ledger), _mysql_rows(where, q_accounts),
                          acked)
        pg_ledger: list[tuple] = []
        pg_accounts: list[tuple] = []
        for dsn in stack.shards:
            pg_ledger += asyncio.run(_pg_rows(dsn, f'SELECT id, account, amount FROM "{db}"."ledger"'))
            pg_accounts += asyncio.run(_pg_rows(dsn, f'SELECT id, balance FROM "{db}"."accounts"'))
        _check_ledger("the PostgreSQL shards together", pg_ledger, pg_accounts, acked)
        for name in names.values():
            assert "HALTED" not in logs[name].read_text(errors="replace"), name
        print(f"chaos: {ROUNDS} round(s), faults {done}; {len(acked)} acknowledged transactions, "
              f"{ledger.failed} cut off by faults")
    finally:
        ledger.finish()
        stop_pipeline(stack.primary, [reader, *replicators.values()], ing, db)
        for dsn in stack.shards:
            asyncio.run(_pg_rows(dsn, f'DROP SCHEMA IF EXISTS "{db}" CASCADE'))


def free_port_outside_ephemeral() -> int:
    """A port below the ephemeral range (32768-60999), so no client socket takes it between the ingress's
    kill and its restart on the same port."""
    import socket

    for _ in range(200):
        port = random.randrange(20000, 32000)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise AssertionError("no free port below 32000")

