"""`dbmux events` filters against a real topic (issue 18 deliver #3): --table, --gtid, --op, --since, --user."""

from __future__ import annotations

import asyncio
import time
import uuid

import orjson

from .conftest import pipeline_config, read_topic, run_dbmux


def _events(cfg, *args: str) -> list[dict]:
    out = run_dbmux("events", "-c", str(cfg), *args)
    return [orjson.loads(line) for line in out.stdout.splitlines()]


def test_events_filters(stack, ingress, tmp_path):
    from .test_replicator_mysql import _conn

    db = f"ef_{uuid.uuid4().hex[:8]}"
    cfg = pipeline_config(tmp_path / "ef.toml", stack, ingress.topic, {})
    c = _conn(ingress.dsn(stack.primary))
    gtids = {}
    with c.cursor() as cur:
        for key, sql in (("db", f"CREATE DATABASE {db}"), ("ta", f"CREATE TABLE {db}.a (id INT PRIMARY KEY)"),
                         ("tb", f"CREATE TABLE {db}.b (id INT PRIMARY KEY)"), ("Ia", f"INSERT INTO {db}.a VALUES (1)"),
                         ("Ib", f"INSERT INTO {db}.b VALUES (1)"), ("Da", f"DELETE FROM {db}.a")):
            cur.execute(sql)
            cur.execute("SELECT @@last_gtid")
            gtids[key] = cur.fetchone()[0]
    c.close()
    asyncio.run(read_topic(stack.kafka, ingress.topic, min_count=1))  # published

    on_a = _events(cfg, "--table", f"{db}.a")
    assert [e["gtid"] for e in on_a if e["statements"][0]["kind"] == "dml"] == [gtids["Ia"], gtids["Da"]]
    assert all(f"{db}.b" not in e["statements"][0]["sql"] for e in on_a)
    assert [e["gtid"] for e in _events(cfg, "--gtid", f"{gtids['Ia']}..{gtids['Ib']}")] == [gtids["Ia"], gtids["Ib"]]
    ddl = [e["gtid"] for e in _events(cfg, "--table", f"{db}.*", "--op", "ddl")]
    assert ddl == [gtids["db"], gtids["ta"], gtids["tb"]]
    assert {e["gtid"] for e in _events(cfg, "--table", f"{db}.*", "--user", stack.primary.user)} >= set(gtids.values())
    assert _events(cfg, "--table", f"{db}.*", "--user", "nobody") == []
    future = str(int(time.time() * 1000) + 3_600_000)
    assert _events(cfg, "--since", future) == []
    bad = run_dbmux("events", "-c", str(cfg), "--gtid", "0-1-9..1-1-3", check=False)
    assert bad.returncode == 2 and "--gtid" in bad.stderr
