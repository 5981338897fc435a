"""Each part of the local stack is a real server that does its real job."""

from __future__ import annotations

import asyncio
import uuid

import aiomysql
import asyncpg
import pymysql
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from pymysqlreplication import BinLogStreamReader
from pymysqlreplication.row_event import WriteRowsEvent

from dbmux.core.dsn import Dsn


def _mysql(dsn: Dsn, **kw) -> pymysql.connections.Connection:
    return pymysql.connect(host=dsn.host, port=dsn.port, user=dsn.user, password=dsn.password,
                           autocommit=True, **kw)


async def test_kafka_roundtrip_through_the_broker(stack):
    topic = f"dbmux-test-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=stack.kafka)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])
    finally:
        await admin.close()
    payloads = [f"record-{i}-{uuid.uuid4().hex}".encode() for i in range(5)]
    producer = AIOKafkaProducer(bootstrap_servers=stack.kafka, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        for p in payloads:
            await producer.send_and_wait(topic, p, key=b"0")
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=stack.kafka, auto_offset_reset="earliest",
                                group_id=f"g-{topic}", enable_auto_commit=False)
    await consumer.start()
    got: list[bytes] = []
    try:
        async with asyncio.timeout(30):
            while len(got) < len(payloads):
                batch = await consumer.getmany(timeout_ms=1000)
                for records in batch.values():
                    got.extend(r.value for r in records)
    finally:
        await consumer.stop()
    assert got == payloads  # same key -> same partition -> produced order


def test_primary_binlog_carries_row_events_with_column_names(stack):
    db = f"t_{uuid.uuid4().hex[:8]}"
    marker = uuid.uuid4().hex
    conn = _mysql(stack.primary)
    with conn.cursor() as cur:
        cur.execute("SHOW VARIABLES WHERE Variable_name IN "
                    "('log_bin','binlog_format','binlog_row_image','binlog_row_metadata')")
        settings = dict(cur.fetchall())
        assert settings == {"log_bin": "ON", "binlog_format": "ROW", "binlog_row_image": "FULL",
                            "binlog_row_metadata": "FULL"}
        cur.execute("SELECT @@gtid_binlog_pos")
        start_gtid = cur.fetchone()[0]
        cur.execute(f"CREATE DATABASE {db}")
        cur.execute(f"CREATE TABLE {db}.items (id INT PRIMARY KEY, label VARCHAR(64))")
        cur.execute(f"INSERT INTO {db}.items VALUES (7, %s)", (marker,))
    conn.close()

    b = stack.binlog
    stream = BinLogStreamReader(
        connection_settings={"host": b.host, "port": b.port, "user": b.user, "password": b.password},
        server_id=90000 + uuid.uuid4().int % 1000, blocking=False, is_mariadb=True,
        auto_position=start_gtid or None, only_events=[WriteRowsEvent], only_schemas=[db],
    )
    try:
        rows = [row["values"] for ev in stream for row in ev.rows if ev.table == "items"]
    finally:
        stream.close()
    assert rows == [{"id": 7, "label": marker}]  # keyed by column name (binlog_row_metadata=FULL)


async def test_asyncpg_reaches_both_postgres_shards(stack):
    assert len(stack.shards) == 2
    seen = set()
    for dsn in stack.shards:
        conn = await asyncpg.connect(host=dsn.host, port=dsn.port, user=dsn.user, password=dsn.password,
                                     database=dsn.database)
        try:
            await conn.execute("CREATE TEMP TABLE probe (v text)")
            await conn.execute("INSERT INTO probe VALUES ($1)", dsn.url(with_password=False))
            assert await conn.fetchval("SELECT v FROM probe") == dsn.url(with_password=False)
            seen.add(await conn.fetchval("SELECT inet_server_port()"))
        finally:
            await conn.close()
    assert seen == {d.port for d in stack.shards}


@pytest.mark.parametrize("index", [0, 1])
async def test_each_replica_reachable_with_aiomysql(stack, index):
    dsn = stack.replicas[index]
    conn = await aiomysql.connect(host=dsn.host, port=dsn.port, user=dsn.user, password=dsn.password)
    try:
        async with conn.cursor() as cur:
            await cur.execute("SELECT @@port, @@server_id, @@log_bin")
            port, server_id, log_bin = await cur.fetchone()
            # an independent server: its own port/id, and no native replication configured
            await cur.execute("SHOW ALL SLAVES STATUS")
            assert await cur.fetchall() == ()
    finally:
        conn.close()
    assert port == dsn.port
    assert server_id != 1
