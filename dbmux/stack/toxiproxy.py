"""Toxiproxy in front of the brokers' ``REMOTE`` listeners: the stack's "remote region".

Started only with ``--kafka-remote-port``. One proxy per broker, ``kafka-remote-<node id>``, from the
address the broker advertises on ``REMOTE`` to the broker's own ``REMOTE`` socket; no toxics at start (a
plain relay). A bench or test adds latency through Toxiproxy's HTTP API (:func:`set_latency`).

Toxiproxy (Shopify's TCP fault-injection proxy) is a Go program: ``$DBMUX_TOXIPROXY_SERVER`` when set,
else built once with ``go install`` at the pinned version into ``~/.cache/dbmux/toxiproxy-<version>/``.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from dbmux.core.errors import StackError
from dbmux.stack.base import Service, cache_root, require_binary
from dbmux.stack.layout import KafkaNode, Layout

TOXIPROXY_MODULE = "github.com/Shopify/toxiproxy/v2/cmd/server"
TOXIPROXY_VERSION = "v2.5.0"
_GO_INSTALL = "apt-get install -y golang-go (or set DBMUX_TOXIPROXY_SERVER to a toxiproxy-server binary)"


def proxy_name(node: KafkaNode) -> str:
    return f"kafka-remote-{node.node_id}"


def proxies(layout: Layout) -> list[dict[str, Any]]:
    """Toxiproxy's start-up config: one enabled proxy per broker."""
    return [{"name": proxy_name(node), "listen": f"127.0.0.1:{node.remote_port}",
             "upstream": f"127.0.0.1:{node.remote_listen_port}", "enabled": True}
            for node in layout.kafka_nodes if node.remote_port]


def resolve_toxiproxy() -> str:
    """The toxiproxy-server binary, built with ``go install`` on first use."""
    given = os.environ.get("DBMUX_TOXIPROXY_SERVER")
    if given:
        if not (Path(given).is_file() and os.access(given, os.X_OK)):
            raise StackError(f"DBMUX_TOXIPROXY_SERVER={given} is not an executable file; unset it to build "
                             f"Toxiproxy with go install")
        return given
    home = cache_root() / f"toxiproxy-{TOXIPROXY_VERSION}"
    binary = home / "toxiproxy-server"
    if binary.is_file():
        return str(binary)
    go = require_binary("go", _GO_INSTALL, extra_dirs=("/usr/local/go/bin",))
    partial = home.with_name(home.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    proc = subprocess.run([go, "install", f"{TOXIPROXY_MODULE}@{TOXIPROXY_VERSION}"], capture_output=True,
                          text=True, env={**os.environ, "GOBIN": str(partial), "GOFLAGS": "-mod=mod"})
    if proc.returncode != 0:
        raise StackError(f"building Toxiproxy failed (go install {TOXIPROXY_MODULE}@{TOXIPROXY_VERSION}, exit "
                         f"{proc.returncode}):\n{proc.stderr[-2000:]}")
    (partial / "server").rename(partial / "toxiproxy-server")
    shutil.rmtree(home, ignore_errors=True)
    partial.rename(home)
    return str(binary)


async def api(port: int, method: str, path: str, body: Any = None, timeout_s: float = 5.0) -> Any:
    """One request to Toxiproxy's HTTP API on 127.0.0.1; the decoded JSON answer (None when empty)."""
    return await asyncio.to_thread(_request, port, method, path, body, timeout_s)


_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never through $http_proxy


def _request(port: int, method: str, path: str, body: Any, timeout_s: float) -> Any:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with _OPENER.open(req, timeout=timeout_s) as resp:
            content = resp.read()
    except urllib.error.HTTPError as exc:
        raise StackError(f"Toxiproxy {method} {path}: HTTP {exc.code} {exc.read()[:300]!r}") from None
    return json.loads(content) if content.strip() else None


async def set_latency(layout: Layout, one_way_ms: int, jitter_ms: int = 0) -> None:
    """Every broker's remote proxy delays each direction by ``one_way_ms`` (a round trip of twice that);
    0 removes the delay."""
    for node in layout.kafka_nodes:
        await proxy_latency(layout.toxiproxy_port, proxy_name(node), one_way_ms, jitter_ms)


async def proxy_latency(api_port: int, name: str, one_way_ms: int, jitter_ms: int = 0) -> None:
    """Proxy ``name`` delays each direction by ``one_way_ms`` (0: no delay)."""
    current = {t.get("name") for t in await api(api_port, "GET", f"/proxies/{name}/toxics") or []}
    for stream in ("upstream", "downstream"):
        toxic = f"latency_{stream}"
        if toxic in current:
            await api(api_port, "DELETE", f"/proxies/{name}/toxics/{toxic}")
        if one_way_ms:
            await api(api_port, "POST", f"/proxies/{name}/toxics",
                      {"name": toxic, "type": "latency", "stream": stream, "toxicity": 1.0,
                       "attributes": {"latency": one_way_ms, "jitter": jitter_ms}})


async def add_proxy(api_port: int, name: str, listen: str, upstream: str) -> None:
    """A further proxy (e.g. a bench's primary across the same link); replaces one of that name."""
    listed = await api(api_port, "GET", "/proxies") or {}
    if name in listed:
        await api(api_port, "DELETE", f"/proxies/{name}")
    await api(api_port, "POST", "/proxies", {"name": name, "listen": listen, "upstream": upstream, "enabled": True})


async def remove_proxy(api_port: int, name: str) -> None:
    if name in (await api(api_port, "GET", "/proxies") or {}):
        await api(api_port, "DELETE", f"/proxies/{name}")


class Toxiproxy(Service):
    name = "toxiproxy"

    def __init__(self, layout: Layout) -> None:
        super().__init__(layout)
        self.port = layout.toxiproxy_port

    def check_installed(self) -> None:
        self._binary = resolve_toxiproxy()

    @property
    def config(self) -> Path:
        return self.dir / "proxies.json"

    def prepare(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.config.write_text(json.dumps(proxies(self.layout), indent=2) + "\n")

    def argv(self) -> list[str]:
        return [self._binary, "-host", "127.0.0.1", "-port", str(self.port), "-config", str(self.config)]

    async def probe(self) -> None:
        listed = await api(self.port, "GET", "/proxies")
        missing = [p["name"] for p in proxies(self.layout) if not (listed or {}).get(p["name"], {}).get("enabled")]
        if missing:
            raise StackError(f"Toxiproxy has not created {missing} yet")
