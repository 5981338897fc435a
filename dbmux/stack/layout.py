"""Where the local stack lives: directories, ports, credentials. Recorded in ``stack.json``.

The first ``stack up`` records the ports (defaults, overridable by options or ``DBMUX_STACK_*``
environment variables) so later ``env``/``status``/``down`` calls agree with the running servers.
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
class Layout:
    root: Path
    ports: Ports = field(default_factory=Ports)

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
        self.state_file.write_text(json.dumps({"ports": asdict(self.ports)}, indent=2) + "\n")

    @classmethod
    def load(cls, root: Path, env: dict[str, str] | None = None,
             overrides: dict[str, int | None] | None = None) -> Layout:
        """The recorded layout when one exists (overrides must agree), else a new one."""
        root = root.resolve()
        env = dict(os.environ if env is None else env)
        wanted = Ports.from_env(env, overrides or {})
        if (root / "stack.json").exists():
            recorded = Ports(**json.loads((root / "stack.json").read_text())["ports"])
            explicit = {k: v for k, v in (overrides or {}).items() if v}
            clash = {k: v for k, v in explicit.items() if getattr(recorded, k) != v}
            if clash:
                raise StackError(
                    f"{root} already holds a stack with ports {asdict(recorded)}; "
                    f"run 'dbmux stack down' and remove {root} to change {sorted(clash)}"
                )
            return cls(root, recorded)
        return cls(root, wanted)

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
        return f"127.0.0.1:{self.ports.kafka_port}"

    def ingress_listen(self) -> str:
        return f"127.0.0.1:{self.ports.ingress_port}"
