"""A 3-broker KRaft cluster from ``dbmux stack up --kafka-brokers 3``: dbmux creates its topic with
replication factor 3 and ``min.insync.replicas`` 2, acks=all publishing and consuming survive the loss of
the partition leader (SIGKILL), ``dbmux stack restart kafka-N`` brings it back; the start-up checks
stop on a topic below the config, naming the key and the fix; and the remote region
(``--kafka-remote-port``): a client bootstrapped through the Toxiproxy proxies is only ever told the
proxies' addresses, and the latency set on them is the latency it sees.

Runs its own stack (own directory, ports 28092.. -- outside the kernel's ephemeral range 32768-60999, where a
client socket of another test could hold them -- brokers 28092/28094/28096, controllers
28093/28095/28097, remote proxies 28100/28102/28104, Toxiproxy's API 28106), through the real CLI, only its
Kafka brokers and Toxiproxy (``--only kafka,toxiproxy``: the databases are not needed here), and stops it at
the end.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import time
import uuid
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.client import AIOKafkaClient

from dbmux.core.config import load_config
from dbmux.core.errors import ConfigError
from dbmux.core.kafka_topics import TOPIC_CONFIG, ensure_topic, topic_facts, topic_findings
from dbmux.stack.layout import Layout
from dbmux.stack.toxiproxy import set_latency

from .conftest import run_dbmux

PORTS = {"--kafka-port": 28092, "--kafka-controller-port": 28093, "--primary-port": 28306,
         "--replica1-port": 28307, "--replica2-port": 28308, "--shard-a-port": 28432,
         "--shard-b-port": 28433, "--ingress-port": 28033}
BOOTSTRAP = "127.0.0.1:28092,127.0.0.1:28094,127.0.0.1:28096"
REMOTE_PORT = 28100


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    d = tmp_path_factory.mktemp("kafka-cluster") / "stack"
    args = [x for kv in PORTS.items() for x in (kv[0], str(kv[1]))]
    try:
        up = run_dbmux("stack", "up", "--dir", str(d), "--kafka-brokers", "3", "--kafka-remote-port",
                       str(REMOTE_PORT), "--only", "kafka,toxiproxy", *args)
        assert "(started kafka-1, kafka-2, kafka-3, toxiproxy;" in up.stdout
        yield d
    finally:
        run_dbmux("stack", "down", "--dir", str(d), "--purge", check=False)


def _status(d: Path) -> dict[str, tuple[int, int | None, str]]:
    rows = {}
    for line in run_dbmux("stack", "status", "--dir", str(d), check=False).stdout.splitlines()[1:]:
        name, port, pid, state = line.split()
        rows[name] = (int(port), None if pid == "-" else int(pid), state)
    return rows


async def _admin() -> AIOKafkaAdminClient:
    admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP, request_timeout_ms=10000)
    await admin.start()
    return admin


async def _partition(topic: str) -> dict:
    """Partition 0's leader, replicas and ISR -- from a broker that knows the topic: a new topic reaches
    the brokers one by one, and the admin client asks any of them."""
    admin = await _admin()
    try:
        for _ in range(100):
            [described] = await admin.describe_topics([topic])
            if described["partitions"]:
                return described["partitions"][0]
            await asyncio.sleep(0.1)
        raise AssertionError(f"no broker reports topic {topic}")
    finally:
        await admin.close()


async def _publish_across(topic: str, before: list[bytes], between, after: list[bytes]) -> None:
    """Send ``before``, run ``between()``, send ``after``: acks=all, one producer throughout (like the
    ingress's; a client *starting* while a dead broker is still registered can fail its version probe,
    aiokafka's, not the cluster's)."""
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all", enable_idempotence=True,
                                request_timeout_ms=30000)
    await producer.start()
    try:
        for v in before:
            await producer.send_and_wait(topic, v, key=b"0")
        await between()
        for v in after:
            await producer.send_and_wait(topic, v, key=b"0")
    finally:
        await producer.stop()


async def _consume_all(topic: str, count: int, timeout_s: float = 30.0) -> list[bytes]:
    consumer = AIOKafkaConsumer(bootstrap_servers=BOOTSTRAP, enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    try:
        consumer.assign([TopicPartition(topic, 0)])
        got: list[bytes] = []
        deadline = time.monotonic() + timeout_s
        while len(got) < count and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=1000)
            got += [m.value for msgs in batch.values() for m in msgs if m.value is not None]
        return got
    finally:
        await consumer.stop()


def test_three_brokers_replicate_dbmux_topics_and_survive_losing_the_leader(cluster):
    d = cluster
    status = _status(d)
    brokers = {name: row for name, row in status.items() if name.startswith("kafka")}
    assert sorted(brokers) == ["kafka-1", "kafka-2", "kafka-3"]
    assert [row[0] for _, row in sorted(brokers.items())] == [28092, 28094, 28096]
    assert all(row[1] and row[2] == "up" for row in brokers.values()), status
    assert {name: row[0] for name, row in status.items() if name not in brokers} == {
        "mariadb-primary": 28306, "mariadb-replica1": 28307, "mariadb-replica2": 28308,
        "pg-shard-a": 28432, "pg-shard-b": 28433, "toxiproxy": REMOTE_PORT + 6}  # databases recorded, not started
    assert f"export DBMUX_KAFKA={BOOTSTRAP}\n" in run_dbmux("stack", "env", "--dir", str(d)).stdout

    config = load_config(d / "dbmux.toml", env={})  # the generated pipeline config
    assert (config.kafka.bootstrap, config.kafka.replication_factor, config.kafka.min_insync_replicas) == \
        (BOOTSTRAP, 3, 2)
    topic = f"dbmux.cluster{uuid.uuid4().hex[:8]}.txn"
    assert asyncio.run(ensure_topic(config.kafka, topic)) is True  # what the ingress, binlog reader and replicators run

    async def described():
        admin = await _admin()
        try:
            return await topic_facts(admin, topic)
        finally:
            await admin.close()

    facts = asyncio.run(described())
    assert [len(r) for r in facts.replicas.values()] == [3] and facts.configs["min.insync.replicas"] == "2"
    assert topic_findings(config.kafka, facts, TOPIC_CONFIG) == []

    leader = asyncio.run(_partition(topic))["leader"]
    victim = f"kafka-{leader}"

    async def kill_the_leader():
        os.kill(brokers[victim][1], signal.SIGKILL)  # without a clean shutdown

    before = [f"before-{i}".encode() for i in range(20)]
    after = [f"after-{i}".encode() for i in range(20)]
    # acks=all: each send after the kill waits for the new leader, and is on both survivors when acknowledged
    asyncio.run(_publish_across(topic, before, kill_the_leader, after))
    deadline = time.monotonic() + 10
    while (part := asyncio.run(_partition(topic)))["leader"] == leader:  # a broker may answer a moment late
        assert time.monotonic() < deadline, part
        time.sleep(0.2)
    assert sorted(part["isr"]) == sorted(set(facts.replicas[0]) - {leader})
    assert asyncio.run(_consume_all(topic, 40)) == before + after
    down = _status(d)
    assert down[victim][2] == "down" and all(down[n][2] == "up" for n in brokers if n != victim)

    run_dbmux("stack", "restart", victim, "--dir", str(d))
    back = _status(d)
    assert back[victim][2] == "up" and back[victim][1] != brokers[victim][1]
    deadline = time.monotonic() + 60
    while len(asyncio.run(_partition(topic))["isr"]) < 3:  # the restarted broker catches up
        assert time.monotonic() < deadline, "the restarted broker did not rejoin the ISR"
        time.sleep(0.5)


async def _make_topic(topic: str, replication_factor: int, configs: dict[str, str]) -> None:
    admin = await _admin()
    try:
        resp = await admin.create_topics([NewTopic(topic, 1, replication_factor, topic_configs=configs)])
        assert [code for _, code, *_ in resp.topic_errors] == [0], resp
    finally:
        await admin.close()


async def _alter(topic: str, configs: dict[str, str]) -> None:
    """AlterConfigs replaces the topic's overrides with ``configs`` (what kafka-configs.sh --add-config
    of the fix leaves, given all of them). Returns once 10 reads in a row (each from a random broker)
    report them: the brokers apply a change one by one."""
    admin = await _admin()
    try:
        await admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, configs)])
        agreeing = 0
        for _ in range(200):
            facts = await topic_facts(admin, topic)
            agreeing = agreeing + 1 if all(facts.configs.get(k) == v for k, v in configs.items()) else 0
            if agreeing == 10:
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"topic {topic}: {configs} not applied")
    finally:
        await admin.close()


def _start_error(config, topic: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        asyncio.run(ensure_topic(config.kafka, topic))
    return info.value


def test_topics_below_the_config_stop_start_up_with_the_fix(cluster):
    config = load_config(cluster / "dbmux.toml", env={})
    run = uuid.uuid4().hex[:8]

    # one copy only: an error naming kafka.replication_factor, the fix a reassignment onto all 3 brokers
    single = f"dbmux.rf{run}.txn"
    asyncio.run(_make_topic(single, 1, {"min.insync.replicas": "1"}))
    err = _start_error(config, single)
    assert err.key == "kafka.replication_factor" and "below kafka.replication_factor = 3" in err.problem
    plan = json.loads(re.search(r"echo '([^']+)' > rf\.json", err.fix or "")[1])
    [move] = plan["partitions"]
    assert move["topic"] == single and sorted(move["replicas"]) == [1, 2, 3]
    assert f"kafka-reassign-partitions.sh --bootstrap-server {BOOTSTRAP}" in (err.fix or "")

    # 3 copies, min.insync.replicas 1 and a retention: an error for min.insync.replicas; once fixed,
    # start-up goes on and the retention is a warning with its fix
    weak = f"dbmux.isr{run}.txn"
    asyncio.run(_make_topic(weak, 3, {"min.insync.replicas": "1", "retention.ms": "86400000"}))
    err = _start_error(config, weak)
    assert err.key == "kafka.min_insync_replicas"
    assert f"--entity-name {weak} --add-config min.insync.replicas=2" in (err.fix or "")
    asyncio.run(_alter(weak, {"min.insync.replicas": "2", "retention.ms": "86400000"}))
    assert asyncio.run(ensure_topic(config.kafka, weak)) is False  # starts: retention is only a warning

    async def findings():
        admin = await _admin()
        try:
            return topic_findings(config.kafka, await topic_facts(admin, weak), TOPIC_CONFIG)
        finally:
            await admin.close()

    [warning] = asyncio.run(findings())
    assert not warning.fatal and "retention.ms = 86400000" in warning.problem
    assert "--add-config retention.ms=-1" in warning.fix
    asyncio.run(_alter(weak, {"min.insync.replicas": "2", "retention.ms": "-1"}))
    assert asyncio.run(findings()) == []

    # compaction would keep one event per GTID domain: an error
    compacted = f"dbmux.compact{run}.txn"
    asyncio.run(_make_topic(compacted, 3, {"min.insync.replicas": "2", "cleanup.policy": "compact"}))
    err = _start_error(config, compacted)
    assert err.key == "kafka.topic" and "cleanup.policy = compact" in err.problem
    assert "--add-config cleanup.policy=delete" in (err.fix or "")


def test_a_client_of_the_remote_region_stays_behind_the_latency_proxies(cluster):
    layout = Layout.load(cluster)
    env = run_dbmux("stack", "env", "--dir", str(cluster)).stdout
    remote = "127.0.0.1:28100,127.0.0.1:28102,127.0.0.1:28104"
    assert f"export DBMUX_KAFKA_REMOTE={remote}\n" in env
    assert f"export DBMUX_TOXIPROXY_URL=http://127.0.0.1:{REMOTE_PORT + 6}\n" in env
    assert _status(cluster)["toxiproxy"][2] == "up"
    topic = f"dbmux.remote{uuid.uuid4().hex[:8]}.txn"

    async def metadata_rtt_ms(client: AIOKafkaClient) -> float:
        times = []
        for _ in range(5):
            t0 = time.monotonic()
            await client.fetch_all_metadata()
            times.append((time.monotonic() - t0) * 1000)
        return sorted(times)[2]

    async def scenario() -> tuple[set, float, float, list[bytes]]:
        client = AIOKafkaClient(bootstrap_servers=remote, request_timeout_ms=10000)
        await client.bootstrap()
        try:
            brokers = {(b.host, b.port) for b in (await client.fetch_all_metadata()).brokers()}
            near = await metadata_rtt_ms(client)
            await set_latency(layout, 60)
            far = await metadata_rtt_ms(client)
        finally:
            await client.close()
        # produce and consume through the proxies, with the latency on
        producer = AIOKafkaProducer(bootstrap_servers=remote, acks="all", enable_idempotence=True)
        await producer.start()
        try:
            for i in range(3):
                await producer.send_and_wait(topic, f"event {i}".encode())
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(bootstrap_servers=remote, auto_offset_reset="earliest", enable_auto_commit=False)
        await consumer.start()
        try:
            tp = TopicPartition(topic, 0)
            consumer.assign([tp])
            got: list[bytes] = []
            deadline = time.monotonic() + 30
            while len(got) < 3 and time.monotonic() < deadline:
                for recs in (await consumer.getmany(tp, timeout_ms=1000)).values():
                    got += [r.value for r in recs]
        finally:
            await consumer.stop()
            await set_latency(layout, 0)
        return brokers, near, far, got

    brokers, near, far, got = asyncio.run(scenario())
    # the metadata names the proxies, never a broker's own socket: every later request crosses the proxy
    assert brokers == {("127.0.0.1", p) for p in (28100, 28102, 28104)}
    assert far >= 120 > near, (near, far)  # 60 ms each way
    assert got == [b"event 0", b"event 1", b"event 2"]
