"""Where the local stack lives: directories, ports, credentials. Recorded in ``stack.json``.

The first ``stack up`` records the ports and the number of Kafka brokers (defaults, overridable by
options or ``DBMUX_STACK_*`` environment variables) so later ``env``/``status``/``down`` calls agree
with the running servers.

Kafka brokers: one broker is the service ``kafka`` on ``kafka_port`` (controller
``kafka_controller_port``). With N > 1 brokers they are ``kafka-1`` .. ``kafka-N``, node ids 1 .. N,
broker n on ``kafka_port + 2(n-1)`` and its controller on ``kafka_controller_port + 2(n-1)``: with the
defaults 19092/19093, 19094/19095, 19096/19097 -- one contiguous block, so two stacks side by side
only need ``--kafka-port``/``--kafka-controller-port`` apart by 2N.

A remote region (``--kafka-remote-port P``, off by default): every broker gets a second listener,
``REMOTE``, reached through a Toxiproxy latency proxy -- broker n's proxy listens on ``P + 2(n-1)``
(that address is what the ``REMOTE`` listener advertises, so a client that bootstraps there stays behind
the proxy for every broker), the broker's own ``REMOTE`` socket is ``P + 2(n-1) + 1``, and Toxiproxy's
HTTP API is ``P + 2N``: one block of 2N + 1 ports.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from dbmux.core.dsn import Dsn
from dbmux.core.errors import StackError

APP_USER = "dbmux"
APP_PASSWORD = "dbmux-app-secret"  # local loopback stack only
REPL_USER = "dbmux_repl"
REPL_PASSWORD = "dbmux-repl-secret"
PG_DATABASE = "dbmux"

DEFAULT_PORTS = {
    "kafka_port": 19092,
    "kafka_controller_port": 19093,
    "primary_port": 13306,
    "replica1_port": 13307,
    "replica2_port": 13308,
    "shard_a_port": 15432,
    "shard_b_port": 15433,
    "ingress_port": 16033,
}
MAX_KAFKA_BROKERS = 9
_KAFKA_PORT_STRIDE = 2  # broker n's ports are the first broker's + 2(n-1): interleaved with the controllers'


@dataclass(frozen=True, slots=True)
class Ports:
    kafka_port: int = DEFAULT_PORTS["kafka_port"]
    kafka_controller_port: int = DEFAULT_PORTS["kafka_controller_port"]
    primary_port: int = DEFAULT_PORTS["primary_port"]
    replica1_port: int = DEFAULT_PORTS["replica1_port"]
    replica2_port: int = DEFAULT_PORTS["replica2_port"]
    shard_a_port: int = DEFAULT_PORTS["shard_a_port"]
    shard_b_port: int = DEFAULT_PORTS["shard_b_port"]
    ingress_port: int = DEFAULT_PORTS["ingress_port"]

    @classmethod
    def from_env(cls, env: dict[str, str], overrides: dict[str, int | None]) -> Ports:
        values: dict[str, int] = {}
        for key in DEFAULT_PORTS:
            if override := overrides.get(key):
                values[key] = int(override)
            elif f"DBMUX_STACK_{key.upper()}" in env:
                raw = env[f"DBMUX_STACK_{key.upper()}"]
                if not raw.isdigit() or not 0 < int(raw) < 65536:
                    raise StackError(f"DBMUX_STACK_{key.upper()}={raw!r} is not a TCP port")
                values[key] = int(raw)
        ports = cls(**values)
        used = list(asdict(ports).values())
        if len(set(used)) != len(used):
            raise StackError(f"stack ports must be distinct, got {asdict(ports)}")
        return ports


@dataclass(frozen=True, slots=True)
class KafkaNode:
    """One broker of the stack's KRaft cluster (combined broker + controller)."""

    node_id: int
    name: str
    port: int
    controller_port: int
    remote_port: int = 0  # the latency proxy in front of this broker (0: no remote listener)

    @property
    def remote_listen_port(self) -> int:
        """The broker's own ``REMOTE`` socket, which only the proxy dials."""
        return self.remote_port + 1


def kafka_nodes(ports: Ports, brokers: int, remote_port: int = 0) -> tuple[KafkaNode, ...]:
    """The brokers of a stack with ``brokers`` Kafka nodes (see the module docstring for the ports)."""
    def remote(n: int) -> int:
        return remote_port + _KAFKA_PORT_STRIDE * (n - 1) if remote_port else 0

    if brokers == 1:
        return (KafkaNode(1, "kafka", ports.kafka_port, ports.kafka_controller_port, remote(1)),)
    return tuple(KafkaNode(n, f"kafka-{n}", ports.kafka_port + _KAFKA_PORT_STRIDE * (n - 1),
                           ports.kafka_controller_port + _KAFKA_PORT_STRIDE * (n - 1), remote(n))
                 for n in range(1, brokers + 1))


def kafka_replication(brokers: int) -> tuple[int, int]:
    """(replication factor, min.insync.replicas) for a cluster of ``brokers``: up to 3 copies, and
    acks=all writes keep going while one broker is down."""
    factor = min(brokers, 3)
    return factor, max(1, factor - 1)


def _parse_remote_port(raw: str | int, source: str) -> int:
    text = str(raw)
    if not text.isdigit() or not (int(text) == 0 or 0 < int(text) < 65536 - 2 * MAX_KAFKA_BROKERS - 1):
        raise StackError(f"{source}={raw!r}: the remote-region proxy port must be a TCP port (0: no remote "
                         f"listener), with room for 2N + 1 ports from it")
    return int(text)


def _parse_brokers(raw: str | int, source: str) -> int:
    text = str(raw)
    if not text.isdigit() or not 1 <= int(text) <= MAX_KAFKA_BROKERS:
        raise StackError(f"{source}={raw!r}: the number of Kafka brokers must be 1 .. {MAX_KAFKA_BROKERS}")
    return int(text)


@dataclass(frozen=True, slots=True)
class Layout:
    root: Path
    ports: Ports = field(default_factory=Ports)
    kafka_brokers: int = 1
    kafka_remote_port: int = 0  # 0: no remote-region listener (see the module docstring)

    def __post_init__(self) -> None:
        _parse_brokers(self.kafka_brokers, "kafka_brokers")
        _parse_remote_port(self.kafka_remote_port, "kafka_remote_port")
        named = {k: v for k, v in asdict(self.ports).items() if not k.startswith("kafka_")}
        for node in self.kafka_nodes:
            named[f"{node.name} port"] = node.port
            named[f"{node.name} controller port"] = node.controller_port
            if node.remote_port:
                named[f"{node.name} remote proxy port"] = node.remote_port
                named[f"{node.name} remote listener port"] = node.remote_listen_port
        if self.kafka_remote_port:
            named["toxiproxy API port"] = self.toxiproxy_port
        bad = {k: v for k, v in named.items() if not 0 < v < 65536}
        if bad:
            raise StackError(f"stack ports out of range: {bad} (Kafka broker n uses --kafka-port + "
                             f"{_KAFKA_PORT_STRIDE}(n-1) and --kafka-controller-port + {_KAFKA_PORT_STRIDE}(n-1))")
        if len(set(named.values())) != len(named):
            raise StackError(f"stack ports must be distinct, got {named} (Kafka broker n uses --kafka-port + "
                             f"{_KAFKA_PORT_STRIDE}(n-1) and --kafka-controller-port + {_KAFKA_PORT_STRIDE}(n-1))")

    @property
    def kafka_nodes(self) -> tuple[KafkaNode, ...]:
        return kafka_nodes(self.ports, self.kafka_brokers, self.kafka_remote_port)

    @property
    def toxiproxy_port(self) -> int:
        """Toxiproxy's HTTP API, right after the remote block (0 when there is no remote listener)."""
        return self.kafka_remote_port + _KAFKA_PORT_STRIDE * self.kafka_brokers if self.kafka_remote_port else 0

    @property
    def state_file(self) -> Path:
        return self.root / "stack.json"

    @property
    def run_dir(self) -> Path:
        return self.root / "run"

    @property
    def log_dir(self) -> Path:
        return self.root / "logs"

    @property
    def config_path(self) -> Path:
        return self.root / "dbmux.toml"

    def service_dir(self, name: str) -> Path:
        return self.root / name

    def save(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.state_file.write_text(json.dumps({"ports": asdict(self.ports), "kafka_brokers": self.kafka_brokers,
                                               "kafka_remote_port": self.kafka_remote_port}, indent=2) + "\n")

    @classmethod
    def load(cls, root: Path, env: dict[str, str] | None = None,
             overrides: dict[str, int | None] | None = None, kafka_brokers: int | None = None,
             kafka_remote_port: int | None = None) -> Layout:
        """The recorded layout when one exists (overrides must agree), else a new one. ``kafka_brokers``
        (else ``$DBMUX_STACK_KAFKA_BROKERS``, else 1) is the size of the Kafka cluster;
        ``kafka_remote_port`` (else ``$DBMUX_STACK_KAFKA_REMOTE_PORT``, else 0: none) the remote block."""
        root = root.resolve()
        env = dict(os.environ if env is None else env)
        wanted = Ports.from_env(env, overrides or {})
        brokers = 1
        if kafka_brokers is not None:
            brokers = _parse_brokers(kafka_brokers, "--kafka-brokers")
        elif "DBMUX_STACK_KAFKA_BROKERS" in env:
            brokers = _parse_brokers(env["DBMUX_STACK_KAFKA_BROKERS"], "DBMUX_STACK_KAFKA_BROKERS")
        remote = 0
        if kafka_remote_port is not None:
            remote = _parse_remote_port(kafka_remote_port, "--kafka-remote-port")
        elif "DBMUX_STACK_KAFKA_REMOTE_PORT" in env:
            remote = _parse_remote_port(env["DBMUX_STACK_KAFKA_REMOTE_PORT"], "DBMUX_STACK_KAFKA_REMOTE_PORT")
        if (root / "stack.json").exists():
            state = json.loads((root / "stack.json").read_text())
            recorded = Ports(**state["ports"])
            recorded_brokers = int(state.get("kafka_brokers", 1))
            recorded_remote = int(state.get("kafka_remote_port", 0))
            explicit = {k: v for k, v in (overrides or {}).items() if v}
            clash = sorted(k for k, v in explicit.items() if getattr(recorded, k) != v)
            if kafka_brokers is not None and kafka_brokers != recorded_brokers:
                clash.append("kafka_brokers")
            if kafka_remote_port is not None and kafka_remote_port != recorded_remote:
                clash.append("kafka_remote_port")
            if clash:
                raise StackError(
                    f"{root} already holds a stack with ports {asdict(recorded)}, {recorded_brokers} Kafka "
                    f"broker(s) and remote port {recorded_remote or 'none'}; run 'dbmux stack down' and "
                    f"remove {root} to change {clash}"
                )
            return cls(root, recorded, recorded_brokers, recorded_remote)
        return cls(root, wanted, brokers, remote)

    # -- addresses ----------------------------------------------------------------------------
    def primary_dsn(self) -> Dsn:
        return Dsn("mysql", "127.0.0.1", self.ports.primary_port, APP_USER, APP_PASSWORD)

    def binlog_dsn(self) -> Dsn:
        return Dsn("mysql", "127.0.0.1", self.ports.primary_port, REPL_USER, REPL_PASSWORD)

    def replica_dsns(self) -> list[Dsn]:
        return [Dsn("mysql", "127.0.0.1", p, APP_USER, APP_PASSWORD)
                for p in (self.ports.replica1_port, self.ports.replica2_port)]

    def shard_dsns(self) -> list[Dsn]:
        return [Dsn("postgresql", "127.0.0.1", p, APP_USER, APP_PASSWORD, PG_DATABASE)
                for p in (self.ports.shard_a_port, self.ports.shard_b_port)]

    def kafka_bootstrap(self) -> str:
        """Every broker, comma-separated (a client needs one of them alive to start)."""
        return ",".join(f"127.0.0.1:{node.port}" for node in self.kafka_nodes)

    def kafka_remote_bootstrap(self) -> str:
        """Every broker through its latency proxy ("" without a remote listener)."""
        return ",".join(f"127.0.0.1:{node.remote_port}" for node in self.kafka_nodes if node.remote_port)

    def ingress_listen(self) -> str:
        return f"127.0.0.1:{self.ports.ingress_port}"
