"""Read routing (issue 15) on real servers: reads through an ingress with ``reads = "replicas"`` come from
the stack's two MariaDB replicas, kept by dbmux's own replicators, and never miss what they must see --
with each replicator frozen (SIGSTOP) in turn while writers keep writing."""

from __future__ import annotations

import signal
import time
import urllib.request
import uuid
from contextlib import contextmanager

import pymysql
import pytest

from .conftest import free_port, pipeline_config, start_binlog_reader, start_ingress, stop_ingress, stop_processes
from .read_checker import Checker, connect, create_table
from .test_replicator_mysql import _start_replicator

TARGETS = ("rr1", "rr2")


@contextmanager
def _pipeline(stack, tmp_path, ingresses: int = 1, **ingress_env: str):
    """Binlog reader, a replicator per replica and ``ingresses`` ingresses routing reads, on a topic of their
    own; yields the (first) ingress, the replicators, its metrics port and every ingress."""
    topic = f"dbmux.rr{uuid.uuid4().hex[:10]}.txn"
    cfg = pipeline_config(tmp_path / "reads.toml", stack, topic, dict(zip(TARGETS, stack.replicas, strict=True)))
    metrics = free_port()
    procs = [start_binlog_reader(cfg, tmp_path / "binlog.log")]
    reps = {name: _start_replicator(cfg, name, tmp_path / f"{name}.log") for name in TARGETS}
    procs += list(reps.values())
    ings: list = []
    try:
        for i in range(ingresses):
            port = {"DBMUX_INGRESS_METRICS_PORT": str(metrics)} if i == 0 else {}
            ings.append(start_ingress(stack, tmp_path, config=cfg, DBMUX_KAFKA_TOPIC=topic,
                                      DBMUX_INGRESS_READS="replicas", **port, **ingress_env))
        yield ings[0], reps, metrics, ings
    finally:
        for p in reps.values():
            if p.poll() is None:
                p.send_signal(signal.SIGCONT)
        for ing in ings:
            stop_ingress(ing)
        stop_processes(procs)


def _metric(port: int, name: str, label: str = "") -> float:
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    total = 0.0
    for line in body.splitlines():
        if line.startswith(name) and (not label or label in line):
            total += float(line.rsplit(" ", 1)[1])
    return total


def _wait_replicated(stack, db: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    for dsn in stack.replicas:
        while True:
            try:
                conn = connect(dsn)
                with conn.cursor() as cur:
                    cur.execute(f"SELECT COUNT(*) FROM {db}.k")
                    if cur.fetchone()[0]:
                        break
            except pymysql.err.MySQLError:
                pass
            assert time.monotonic() < deadline, f"{db}.k did not reach {dsn.port}"
            time.sleep(0.2)


def _run_with_freezes(checker: Checker, reps: dict, settle_s: float = 2.0, frozen_s: float = 3.0):
    """Run ``checker``; freeze each replicator for ``frozen_s`` in turn."""
    checker.start()
    try:
        time.sleep(settle_s)
        for proc in reps.values():
            proc.send_signal(signal.SIGSTOP)
            time.sleep(frozen_s)
            proc.send_signal(signal.SIGCONT)
            time.sleep(settle_s)
    finally:
        report = checker.stop()
    return report


@pytest.mark.parametrize("writers", ["other_ingress", "bypassing"])
def test_causal_reads_from_replicas_never_stale_with_replicators_frozen(stack, tmp_path, writers):
    """Readers on one ingress, writers on another (``other_ingress``) or straight on the primary
    (``bypassing``: their writes reach the replicas through the binlog reader): no read misses a write
    whose OK a writer already had."""
    with _pipeline(stack, tmp_path, ingresses=2, DBMUX_INGRESS_READ_CONSISTENCY="causal") as (
            ing, reps, metrics, ings):
        reader_via = ing.dsn(stack.primary)
        writer_via = ings[1].dsn(stack.primary) if writers == "other_ingress" else stack.primary
        db = f"rr_{uuid.uuid4().hex[:8]}"
        create_table(writer_via, db, 8)
        _wait_replicated(stack, db)
        report = _run_with_freezes(Checker(writer_via, reader_via, db), reps)
        served = {n: _metric(metrics, "dbmux_ingress_reads_total", f'backend="{n}"') for n in (*TARGETS, "primary")}
        assert not report.errors and not report.stale, report.summary()
        assert report.reads > 200 and report.writes > 200, report.summary()
        # both replicas served reads (the ingress counts per backend)
        assert served["rr1"] > 20 and served["rr2"] > 20, served


def test_checker_finds_stale_reads_on_a_replica_read_directly(stack, tmp_path):
    """The checker can fail: readers on a replica whose replicator is frozen see old values."""
    with _pipeline(stack, tmp_path) as (ing, reps, _metrics, _ings):
        via = ing.dsn(stack.primary)
        db = f"rr_{uuid.uuid4().hex[:8]}"
        create_table(via, db, 8)
        _wait_replicated(stack, db)
        checker = Checker(via, stack.replicas[0], db)
        checker.start()
        try:
            time.sleep(1)
            reps["rr1"].send_signal(signal.SIGSTOP)
            time.sleep(2)
        finally:
            reps["rr1"].send_signal(signal.SIGCONT)
            report = checker.stop()
        assert report.stale, report.summary()


@pytest.mark.parametrize("consistency", ["session"])
def test_session_reads_your_writes_with_replicators_frozen(stack, tmp_path, consistency):
    with _pipeline(stack, tmp_path, DBMUX_INGRESS_READ_CONSISTENCY=consistency) as (ing, reps, metrics, _ings):
        via = ing.dsn(stack.primary)
        db = f"rr_{uuid.uuid4().hex[:8]}"
        create_table(via, db, 8)
        _wait_replicated(stack, db)
        report = _run_with_freezes(Checker(via, via, db, read_own=True, readers=2), reps)
        assert not report.errors and not report.ryw, report.summary()
        assert report.writes > 200, report.summary()
        assert _metric(metrics, "dbmux_ingress_reads_total", 'backend="rr') > 100


# ---- which server answers: a table of the same name with a different row on each server ----------------
def _whoami(stack, db: str) -> None:
    """``db.me`` holds 'primary' on the primary and the target's name on each replica; created on each
    server directly, out of the binlog, so nothing replicates it."""
    for name, dsn in (("primary", stack.primary), *zip(TARGETS, stack.replicas, strict=True)):
        conn = connect(dsn)
        with conn.cursor() as cur:
            cur.execute("SET SESSION sql_log_bin = 0")
            cur.execute(f"CREATE DATABASE {db}")
            cur.execute(f"CREATE TABLE {db}.me (id INT PRIMARY KEY, name VARCHAR(16))")
            cur.execute(f"INSERT INTO {db}.me VALUES (1, '{name}')")
        conn.close()


def _drop_whoami(stack, db: str) -> None:
    for dsn in (stack.primary, *stack.replicas):
        conn = connect(dsn)
        with conn.cursor() as cur:
            cur.execute("SET SESSION sql_log_bin = 0")
            cur.execute(f"DROP DATABASE IF EXISTS {db}")
        conn.close()


ME = "SELECT name FROM me WHERE id = 1"
# (what the session does first, the read, who must answer: a replica or the primary)
ROUTING_CASES = [
    ((), ME, "replica"),
    (("SET NAMES latin1", "SET SESSION sql_mode = 'ANSI_QUOTES'", "SET time_zone = '+03:00'"), ME, "replica"),
    (("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED",), ME, "replica"),
    (("BEGIN",), ME, "primary"),
    (("START TRANSACTION READ ONLY",), ME, "replica"),
    (("SET autocommit = 0", "START TRANSACTION READ ONLY"), ME, "replica"),
    (("START TRANSACTION READ ONLY", "COMMIT", "BEGIN"), ME, "primary"),
    (("SET autocommit = 0",), ME, "primary"),
    (("SET autocommit = 0", "SET autocommit = 1"), ME, "replica"),
    ((), ME + " FOR UPDATE", "primary"),
    ((), ME + " LOCK IN SHARE MODE", "primary"),
    (("SET @x = 1",), "SELECT name FROM me WHERE id = @x", "primary"),
    (("SET @x = 1",), ME, "replica"),
    ((), "SELECT name FROM me WHERE id = 1 AND @@autocommit = 1", "primary"),
    ((), "SELECT SQL_CALC_FOUND_ROWS name FROM me", "primary"),
    ((), "SELECT name FROM me WHERE id = LAST_INSERT_ID() + 1", "primary"),
    ((), "SELECT (SELECT name FROM me) AS name", "replica"),
    (("CREATE TEMPORARY TABLE tmp_x (a INT)",), ME, "primary"),
    (("LOCK TABLES me READ",), ME, "primary"),
    (("LOCK TABLES me READ", "UNLOCK TABLES"), ME, "replica"),
    (("SET SESSION sql_select_limit = 5",), ME, "primary"),
    (("SET ROLE NONE",), ME, "primary"),  # the session's privileges are not the link's
]


@pytest.mark.parametrize(("setup", "read", "expect"), ROUTING_CASES)
def test_routing_rules_decide_who_answers(stack, tmp_path, routing_ingress, setup, read, expect):
    via, db, metrics = routing_ingress
    conn = connect(via, db)
    with conn.cursor() as cur:
        for sql in setup:
            cur.execute(sql)
        answers = set()
        for _ in range(6):
            cur.execute(read)
            answers.add(cur.fetchone()[0])
    conn.close()
    if expect == "primary":
        assert answers == {"primary"}, answers
    else:
        assert answers <= set(TARGETS) and answers, answers


def test_prepared_reads_go_to_replicas_with_their_parameters(stack, routing_ingress):
    import mysql.connector

    via, db, metrics = routing_ingress
    conn = mysql.connector.connect(host=via.host, port=via.port, user=via.user, password=via.password,
                                   database=db, autocommit=True)
    cur = conn.cursor(prepared=True)
    seen = set()
    for i in range(8):  # the types are sent with the first execute only; later ones reuse them
        cur.execute("SELECT name FROM me WHERE id = %s", (1 if i % 2 == 0 else 2,))
        rows = cur.fetchall()
        if i % 2 == 0:
            seen.add(rows[0][0].decode() if isinstance(rows[0][0], bytes) else rows[0][0])
        else:
            assert rows == []
    conn.close()
    assert seen and seen <= set(TARGETS), seen


def test_a_replica_that_refuses_the_user_is_replaced_by_the_primary(stack, routing_ingress):
    """A user that exists on the primary only: its replica logins fail, the primary answers, no error."""
    via, db, metrics = routing_ingress
    user = f"only_{uuid.uuid4().hex[:6]}"
    admin = connect(stack.primary)
    with admin.cursor() as cur:
        cur.execute("SET SESSION sql_log_bin = 0")
        cur.execute(f"CREATE USER '{user}'@'%' IDENTIFIED BY 'pw-{user}'")
        cur.execute(f"GRANT SELECT ON {db}.* TO '{user}'@'%'")
    try:
        conn = pymysql.connect(host=via.host, port=via.port, user=user, password=f"pw-{user}", database=db,
                               autocommit=True)
        with conn.cursor() as cur:
            for _ in range(3):
                cur.execute(ME)
                assert cur.fetchone()[0] == "primary"
        conn.close()
    finally:
        with admin.cursor() as cur:
            cur.execute("SET SESSION sql_log_bin = 0")
            cur.execute(f"DROP USER '{user}'@'%'")
        admin.close()


@pytest.fixture(scope="module")
def routing_ingress(stack, tmp_path_factory):
    """One routing pipeline (session consistency) for the rule tests, with the whoami tables."""
    tmp_path = tmp_path_factory.mktemp("rules")
    db = f"who_{uuid.uuid4().hex[:8]}"
    _whoami(stack, db)
    try:
        with _pipeline(stack, tmp_path) as (ing, _reps, metrics, _ings):
            via = ing.dsn(stack.primary)
            # a write through the pipeline: replicas started on an idle primary hold no position until one
            # arrives, and (causal, the default) a read must see the primary's position
            conn = connect(via)
            with conn.cursor() as cur:
                cur.execute(f"CREATE DATABASE {db}_w")
                cur.execute(f"DROP DATABASE {db}_w")
            conn.close()
            _wait_running(via, db)
            yield via, db, metrics
    finally:
        _drop_whoami(stack, db)


def _wait_running(via, db: str, timeout_s: float = 60) -> None:
    """Until the replicators run (their status rows) and a read through the ingress comes from a replica."""
    deadline = time.monotonic() + timeout_s
    while True:
        conn = connect(via, db)
        with conn.cursor() as cur:
            cur.execute(ME)
            name = cur.fetchone()[0]
        conn.close()
        if name != "primary":
            return
        assert time.monotonic() < deadline, "no read came from a replica"
        time.sleep(0.3)


def _wait_metric(port: int, name: str, label: str, value: float, timeout_s: float = 40) -> None:
    deadline = time.monotonic() + timeout_s
    while _metric(port, name, label) != value:
        assert time.monotonic() < deadline, f"{name}{{{label}}} did not become {value}"
        time.sleep(0.5)


def test_a_replica_whose_settings_change_answers_leaves_rotation(stack, routing_ingress):
    """div_precision_increment decides what 1/3 answers: a replica set otherwise than the primary takes no
    reads until it is set back."""
    via, db, metrics = routing_ingress
    admin = connect(stack.replicas[0])
    with admin.cursor() as cur:
        cur.execute("SELECT @@global.div_precision_increment")
        (before,) = cur.fetchone()
        cur.execute(f"SET GLOBAL div_precision_increment = {int(before) + 3}")
    try:
        _wait_metric(metrics, "dbmux_ingress_replica_in_rotation", 'replica="rr1"', 0)
        conn = connect(via, db)
        with conn.cursor() as cur:
            answers = set()
            for _ in range(10):
                cur.execute(ME)
                answers.add(cur.fetchone()[0])
        conn.close()
        assert answers == {"rr2"}, answers
    finally:
        with admin.cursor() as cur:
            cur.execute(f"SET GLOBAL div_precision_increment = {before}")
        admin.close()
    _wait_metric(metrics, "dbmux_ingress_replica_in_rotation", 'replica="rr1"', 1)


def test_a_read_only_transaction_runs_on_one_replica(stack, routing_ingress):
    """START TRANSACTION READ ONLY opens the transaction on a replica: every read of it there, a write refused
    as the primary refuses it, session reads on the primary, COMMIT ends it; a DDL inside commits it first."""
    via, db, _metrics = routing_ingress
    conn = connect(via, db)
    with conn.cursor() as cur:
        for _ in range(3):
            cur.execute("START TRANSACTION READ ONLY")
            names = set()
            for _ in range(4):
                cur.execute(ME)
                names.add(cur.fetchone()[0])
            assert len(names) == 1 and names <= set(TARGETS), names  # one replica for the whole transaction
            cur.execute("SELECT @@port")  # session state: the primary answers
            assert cur.fetchone()[0] == stack.primary.port
            with pytest.raises(pymysql.err.MySQLError) as err:
                cur.execute("UPDATE me SET name = 'x' WHERE id = 1")
            assert err.value.args[0] == 1792, err.value  # ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION
            cur.execute(ME)
            assert cur.fetchone()[0] in names
            cur.execute("COMMIT")
        cur.execute("START TRANSACTION READ ONLY")
        cur.execute(ME)
        assert cur.fetchone()[0] in TARGETS
        cur.execute("CREATE TEMPORARY TABLE tmp_ro (a INT)")  # commits the replica transaction, then the primary
        cur.execute("SELECT COUNT(*) FROM tmp_ro")
        assert cur.fetchone()[0] == 0
    conn.close()
