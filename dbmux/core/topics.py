"""Where change events go in Kafka (pure; no I/O): the topic of a source cluster, its dead-letter
sibling, and an event's message key. Creating topics is :mod:`dbmux.core.kafka_topics`."""

from __future__ import annotations

import re

from dbmux.core.events import ChangeEvent, EnvelopeError

__all__ = ["partition_key", "topic_for", "dlq_topic"]

_MAX_TOPIC_LEN = 249  # Kafka's limit
_CLUSTER_RE = re.compile(r"[a-zA-Z0-9._-]+")
_MAX_CLUSTER_LEN = _MAX_TOPIC_LEN - len("dbmux.") - len(".txn") - len(".dlq")


def partition_key(ev: ChangeEvent) -> bytes:
    """The Kafka message key: the GTID domain, UTF-8. One domain = one partition = total order."""
    return ev.gtid.domain.encode("utf-8")


def topic_for(cluster: str) -> str:
    """The topic of a source cluster: ``dbmux.<cluster>.txn``.

    ``cluster`` must use Kafka's legal characters ``[a-zA-Z0-9._-]`` and be short enough that the topic
    and its ``.dlq`` sibling stay within Kafka's 249-character limit.
    """
    if not isinstance(cluster, str) or not _CLUSTER_RE.fullmatch(cluster):
        raise EnvelopeError(f"cluster name {cluster!r} must be non-empty and use only [a-zA-Z0-9._-]")
    if len(cluster) > _MAX_CLUSTER_LEN:
        raise EnvelopeError(f"cluster name is {len(cluster)} characters; at most {_MAX_CLUSTER_LEN} allowed")
    return f"dbmux.{cluster}.txn"


def dlq_topic(topic: str) -> str:
    """The dead-letter topic for ``topic``: ``<topic>.dlq``."""
    if not isinstance(topic, str) or not _CLUSTER_RE.fullmatch(topic):
        raise EnvelopeError(f"topic name {topic!r} must be non-empty and use only [a-zA-Z0-9._-]")
    out = topic + ".dlq"
    if len(out) > _MAX_TOPIC_LEN:
        raise EnvelopeError(f"dead-letter topic for {topic!r} would exceed {_MAX_TOPIC_LEN} characters")
    return out
