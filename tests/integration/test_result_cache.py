"""The ingress's result cache (issue 16) on real servers: readers through a caching ingress never read a
value older than a write whose OK a writer got through it -- while the cache answers most reads -- and writes
that bypass the ingress reach the cache through the topic."""

from __future__ import annotations

import time
import uuid

from .conftest import (
    free_port,
    pipeline_config,
    run_dbmux,
    start_binlog_reader,
    start_ingress,
    stop_ingress,
    stop_processes,
)
from .read_checker import Checker, connect, create_table
from .test_read_routing import _metric


def _caching_ingress(stack, tmp_path, **env):
    topic = f"dbmux.rc{uuid.uuid4().hex[:10]}.txn"
    metrics = free_port()
    cfg = pipeline_config(tmp_path / "cache.toml", stack, topic, {},
                          extra=f"[ingress]\ncache_bytes = {64 << 20}\nmetrics_port = {metrics}\n")
    binlog = start_binlog_reader(cfg, tmp_path / "binlog.log")
    ing = start_ingress(stack, tmp_path, config=cfg, DBMUX_KAFKA_TOPIC=topic, **env)
    ing.config = cfg
    return ing, binlog, metrics


def _table_and_prepared_session(via, columns: str, rows: str):
    """A new database with a table ``t`` (``columns``, ``rows``) made through the ingress: (its name, the
    PyMySQL connection that made it, a mysql-connector connection on it for server-side prepared
    statements)."""
    import mysql.connector

    db = f"rc_{uuid.uuid4().hex[:8]}"
    admin = connect(via)
    with admin.cursor() as cur:
        cur.execute(f"CREATE DATABASE {db}")
        cur.execute(f"CREATE TABLE {db}.t ({columns})")
        cur.execute(f"INSERT INTO {db}.t VALUES {rows}")
    conn = mysql.connector.connect(host=via.host, port=via.port, user=via.user, password=via.password,
                                   database=db, autocommit=True)
    return db, admin, conn


def test_no_read_through_the_cache_misses_an_acknowledged_write(stack, tmp_path):
    ing, binlog, metrics = _caching_ingress(stack, tmp_path)
    try:
        via = ing.dsn(stack.primary)
        db = f"rc_{uuid.uuid4().hex[:8]}"
        create_table(via, db, 8)
        checker = Checker(via, via, db, writers=2, readers=4, write_pause_s=0.02)
        checker.start()
        time.sleep(6)
        report = checker.stop()
        hits = _metric(metrics, "dbmux_ingress_cache_lookups_total", 'result="hit"')
        assert not report.errors and not report.stale, report.summary()
        assert report.writes > 100 and hits > report.reads / 4, (report.summary(), hits)
        status = run_dbmux("status", "-c", str(ing.config), check=False)
        assert "result cache: " in status.stdout and f"{hits:,.0f} hits of" in status.stdout, status.stdout
    finally:
        stop_ingress(ing)
        stop_processes([binlog])


def test_writes_around_the_ingress_reach_the_cache_through_the_topic(stack, tmp_path):
    """Writers straight on the primary: a cached answer goes stale until the binlog reader's copy arrives;
    the longest staleness is bounded (and measured: bench/RESULTS.md)."""
    ing, binlog, metrics = _caching_ingress(stack, tmp_path)
    try:
        via = ing.dsn(stack.primary)
        db = f"rc_{uuid.uuid4().hex[:8]}"
        create_table(via, db, 8)
        checker = Checker(stack.primary, via, db, writers=2, readers=4, write_pause_s=0.02)
        checker.start()
        time.sleep(6)
        report = checker.stop()
        assert not report.errors, report.summary()
        # every write reached the cache: after the writers stop, each key reads its last value
        deadline = time.monotonic() + 5
        conn = connect(via, db)
        with conn.cursor() as cur:
            for key in range(8):
                while True:
                    cur.execute("SELECT v FROM k WHERE id = %s", (key,))
                    if cur.fetchone()[0] == checker.acked[key]:
                        break
                    assert time.monotonic() < deadline, f"key {key} stays stale in the cache"
                    time.sleep(0.05)
        conn.close()
        assert report.staleness_s < 5, report.summary()
        print(f"bypassing writes: {report.summary()}, longest staleness {report.staleness_s * 1000:.0f} ms")
    finally:
        stop_ingress(ing)
        stop_processes([binlog])


def test_prepared_reads_are_cached_by_their_parameters_and_invalidated(stack, tmp_path):
    """mysql-connector's server-side prepared statements: an execution with the same parameters is a hit
    (types sent with the first execute only), other parameters are another entry, and an INSERT through the
    ingress is seen by the next execution."""
    ing, binlog, metrics = _caching_ingress(stack, tmp_path)
    try:
        db, admin, conn = _table_and_prepared_session(ing.dsn(stack.primary), "id INT PRIMARY KEY, g INT NOT NULL",
                                                      "(1, 1), (2, 1), (3, 2)")
        cur = conn.cursor(prepared=True)
        query = "SELECT COUNT(*) FROM t WHERE g = %s"

        def count(g: int) -> int:
            cur.execute(query, (g,))
            return cur.fetchall()[0][0]

        hits = _metric(metrics, "dbmux_ingress_cache_lookups_total", 'result="hit"')
        assert [count(1), count(1), count(2), count(2), count(1)] == [2, 2, 1, 1, 2]
        assert _metric(metrics, "dbmux_ingress_cache_lookups_total", 'result="hit"') - hits == 3
        with admin.cursor() as cur2:
            cur2.execute(f"INSERT INTO {db}.t VALUES (4, 1)")
        assert count(1) == 3 and count(1) == 3
        conn.close()
        admin.close()
    finally:
        stop_ingress(ing)
        stop_processes([binlog])


def test_writes_invalidate_their_keys_and_follow_foreign_key_cascades(stack, tmp_path):
    """An UPDATE of one row leaves the cached answers about other rows (hits); a DELETE of a parent row
    invalidates the child rows its ON DELETE CASCADE removed -- through the ingress, and around it (a
    cascade is not in the binlog: the feed follows the schema's foreign keys)."""
    ing, binlog, metrics = _caching_ingress(stack, tmp_path)
    try:
        via = ing.dsn(stack.primary)
        db = f"rc_{uuid.uuid4().hex[:8]}"
        conn = connect(via)
        cur = conn.cursor()
        cur.execute(f"CREATE DATABASE {db}")
        cur.execute(f"CREATE TABLE {db}.p (id INT PRIMARY KEY, n INT NOT NULL)")
        cur.execute(f"CREATE TABLE {db}.c (id INT PRIMARY KEY, pid INT NOT NULL, FOREIGN KEY (pid) "
                    f"REFERENCES {db}.p (id) ON DELETE CASCADE)")
        cur.execute(f"INSERT INTO {db}.p VALUES (1, 0), (2, 0), (3, 0)")
        cur.execute(f"INSERT INTO {db}.c VALUES (10, 1), (11, 3)")
        cur.execute(f"USE {db}")

        def hits() -> float:
            return _metric(metrics, "dbmux_ingress_cache_lookups_total", 'result="hit"')

        def read(sql: str) -> tuple:
            cur.execute(sql)
            return cur.fetchall()

        # the facts learn the tables' keys and foreign keys at the reload their DDL asked for: until then an
        # UPDATE of row 2 invalidates all of p (or everything) and row 1's next read is a miss
        deadline = time.monotonic() + 30
        while True:
            read("SELECT n FROM p WHERE id = 1")
            cur.execute("UPDATE p SET n = n + 1 WHERE id = 2")
            before = hits()
            assert read("SELECT n FROM p WHERE id = 1") == ((0,),)
            if hits() > before:
                break
            assert time.monotonic() < deadline, "an UPDATE of row 2 keeps invalidating row 1's entry"
        n2 = read("SELECT n FROM p WHERE id = 2")[0][0]
        cur.execute("UPDATE p SET n = n + 1 WHERE id = 2")
        assert read("SELECT n FROM p WHERE id = 2") == ((n2 + 1,),)  # its own key: invalidated
        assert read("SELECT pid FROM c WHERE id = 10") == ((1,),)
        assert read("SELECT pid FROM c WHERE id = 10") == ((1,),)
        cur.execute("DELETE FROM p WHERE id = 1")  # cascades to c's row 10
        assert read("SELECT pid FROM c WHERE id = 10") == ()
        assert read("SELECT pid FROM c WHERE id = 11") == ((3,),)  # (cached now)
        bypass = connect(stack.primary, db)
        with bypass.cursor() as cur2:
            cur2.execute("DELETE FROM p WHERE id = 3")  # around the ingress, cascading to row 11
        bypass.close()
        deadline = time.monotonic() + 10
        while read("SELECT pid FROM c WHERE id = 11") != ():
            assert time.monotonic() < deadline, "a cascade around the ingress never reached the cache"
            time.sleep(0.05)
        conn.close()
    finally:
        stop_ingress(ing)
        stop_processes([binlog])


def test_prepared_writes_and_reads_pin_keys_by_their_bound_values(stack, tmp_path):
    """mysql-connector's server-side prepared statements: `id = ?` bound to an integer pins that key on
    both sides -- an UPDATE of row 2 leaves row 1's cached answer a hit, an UPDATE of row 1 is read next."""
    ing, binlog, metrics = _caching_ingress(stack, tmp_path)
    try:
        _, admin, conn = _table_and_prepared_session(ing.dsn(stack.primary), "id INT PRIMARY KEY, v INT NOT NULL",
                                                     "(1, 0), (2, 0)")
        admin.close()
        cur = conn.cursor(prepared=True)

        def value(key: int) -> int:
            cur.execute("SELECT v FROM t WHERE id = %s", (key,))
            return cur.fetchall()[0][0]

        def bump(key: int) -> None:
            cur.execute("UPDATE t SET v = v + 1 WHERE id = %s", (key,))

        def hits() -> float:
            return _metric(metrics, "dbmux_ingress_cache_lookups_total", 'result="hit"')

        deadline = time.monotonic() + 30  # (until the schema facts know t's key: its DDL asked for a reload)
        while True:
            value(1)
            bump(2)
            before = hits()
            assert value(1) == 0
            if hits() > before:
                break
            assert time.monotonic() < deadline, "a prepared UPDATE of row 2 keeps invalidating row 1's entry"
        bump(1)
        assert value(1) == 1 and value(1) == 1
        conn.close()
    finally:
        stop_ingress(ing)
        stop_processes([binlog])
