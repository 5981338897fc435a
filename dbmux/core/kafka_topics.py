"""Creating dbmux's topics (infinite retention: the change topic is the audit trail) and checking, at
every start, that an existing topic keeps what the config promises.

Checks (:func:`topic_findings`, pure; :func:`ensure_topic` runs them against the broker):

* errors (:class:`ConfigError` naming the key and the exact fix): ``max.message.bytes`` too small for
  ``kafka.fragment_bytes`` (plus record overhead); a partition with fewer replicas than ``kafka.replication_factor``; a
  ``min.insync.replicas`` below ``kafka.min_insync_replicas``; ``cleanup.policy`` with ``compact`` on a
  topic dbmux keeps whole (compaction keeps one event per key -- per GTID domain --, so events a
  target has not applied yet disappear);
* warnings (logged at every start, with the fix): ``retention.ms`` or ``retention.bytes`` not -1 --
  Kafka deletes old history, which may be deliberate, but the audit trail is then incomplete and a new
  or lagging target cannot be rebuilt from the topic.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import TopicAlreadyExistsError

from dbmux.core.config import KafkaConfig
from dbmux.core.errors import ConfigError, KafkaSetupError

log = logging.getLogger(__name__)

FRAGMENT_OVERHEAD = 512  # record batch and record headers, key: bytes on top of the value

TOPIC_CONFIG = {"retention.ms": "-1", "retention.bytes": "-1", "cleanup.policy": "delete"}
_CHECKED_CONFIGS = ("max.message.bytes", "min.insync.replicas", "retention.ms", "retention.bytes", "cleanup.policy")
_INVALID_REPLICATION_FACTOR = 38


async def ensure_topic(kafka: KafkaConfig, topic: str, *, extra_config: dict[str, str] | None = None) -> bool:
    """Create ``topic`` if it does not exist, then check it (:func:`check_topic`). Returns True when this
    call created it."""
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap, request_timeout_ms=kafka.request_timeout_ms)
    await admin.start()
    try:
        created = await _create(admin, kafka, topic, extra_config)
        await check_topic(admin, kafka, topic, {**TOPIC_CONFIG, **(extra_config or {})})
        return created
    finally:
        await admin.close()


async def _create(admin: AIOKafkaAdminClient, kafka: KafkaConfig, topic: str,
                  extra_config: dict[str, str] | None) -> bool:
    existing = await admin.list_topics()
    if topic in existing:
        return False
    try:
        resp = await admin.create_topics([NewTopic(
            topic, num_partitions=kafka.partitions, replication_factor=kafka.replication_factor,
            topic_configs={**TOPIC_CONFIG, "min.insync.replicas": str(kafka.min_insync_replicas),
                           **(extra_config or {})})])
    except TopicAlreadyExistsError:
        return False
    for _, code, *rest in getattr(resp, "topic_errors", ()):
        if code == TopicAlreadyExistsError.errno:  # created meanwhile, or the broker asked knew it first
            return False
        if code == _INVALID_REPLICATION_FACTOR:  # fewer live brokers than copies: may be a broker down
            raise KafkaSetupError(f"creating topic {topic!r}: Kafka refused replication factor "
                                  f"{kafka.replication_factor} (kafka.replication_factor): {rest}; start more "
                                  "brokers, or lower kafka.replication_factor")
        if code != 0:
            raise KafkaSetupError(f"creating topic {topic!r} failed with Kafka error {code}: {rest}")
    log.info("created topic %s (partitions=%s, replication factor %s, min.insync.replicas %s)", topic,
             kafka.partitions, kafka.replication_factor, kafka.min_insync_replicas)
    return True


async def topic_config(admin: AIOKafkaAdminClient, topic: str, name: str) -> str | None:
    """One configuration value of ``topic`` as the broker reports it (its own or the broker default)."""
    return (await topic_configs(admin, topic, (name,)))[name]


async def topic_configs(admin: AIOKafkaAdminClient, topic: str, names: tuple[str, ...]) -> dict[str, str | None]:
    """Configuration values of ``topic`` as the broker reports them (None: not reported, e.g. by a
    broker that does not know the topic yet)."""
    found: dict[str, str | None] = dict.fromkeys(names)
    resource = ConfigResource(ConfigResourceType.TOPIC, topic, dict.fromkeys(names))
    for resp in await admin.describe_configs([resource]):
        for res in resp.resources:
            for entry in res[4]:
                if entry[0] in found:
                    found[entry[0]] = None if entry[1] is None else str(entry[1])
    return found


@dataclass(frozen=True, slots=True)
class TopicFacts:
    """What the cluster reports about one topic: the input of :func:`topic_findings`."""

    topic: str
    replicas: Mapping[int, tuple[int, ...]]  # partition -> the brokers assigned a copy
    configs: Mapping[str, str | None]  # effective values of _CHECKED_CONFIGS (None: not reported)
    brokers: tuple[int, ...]  # ids of the brokers the cluster lists

    @property
    def complete(self) -> bool:
        return bool(self.replicas) and all(self.configs.get(k) is not None for k in _CHECKED_CONFIGS)


async def topic_facts(admin: AIOKafkaAdminClient, topic: str, timeout_s: float = 10.0) -> TopicFacts:
    """The topic's replicas and configs. Admin requests go to any broker, and in a cluster a topic
    created a moment ago reaches the brokers one by one: asked again (0.1 s apart, up to
    ``timeout_s``) until one answer has everything."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        described = await admin.describe_topics([topic])
        cluster = await admin.describe_cluster()
        replicas = {int(p["partition"]): tuple(p["replicas"])
                    for t in described if t["topic"] == topic for p in t["partitions"]}
        configs = await topic_configs(admin, topic, _CHECKED_CONFIGS)
        facts = TopicFacts(topic, replicas, configs, tuple(b["node_id"] for b in cluster["brokers"]))
        if facts.complete or loop.time() >= deadline:
            return facts
        await asyncio.sleep(0.1)


@dataclass(frozen=True, slots=True)
class Finding:
    """One way a topic falls short of the config. ``fatal``: start-up stops (:meth:`error`)."""

    key: str
    problem: str
    fix: str
    fatal: bool

    def error(self) -> ConfigError:
        return ConfigError(self.key, self.problem, self.fix)


def _kafka_configs(bootstrap: str, topic: str, settings: str) -> str:
    return (f"kafka-configs.sh --bootstrap-server {bootstrap} --alter --entity-type topics --entity-name {topic} "
            f"--add-config {settings}")


def _message_size_finding(kafka: KafkaConfig, facts: TopicFacts) -> Finding | None:
    raw = facts.configs.get("max.message.bytes")
    if raw is None:
        return Finding("kafka.fragment_bytes", f"the broker did not report topic {facts.topic}'s max.message.bytes",
                       "cannot check kafka.fragment_bytes against it; check it by hand", fatal=False)
    limit, need = int(raw), kafka.fragment_bytes + FRAGMENT_OVERHEAD
    if need <= limit:
        return None
    return Finding(
        "kafka.fragment_bytes",
        f"{kafka.fragment_bytes} (+{FRAGMENT_OVERHEAD} bytes of Kafka record overhead) is over topic {facts.topic}'s "
        f"max.message.bytes = {limit}: Kafka would refuse every event of that size",
        f"set kafka.fragment_bytes to at most {limit - FRAGMENT_OVERHEAD}, or raise the topic's limit "
        f"({_kafka_configs(kafka.bootstrap, facts.topic, f'max.message.bytes={need}')})", fatal=True)


def _replication_finding(kafka: KafkaConfig, facts: TopicFacts) -> Finding | None:
    want = kafka.replication_factor
    short = {p: r for p, r in sorted(facts.replicas.items()) if len(r) < want}
    if not short:
        return None
    have = min(len(r) for r in short.values())
    problem = (f"topic {facts.topic} has {have} cop{'y' if have == 1 else 'ies'} of partition(s) {sorted(short)}, "
               f"below kafka.replication_factor = {want}: losing {have} broker(s) loses those events")
    alternative = f"or set kafka.replication_factor = {have} if fewer copies are deliberate"
    if len(facts.brokers) < want:
        return Finding("kafka.replication_factor", problem,
                       f"the cluster lists only {len(facts.brokers)} broker(s) {sorted(facts.brokers)}: add brokers, "
                       f"then add replicas with kafka-reassign-partitions.sh; {alternative}", fatal=True)
    plan = {"version": 1, "partitions": [
        {"topic": facts.topic, "partition": p,
         "replicas": [*r, *[b for b in sorted(facts.brokers) if b not in r][:want - len(r)]]}
        for p, r in short.items()]}
    return Finding("kafka.replication_factor", problem,
                   f"echo '{json.dumps(plan, separators=(',', ':'))}' > rf.json && kafka-reassign-partitions.sh "
                   f"--bootstrap-server {kafka.bootstrap} --reassignment-json-file rf.json --execute; {alternative}",
                   fatal=True)


def _durability_findings(kafka: KafkaConfig, facts: TopicFacts, expected: Mapping[str, str]) -> list[Finding]:
    topic, configs, boot = facts.topic, facts.configs, kafka.bootstrap
    found: list[Finding] = []
    min_isr = configs.get("min.insync.replicas")
    if min_isr is not None and int(min_isr) < kafka.min_insync_replicas:
        found.append(Finding(
            "kafka.min_insync_replicas",
            f"topic {topic} has min.insync.replicas = {min_isr}, below kafka.min_insync_replicas = "
            f"{kafka.min_insync_replicas}: Kafka acknowledges a write held by fewer brokers than the config requires",
            f"{_kafka_configs(boot, topic, f'min.insync.replicas={kafka.min_insync_replicas}')}; or set "
            f"kafka.min_insync_replicas = {min_isr} if that is deliberate", fatal=True))
    policy = configs.get("cleanup.policy") or ""
    if expected.get("cleanup.policy") == "delete" and "compact" in policy:
        found.append(Finding(
            "kafka.topic",
            f"topic {topic} has cleanup.policy = {policy}: compaction keeps only the newest event per key (per "
            "GTID domain), deleting the history and events targets have not applied yet",
            f"{_kafka_configs(boot, topic, 'cleanup.policy=delete')}; or point kafka.topic at a new topic",
            fatal=True))
    deleting = {k: configs[k] for k in ("retention.ms", "retention.bytes")
                if expected.get(k) == "-1" and configs.get(k) not in (None, "-1")}
    if deleting:
        found.append(Finding(
            "kafka.topic",
            f"topic {topic} deletes history ({', '.join(f'{k} = {v}' for k, v in deleting.items())}): the audit "
            "trail loses old events, and a target that falls further behind, or a new one, cannot be rebuilt "
            "from the topic",
            f"{_kafka_configs(boot, topic, ','.join(f'{k}=-1' for k in deleting))}; keep it only if deliberate "
            "(then archive the topic elsewhere)", fatal=False))
    return found


def topic_findings(kafka: KafkaConfig, facts: TopicFacts, expected: Mapping[str, str]) -> list[Finding]:
    """How ``facts.topic`` falls short of ``kafka`` and of the ``expected`` topic configs (what dbmux
    creates it with), errors first (see the module docstring for which are errors). Pure."""
    found = [f for f in (_message_size_finding(kafka, facts), _replication_finding(kafka, facts)) if f is not None]
    found += _durability_findings(kafka, facts, expected)
    return sorted(found, key=lambda f: not f.fatal)


async def check_topic(admin: AIOKafkaAdminClient, kafka: KafkaConfig, topic: str, expected: Mapping[str, str]) -> None:
    """Log every warning of :func:`topic_findings`, then raise the first error (the others logged)."""
    findings = topic_findings(kafka, await topic_facts(admin, topic), expected)
    fatal = [f for f in findings if f.fatal]
    for f in findings[1:] if fatal else findings:
        (log.error if f.fatal else log.warning)("topic %s: %s (fix: %s)", topic, f.problem, f.fix)
    if fatal:
        raise fatal[0].error()


async def topic_partitions(consumer: AIOKafkaConsumer, topic: str, attempts: int = 20) -> list[TopicPartition]:
    """The partitions of ``topic`` as a started aiokafka consumer sees them, in order. A topic created a
    moment ago may be missing from the consumer's metadata: refresh it (a few times, 0.1 s apart)."""
    parts = consumer.partitions_for_topic(topic)
    for _ in range(attempts):
        if parts:
            break
        await consumer._client.force_metadata_update()  # noqa: SLF001 - aiokafka has no public refresh
        parts = consumer.partitions_for_topic(topic)
        if not parts:
            await asyncio.sleep(0.1)
    return [TopicPartition(topic, p) for p in sorted(parts or ())]
