"""A framed MySQL packet stream over an asyncio StreamReader/Writer (the only I/O around the codec)."""

from __future__ import annotations

import asyncio

from ingress.protocol.errors import ProtocolError
from ingress.protocol.framing import FrameReader, Payload, frame

_READ_BYTES = 256 * 1024


class PeerClosed(Exception):
    """The other side closed the connection."""


class PacketStream:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *,
                 max_payload_bytes: int) -> None:
        self.reader = reader
        self.writer = writer
        self.frames = FrameReader(max_payload_bytes=max_payload_bytes)

    async def read(self, expected_seq: int | None = None) -> Payload:
        while True:
            p = self.frames.next_payload(expected_seq)
            if p is not None:
                return p
            data = await self.reader.read(_READ_BYTES)
            if not data:
                if self.frames.in_partial_payload:
                    raise ProtocolError("connection closed in the middle of a packet")
                raise PeerClosed()
            self.frames.feed(data)

    def has_buffered(self) -> bool:
        return self.frames.buffered_bytes > 0

    def write(self, payload: bytes, seq: int) -> None:
        self.writer.write(frame(payload, seq))

    async def drain(self) -> None:
        await self.writer.drain()

    def close(self) -> None:
        try:
            self.writer.close()
        except Exception:  # noqa: BLE001 - best effort on teardown
            pass
