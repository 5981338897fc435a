"""``dbmux stack``: the whole local stack on 127.0.0.1 (Kafka -- one broker, or a KRaft cluster of
``kafka-1`` .. ``kafka-N`` --, MariaDB primary + 2 replicas, 2 PostgreSQL; with ``--kafka-remote-port``
also Toxiproxy in front of the brokers' remote listeners).

``up`` is idempotent and returns only when every service answers a real request; ``down`` stops
exactly the processes recorded in pid files (checked against their command line), never others.
"""

from __future__ import annotations

import asyncio
import logging
import shlex
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path

from dbmux.core.errors import StackError
from dbmux.stack import process
from dbmux.stack.base import Service
from dbmux.stack.kafka import Kafka
from dbmux.stack.layout import Layout
from dbmux.stack.mariadb import MariaDB
from dbmux.stack.pipeline_config import render_pipeline_config
from dbmux.stack.postgres import Postgres
from dbmux.stack.toxiproxy import Toxiproxy

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ServiceStatus:
    name: str
    port: int
    pid: int | None
    listening: bool

    @property
    def up(self) -> bool:
        return self.pid is not None and self.listening


class Stack:
    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        p = layout.ports
        self.services: list[Service] = [
            *(Kafka(layout, node) for node in layout.kafka_nodes),
            MariaDB(layout, "mariadb-primary", p.primary_port, 1, primary=True),
            MariaDB(layout, "mariadb-replica1", p.replica1_port, 11, primary=False),
            MariaDB(layout, "mariadb-replica2", p.replica2_port, 12, primary=False),
            Postgres(layout, "pg-shard-a", p.shard_a_port),
            Postgres(layout, "pg-shard-b", p.shard_b_port),
        ]
        if layout.kafka_remote_port:
            self.services.insert(len(layout.kafka_nodes), Toxiproxy(layout))

    async def up(self, timeout_s: float = 180.0, only: tuple[str, ...] = ()) -> list[str]:
        """Start what is not running, wait until all answer. Returns the names it started. ``only``:
        just these services (a name, or ``kafka`` for every broker), e.g. Kafka alone for a test."""
        services = self.select(only)
        for svc in services:  # fail fast, before starting anything
            svc.check_installed()
        self.layout.save()
        started: list[str] = []
        for svc in services:
            if svc.pidfile.read() is not None:
                continue
            _refuse_busy_port(svc)
            await asyncio.to_thread(svc.prepare)
            process.spawn(svc.argv(), svc.log_path, svc.pidfile, user=svc.user)
            started.append(svc.name)
        await asyncio.gather(*(svc.wait_ready(timeout_s) for svc in services))
        self.write_pipeline_config()
        return started

    def select(self, only: tuple[str, ...]) -> list[Service]:
        """The services ``only`` names (all when empty); ``kafka`` names every broker."""
        if not only:
            return list(self.services)
        chosen = [s for s in self.services if any(s.name == n or s.name.startswith(f"{n}-") for n in only)]
        unknown = [n for n in only if not any(s.name == n or s.name.startswith(f"{n}-") for s in self.services)]
        if unknown:
            raise StackError(f"no service {', '.join(map(repr, unknown))}; services: "
                             f"{', '.join(s.name for s in self.services)}")
        return chosen

    def down(self, *, purge: bool = False) -> list[str]:
        """Stop what the pid files name; with ``purge`` also delete every data directory."""
        stopped = []
        brokers = [svc for svc in self.services if isinstance(svc, Kafka)]
        for svc in reversed(self.services):
            if isinstance(svc, Kafka):
                continue
            if process.stop(svc.pidfile):
                stopped.append(svc.name)
        # all brokers at once: the last of a KRaft quorum stopped alone would wait for a majority that is gone
        ran = process.stop_together([svc.pidfile for svc in brokers])
        stopped += [svc.name for svc, was in zip(reversed(brokers), reversed(ran), strict=True) if was]
        if purge:
            for svc in self.services:
                svc.purge()
            shutil.rmtree(self.layout.root, ignore_errors=True)
        return stopped

    async def restart(self, name: str, timeout_s: float = 180.0) -> None:
        """Stop one service (SIGTERM, clean shutdown) and start it again on the same data."""
        svc = self.service(name)
        process.stop(svc.pidfile)
        await self.up(timeout_s, only=(name,))

    def service(self, name: str) -> Service:
        for svc in self.services:
            if svc.name == name:
                return svc
        raise StackError(f"no service {name!r}; services: {', '.join(s.name for s in self.services)}")

    def status(self) -> list[ServiceStatus]:
        return [ServiceStatus(s.name, s.port, s.pidfile.read(), _listening(s.port)) for s in self.services]

    def write_pipeline_config(self) -> Path:
        path = self.layout.config_path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render_pipeline_config(self.layout))
        return path

    def env(self) -> dict[str, str]:
        lay = self.layout
        return {
            "DBMUX_KAFKA": lay.kafka_bootstrap(),  # every broker
            "DBMUX_PRIMARY_URL": lay.primary_dsn().url(),
            "DBMUX_PRIMARY_BINLOG_URL": lay.binlog_dsn().url(),
            "DBMUX_REPLICA_URLS": ",".join(d.url() for d in lay.replica_dsns()),
            "DBMUX_SHARD_URLS": ",".join(d.url() for d in lay.shard_dsns()),
            "DBMUX_INGRESS_URL": f"mysql://{lay.primary_dsn().user}:{lay.primary_dsn().password}@"
                                 f"{lay.ingress_listen()}",
            "DBMUX_CONFIG": str(lay.config_path),
        } | ({  # the remote region: every broker through its latency proxy, and the proxy's API
            "DBMUX_KAFKA_REMOTE": lay.kafka_remote_bootstrap(),
            "DBMUX_TOXIPROXY_URL": f"http://127.0.0.1:{lay.toxiproxy_port}",
        } if lay.kafka_remote_port else {})

    def env_script(self) -> str:
        if not self.layout.config_path.exists():
            self.write_pipeline_config()
        return "".join(f"export {k}={shlex.quote(v)}\n" for k, v in self.env().items())


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _refuse_busy_port(svc: Service) -> None:
    if _listening(svc.port):
        raise StackError(f"port {svc.port} for {svc.name} is already in use by another process; "
                         f"stop it or choose other ports (dbmux stack up --help)")

