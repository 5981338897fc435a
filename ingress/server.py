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
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self._new_client_stream, host.strip("[]"), int(port))
        log.info("ingress listening on %s, forwarding to %s, publishing to %s", self.config.ingress.listen,
                 self.config.primary.dsn.redacted(), self.publisher.topic)

    def _new_client_stream(self) -> PacketStream:
        return PacketStream(max_payload_bytes=self.config.ingress.max_packet_bytes, on_connected=self._accepted)

    def _accepted(self, stream: PacketStream) -> None:
        task = asyncio.get_running_loop().create_task(self._serve(stream))
        self._sessions.add(task)
        task.add_done_callback(self._sessions.discard)

    async def _serve(self, stream: PacketStream) -> None:
        peer = stream.peername()
        addr = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) and len(peer) >= 2 else "?"
        session = ClientSession(self.config, self.publisher, stream, addr, tls_server=self._tls)
        try:
            await session.run()
        except Exception:  # noqa: BLE001 - a bug in one session must not take the listener down
            log.exception("%s: session failed", session.tag)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for t in list(self._sessions):
            t.cancel()
        if self._server is not None:
            await self._server.wait_closed()
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
