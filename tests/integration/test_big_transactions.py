"""Transactions of any size (issue 12 #1): events over Kafka's message limit travel as fragments.

Before fragments, one transaction over the broker's ~1 MiB limit stopped every target for good: the
binlog reader retried it forever, the ingress's idempotent producer was poisoned for every later
publish, and targets waited behind the gap. Here, through the ingress and straight to the primary:
a 2 MiB transaction, a 16 MiB one of eight statements, a 16 MiB one that bypasses the ingress, and one
of 200,000 rows; then a small one. Both producers must publish all of them (the ingress's own copy
too, so its producer survived), in fragments (the 200,000 rows in parts applied one at a time); a MySQL
replica and a PostgreSQL target reach the primary's GTID, and ``dbmux verify`` passes.
"""

from __future__ import annotations

import asyncio
import secrets
import uuid

import pymysql
from aiokafka import AIOKafkaConsumer, TopicPartition

from dbmux.core.fragments import is_fragment
from dbmux.core.parts import header, is_part

from .conftest import (
    pipeline_config,
    start_binlog_reader,
    start_ingress,
    stop_ingress,
    stop_processes,
    verify_until_equal,
)
from .test_replicator_mysql import _conn, _start_replicator

MIB = 1024 * 1024


def _gtid(conn: pymysql.Connection) -> str:
    with conn.cursor() as cur:
        cur.execute("SELECT @@last_gtid")
        return cur.fetchone()[0]


def _blob(n: int) -> str:
    return secrets.token_hex(n // 2)  # text: the statement copy stays UTF-8 (binary SQL is issue 12 #6)


async def _raw_messages(bootstrap: str, topic: str) -> list[bytes]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                max_partition_fetch_bytes=8 * MIB)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(tps)
        end = await consumer.end_offsets(tps)
        await consumer.seek_to_beginning(*tps)
        out = []
        while any([await consumer.position(tp) < end[tp] for tp in tps]):
            for recs in (await consumer.getmany(timeout_ms=500)).values():
                out.extend(r.value for r in recs)
        return out
    finally:
        await consumer.stop()


def test_transactions_over_the_message_limit_reach_every_target(stack, tmp_path):
    from .conftest import read_topic

    ing = start_ingress(stack, tmp_path)
    db = f"big_{uuid.uuid4().hex[:8]}"
    cfg = pipeline_config(tmp_path / "big.toml", stack, ing.topic,
                          {"bigmy": stack.replicas[0], "bigpg": stack.shards[0]}, tables=f"{db}.*")
    procs = [start_binlog_reader(cfg, tmp_path / "binlog.log")]
    via = ing.dsn(stack.primary)
    try:
        app = _conn(via, max_allowed_packet=64 * MIB)
        direct = _conn(stack.primary, max_allowed_packet=64 * MIB)
        gtids: dict[str, str] = {}
        with app.cursor() as cur:
            cur.execute(f"CREATE DATABASE {db}")
            cur.execute(f"CREATE TABLE {db}.blobs (id INT PRIMARY KEY, b LONGTEXT NOT NULL)")
            cur.execute(f"CREATE TABLE {db}.many (id INT PRIMARY KEY, v INT NOT NULL)")
            cur.execute(f"INSERT INTO {db}.blobs VALUES (1, %s)", (_blob(2 * MIB),))
            gtids["2 MiB"] = _gtid(app)
            app.begin()
            for i in range(8):
                cur.execute(f"INSERT INTO {db}.blobs VALUES (%s, %s)", (100 + i, _blob(2 * MIB)))
            app.commit()
            gtids["16 MiB"] = _gtid(app)
            app.begin()
            for start in range(0, 200_000, 20_000):
                cur.execute(f"INSERT INTO {db}.many VALUES " +
                            ",".join(f"({i}, {i * 7})" for i in range(start, start + 20_000)))
            app.commit()
            gtids["200k rows"] = _gtid(app)
        with direct.cursor() as cur:
            direct.begin()
            for i in range(8):
                cur.execute(f"UPDATE {db}.blobs SET b = %s WHERE id = %s", (_blob(2 * MIB), 100 + i))
            direct.commit()
            gtids["16 MiB direct"] = _gtid(direct)
        with app.cursor() as cur:
            cur.execute(f"UPDATE {db}.blobs SET b = 'small' WHERE id = 1")
            gtids["after"] = _gtid(app)

        for target in ("bigmy", "bigpg"):
            procs.append(_start_replicator(cfg, target, tmp_path / f"{target}.log"))
        res = verify_until_equal(cfg, 900)
        assert res.returncode == 0 and "all 2 targets equal" in res.stdout, res.stdout + res.stderr

        events = asyncio.run(read_topic(stack.kafka, ing.topic, min_count=1))
        by_source: dict[str, set[str]] = {"ingress": set(), "binlog": set()}
        for ev in events:
            by_source[ev.source].add(str(ev.gtid))
        ingress_gtids = {gtids[k] for k in ("2 MiB", "16 MiB", "200k rows", "after")}
        assert ingress_gtids <= by_source["ingress"], (gtids, sorted(by_source["ingress"])[-10:])
        assert set(gtids.values()) <= by_source["binlog"], (gtids, sorted(by_source["binlog"])[-10:])
        raw = asyncio.run(_raw_messages(stack.kafka, ing.topic))
        assert all(len(m) <= 512 * 1024 for m in raw)
        assert sum(1 for m in raw if is_fragment(m)) >= 2 * (16 + 16), "events were not fragmented"
        # the 200,000 rows (both copies) travel as parts each decodable alone (rows / statements), applied
        # part by part in one target transaction (replicator.streamed): memory bounded by a part
        cut_in_parts = {(h["gtid"], h["source"], h["form"]) for h in (header(m)[0] for m in raw if is_part(m))}
        many = gtids["200k rows"]
        assert {(many, "ingress", "statements"), (many, "binlog", "rows")} <= cut_in_parts, cut_in_parts
        pg_log = (tmp_path / "bigpg.log").read_text()  # PostgreSQL: the row copy (statements judged per part)
        assert f"applied {many} from binlog in " in pg_log, pg_log[-3000:]
        assert f"applied {many} from " in (tmp_path / "bigmy.log").read_text()
        assert "unpublished" not in ing.log() and "OutOfOrderSequence" not in ing.log(), ing.log()[-3000:]
        blog = (tmp_path / "binlog.log").read_text()
        assert "did not take transaction" not in blog and "never retrieved" not in blog, blog[-3000:]
    finally:
        stop_processes(procs)
        stop_ingress(ing)
        with _conn(stack.primary).cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {db}")


def _config(stack, topic: str, fragment_bytes: int):
    from dbmux.core.config import parse_config

    return parse_config({"kafka": {"bootstrap": stack.kafka, "topic": topic, "fragment_bytes": fragment_bytes},
                         "primary": {"url": stack.primary.url()}}, {})


async def _set_topic_limit(bootstrap: str, topic: str, limit: int) -> None:
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    from dbmux.core.kafka_topics import topic_config

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic,
                                                  {"max.message.bytes": str(limit)})])
        for _ in range(100):  # until the broker applies it
            if await topic_config(admin, topic, "max.message.bytes") == str(limit):
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"topic {topic}: max.message.bytes did not become {limit}")
    finally:
        await admin.close()


def test_a_topic_that_would_refuse_fragments_stops_start_up_naming_the_setting(stack):
    import pytest

    from dbmux.core.errors import ConfigError
    from dbmux.core.kafka_topics import ensure_topic

    topic = f"dbmux.frag{uuid.uuid4().hex[:8]}.txn"
    config = _config(stack, topic, 512 * 1024)
    asyncio.run(ensure_topic(config.kafka, topic))  # created with the broker default (1 MiB): fits
    asyncio.run(_set_topic_limit(stack.kafka, topic, 100_000))
    with pytest.raises(ConfigError) as info:
        asyncio.run(ensure_topic(config.kafka, topic))
    assert info.value.key == "kafka.fragment_bytes"
    assert "max.message.bytes = 100000" in str(info.value) and "at most 99488" in str(info.value)


def test_a_failed_send_does_not_poison_the_ingress_producer(stack):
    """Real Kafka: one send refused (the topic's limit lowered under the producer's feet), then every
    later event is still published. The reported poisoning (every later send failing with
    OutOfOrderSequenceNumber) did not reproduce in this probe with aiokafka 0.12 (the old code passes it
    too); the publisher replaces its producer after any failed send regardless, and this checks that
    the replacement publishes in order and loses nothing."""
    from dbmux.core.events import ChangeEvent, Statement
    from dbmux.core.gtid import Gtid
    from dbmux.ingress.publisher import Publisher

    from .conftest import read_topic

    topic = f"dbmux.poison{uuid.uuid4().hex[:8]}.txn"
    config = _config(stack, topic, 64 * 1024)

    def event(seq: int, size: int, server: int = 1) -> ChangeEvent:
        return ChangeEvent(gtid=Gtid.parse(f"0-{server}-{seq}"), source="ingress", ts_ms=0,
                           statements=(Statement("INSERT INTO t VALUES ('" + "x" * size + "')"),))

    async def broker_enforces(probe: Publisher, limit: int, refused: bool) -> None:
        """The topic's config is applied by the broker after describe_configs already shows it: probe
        (another publisher, another server id, filtered out below) until a 50 KB send gets the answer
        the test is about to rely on."""
        await _set_topic_limit(stack.kafka, topic, limit)
        for n in range(1, 101):
            if await probe.publish_within(event(n, 50_000, server=99), 20) is not refused:
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"topic {topic}: the broker never enforced max.message.bytes = {limit}")

    async def run() -> list[bool]:
        pub, probe = Publisher(config), Publisher(config)
        await pub.start()
        await probe.start()
        try:
            await broker_enforces(probe, 20_000, refused=True)
            results = [await pub.publish_within(event(1, 50_000), 20)]  # refused: over the topic's limit
            await broker_enforces(probe, 1_048_588, refused=False)
            for seq in range(2, 7):
                results.append(await pub.publish_within(event(seq, 100), 20))
            return results
        finally:
            await probe.stop()
            await pub.stop()

    assert asyncio.run(run()) == [False, True, True, True, True, True]
    seqs = [ev.gtid.seq for ev in asyncio.run(read_topic(stack.kafka, topic, min_count=5)) if ev.gtid.server == "1"]
    assert seqs == [2, 3, 4, 5, 6]


def test_a_replicator_killed_while_applying_parts_applies_the_transaction_once(stack, tmp_path):
    """SIGKILL in the middle of a transaction applied part by part: nothing of it is visible on the target
    (it was one open target transaction), and the restarted replicator applies all of it, exactly once."""
    import signal
    import time

    db = f"kill_{uuid.uuid4().hex[:8]}"
    topic = f"dbmux.killparts{uuid.uuid4().hex[:8]}.txn"
    cfg = pipeline_config(tmp_path / "kill.toml", stack, topic, {"killmy": stack.replicas[0],
                                                                  "killpg": stack.shards[0]}, tables=f"{db}.*")
    procs = [start_binlog_reader(cfg, tmp_path / "binlog.log")]
    rows = 300_000
    try:
        direct = _conn(stack.primary, max_allowed_packet=64 * MIB)
        with direct.cursor() as cur:
            cur.execute(f"CREATE DATABASE {db}")
            cur.execute(f"CREATE TABLE {db}.many (id INT PRIMARY KEY, v VARCHAR(40) NOT NULL)")
            direct.begin()
            for start in range(0, rows, 20_000):
                cur.execute(f"INSERT INTO {db}.many VALUES " +
                            ",".join(f"({i}, 'value {i:012d}')" for i in range(start, start + 20_000)))
            direct.commit()
            cur.execute(f"INSERT INTO {db}.many VALUES (-1, 'after')")
        first = [_start_replicator(cfg, t, tmp_path / f"{t}-1.log") for t in ("killmy", "killpg")]
        procs += first
        dirty = _conn(stack.replicas[0])
        with dirty.cursor() as cur:
            cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ UNCOMMITTED")
        deadline, seen = time.monotonic() + 300, 0
        while time.monotonic() < deadline:  # until the open target transaction holds some of the rows
            with dirty.cursor() as cur:
                cur.execute(f"SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{db}'")
                if cur.fetchone()[0]:
                    cur.execute(f"SELECT COUNT(*) FROM {db}.many")
                    seen = cur.fetchone()[0]
            if 0 < seen < rows // 2:
                break
            time.sleep(0.05)
        assert 0 < seen < rows, f"never saw the transaction half applied ({seen} rows)"
        for p in first:
            p.send_signal(signal.SIGKILL)
            p.wait(10)
        with _conn(stack.replicas[0]).cursor() as cur:  # a committed read sees none of it
            cur.execute(f"SELECT COUNT(*) FROM {db}.many")
            assert cur.fetchone()[0] == 0
        procs += [_start_replicator(cfg, t, tmp_path / f"{t}-2.log") for t in ("killmy", "killpg")]
        res = verify_until_equal(cfg, 600)
        assert res.returncode == 0 and "all 2 targets equal" in res.stdout, res.stdout + res.stderr
        for t in ("killmy", "killpg"):
            assert " parts (" in (tmp_path / f"{t}-2.log").read_text()
    finally:
        stop_processes(procs)
        with _conn(stack.primary).cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {db}")
