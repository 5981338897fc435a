"""The ingress listener: ``ingress.listen_backlog`` (config, environment override) reaches the listening socket."""

from __future__ import annotations

import asyncio

import pytest

from dbmux.core.config import parse_config
from dbmux.core.errors import ConfigError
from dbmux.ingress.server import IngressServer

BASE = {"primary": {"url": "mysql://app:pw@127.0.0.1:3306"}, "ingress": {"listen": "127.0.0.1:16033"}}


@pytest.mark.parametrize(("raw", "env", "expected"), [
    pytest.param({}, {}, 1024, id="default"),
    pytest.param({"listen_backlog": 4096}, {}, 4096, id="file"),
    pytest.param({"listen_backlog": 4096}, {"DBMUX_INGRESS_LISTEN_BACKLOG": "2000"}, 2000, id="environment"),
    pytest.param({}, {"DBMUX_INGRESS_LISTEN_BACKLOG": "1"}, 1, id="minimum"),
])
def test_listen_backlog_setting(raw, env, expected):
    cfg = parse_config({**BASE, "ingress": {**BASE["ingress"], **raw}}, env)
    assert cfg.ingress.listen_backlog == expected


@pytest.mark.parametrize(("raw", "env", "fragment"), [
    pytest.param({"listen_backlog": 0}, {}, "minimum 1", id="zero"),
    pytest.param({}, {"DBMUX_INGRESS_LISTEN_BACKLOG": "-5"}, "minimum 1", id="negative-from-env"),
    pytest.param({}, {"DBMUX_INGRESS_LISTEN_BACKLOG": "many"}, "expected an integer", id="not-a-number"),
])
def test_listen_backlog_is_validated(raw, env, fragment):
    with pytest.raises(ConfigError) as info:
        parse_config({**BASE, "ingress": {**BASE["ingress"], **raw}}, env)
    assert info.value.key.startswith("ingress.listen_backlog") and fragment in str(info.value)


async def test_the_listening_socket_gets_the_configured_backlog(monkeypatch):
    cfg = parse_config(BASE, {"DBMUX_INGRESS_LISTEN_BACKLOG": "3000", "DBMUX_INGRESS_STATEMENT_SAFETY": "false"})
    server = IngressServer(cfg)

    async def no_kafka() -> None:
        return None

    monkeypatch.setattr(server.publisher, "start", no_kafka)
    loop = asyncio.get_running_loop()
    calls = []

    async def create_server(factory, host, port, **kwargs):
        calls.append((host, port, kwargs))
        return None

    monkeypatch.setattr(loop, "create_server", create_server)
    await server.start()
    assert calls == [("127.0.0.1", 16033, {"backlog": 3000})]
