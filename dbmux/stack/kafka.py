"""Apache Kafka broker of the local stack, in KRaft mode (combined broker + controller).

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
from collections.abc import Callable
from pathlib import Path

from aiokafka.client import AIOKafkaClient

from dbmux.core.errors import MissingDependency, StackError
from dbmux.stack.base import Service, require_binary, run_checked
from dbmux.stack.layout import Layout

_REPO_ROOT = Path(__file__).resolve().parents[2]
POM = _REPO_ROOT / "compose" / "kafka" / "pom.xml"
_JAVA_INSTALL = "apt-get install -y default-jre-headless"
_MVN_INSTALL = "apt-get install -y maven"


def kafka_version(pom: Path = POM) -> str:
    m = re.search(r"<kafka\.version>([^<]+)</kafka\.version>", pom.read_text())
    if not m:
        raise StackError(f"{pom} has no <kafka.version> property")
    return m.group(1)


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "dbmux"


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


class Kafka(Service):
    name = "kafka"

    def __init__(self, layout: Layout) -> None:
        super().__init__(layout)
        self.port = layout.ports.kafka_port

    def check_installed(self) -> None:
        self._java = require_binary("java", _JAVA_INSTALL)
        if java_major(self._java) < 17:
            raise MissingDependency("Java >= 17", _JAVA_INSTALL)
        self._libs = resolve_kafka_libs()

    @property
    def properties(self) -> Path:
        return self.dir / "server.properties"

    def _write_config(self) -> None:
        p = self.layout.ports
        self.properties.write_text("\n".join([
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.voters=1@127.0.0.1:{p.kafka_controller_port}",
            f"listeners=PLAINTEXT://127.0.0.1:{p.kafka_port},CONTROLLER://127.0.0.1:{p.kafka_controller_port}",
            f"advertised.listeners=PLAINTEXT://127.0.0.1:{p.kafka_port}",
            "controller.listener.names=CONTROLLER",
            "inter.broker.listener.name=PLAINTEXT",
            "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            f"log.dirs={self.dir / 'data'}",
            "num.partitions=1",
            "auto.create.topics.enable=true",
            "offsets.topic.replication.factor=1",
            "offsets.topic.num.partitions=4",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "transaction.state.log.num.partitions=4",
            "group.initial.rebalance.delay.ms=0",
            "log.retention.hours=-1",
            "",
        ]))
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
        cluster_id = new_cluster_id()
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
        # aiokafka logs every refused connection at ERROR; while waiting for start-up that is noise.
        logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
        client = AIOKafkaClient(bootstrap_servers=self.layout.kafka_bootstrap(), request_timeout_ms=3000,
                                metadata_max_age_ms=1000)
        try:
            await client.bootstrap()
            metadata = await client.fetch_all_metadata()
            if not metadata.brokers():
                raise StackError("broker has not registered yet")
        finally:
            await client.close()
            logging.getLogger("aiokafka").setLevel(logging.NOTSET)
