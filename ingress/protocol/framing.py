"""Packet framing: 3-byte little-endian payload length + 1-byte sequence id.

A payload of exactly ``0xFFFFFF`` bytes continues in the next frame; a logical payload ends with a frame
shorter than that (possibly empty). :class:`FrameReader` owns the receive buffer and reassembles logical
payloads; :func:`frame` does the reverse. Neither knows what the payload means.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from dbmux.ingress.protocol.constants import MAX_CHUNK_BYTES
from dbmux.ingress.protocol.errors import PacketTooLarge, SequenceError

HEADER_BYTES = 4
DEFAULT_MAX_PAYLOAD_BYTES = 1 << 30  # the largest max_allowed_packet MySQL and MariaDB accept


class Payload(NamedTuple):
    """One logical payload and the sequence ids of its first and last frame."""

    first_seq: int
    last_seq: int
    payload: bytes


class Packet(NamedTuple):
    """A :class:`Payload` plus ``raw``: its frames exactly as they were received (headers included).

    ``raw == frame(payload, first_seq)`` always holds, so a proxy that forwards a payload unchanged can
    write ``raw`` instead of framing it again.
    """

    first_seq: int
    last_seq: int
    payload: bytes
    raw: bytes


class FrameReader:
    """Incremental reassembly of logical payloads from a byte stream.

    ``feed()`` bytes as they arrive, then call ``next_payload()`` (or ``next_packet()``) until it returns
    ``None``. Bytes after the last complete payload stay buffered for the next call. Continuation frames
    must carry consecutive sequence ids (mod 256); the first frame's id is checked only when the caller
    passes ``expected_seq`` (the conversation, not the framing, knows what it should be).

    A multi-frame payload (16 MiB and more on the wire) stays in the buffer as it arrives, each frame
    header read once, until its last frame came; then its payload is joined in one copy and its raw
    frames are one slice: linear in its size, however many receives it took.
    """

    def __init__(
        self, max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES, chunk_bytes: int = MAX_CHUNK_BYTES
    ) -> None:
        self.max_payload_bytes = max_payload_bytes
        # chunk_bytes exists so tests can exercise continuation without 16 MiB buffers; on the wire
        # it is always MAX_CHUNK_BYTES.
        self._chunk_bytes = chunk_bytes
        self._buf = bytearray()
        self._pos = 0  # bytes of _buf already consumed (dropped on the next feed)
        # A multi-frame payload stays in _buf, frames and all, until its last frame arrived; meanwhile:
        self._first_seq: int | None = None  # its first frame's sequence id (None: no such payload pending)
        self._last_seq = 0  # the sequence id of its last complete frame
        self._total = 0  # its payload bytes in complete frames
        self._scan = 0  # where its next frame header starts, relative to _pos (each header is read once)
        self.frames_read = 0  # frame headers of multi-frame payloads read so far (a test's structural probe)

    def feed(self, data: bytes) -> None:
        """Append received bytes."""
        if self._pos:
            del self._buf[: self._pos]
            self._pos = 0
        self._buf += data

    @property
    def buffered_bytes(self) -> int:
        """Bytes received but not yet returned in a payload (including partial continuations)."""
        return len(self._buf) - self._pos

    @property
    def in_partial_payload(self) -> bool:
        """True when some bytes of an unfinished payload have been received."""
        return len(self._buf) > self._pos or self._first_seq is not None

    def take_buffered(self) -> bytes:
        """Remove and return the raw bytes not yet framed (e.g. a TLS ClientHello after SSLRequest)."""
        if self._first_seq is not None:
            raise SequenceError(0, 0, "take_buffered() in the middle of a multi-frame payload")
        data = bytes(self._buf[self._pos :])
        self._buf.clear()
        self._pos = 0
        return data

    def next_payload(self, expected_seq: int | None = None) -> Payload | None:
        """Return the next complete logical payload, or ``None`` if more bytes are needed.

        Raises :class:`SequenceError` when a frame's sequence id is wrong and :class:`PacketTooLarge`
        as soon as a frame header announces that the payload would exceed ``max_payload_bytes``.
        """
        packet = self._next(expected_seq, False)
        return None if packet is None else Payload(packet[0], packet[1], packet[2])

    def next_packet(self, expected_seq: int | None = None) -> Packet | None:
        """Like :meth:`next_payload`, with the packet's raw frames (see :class:`Packet`)."""
        return self._next(expected_seq, True)

    def take_run(self, stop_headers: bytes) -> tuple[int, bytes]:
        """Take the longest run of buffered packets that each fit one frame, are complete, and whose
        payload starts with a byte not in ``stop_headers``: returns (how many, their raw frames).

        For streams of packets that need no look inside (result rows). Anything else (an empty,
        oversize or multi-frame payload, a stop byte, an incomplete frame) stays for ``next_packet``.
        Sequence ids are not checked, as in ``next_packet`` without ``expected_seq``.
        """
        if self._first_seq is not None:
            return 0, b""
        buf, start = self._buf, self._pos
        size, chunk, limit = len(buf), self._chunk_bytes, self.max_payload_bytes
        pos = start
        count = 0
        while pos + HEADER_BYTES < size:
            length = buf[pos] | buf[pos + 1] << 8 | buf[pos + 2] << 16
            end = pos + HEADER_BYTES + length
            if not 0 < length < chunk or length > limit or end > size or buf[pos + HEADER_BYTES] in stop_headers:
                break
            pos = end
            count += 1
        if not count:
            return 0, b""
        self._pos = pos
        return count, bytes(buf[start:pos])

    def take_skimmed(self, skim: Callable[[bytearray, int, int, int], int]) -> bytes:
        """Take the buffered packets ``skim(buf, pos, end, max_length)`` accounts for, as one raw run.

        ``skim`` looks at the buffer from ``pos`` and returns where it stopped; it must stop at a frame
        boundary and take only complete single-frame packets of 1 to ``max_length`` payload bytes
        (longer ones are multi-frame or too large: ``next_packet`` deals with them). Nothing is taken
        in the middle of a multi-frame payload. Sequence ids are not checked, as in ``next_packet``
        without ``expected_seq``. See ``ResponseReader.skim``.
        """
        if self._first_seq is not None:
            return b""
        buf, start = self._buf, self._pos
        pos = skim(buf, start, len(buf), min(self._chunk_bytes - 1, self.max_payload_bytes))
        if pos == start:
            return b""
        self._pos = pos
        return bytes(buf[start:pos])

    def _next(self, expected_seq: int | None, with_raw: bool) -> Packet | None:
        buf, pos = self._buf, self._pos
        if self._first_seq is None:
            if len(buf) - pos < HEADER_BYTES:
                return None
            length = buf[pos] | buf[pos + 1] << 8 | buf[pos + 2] << 16
            seq = buf[pos + 3]
            if expected_seq is not None and seq != expected_seq:
                raise SequenceError(expected_seq, seq, "first frame of a payload")
            if length > self.max_payload_bytes:
                raise PacketTooLarge(length, self.max_payload_bytes)
            end = pos + HEADER_BYTES + length
            if len(buf) < end:
                return None
            if length < self._chunk_bytes:  # the common case: one frame
                self._pos = end
                raw = bytes(buf[pos:end]) if with_raw else b""
                return Packet(seq, seq, bytes(buf[pos + HEADER_BYTES : end]), raw)
            # The first frame of a multi-frame payload: its frames stay buffered until the last one came.
            self._first_seq = self._last_seq = seq
            self._total, self._scan = length, end - pos
            self.frames_read += 1
        chunk, limit = self._chunk_bytes, self.max_payload_bytes
        while True:  # continuation frames, each header read once however the bytes arrive
            at = pos + self._scan
            if len(buf) - at < HEADER_BYTES:
                return None
            length = buf[at] | buf[at + 1] << 8 | buf[at + 2] << 16
            seq = buf[at + 3]
            if seq != (self._last_seq + 1) & 0xFF:
                raise SequenceError((self._last_seq + 1) & 0xFF, seq, "continuation frame")
            if self._total + length > limit:
                raise PacketTooLarge(self._total + length, limit)
            end = at + HEADER_BYTES + length
            if len(buf) < end:
                return None
            self._last_seq, self._total, self._scan = seq, self._total + length, end - pos
            self.frames_read += 1
            if length < chunk:
                break
        first = self._first_seq
        self._first_seq, self._total, self._scan, self._pos = None, 0, 0, end
        payload, raw = _payload_of(buf, pos, end, with_raw)
        return Packet(first, seq, payload, raw)


def _payload_of(buf: bytearray, pos: int, end: int, with_raw: bool) -> tuple[bytes, bytes]:
    """The payload of the complete frames in ``buf[pos:end]`` and (``with_raw``) those frames: one copy
    each, whatever the number of frames."""
    with memoryview(buf) as view:
        parts = [view[pos:end]]  # (kept first: the raw frames)
        at = pos
        while at < end:
            length = buf[at] | buf[at + 1] << 8 | buf[at + 2] << 16
            parts.append(view[at + HEADER_BYTES : at + HEADER_BYTES + length])
            at += HEADER_BYTES + length
        payload = b"".join(parts[1:])
        raw = bytes(parts[0]) if with_raw else b""
        for part in parts:
            part.release()
    return payload, raw


def frame(payload: bytes, seq: int, chunk_bytes: int = MAX_CHUNK_BYTES) -> bytes:
    """Frame one logical payload starting at sequence id ``seq``.

    Splits into ``chunk_bytes`` pieces with consecutive sequence ids (mod 256); a payload whose length is
    a multiple of the chunk size (including 0 only when empty) ends with an empty frame.
    """
    out = bytearray()
    pos = 0
    while True:
        chunk = payload[pos : pos + chunk_bytes]
        out += len(chunk).to_bytes(3, "little")
        out.append(seq & 0xFF)
        out += chunk
        seq += 1
        pos += chunk_bytes
        if len(chunk) < chunk_bytes:
            return bytes(out)


def frame_count(payload_len: int, chunk_bytes: int = MAX_CHUNK_BYTES) -> int:
    """Number of frames :func:`frame` emits for a payload of ``payload_len`` bytes."""
    return payload_len // chunk_bytes + 1


def next_seq_after(payload_len: int, seq: int, chunk_bytes: int = MAX_CHUNK_BYTES) -> int:
    """Sequence id of the frame that follows a payload of ``payload_len`` bytes framed from ``seq``."""
    return (seq + frame_count(payload_len, chunk_bytes)) & 0xFF
