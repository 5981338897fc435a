"""A framed MySQL packet stream: one hop's connection (the only I/O around the codec).

:class:`PacketStream` is an :class:`asyncio.Protocol`: received bytes go straight into its
:class:`~ingress.protocol.framing.FrameReader` (through the memory-BIO TLS layer once TLS is on), with
no StreamReader buffer, copy or future in between. It is used in one of two modes:

* **pull** (no listener set): a coroutine awaits :meth:`read`, which waits only when no complete
  packet is buffered. The handshake, authentication and the rare commands that need several round
  trips of their own use this mode.
* **push** (:meth:`listen`): the listener is called synchronously from ``data_received`` whenever bytes
  arrived, and takes what it can from :attr:`frames` (:meth:`poll`, ``FrameReader.take_skimmed``). The
  command phase runs this way, so relaying a response costs no task switch at all.

Output is corked: ``write``/``write_raw`` only queue bytes; ``flush`` hands everything queued to the
transport in one ``write`` (one send system call instead of one per packet). Flow control follows the
transports: while this stream's send buffer is above its high-water mark, reading from its
``partner`` (the other hop, whose bytes would be relayed here) is paused, and ``drain`` waits. A
stream pauses its own reading while it holds more than ``BUFFER_LIMIT_BYTES`` that nobody takes (in
push mode when the listener says so with ``limit_buffer``: a client sending ahead while its previous
command runs).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from typing import cast

from dbmux.ingress.errors import IngressError
from dbmux.ingress.protocol.errors import ProtocolError
from dbmux.ingress.protocol.framing import FrameReader, Packet, frame
from dbmux.ingress.tls import TlsLayer

BUFFER_LIMIT_BYTES = 1 << 20


class PeerClosed(IngressError):
    """The other side closed the connection."""


class PacketStream(asyncio.Protocol):
    def __init__(self, *, max_payload_bytes: int,
                 on_connected: Callable[[PacketStream], None] | None = None) -> None:
        self.frames = FrameReader(max_payload_bytes=max_payload_bytes)
        self.transport: asyncio.Transport | None = None
        self.partner: PacketStream | None = None  # the other hop: its reading pauses while we cannot send
        self._on_connected = on_connected
        self._out: list[bytes] = []
        self._tls: TlsLayer | None = None
        self._raw_in: bytearray | None = None  # ciphertext received during a TLS handshake
        self._waiter: asyncio.Future | None = None  # pull mode: read() waits for bytes
        self._listener: Callable[[], None] | None = None  # push mode
        self._on_lost: Callable[[BaseException | None], None] | None = None
        self._lost = False
        self._lost_exc: BaseException | None = None  # why the connection ended (None: orderly close)
        self._write_paused = False
        self._drain_waiters: list[asyncio.Future] = []
        self._pause_reasons: set[str] = set()
        self.tap: bytearray | None = None  # a copy of what is written while set (the result cache's answer)

    # ---- asyncio.Protocol ----------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # (typeshed gives every protocol a BaseTransport; a stream connection's is a Transport)
        self.transport = cast(asyncio.Transport, transport)
        if self._on_connected is not None:
            callback, self._on_connected = self._on_connected, None
            callback(self)

    def data_received(self, data: bytes) -> None:
        if self._raw_in is not None:  # TLS handshake in progress: its coroutine takes the bytes
            self._raw_in += data
        else:
            if self._tls is not None:
                try:
                    data = self._tls.decrypt(data)
                except ssl.SSLError as exc:
                    self._connection_ended(ProtocolError(f"TLS error: {exc}"))
                    return
                if not data:
                    return
            self.frames.feed(data)
            listener = self._listener
            if listener is not None:
                listener()
            elif self._waiter is None and self.frames.buffered_bytes > BUFFER_LIMIT_BYTES:
                self._pause("buffer")  # pull mode and nobody reading: wait for read()
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def eof_received(self) -> bool:
        return False  # MySQL has no half-close: the transport closes, connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self._connection_ended(exc)

    def pause_writing(self) -> None:
        self._write_paused = True
        if self.partner is not None:
            self.partner._pause("partner")

    def resume_writing(self) -> None:
        self._write_paused = False
        self._wake_drainers()
        if self.partner is not None:
            self.partner._resume("partner")

    # ---- state ---------------------------------------------------------------------------------------
    @property
    def closed(self) -> bool:
        return self._lost

    @property
    def tls_version(self) -> str | None:
        return self._tls.version if self._tls else None

    def peername(self) -> object:
        return self.transport.get_extra_info("peername") if self.transport is not None else None

    def _connection_ended(self, exc: BaseException | None) -> None:
        if self._lost:
            return
        self._lost, self._lost_exc = True, exc
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()
        self._out.clear()
        self._wake_drainers()
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        if self._on_lost is not None:
            callback, self._on_lost, self._listener = self._on_lost, None, None
            callback(exc)

    def _wake_drainers(self) -> None:
        waiters, self._drain_waiters = self._drain_waiters, []
        for w in waiters:
            if not w.done():
                w.set_result(None)

    def _pause(self, reason: str) -> None:
        if not self._pause_reasons and self.transport is not None and not self._lost:
            self.transport.pause_reading()
        self._pause_reasons.add(reason)

    def _resume(self, reason: str) -> None:
        if reason in self._pause_reasons:
            self._pause_reasons.discard(reason)
            if not self._pause_reasons and self.transport is not None and not self._lost:
                self.transport.resume_reading()

    def limit_buffer(self) -> None:
        """Push mode, for a listener not taking what arrived: pause reading while more than
        BUFFER_LIMIT_BYTES wait (until :meth:`release_buffer`)."""
        if self.frames.buffered_bytes > BUFFER_LIMIT_BYTES:
            self._pause("buffer")

    def release_buffer(self) -> None:
        """The listener takes bytes again: undo :meth:`limit_buffer`."""
        if self._pause_reasons:
            self._resume("buffer")

    def closed_error(self) -> BaseException:
        """What reading from this stream after it ended should raise."""
        if isinstance(self._lost_exc, ProtocolError):
            return self._lost_exc
        if self.frames.in_partial_payload:
            return ProtocolError("connection closed in the middle of a packet")
        if self._lost_exc is not None:
            return ConnectionResetError(str(self._lost_exc) or type(self._lost_exc).__name__)
        return PeerClosed()

    # ---- push mode -----------------------------------------------------------------------------------
    def listen(self, on_data: Callable[[], None] | None,
               on_lost: Callable[[BaseException | None], None] | None = None) -> None:
        """Push mode: ``on_data()`` after every receive, ``on_lost(exc)`` once when the connection ends
        (immediately if it already has). ``listen(None)`` returns to pull mode."""
        self._listener, self._on_lost = on_data, on_lost
        if on_data is not None and self._lost and on_lost is not None:
            self._on_lost = None
            on_lost(self._lost_exc)

    def poll(self, expected_seq: int | None = None) -> Packet | None:
        """The next packet if it was already received, else None (never waits)."""
        return self.frames.next_packet(expected_seq)

    # ---- pull mode -----------------------------------------------------------------------------------
    async def read(self, expected_seq: int | None = None) -> Packet:
        frames = self.frames
        while True:
            p = frames.next_packet(expected_seq)
            if p is not None:
                return p
            if self._lost:
                raise self.closed_error()
            self.flush()
            await self._wait_for_bytes()

    async def receive_more(self) -> None:
        """Wait until more bytes arrived (raises what ended the connection, when it has)."""
        if self._lost:
            raise self.closed_error()
        self.flush()
        await self._wait_for_bytes()

    async def _wait_for_bytes(self) -> None:
        self._resume("buffer")  # somebody takes the bytes now
        waiter = asyncio.get_running_loop().create_future()
        self._waiter = waiter
        try:
            await waiter
        finally:
            self._waiter = None

    # ---- TLS -----------------------------------------------------------------------------------------
    async def start_tls(self, ctx: ssl.SSLContext, *, server_side: bool) -> None:
        """Switch this stream to TLS (after an SSLRequest). Bytes already received but not framed
        -- a ClientHello sent right behind the SSLRequest -- start the handshake."""
        self.flush()
        tls = TlsLayer(ctx, server_side=server_side)
        self._raw_in = bytearray(self.frames.take_buffered())
        try:
            await tls.handshake(self._recv_raw, self._send_raw)
            # Ciphertext that arrived after the handshake's last read is application data.
            rest = bytes(self._raw_in)
        finally:
            self._raw_in = None
        self._tls = tls
        try:
            leftover = tls.decrypt(rest)
        except ssl.SSLError as exc:
            raise ProtocolError(f"TLS error: {exc}") from None
        if leftover:
            self.frames.feed(leftover)

    async def _recv_raw(self) -> bytes:
        raw = self._raw_in
        assert raw is not None
        while not raw:
            if self._lost:
                return b""
            await self._wait_for_bytes()
        data = bytes(raw)
        raw.clear()
        return data

    def _send_raw(self, data: bytes) -> None:
        if not self._lost and self.transport is not None:
            self.transport.write(data)

    # ---- output --------------------------------------------------------------------------------------
    def write(self, payload: bytes, seq: int) -> None:
        """Queue one payload, framed from sequence id ``seq``."""
        data = frame(payload, seq)
        self._out.append(data)
        if self.tap is not None:
            self.tap += data

    def write_raw(self, data: bytes) -> None:
        """Queue bytes that are already framed (e.g. a :attr:`Packet.raw` forwarded unchanged)."""
        self._out.append(data)
        if self.tap is not None:
            self.tap += data

    def mark(self) -> int:
        """A point in what is queued (and not yet flushed) to go back to with :meth:`rewind`."""
        return len(self._out)

    def rewind(self, mark: int) -> None:
        """Drop what was queued since ``mark`` (nothing of it was flushed)."""
        del self._out[mark:]

    def queued_bytes(self) -> int:
        return sum(map(len, self._out))

    def send(self, data: bytes) -> None:
        """Queue already framed bytes and flush (one transport write for all that was queued)."""
        if self._out:
            self._out.append(data)
            self.flush()
        elif not self._lost and self.transport is not None:
            self.transport.write(self._tls.encrypt(data) if self._tls is not None else data)

    def flush(self) -> None:
        """Hand everything queued to the transport, in one write (dropped once the connection ended)."""
        out = self._out
        if out:
            data = out[0] if len(out) == 1 else b"".join(out)
            out.clear()
            if self._lost or self.transport is None:
                return
            if self._tls is not None:
                data = self._tls.encrypt(data)
            self.transport.write(data)

    async def drain(self) -> None:
        """Flush, then wait while the transport's buffer is above its high-water mark."""
        self.flush()
        while self._write_paused and not self._lost:
            waiter = asyncio.get_running_loop().create_future()
            self._drain_waiters.append(waiter)
            await waiter
        if self._lost:
            raise ConnectionResetError("connection lost")

    def close(self) -> None:
        try:
            self.flush()
        except Exception:  # noqa: BLE001 - best effort on teardown
            pass
        self._listener = self._on_lost = None
        try:
            if self.transport is not None:
                self.transport.close()
        except Exception:  # noqa: BLE001 - best effort on teardown
            pass
