"""The ingress listener: accepts clients, runs each one's connection phase, then hands it to the Handler.

See :mod:`ingress.handler` for the division of work (and the concurrency contract) between the
listener -- accept, handshake, TLS, authentication, closing -- and the handler -- the command phase.
"""

from __future__ import annotations

import asyncio
import logging

from dbmux import _compiled
from dbmux.core.config import Config
from dbmux.ingress.cache_feed import CacheFeed
from dbmux.ingress.cache_session import CacheGate
from dbmux.ingress.connection import Connection
from dbmux.ingress.handler import Handler
from dbmux.ingress.protocol.errors import ProtocolError
from dbmux.ingress.publisher import Publisher
from dbmux.ingress.read_router import ReadRouter
from dbmux.ingress.relay import RelayHandler
from dbmux.ingress.schema_facts import SchemaFacts
from dbmux.ingress.tls import server_context
from dbmux.ingress.wire import PacketStream, PeerClosed

log = logging.getLogger(__name__)


class IngressServer:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.publisher = Publisher(config)
        ing = config.ingress
        self.facts = SchemaFacts(config.primary.dsn, ing.schema_refresh_ms) if ing.statement_safety else None
        self.router = ReadRouter(config) if ing.reads == "replicas" else None
        self.gate = CacheGate(ing, self.facts) if ing.cache_bytes and self.facts is not None else None
        self.feed = CacheFeed(config, self.gate) if self.gate is not None else None
        self.handler: Handler = RelayHandler(config, self.publisher, self.facts, self.router, self.gate)
        self._server: asyncio.AbstractServer | None = None
        self._sessions: set[asyncio.Task[None]] = set()
        self._tls = server_context(ing.tls_cert, ing.tls_key) if ing.tls_cert else None

    async def start(self) -> None:
        await self.publisher.start()
        if self.facts is not None:  # (writes are replicated from their row copy until the facts are loaded)
            await self.facts.start(first_load_timeout_s=10)
        if self.router is not None:
            await self.router.start()
        if self.feed is not None:  # (before any client: no write around the ingress is missed)
            await self.feed.start()
        host, _, port = self.config.ingress.listen.rpartition(":")
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self._new_client_stream, host.strip("[]"), int(port),
                                                backlog=self.config.ingress.listen_backlog)
        log.info("ingress listening on %s, forwarding to %s, publishing to %s; relay modules: %s",
                 self.config.ingress.listen, self.config.primary.dsn.redacted(), self.publisher.topic,
                 _compiled.describe())

    def _new_client_stream(self) -> PacketStream:
        return PacketStream(max_payload_bytes=self.config.ingress.max_packet_bytes, on_connected=self._accepted)

    def _accepted(self, stream: PacketStream) -> None:
        task = asyncio.get_running_loop().create_task(self._serve(stream))
        self._sessions.add(task)
        task.add_done_callback(self._sessions.discard)

    async def _serve(self, stream: PacketStream) -> None:
        """One client connection, from its handshake to its end (a failure ends that connection only)."""
        peer = stream.peername()
        addr = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) and len(peer) >= 2 else "?"
        conn = Connection(self.config.primary, stream, addr, tls_server=self._tls,
                          routing=self.router is not None or self.gate is not None)
        try:
            if await conn.handshake():
                await self.handler.serve(conn)
        except PeerClosed:
            pass
        except ProtocolError as bad:  # (one name per exception type: tests/unit/test_compiled.py)
            log.warning("%s: protocol error, closing the session: %s", conn.tag, bad)
            conn.send_error(1156, "08S01", f"dbmux: bad packet: {bad}")
        except (ConnectionError, asyncio.IncompleteReadError) as lost:
            log.info("%s: connection lost: %s", conn.tag, lost)
        except Exception:  # noqa: BLE001 - a bug in one session must not take the listener down
            log.exception("%s: session failed", conn.tag)
        finally:
            conn.close()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for t in list(self._sessions):
            t.cancel()
        if self._server is not None:
            await self._server.wait_closed()
        if self.facts is not None:
            await self.facts.stop()
        if self.router is not None:
            await self.router.stop()
        if self.feed is not None:
            await self.feed.stop()
        await self.publisher.stop()
