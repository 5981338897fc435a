"""`dbmux history` (issue 18 deliver #2): every change of one row, in commit order, each once (the
ingress and binlog copies of a GTID merged), naming the user for ingress writes; writes around the
ingress too; the index is reused."""

from __future__ import annotations

import asyncio
import uuid

import orjson

from .conftest import pipeline_config, read_topic, run_dbmux, start_binlog_reader, stop_processes
from .test_replicator_mysql import _conn


def _gtid(cur) -> str:
    cur.execute("SELECT @@last_gtid")
    return cur.fetchone()[0]


def test_history_of_a_row(stack, ingress, tmp_path):
    db = f"hi_{uuid.uuid4().hex[:8]}"
    cfg = pipeline_config(tmp_path / "hi.toml", stack, ingress.topic, {})
    procs = [start_binlog_reader(cfg, tmp_path / "binlog.log")]
    index = tmp_path / "history.sqlite"
    try:
        app, direct = _conn(ingress.dsn(stack.primary)), _conn(stack.primary)
        want = []
        with app.cursor() as cur, direct.cursor() as dcur:
            cur.execute(f"CREATE DATABASE {db}")
            cur.execute(f"CREATE TABLE {db}.acct (id INT PRIMARY KEY, owner VARCHAR(20), balance INT)")
            cur.execute(f"INSERT INTO {db}.acct VALUES (1, 'ann', 100), (2, 'bob', 50)")
            want.append((_gtid(cur), "insert", "ingress"))
            cur.execute(f"UPDATE {db}.acct SET balance = balance - 30 WHERE id = 1")
            want.append((_gtid(cur), "update", "ingress"))
            cur.execute(f"UPDATE {db}.acct SET balance = balance + 5 WHERE id = 2")  # another row
            dcur.execute(f"UPDATE {db}.acct SET owner = 'anne' WHERE id = 1")  # around the ingress
            want.append((_gtid(dcur), "update", "direct"))
            cur.execute(f"DELETE FROM {db}.acct WHERE id = 1")
            want.append((_gtid(cur), "delete", "ingress"))
            last = _gtid(cur)
        app.close()
        direct.close()

        async def both_copies() -> None:
            while True:
                evs = await read_topic(stack.kafka, ingress.topic, min_count=1)
                if any(e.source == "binlog" and str(e.gtid) == last for e in evs):
                    return
                await asyncio.sleep(0.2)
        asyncio.run(asyncio.wait_for(both_copies(), 60))

        out = run_dbmux("history", "-c", str(cfg), "--index", str(index), f"{db}.acct", "1")
        lines = [orjson.loads(x) for x in out.stdout.splitlines()]
        assert [(x["gtid"], x["op"]) for x in lines] == [(g, op) for g, op, _ in want]
        assert [x["user"] for x in lines] == [stack.primary.user if via == "ingress" else None for *_, via in want]
        assert lines[0]["after"] == {"id": 1, "owner": "ann", "balance": 100} and lines[0]["before"] is None
        assert lines[1]["before"]["balance"] == 100 and lines[1]["after"]["balance"] == 70
        assert "balance - 30" in lines[1]["statements"][0] and lines[2]["statements"] is None
        assert lines[3]["after"] is None and lines[3]["before"]["owner"] == "anne"
        assert index.stat().st_size > 0

        # again: from the index (nothing new to read), the same answer; a time window narrows it
        assert run_dbmux("history", "-c", str(cfg), "--index", str(index), f"{db}.acct", "1").stdout == out.stdout
        first = lines[0]["ts_ms"]  # (binlog times are whole seconds: a window at the first change's edge)
        within = run_dbmux("history", "-c", str(cfg), "--index", str(index), "--since", str(first), f"{db}.acct", "1")
        assert within.stdout == out.stdout
        before = run_dbmux("history", "-c", str(cfg), "--index", str(index), "--until", str(first - 1), f"{db}.acct",
                           "1")
        assert before.stdout == ""
        bad = run_dbmux("history", "-c", str(cfg), "--index", str(index), f"{db}.acct", "1", "2", check=False)
        assert bad.returncode == 2 and "primary key is (id)" in bad.stderr
    finally:
        stop_processes(procs)
        with _conn(stack.primary).cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {db}")
