"""Integration fixtures: the real local stack.

When the ``DBMUX_*`` variables (as printed by ``dbmux stack env``) are set, tests use those servers.
Otherwise a session fixture runs ``dbmux stack up`` in ``<repo>/.stack`` and, at the end, stops the
services it started itself (set ``DBMUX_KEEP_STACK=1`` to keep them). If the stack cannot start the
run fails: integration tests are never skipped.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from dbmux.core.dsn import Dsn

REPO = Path(__file__).resolve().parents[2]
_REQUIRED = ("DBMUX_KAFKA", "DBMUX_PRIMARY_URL", "DBMUX_REPLICA_URLS", "DBMUX_SHARD_URLS", "DBMUX_CONFIG")


@dataclass(frozen=True)
class StackEnv:
    kafka: str
    primary: Dsn
    binlog: Dsn
    replicas: tuple[Dsn, ...]
    shards: tuple[Dsn, ...]
    ingress_url: str
    config: Path


def _from_env(env: dict[str, str]) -> StackEnv:
    primary = Dsn.parse(env["DBMUX_PRIMARY_URL"])
    return StackEnv(
        kafka=env["DBMUX_KAFKA"],
        primary=primary,
        binlog=Dsn.parse(env.get("DBMUX_PRIMARY_BINLOG_URL") or env["DBMUX_PRIMARY_URL"]),
        replicas=tuple(Dsn.parse(u) for u in env["DBMUX_REPLICA_URLS"].split(",")),
        shards=tuple(Dsn.parse(u) for u in env["DBMUX_SHARD_URLS"].split(",")),
        ingress_url=env.get("DBMUX_INGRESS_URL", ""),
        config=Path(env["DBMUX_CONFIG"]),
    )


@pytest.fixture(scope="session")
def stack() -> StackEnv:
    if all(os.environ.get(k) for k in _REQUIRED):
        yield _from_env(dict(os.environ))
        return
    from dbmux.stack.layout import Layout
    from dbmux.stack.stack import Stack

    st = Stack(Layout.load(REPO / ".stack"))
    started = asyncio.run(st.up())
    env = st.env()
    os.environ.update(env)  # subprocesses (dbmux CLI) see the same stack
    try:
        yield _from_env(env)
    finally:
        if started and not os.environ.get("DBMUX_KEEP_STACK"):
            st.down()


def run_dbmux(*args: str, timeout: float = 300, check: bool = True, env: dict | None = None):
    """Run the real ``dbmux`` CLI in a subprocess."""
    proc = subprocess.run([sys.executable, "-m", "dbmux.cli", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"dbmux {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class IngressProc:
    host: str
    port: int
    topic: str
    proc: subprocess.Popen
    log_path: Path
    env: dict

    def dsn(self, base: Dsn) -> Dsn:
        return Dsn("mysql", self.host, self.port, base.user, base.password, base.database)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_ingress(stack: StackEnv, tmp_dir: Path, config: Path | None = None, **overrides: str) -> IngressProc:
    """Start the real ``dbmux ingress`` on a free port with its own topic (``config``: a pipeline config
    instead of the stack's); wait until it greets. A port another socket took between :func:`free_port` and
    the ingress's bind (an outgoing connection may get it as its local port) is given up for another one."""
    import uuid

    topic = overrides.get("DBMUX_KAFKA_TOPIC") or f"dbmux.test{uuid.uuid4().hex[:10]}.txn"
    for _ in range(3):
        listen = overrides.get("DBMUX_INGRESS_LISTEN")
        port = int(listen.rsplit(":", 1)[1]) if listen else free_port()
        env = dict(os.environ)
        env.update({"DBMUX_INGRESS_LISTEN": f"127.0.0.1:{port}", "DBMUX_KAFKA_TOPIC": topic,
                    "DBMUX_KAFKA_BOOTSTRAP": stack.kafka, "DBMUX_PRIMARY_URL": stack.primary.url()})
        env.update(overrides)
        log_path = tmp_dir / f"ingress-{port}-{uuid.uuid4().hex[:6]}.log"
        proc = subprocess.Popen([sys.executable, "-m", "dbmux.cli", "-v", "ingress", "-c",
                                 str(config or stack.config)],
                                cwd=REPO, env=env, stdout=open(log_path, "wb"), stderr=subprocess.STDOUT)
        if _greets(proc, port, log_path):
            return IngressProc("127.0.0.1", port, topic, proc, log_path, env)
        if listen or "address already in use" not in log_path.read_text().lower():
            raise AssertionError(f"ingress exited {proc.returncode}:\n{log_path.read_text()}")
    raise AssertionError(f"ingress could not bind a free port three times:\n{log_path.read_text()}")


def _greets(proc: subprocess.Popen, port: int, log_path: Path) -> bool:
    """Wait until the ingress on ``port`` sends its greeting (True) or exits (False)."""
    import socket
    import time

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
                if sock.recv(1):  # the relayed greeting arrives only when the ingress is fully up
                    return True
        except OSError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise AssertionError(f"ingress did not listen within 60s:\n{log_path.read_text()}")


def stop_ingress(ing: IngressProc) -> None:
    ing.proc.terminate()
    try:
        ing.proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        ing.proc.kill()
        ing.proc.wait()


def pipeline_config(path: Path, stack: StackEnv, topic: str, targets: dict[str, Dsn], tables: str = "",
                    extra: str = "", **target_keys: str) -> Path:
    """A pipeline config on the stack with its own topic: one ``[targets.NAME]`` per target, each with
    the ``tables`` pattern (if given) and ``target_keys``; ``extra`` is appended (e.g. ``[shardmap]``)."""
    body = ""
    for name, dsn in targets.items():
        body += f'[targets.{name}]\nurl = "{dsn.url()}"\n'
        if tables:
            body += f'tables = ["{tables}"]\n'
        body += "".join(f'{k} = "{v.format(name=name)}"\n' for k, v in target_keys.items())
    path.write_text(f"""
[kafka]
bootstrap = "{stack.kafka}"
topic = "{topic}"
[primary]
url = "{stack.primary.url()}"
binlog_url = "{stack.binlog.url()}"
[replicator]
batch_linger_ms = 5
{extra}
{body}""")
    return path


def start_binlog_reader(cfg: Path, log: Path, *extra: str) -> subprocess.Popen:
    """Start the real ``dbmux binlog`` (``extra``: more CLI options); return once it streams from the primary."""
    import time

    offset = log.stat().st_size if log.exists() else 0
    proc = subprocess.Popen([sys.executable, "-m", "dbmux.cli", "-v", "binlog", "-c", str(cfg), *extra], cwd=REPO,
                            stdout=open(log, "ab"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while "streaming from primary" not in log.read_bytes()[offset:].decode(errors="replace"):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"binlog reader did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.1)
    return proc


def stop_processes(procs: list) -> None:
    """SIGTERM every still-running process, then wait (SIGKILL after 30 s)."""
    import signal

    for p in procs:
        if p is not None and p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        if p is not None:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def stop_pipeline(primary: Dsn, procs: list, ing: IngressProc | None, *databases: str) -> None:
    """A test's teardown: its processes and ingress stopped, its databases dropped on the primary."""
    import pymysql

    stop_processes(procs)
    if ing is not None:
        stop_ingress(ing)
    c = pymysql.connect(host=primary.host, port=primary.port, user=primary.user, password=primary.password,
                        autocommit=True)
    try:
        with c.cursor() as cur:
            for db in databases:
                cur.execute(f"DROP DATABASE IF EXISTS {db}")
    finally:
        c.close()


@pytest.fixture(scope="module")
def ingress(stack, tmp_path_factory):
    ing = start_ingress(stack, tmp_path_factory.mktemp("ingress"))
    yield ing
    stop_ingress(ing)


async def read_topic(bootstrap: str, topic: str, *, min_count: int = 0, timeout_s: float = 30.0):
    """Every event on ``topic`` from the beginning up to the current end (waiting for ``min_count``)."""
    import time

    from aiokafka import AIOKafkaConsumer, TopicPartition

    from dbmux.core.codec import decode_event
    from dbmux.core.fragments import Reassembler

    fragments: Reassembler[int] = Reassembler("read_topic")
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                auto_offset_reset="earliest")
    await consumer.start()
    try:
        parts = None
        deadline = time.monotonic() + timeout_s
        while parts is None and time.monotonic() < deadline:
            parts = consumer.partitions_for_topic(topic) or None
            if parts is None:
                await consumer._client.force_metadata_update()
                await asyncio.sleep(0.2)
        if not parts:
            if min_count:
                raise AssertionError(f"topic {topic} does not exist")
            return []
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        events = []
        while True:
            end = await consumer.end_offsets(tps)
            positions = {tp: await consumer.position(tp) for tp in tps}
            if all(positions[tp] >= end[tp] for tp in tps) and len(events) >= min_count:
                return events
            if time.monotonic() > deadline:
                raise AssertionError(f"expected >= {min_count} events on {topic}, got {len(events)}")
            batch = await consumer.getmany(timeout_ms=500)
            for tp in tps:
                for rec in batch.get(tp, []):
                    whole = fragments.add(rec.value, tp.partition, rec.offset)
                    if whole is not None:
                        events.append(decode_event(whole[0]))
    finally:
        await consumer.stop()


def assert_targets_equal(cfg: Path, logs: dict[str, Path], targets: int, timeout_s: float = 120.0) -> None:
    """``dbmux verify`` passes (all ``targets`` equal) within ``timeout_s``, and no replicator whose log
    is in ``logs`` halted; a failure shows verify's output and each log's tail."""
    res = verify_until_equal(cfg, timeout_s)
    tails = "".join(f"\n--- {n}\n{p.read_text(errors='replace')[-3000:]}" for n, p in logs.items())
    assert res.returncode == 0 and f"all {targets} targets equal" in res.stdout, res.stdout + res.stderr + tails
    for name, path in logs.items():
        assert "HALTED" not in path.read_text(errors="replace"), name + tails


def verify_until_equal(cfg: Path, timeout_s: float = 600.0, *args: str):
    """``dbmux verify`` again until it passes or ``timeout_s`` is over; the last result. (``--wait`` waits
    only for targets that have started: one whose replicator has not yet stored a position is compared
    by content at once.)"""
    import time

    deadline = time.monotonic() + timeout_s
    while True:
        res = run_dbmux("verify", "-c", str(cfg), "--wait", "10", *args, check=False, timeout=300)
        if res.returncode == 0 or time.monotonic() > deadline:
            return res
        time.sleep(2)
