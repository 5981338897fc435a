"""A replicated Kafka: ``kafka.min_insync_replicas``, the stack's broker ports and generated configs, and
the start-up checks of an existing topic (:func:`dbmux.core.kafka_topics.topic_findings`). No broker."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from dbmux.core.config import KafkaConfig, parse_config
from dbmux.core.errors import ConfigError, StackError
from dbmux.core.kafka_topics import TOPIC_CONFIG, TopicFacts, topic_findings
from dbmux.stack.kafka import broker_properties, cluster_id_for
from dbmux.stack.layout import Layout, Ports, kafka_nodes, kafka_replication
from dbmux.stack.pipeline_config import render_pipeline_config

PRIMARY = {"primary": {"url": "mysql://u:p@127.0.0.1:1"}}


# -- kafka.min_insync_replicas ----------------------------------------------------------------------------
@pytest.mark.parametrize("kafka, key, fragment", [
    ({"min_insync_replicas": 0}, "kafka.min_insync_replicas", "minimum 1"),
    ({"min_insync_replicas": "2"}, "kafka.min_insync_replicas", "expected an integer"),
    ({"min_insync_replicas": 2}, "kafka.min_insync_replicas", "above replication_factor = 1"),
    ({"replication_factor": 3, "min_insync_replicas": 4}, "kafka.min_insync_replicas", "use at most 3"),
    ({"replication_factor": 0}, "kafka.replication_factor", "minimum 1"),
])
def test_min_insync_replicas_is_validated(kafka, key, fragment):
    with pytest.raises(ConfigError) as info:
        parse_config({"kafka": kafka, **PRIMARY}, {})
    assert info.value.key == key
    assert fragment in str(info.value)


@pytest.mark.parametrize("kafka, env, want", [
    ({}, {}, (1, 1)),
    ({"replication_factor": 3, "min_insync_replicas": 2}, {}, (3, 2)),
    ({"replication_factor": 3, "min_insync_replicas": 3}, {}, (3, 3)),
    ({"replication_factor": 3}, {"DBMUX_KAFKA_MIN_INSYNC_REPLICAS": "2"}, (3, 2)),
])
def test_min_insync_replicas_accepted(kafka, env, want):
    cfg = parse_config({"kafka": kafka, **PRIMARY}, env)
    assert (cfg.kafka.replication_factor, cfg.kafka.min_insync_replicas) == want


# -- the stack's brokers -------------------------------------------------------------------------------------
@pytest.mark.parametrize("kafka_port, controller_port, brokers, want", [
    (19092, 19093, 1, [(1, "kafka", 19092, 19093)]),
    (19092, 19093, 3, [(1, "kafka-1", 19092, 19093), (2, "kafka-2", 19094, 19095), (3, "kafka-3", 19096, 19097)]),
    (36092, 36093, 2, [(1, "kafka-1", 36092, 36093), (2, "kafka-2", 36094, 36095)]),
    (20000, 30000, 3, [(1, "kafka-1", 20000, 30000), (2, "kafka-2", 20002, 30002), (3, "kafka-3", 20004, 30004)]),
])
def test_broker_ports_are_derived_from_the_first_brokers(kafka_port, controller_port, brokers, want):
    ports = Ports(kafka_port=kafka_port, kafka_controller_port=controller_port)
    nodes = kafka_nodes(ports, brokers)
    assert [(n.node_id, n.name, n.port, n.controller_port) for n in nodes] == want
    layout = Layout(Path("/nonexistent"), ports, brokers)
    assert layout.kafka_bootstrap() == ",".join(f"127.0.0.1:{w[2]}" for w in want)


@pytest.mark.parametrize("ports, brokers, fragment", [
    (Ports(), 0, "must be 1 .. 9"),
    (Ports(), 10, "must be 1 .. 9"),
    (Ports(kafka_port=19092, kafka_controller_port=19094), 3, "must be distinct"),  # broker 2 = controller 1
    (Ports(kafka_port=13304), 2, "must be distinct"),  # broker 2 on the primary's 13306
    (Ports(kafka_port=65534, kafka_controller_port=65533), 3, "out of range"),
])
def test_layout_refuses_clashing_broker_ports(ports, brokers, fragment):
    with pytest.raises(StackError, match=fragment):
        Layout(Path("/nonexistent"), ports, brokers)


def test_the_broker_count_is_recorded_and_must_agree(tmp_path):
    layout = Layout.load(tmp_path, env={}, overrides={"kafka_port": 36092}, kafka_brokers=3)
    layout.save()
    assert json.loads(layout.state_file.read_text())["kafka_brokers"] == 3
    again = Layout.load(tmp_path, env={})
    assert again.kafka_brokers == 3 and [n.port for n in again.kafka_nodes] == [36092, 36094, 36096]
    with pytest.raises(StackError, match="kafka_brokers"):
        Layout.load(tmp_path, env={}, kafka_brokers=1)
    # from the environment, and a stack.json written before brokers were recorded means one broker
    assert Layout.load(tmp_path / "b", env={"DBMUX_STACK_KAFKA_BROKERS": "2"}).kafka_brokers == 2
    with pytest.raises(StackError, match="DBMUX_STACK_KAFKA_BROKERS"):
        Layout.load(tmp_path / "c", env={"DBMUX_STACK_KAFKA_BROKERS": "three"})
    state = json.loads(layout.state_file.read_text())
    del state["kafka_brokers"]
    layout.state_file.write_text(json.dumps(state))
    assert Layout.load(tmp_path, env={}).kafka_brokers == 1


@pytest.mark.parametrize("brokers, want", [(1, (1, 1)), (2, (2, 1)), (3, (3, 2)), (5, (3, 2))])
def test_replication_follows_the_cluster_size(brokers, want):
    assert kafka_replication(brokers) == want


@pytest.mark.parametrize("brokers, bootstrap, factor, min_isr", [
    (1, "127.0.0.1:36092", 1, 1),
    (3, "127.0.0.1:36092,127.0.0.1:36094,127.0.0.1:36096", 3, 2),
])
def test_generated_pipeline_config_replicates_on_a_cluster(brokers, bootstrap, factor, min_isr):
    layout = Layout(Path("/nonexistent"), Ports(kafka_port=36092, kafka_controller_port=36093), brokers)
    text = render_pipeline_config(layout)
    cfg = parse_config(tomllib.loads(text), {})
    assert cfg.kafka.bootstrap == bootstrap
    assert (cfg.kafka.replication_factor, cfg.kafka.min_insync_replicas) == (factor, min_isr)
    assert ("replication_factor" in text) == (brokers > 1)  # one broker: the config stays as it was


def test_broker_properties_form_one_quorum(tmp_path):
    layout = Layout(tmp_path, Ports(kafka_port=36092, kafka_controller_port=36093), 3)
    props = [dict(line.split("=", 1) for line in broker_properties(layout, node, tmp_path / node.name).splitlines())
             for node in layout.kafka_nodes]
    voters = "1@127.0.0.1:36093,2@127.0.0.1:36095,3@127.0.0.1:36097"
    assert [p["node.id"] for p in props] == ["1", "2", "3"]
    assert {p["controller.quorum.voters"] for p in props} == {voters}
    assert props[1]["listeners"] == "PLAINTEXT://127.0.0.1:36094,CONTROLLER://127.0.0.1:36095"
    assert props[1]["advertised.listeners"] == "PLAINTEXT://127.0.0.1:36094"
    for p in props:
        assert p["offsets.topic.replication.factor"] == p["transaction.state.log.replication.factor"] == "3"
        assert p["min.insync.replicas"] == p["transaction.state.log.min.isr"] == "2"
    single = broker_properties(Layout(tmp_path), Layout(tmp_path).kafka_nodes[0], tmp_path)
    assert "controller.quorum.voters=1@127.0.0.1:19093\n" in single and "offsets.topic.replication.factor=1\n" in single
    # every node formats its storage with the same cluster id
    assert cluster_id_for(tmp_path / "cid") == cluster_id_for(tmp_path / "cid") != cluster_id_for(tmp_path / "other")


# -- checks of an existing topic -----------------------------------------------------------------------------
K3 = KafkaConfig(bootstrap="k1:9092,k2:9092", replication_factor=3, min_insync_replicas=2)
GOOD = {"max.message.bytes": "1048588", "min.insync.replicas": "2", "retention.ms": "-1", "retention.bytes": "-1",
        "cleanup.policy": "delete"}
POSITION = {**TOPIC_CONFIG, "cleanup.policy": "compact"}  # what the binlog reader's position topic expects


def _facts(replicas=None, brokers=(1, 2, 3), **configs):
    return TopicFacts("t.txn", replicas or {0: (1, 2, 3)}, {**GOOD, **configs}, brokers)


@pytest.mark.parametrize("kafka, facts, expected, want", [
    (K3, _facts(), TOPIC_CONFIG, []),
    (KafkaConfig(), _facts({0: (1,)}, **{"min.insync.replicas": "1"}), TOPIC_CONFIG, []),
    (K3, _facts({0: (1, 2, 3, 4)}, brokers=(1, 2, 3, 4), **{"min.insync.replicas": "3"}), TOPIC_CONFIG, []),
    (K3, _facts({0: (2,), 1: (1, 2, 3)}), TOPIC_CONFIG, [("kafka.replication_factor", True)]),
    (K3, _facts(**{"min.insync.replicas": "1"}), TOPIC_CONFIG, [("kafka.min_insync_replicas", True)]),
    (K3, _facts(**{"cleanup.policy": "compact"}), TOPIC_CONFIG, [("kafka.topic", True)]),
    (K3, _facts(**{"cleanup.policy": "compact,delete"}), TOPIC_CONFIG, [("kafka.topic", True)]),
    (K3, _facts(**{"cleanup.policy": "compact"}), POSITION, []),  # compacted on purpose
    (K3, _facts(**{"retention.ms": "604800000"}), TOPIC_CONFIG, [("kafka.topic", False)]),
    (K3, _facts(**{"retention.bytes": "1073741824"}), TOPIC_CONFIG, [("kafka.topic", False)]),
    (K3, _facts(**{"retention.ms": None}), TOPIC_CONFIG, []),  # not reported: nothing to say
    (K3, _facts(**{"max.message.bytes": "100000"}), TOPIC_CONFIG, [("kafka.fragment_bytes", True)]),
    (K3, _facts(**{"max.message.bytes": str(512 * 1024 + 512)}), TOPIC_CONFIG, []),  # exactly fits
    (K3, _facts(**{"max.message.bytes": None}), TOPIC_CONFIG, [("kafka.fragment_bytes", False)]),
    # warnings come after the errors
    (K3, _facts({0: (1,)}, **{"retention.ms": "1000", "min.insync.replicas": "1"}), TOPIC_CONFIG,
     [("kafka.replication_factor", True), ("kafka.min_insync_replicas", True), ("kafka.topic", False)]),
])
def test_topic_findings(kafka, facts, expected, want):
    assert [(f.key, f.fatal) for f in topic_findings(kafka, facts, expected)] == want


def test_replication_fix_is_a_reassignment_onto_other_brokers():
    [f] = topic_findings(K3, _facts({0: (2,), 1: (1, 2, 3), 2: (3, 1)}), TOPIC_CONFIG)
    assert "partition(s) [0, 2]" in f.problem and "1 copy" in f.problem
    plan = json.loads(f.fix.split("'")[1])
    assert plan == {"version": 1, "partitions": [{"topic": "t.txn", "partition": 0, "replicas": [2, 1, 3]},
                                                 {"topic": "t.txn", "partition": 2, "replicas": [3, 1, 2]}]}
    assert "kafka-reassign-partitions.sh --bootstrap-server k1:9092,k2:9092 --reassignment-json-file rf.json " \
           "--execute" in f.fix
    assert "kafka.replication_factor = 1" in f.fix
    assert isinstance(f.error(), ConfigError) and f.error().key == "kafka.replication_factor"


def test_replication_fix_when_the_cluster_is_too_small():
    [f] = topic_findings(K3, _facts({0: (1,)}, brokers=(1,)), TOPIC_CONFIG)
    assert "only 1 broker(s) [1]" in f.fix and "rf.json" not in f.fix


@pytest.mark.parametrize("configs, fix", [
    ({"min.insync.replicas": "1"}, "kafka-configs.sh --bootstrap-server k1:9092,k2:9092 --alter --entity-type topics "
                                   "--entity-name t.txn --add-config min.insync.replicas=2"),
    ({"cleanup.policy": "compact"}, "--entity-name t.txn --add-config cleanup.policy=delete"),
    ({"retention.ms": "1000", "retention.bytes": "2000"}, "--add-config retention.ms=-1,retention.bytes=-1"),
    ({"retention.bytes": "2000"}, "--add-config retention.bytes=-1;"),
    ({"max.message.bytes": "100000"}, "--entity-name t.txn --add-config max.message.bytes=524800)"),
])
def test_config_fixes_are_kafka_configs_commands(configs, fix):
    [f] = topic_findings(K3, _facts(**configs), TOPIC_CONFIG)
    assert fix in f.fix
