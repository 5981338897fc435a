"""The stack's remote region (``--kafka-remote-port``): ports of the proxies and the brokers' REMOTE
listeners, the broker config, Toxiproxy's start-up proxies, the environment. No servers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dbmux.core.errors import StackError
from dbmux.stack.kafka import broker_properties
from dbmux.stack.layout import Layout, Ports
from dbmux.stack.stack import Stack
from dbmux.stack.toxiproxy import Toxiproxy, proxies

PORTS = Ports(kafka_port=36092, kafka_controller_port=36093)


def _props(layout: Layout, n: int) -> dict[str, str]:
    node = layout.kafka_nodes[n]
    return dict(line.split("=", 1) for line in broker_properties(layout, node, Path("/d")).splitlines() if line)


@pytest.mark.parametrize("brokers, remote, want_proxies, want_listeners, want_api", [
    (1, 36100, [36100], [36101], 36102),
    (3, 36100, [36100, 36102, 36104], [36101, 36103, 36105], 36106),
    (1, 0, [], [], 0),
])
def test_remote_ports_form_one_block_after_the_proxies(brokers, remote, want_proxies, want_listeners, want_api):
    layout = Layout(Path("/nonexistent"), PORTS, brokers, remote)
    nodes = [n for n in layout.kafka_nodes if n.remote_port]
    assert [n.remote_port for n in nodes] == want_proxies
    assert [n.remote_listen_port for n in nodes] == want_listeners
    assert layout.toxiproxy_port == want_api
    assert layout.kafka_remote_bootstrap() == ",".join(f"127.0.0.1:{p}" for p in want_proxies)


def test_a_broker_advertises_its_proxy_on_the_remote_listener():
    layout = Layout(Path("/nonexistent"), PORTS, 3, 36100)
    props = _props(layout, 1)
    assert props["listeners"].split(",") == ["PLAINTEXT://127.0.0.1:36094", "CONTROLLER://127.0.0.1:36095",
                                             "REMOTE://127.0.0.1:36103"]
    # the proxy's address, not the broker's own socket: a client bootstrapped there stays behind the proxy
    assert props["advertised.listeners"].split(",") == ["PLAINTEXT://127.0.0.1:36094", "REMOTE://127.0.0.1:36102"]
    assert "REMOTE:PLAINTEXT" in props["listener.security.protocol.map"].split(",")
    assert props["inter.broker.listener.name"] == "PLAINTEXT"  # replication between brokers stays local
    plain = _props(Layout(Path("/nonexistent"), PORTS, 3), 1)
    assert "REMOTE" not in plain["listeners"] + plain["advertised.listeners"]


def test_toxiproxy_relays_each_proxy_to_its_brokers_own_socket(tmp_path):
    layout = Layout(tmp_path, PORTS, 3, 36100)
    assert proxies(layout) == [
        {"name": f"kafka-remote-{n}", "listen": f"127.0.0.1:{36100 + 2 * (n - 1)}",
         "upstream": f"127.0.0.1:{36101 + 2 * (n - 1)}", "enabled": True} for n in (1, 2, 3)]
    svc = Toxiproxy(layout)
    svc._binary = "/bin/toxiproxy-server"
    svc.prepare()
    assert json.loads(svc.config.read_text()) == proxies(layout)
    assert svc.argv()[1:5] == ["-host", "127.0.0.1", "-port", "36106"] and svc.marker in " ".join(svc.argv())


def test_the_stack_runs_toxiproxy_and_exports_the_remote_addresses_only_when_asked(tmp_path):
    remote = Stack(Layout(tmp_path, PORTS, 3, 36100))
    assert [s.name for s in remote.services][:4] == ["kafka-1", "kafka-2", "kafka-3", "toxiproxy"]
    env = remote.env()
    assert env["DBMUX_KAFKA_REMOTE"] == "127.0.0.1:36100,127.0.0.1:36102,127.0.0.1:36104"
    assert env["DBMUX_TOXIPROXY_URL"] == "http://127.0.0.1:36106"
    assert env["DBMUX_KAFKA"] == "127.0.0.1:36092,127.0.0.1:36094,127.0.0.1:36096"
    local = Stack(Layout(tmp_path, PORTS, 3))
    assert "toxiproxy" not in [s.name for s in local.services]
    assert not {"DBMUX_KAFKA_REMOTE", "DBMUX_TOXIPROXY_URL"} & local.env().keys()


@pytest.mark.parametrize("brokers, remote, fragment", [
    (1, 36092, "must be distinct"),  # the proxy on the broker's own port
    (3, 36090, "must be distinct"),  # broker 2's REMOTE socket (36093) on the first controller
    (1, 13307, "must be distinct"),  # Toxiproxy's API (13308) on replica 2
    (1, 65530, "remote-region proxy port"),
    (1, -1, "remote-region proxy port"),
])
def test_remote_ports_that_clash_or_overflow_are_refused(brokers, remote, fragment):
    with pytest.raises(StackError, match=fragment):
        Layout(Path("/nonexistent"), PORTS if remote != 13307 else Ports(), brokers, remote)


def test_the_remote_port_is_recorded_and_must_agree(tmp_path):
    layout = Layout.load(tmp_path, env={}, overrides={"kafka_port": 36092}, kafka_remote_port=36100)
    layout.save()
    assert json.loads(layout.state_file.read_text())["kafka_remote_port"] == 36100
    assert Layout.load(tmp_path, env={}).kafka_remote_port == 36100
    with pytest.raises(StackError, match="kafka_remote_port"):
        Layout.load(tmp_path, env={}, kafka_remote_port=36200)
    assert Layout.load(tmp_path / "b", env={"DBMUX_STACK_KAFKA_REMOTE_PORT": "36300"}).kafka_remote_port == 36300
    with pytest.raises(StackError, match="DBMUX_STACK_KAFKA_REMOTE_PORT"):
        Layout.load(tmp_path / "c", env={"DBMUX_STACK_KAFKA_REMOTE_PORT": "far"})
    state = json.loads(layout.state_file.read_text())
    del state["kafka_remote_port"]  # a stack.json from before the remote region: none
    layout.state_file.write_text(json.dumps(state))
    assert Layout.load(tmp_path, env={}).kafka_remote_port == 0
