"""The local stack's Kafka: pieces that need no broker."""

from __future__ import annotations

import base64

from dbmux.stack.kafka import new_cluster_id


def test_kafka_cluster_ids_never_start_with_a_dash():
    """kafka-storage's option parser takes an id starting with "-" for an option (seen in CI: 1 stack
    in 64 failed to format its storage)."""
    draws = iter([b"\xfa" + bytes(15), b"\xfb" + bytes(15), bytes(16)])  # '-', '-', then 'A...'
    assert base64.urlsafe_b64encode(b"\xfa" + bytes(15)).decode().startswith("-")
    assert new_cluster_id(lambda: next(draws)) == "A" * 22
    ids = {new_cluster_id() for _ in range(2000)}
    assert len(ids) == 2000 and not any(i.startswith("-") for i in ids) and all(len(i) == 22 for i in ids)
