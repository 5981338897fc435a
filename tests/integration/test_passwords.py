"""Issue 12 #4: clear-text passwords never reach the stream, nor any log, halt message, status or DLQ.

Account statements run straight on the primary (only the binlog reader sees them; MariaDB's binlog
keeps ``IDENTIFIED BY 'pw'`` as written) and through the ingress (both producers), with two
replicators applying them to the replicas: the replica then accepts each account with its password
(the hash form applied correctly). A FEDERATED table whose CONNECTION URL holds a password has no
hash form: it is withheld, the ``halt`` target halts on it and the ``dead-letter`` target dead-letters
it -- with no password in the halt message, the status, the DLQ or any log. Everything the run left
behind is then searched for the passwords.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import pymysql
from aiokafka import AIOKafkaConsumer, TopicPartition

from dbmux.core.dsn import Dsn
from dbmux.core.password_hash import native_password_hash

from .conftest import pipeline_config, run_dbmux, start_binlog_reader, start_ingress, stop_ingress, stop_processes
from .test_replicator_mysql import _conn, _start_replicator


async def _raw_records(bootstrap: str, topic: str) -> list[tuple[bytes, list[tuple[str, bytes]]]]:
    """Every record of ``topic`` as bytes, with its headers (nothing decoded: what is stored)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        parts = consumer.partitions_for_topic(topic)
        if not parts:
            await consumer._client.force_metadata_update()
            parts = consumer.partitions_for_topic(topic)
        if not parts:
            return []
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        out = []
        while [tp for tp in tps if await consumer.position(tp) < end[tp]]:
            for recs in (await consumer.getmany(*tps, timeout_ms=1000)).values():
                out.extend((r.value or b"", list(r.headers or ())) for r in recs)
        return out
    finally:
        await consumer.stop()


def _sql_quote(pw: str) -> str:
    return "'" + pw.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _can_log_in(dsn: Dsn, user: str, password: str) -> bool:
    try:
        pymysql.connect(host=dsn.host, port=dsn.port, user=user, password=password, connect_timeout=5).close()
        return True
    except pymysql.err.OperationalError:
        return False


def _wait(predicate, what: str, timeout_s: float = 90.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.3)


def test_passwords_never_reach_the_stream_logs_status_or_dlq(stack, tmp_path):
    tag = uuid.uuid4().hex[:8]
    # each password's random part is what is searched for: it leaks in no encoding (SQL, JSON, repr)
    token = {name: uuid.uuid4().hex[:12] for name in ("direct", "alter", "grant", "using", "via", "set", "fed")}
    pw = {name: f"Pw{name}-{t}" for name, t in token.items()}
    pw["via"] += "'q\\b"  # quotes and backslashes survive the trip as the right credential
    users = {name: f"pwt_{name}_{tag}" for name in ("direct", "grant", "using", "via")}
    db = f"pwt_{tag}"
    ing = start_ingress(stack, tmp_path)
    halt_t, dlq_t = f"ph{tag}", f"pd{tag}"
    cfg = pipeline_config(tmp_path / "dbmux.toml", stack, ing.topic,
                          {halt_t: stack.replicas[0], dlq_t: stack.replicas[1]})
    cfg.write_text(cfg.read_text().replace(f'[targets.{dlq_t}]\n', f'[targets.{dlq_t}]\non_error = "dead-letter"\n'))
    logs = {"binlog": tmp_path / "binlog.log", halt_t: tmp_path / f"{halt_t}.log", dlq_t: tmp_path / f"{dlq_t}.log"}
    procs = []
    try:
        procs.append(start_binlog_reader(cfg, logs["binlog"]))
        rep_halt = _start_replicator(cfg, halt_t, logs[halt_t])
        rep_dlq = _start_replicator(cfg, dlq_t, logs[dlq_t])
        procs += [rep_halt, rep_dlq]

        primary = _conn(stack.primary)  # the binlog path only
        with primary.cursor() as cur:
            cur.execute(f"CREATE DATABASE {db}")
            cur.execute(f"CREATE USER '{users['direct']}'@'%' IDENTIFIED BY {_sql_quote(pw['alter'])}")
            cur.execute(f"ALTER USER '{users['direct']}'@'%' IDENTIFIED BY {_sql_quote(pw['direct'])}")
            cur.execute(f"GRANT SELECT ON {db}.* TO '{users['grant']}'@'%' IDENTIFIED BY {_sql_quote(pw['grant'])}")
            cur.execute(f"CREATE USER '{users['using']}'@'%' IDENTIFIED VIA mysql_native_password "
                        f"USING PASSWORD({_sql_quote(pw['using'])})")
        via = _conn(ing.dsn(stack.primary))  # both producers
        with via.cursor() as cur:
            cur.execute(f"CREATE USER '{users['via']}'@'%' IDENTIFIED BY {_sql_quote(pw['set'])}")
            cur.execute(f"SET PASSWORD FOR '{users['via']}'@'%' = PASSWORD({_sql_quote(pw['via'])})")
            cur.execute(f"CREATE SERVER pwt_srv_{tag} FOREIGN DATA WRAPPER mysql OPTIONS (USER 'u', "
                        f"PASSWORD {_sql_quote(pw['fed'])}, HOST '127.0.0.1')")  # no GTID: nothing published
            cur.execute(f"DROP SERVER pwt_srv_{tag}")
        via.close()

        # each replica got every account with its password, from the hash
        for replica in stack.replicas:
            for name, user in users.items():
                _wait(lambda r=replica, u=user, p=pw[name]: _can_log_in(r, u, p), f"{user} on {replica.port}")
            assert not _can_log_in(replica, users["direct"], pw["alter"])  # the ALTER applied in order
        published = b"".join(v for v, _ in asyncio.run(_raw_records(stack.kafka, ing.topic))).decode(errors="replace")
        for name, secret in token.items():
            assert secret not in published, f"password {name!r} published in {ing.topic}"
        # no hash form: withheld; the halt target halts, the dead-letter target dead-letters and goes on
        with primary.cursor() as cur:
            cur.execute(f"CREATE TABLE {db}.fed (id INT PRIMARY KEY) "
                        f"CONNECTION='mysql://fed:{pw['fed']}@127.0.0.1:9/x/y'")
            cur.execute(f"CREATE TABLE {db}.after_fed (id INT PRIMARY KEY)")
        primary.close()
        assert rep_halt.wait(90) == 3, logs[halt_t].read_text()[-3000:]
        _wait(lambda: "dead-lettered" in logs[dlq_t].read_text(), "the dead-letter")
        _wait(lambda: _table_exists(stack.replicas[1], db, "after_fed"), "the dead-letter target going on")
        status = run_dbmux("status", "-c", str(cfg), check=False)
        assert halt_t in status.stdout and "halted" in status.stdout and "DBMUX_PASSWORD_WITHHELD" in status.stdout
        events = run_dbmux("events", "-c", str(cfg), "--last", "1000")
        assert native_password_hash(pw["direct"]) in events.stdout  # the stored form is what travels
    finally:
        stop_processes(procs)
        stop_ingress(ing)
        _cleanup(stack, db, users.values())

    topic = asyncio.run(_raw_records(stack.kafka, ing.topic))
    dlq = asyncio.run(_raw_records(stack.kafka, ing.topic + ".dlq"))
    assert topic and dlq
    places = {"topic": b"\n".join(v for v, _ in topic).decode(errors="replace"),
              "dlq": b"\n".join(v + b"".join(h for _, h in hs) for v, hs in dlq).decode(errors="replace"),
              "dbmux status": status.stdout + status.stderr, "dbmux events": events.stdout + events.stderr,
              "ingress log": ing.log()}
    places.update({f"{name} log": path.read_text(errors="replace") for name, path in logs.items()})
    assert "HALTED" in places[f"{halt_t} log"]
    for where, text in places.items():
        for name, secret in token.items():
            assert secret not in text, f"password {name!r} in {where}"


def _table_exists(dsn: Dsn, db: str, table: str) -> bool:
    c = _conn(dsn)
    try:
        with c.cursor() as cur:
            cur.execute("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s",
                        (db, table))
            return cur.fetchone()[0] == 1
    finally:
        c.close()


def _cleanup(stack, db: str, users) -> None:
    for dsn in (stack.primary, *stack.replicas):  # the replicators are stopped: each server by hand
        c = _conn(dsn)
        with c.cursor() as cur:
            cur.execute("SET SESSION sql_log_bin = 0")
            cur.execute(f"DROP DATABASE IF EXISTS {db}")
            for user in users:
                cur.execute(f"DROP USER IF EXISTS '{user}'@'%'")
        c.close()
