"""Apache Kafka brokers of the local stack, in KRaft mode (each node a combined broker + controller).

One broker by default; with ``--kafka-brokers N`` every node is a voter of the controller quorum (a
majority must be up), the nodes share one cluster id (``<stack>/kafka-cluster-id``), and the internal
topics are replicated like the generated config's topics (:func:`dbmux.stack.layout.kafka_replication`).

Jars come from ``$KAFKA_HOME/libs`` when set, else Maven resolves the official artifacts from
``compose/kafka/pom.xml`` (pinned version) into ``~/.cache/dbmux/kafka-<version>/libs`` once.
"""

from __future__ import annotations

import base64
import logging
import os
import re
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from aiokafka.client import AIOKafkaClient

from dbmux.core.errors import MissingDependency, StackError
from dbmux.stack.base import Service, cache_root, require_binary, run_checked
from dbmux.stack.layout import KafkaNode, Layout, kafka_replication

_REPO_ROOT = Path(__file__).resolve().parents[2]
POM = _REPO_ROOT / "compose" / "kafka" / "pom.xml"
_JAVA_INSTALL = "apt-get install -y default-jre-headless"
_MVN_INSTALL = "apt-get install -y maven"


def kafka_version(pom: Path = POM) -> str:
    m = re.search(r"<kafka\.version>([^<]+)</kafka\.version>", pom.read_text())
    if not m:
        raise StackError(f"{pom} has no <kafka.version> property")
    return m.group(1)


def resolve_kafka_libs() -> Path:
    """Return a directory of Kafka broker jars, fetching them with Maven on first use."""
    home = os.environ.get("KAFKA_HOME")
    if home:
        libs = Path(home) / "libs"
        if not any(libs.glob("kafka_2.*.jar")):
            raise StackError(f"KAFKA_HOME={home} has no libs/kafka_2.*.jar; unset it to use Maven")
        return libs
    if not POM.exists():
        raise StackError(f"{POM} not found (dbmux must run from its source checkout, or set KAFKA_HOME)")
    libs = cache_root() / f"kafka-{kafka_version()}" / "libs"
    if any(libs.glob("kafka_2.*.jar")):
        return libs
    mvn = require_binary("mvn", _MVN_INSTALL)
    tmp = libs.with_name("libs.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    run_checked([mvn, "-q", "-B", "-f", str(POM), "dependency:copy-dependencies",
                 f"-DoutputDirectory={tmp}"], "resolving the Kafka jars with Maven")
    tmp.rename(libs)
    return libs


def java_major(java: str) -> int:
    out = subprocess.run([java, "-version"], capture_output=True, text=True).stderr
    m = re.search(r'version "(\d+)(?:\.(\d+))?', out)
    if not m:
        raise StackError(f"cannot read the Java version from: {out.strip()}")
    major = int(m.group(1))
    return int(m.group(2)) if major == 1 and m.group(2) else major


def new_cluster_id(random_bytes: Callable[[], bytes] = lambda: uuid.uuid4().bytes) -> str:
    """A KRaft cluster id: 16 random bytes, base64url without padding -- never starting with "-",
    which kafka-storage's option parser would take for an option (as Kafka's own Uuid.randomUuid avoids)."""
    while True:
        cluster_id = base64.urlsafe_b64encode(random_bytes()).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def cluster_id_for(path: Path) -> str:
    """The cluster id recorded at ``path``, created on first use: every node of a cluster formats its
    storage with the same id."""
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        cluster_id = new_cluster_id()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(cluster_id + "\n")
        return cluster_id


def broker_properties(layout: Layout, node: KafkaNode, data_dir: Path) -> str:
    """``server.properties`` of one node of the stack's KRaft cluster."""
    factor, min_isr = kafka_replication(layout.kafka_brokers)
    voters = ",".join(f"{n.node_id}@127.0.0.1:{n.controller_port}" for n in layout.kafka_nodes)
    listeners = [f"PLAINTEXT://127.0.0.1:{node.port}", f"CONTROLLER://127.0.0.1:{node.controller_port}"]
    advertised = [f"PLAINTEXT://127.0.0.1:{node.port}"]
    protocols = ["CONTROLLER:PLAINTEXT", "PLAINTEXT:PLAINTEXT"]
    if node.remote_port:  # the remote region: clients that bootstrap through the proxy are told the proxies
        listeners.append(f"REMOTE://127.0.0.1:{node.remote_listen_port}")
        advertised.append(f"REMOTE://127.0.0.1:{node.remote_port}")
        protocols.append("REMOTE:PLAINTEXT")
    return "\n".join([
        "process.roles=broker,controller",
        f"node.id={node.node_id}",
        f"controller.quorum.voters={voters}",
        f"listeners={','.join(listeners)}",
        f"advertised.listeners={','.join(advertised)}",
        "controller.listener.names=CONTROLLER",
        "inter.broker.listener.name=PLAINTEXT",
        f"listener.security.protocol.map={','.join(protocols)}",
        f"log.dirs={data_dir}",
        "num.partitions=1",
        "auto.create.topics.enable=true",
        f"default.replication.factor={factor}",
        f"min.insync.replicas={min_isr}",
        f"offsets.topic.replication.factor={factor}",
        "offsets.topic.num.partitions=4",
        f"transaction.state.log.replication.factor={factor}",
        f"transaction.state.log.min.isr={min_isr}",
        "transaction.state.log.num.partitions=4",
        "group.initial.rebalance.delay.ms=0",
        "log.retention.hours=-1",
        # a broker that stops heartbeating is fenced (its partitions get new leaders) after 4 s, not 9 s
        "broker.heartbeat.interval.ms=1000",
        "broker.session.timeout.ms=4000",
        "",
    ])


class Kafka(Service):
    def __init__(self, layout: Layout, node: KafkaNode) -> None:
        super().__init__(layout)
        self.node = node
        self.name = node.name
        self.port = node.port

    def check_installed(self) -> None:
        self._java = require_binary("java", _JAVA_INSTALL)
        if java_major(self._java) < 17:
            raise MissingDependency("Java >= 17", _JAVA_INSTALL)
        self._libs = resolve_kafka_libs()

    @property
    def properties(self) -> Path:
        return self.dir / "server.properties"

    def _write_config(self) -> None:
        self.properties.write_text(broker_properties(self.layout, self.node, self.dir / "data"))
        (self.dir / "log4j.properties").write_text("\n".join([
            "log4j.rootLogger=INFO, stdout",
            "log4j.appender.stdout=org.apache.log4j.ConsoleAppender",
            "log4j.appender.stdout.layout=org.apache.log4j.PatternLayout",
            "log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n",
            "log4j.logger.kafka=INFO",
            "log4j.logger.org.apache.kafka=INFO",
            "",
        ]))

    def _classpath(self) -> str:
        return str(self._libs / "*")

    def prepare(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self._write_config()
        if (self.dir / "data" / "meta.properties").exists():
            return
        cluster_id = cluster_id_for(self.layout.root / "kafka-cluster-id")
        run_checked([self._java, "-cp", self._classpath(),
                     f"-Dlog4j.configuration=file:{self.dir / 'log4j.properties'}",
                     "kafka.tools.StorageTool", "format", "-t", cluster_id,
                     "-c", str(self.properties), "--ignore-formatted"],
                    "formatting Kafka storage", log_path=self.log_path)

    def argv(self) -> list[str]:
        return [self._java, "-Xms256m", "-Xmx768m", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
                "-Djava.awt.headless=true", f"-Dlog4j.configuration=file:{self.dir / 'log4j.properties'}",
                f"-Dkafka.logs.dir={self.dir / 'logs'}", "-cp", self._classpath(),
                "kafka.Kafka", str(self.properties)]

    async def probe(self) -> None:
        with _aiokafka_quiet():
            await self._probe()

    async def _probe(self) -> None:
        client = AIOKafkaClient(bootstrap_servers=f"127.0.0.1:{self.port}", request_timeout_ms=3000,
                                metadata_max_age_ms=1000)
        try:
            await client.bootstrap()
            metadata = await client.fetch_all_metadata()
            if self.node.node_id not in {b.nodeId for b in metadata.brokers()}:
                raise StackError(f"broker {self.node.node_id} has not registered yet")
        finally:
            await client.close()


_quiet_probes = [0]


@contextmanager
def _aiokafka_quiet() -> Iterator[None]:
    """aiokafka logs every refused connection at ERROR; while brokers start that is noise. Counted:
    the brokers of a cluster are probed concurrently."""
    logger = logging.getLogger("aiokafka")
    if _quiet_probes[0] == 0:
        logger.setLevel(logging.CRITICAL)
    _quiet_probes[0] += 1
    try:
        yield
    finally:
        _quiet_probes[0] -= 1
        if _quiet_probes[0] == 0:
            logger.setLevel(logging.NOTSET)
