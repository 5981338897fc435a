"""A framed MySQL packet stream over an asyncio StreamReader/Writer (the only I/O around the codec).

Output is corked: ``write``/``write_raw`` only queue bytes; ``flush`` hands everything queued to the
transport in one ``write`` (one send system call instead of one per packet), ``drain`` flushes and
waits only when the transport is actually backed up, and ``read`` flushes before it waits for the
peer (so a request is never left queued while its answer is awaited).
"""

from __future__ import annotations

import asyncio
import ssl

from ingress.protocol.errors import ProtocolError
from ingress.protocol.framing import FrameReader, Packet, frame
from ingress.tls import TlsLayer

_READ_BYTES = 256 * 1024


class PeerClosed(Exception):
    """The other side closed the connection."""


class PacketStream:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *,
                 max_payload_bytes: int) -> None:
        self.reader = reader
        self.writer = writer
        self.frames = FrameReader(max_payload_bytes=max_payload_bytes)
        self._transport = writer.transport
        self._out: list[bytes] = []
        self._tls: TlsLayer | None = None

    async def start_tls(self, ctx: ssl.SSLContext, *, server_side: bool) -> None:
        """Switch this stream to TLS (after an SSLRequest). Bytes already received but not framed
        -- a ClientHello sent right behind the SSLRequest -- start the handshake."""
        self.flush()
        initial = self.frames.take_buffered()
        self._tls = TlsLayer(ctx, server_side=server_side)
        await self._tls.handshake(self.reader, self.writer, initial)
        # Application data that arrived with the end of the handshake is already in the TLS layer.
        leftover = self._tls.decrypt(b"")
        if leftover:
            self.frames.feed(leftover)

    @property
    def tls_version(self) -> str | None:
        return self._tls.version if self._tls else None

    def poll(self, expected_seq: int | None = None) -> Packet | None:
        """The next packet if it was already received, else None (never waits)."""
        return self.frames.next_packet(expected_seq)

    def take_run(self, stop_headers: bytes) -> tuple[int, bytes]:
        """Already received packets taken as one raw run (see :meth:`FrameReader.take_run`)."""
        return self.frames.take_run(stop_headers)

    async def read(self, expected_seq: int | None = None) -> Packet:
        while True:
            p = self.frames.next_packet(expected_seq)
            if p is not None:
                return p
            self.flush()
            data = await self.reader.read(_READ_BYTES)
            if not data:
                if self.frames.in_partial_payload:
                    raise ProtocolError("connection closed in the middle of a packet")
                raise PeerClosed()
            if self._tls is not None:
                try:
                    data = self._tls.decrypt(data)
                except ssl.SSLError as exc:
                    raise ProtocolError(f"TLS error: {exc}") from None
            self.frames.feed(data)

    def has_buffered(self) -> bool:
        return self.frames.buffered_bytes > 0

    def write(self, payload: bytes, seq: int) -> None:
        """Queue one payload, framed from sequence id ``seq``."""
        self._out.append(frame(payload, seq))

    def write_raw(self, data: bytes) -> None:
        """Queue bytes that are already framed (e.g. a :attr:`Packet.raw` forwarded unchanged)."""
        self._out.append(data)

    def flush(self) -> None:
        """Hand everything queued to the transport, in one write."""
        out = self._out
        if out:
            data = out[0] if len(out) == 1 else b"".join(out)
            out.clear()
            if self._tls is not None:
                data = self._tls.encrypt(data)
            self.writer.write(data)

    async def drain(self) -> None:
        """Flush, then wait while the transport's buffer is above its high-water mark."""
        self.flush()
        if self._transport.get_write_buffer_size() or self._transport.is_closing():
            await self.writer.drain()

    def close(self) -> None:
        try:
            self.flush()
        except Exception:  # noqa: BLE001 - best effort on teardown
            pass
        try:
            self.writer.close()
        except Exception:  # noqa: BLE001 - best effort on teardown
            pass
