"""The ingress listener: accepts clients and runs one :class:`ClientSession` per connection."""

from __future__ import annotations

import asyncio
import logging
import signal

from dbmux.config import Config
from ingress.publisher import Publisher
from ingress.session import ClientSession
from ingress.tls import server_context
from ingress.wire import PacketStream

log = logging.getLogger(__name__)


class IngressServer:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.publisher = Publisher(config)
        self._server: asyncio.AbstractServer | None = None
        self._sessions: set[asyncio.Task] = set()
        ing = config.ingress
        self._tls = server_context(ing.tls_cert, ing.tls_key) if ing.tls_cert else None

    async def start(self) -> None:
        await self.publisher.start()
        host, _, port = self.config.ingress.listen.rpartition(":")
        self._server = await asyncio.start_server(self._accept, host.strip("[]"), int(port), limit=1 << 20)
        log.info("ingress listening on %s, forwarding to %s, publishing to %s", self.config.ingress.listen,
                 self.config.primary.dsn.redacted(), self.publisher.topic)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        addr = f"{peer[0]}:{peer[1]}" if peer else "?"
        stream = PacketStream(reader, writer, max_payload_bytes=self.config.ingress.max_packet_bytes)
        session = ClientSession(self.config, self.publisher, stream, addr, tls_server=self._tls)
        task = asyncio.current_task()
        if task is not None:
            self._sessions.add(task)
        try:
            await session.run()
        except Exception:  # noqa: BLE001 - a bug in one session must not take the listener down
            log.exception("%s: session failed", session.tag)
        finally:
            if task is not None:
                self._sessions.discard(task)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for t in list(self._sessions):
            t.cancel()
        await self.publisher.stop()


async def serve(config: Config, stop: asyncio.Event | None = None) -> None:
    server = IngressServer(config)
    await server.start()
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):
            pass
    try:
        await stop.wait()
    finally:
        await server.stop()


def run(config: Config) -> None:
    try:
        import uvloop

        uvloop.run(serve(config))
    except ImportError:
        asyncio.run(serve(config))
