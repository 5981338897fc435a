"""PacketStream: the asyncio.Protocol both hops of the ingress run on (pull and push mode, corked output,
flow control, buffer limit, how a closed connection reads, TLS on memory BIOs)."""

from __future__ import annotations

import asyncio
import shutil
import subprocess

import pytest

from dbmux.ingress.protocol.errors import PacketTooLarge, ProtocolError
from dbmux.ingress.tls import TlsLayer, server_context, upstream_context
from dbmux.ingress.wire import BUFFER_LIMIT_BYTES, PacketStream, PeerClosed

from .protocol.builders import packet


class FakeTransport(asyncio.Transport):
    """Records what is written; ``peer`` (a PacketStream) receives it on the next loop turn."""

    def __init__(self, peer: PacketStream | None = None) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.paused = False
        self.closed = False
        self.peer = peer

    @property
    def written(self) -> bytes:
        return b"".join(self.writes)

    def write(self, data) -> None:
        data = bytes(data)
        self.writes.append(data)
        if self.peer is not None:
            asyncio.get_running_loop().call_soon(self.peer.data_received, data)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False

    def get_extra_info(self, name, default=None):
        return ("127.0.0.1", 40000) if name == "peername" else default


def stream(max_payload_bytes: int = 1 << 20) -> tuple[PacketStream, FakeTransport]:
    s = PacketStream(max_payload_bytes=max_payload_bytes)
    t = FakeTransport()
    s.connection_made(t)
    return s, t


async def test_read_waits_for_a_whole_packet_split_over_receives():
    s, _ = stream()
    wire = packet(b"\x03SELECT 1", 0) + packet(b"\x0e", 0)
    reader = asyncio.ensure_future(s.read(expected_seq=0))
    for i in range(0, 7):
        s.data_received(wire[i:i + 1])
        await asyncio.sleep(0)
        assert not reader.done()
    s.data_received(wire[7:])
    first = await reader
    assert first.payload == b"\x03SELECT 1" and first.raw == packet(b"\x03SELECT 1", 0)
    assert (await s.read()).payload == b"\x0e"


@pytest.mark.parametrize(("lost_with", "partial", "raised"), [
    (None, False, PeerClosed),
    (None, True, ProtocolError),
    (ConnectionResetError("reset by peer"), False, ConnectionResetError),
    (ProtocolError("TLS error: bad record"), False, ProtocolError),
])
async def test_reading_a_closed_stream_raises_what_ended_it(lost_with, partial, raised):
    s, _ = stream()
    if partial:
        s.data_received(packet(b"abc", 0)[:5])
    reader = asyncio.ensure_future(s.read())
    await asyncio.sleep(0)
    s.connection_lost(lost_with)
    with pytest.raises(raised):
        await reader
    assert s.closed


async def test_push_mode_calls_the_listener_and_reports_the_end_once():
    s, _ = stream()
    seen, ends = [], []
    s.listen(lambda: seen.append(s.poll()), ends.append)
    s.data_received(packet(b"x", 0))
    s.data_received(packet(b"y", 0)[:2])
    assert [p.payload if p else None for p in seen] == [b"x", None]
    s.connection_lost(None)
    s.connection_lost(None)
    assert ends == [None]
    # listening to a stream that already ended reports the end at once
    late = []
    s.listen(lambda: None, late.append)
    assert late == [None]


async def test_output_is_corked_until_flush():
    s, t = stream()
    s.write(b"\x00\x00\x00\x02\x00\x00\x00", 1)
    s.write_raw(packet(b"\xfe\x00\x00\x02\x00", 2))
    assert t.writes == []
    s.flush()
    assert t.writes == [packet(b"\x00\x00\x00\x02\x00\x00\x00", 1) + packet(b"\xfe\x00\x00\x02\x00", 2)]
    s.send(packet(b"\x0e", 0))  # nothing queued: written at once
    assert t.writes[-1] == packet(b"\x0e", 0)
    s.connection_lost(None)
    s.send(b"late")  # dropped once the connection ended
    assert t.writes[-1] == packet(b"\x0e", 0)


async def test_a_full_send_buffer_pauses_the_partner_and_drain():
    a, ta = stream()
    b, tb = stream()
    a.partner, b.partner = b, a
    a.pause_writing()
    assert tb.paused and not ta.paused
    drained = asyncio.ensure_future(a.drain())
    await asyncio.sleep(0)
    assert not drained.done()
    a.resume_writing()
    await drained
    assert not tb.paused
    a.pause_writing()
    drained = asyncio.ensure_future(a.drain())
    await asyncio.sleep(0)
    a.connection_lost(None)
    with pytest.raises(ConnectionResetError):
        await drained


async def test_pull_mode_pauses_reading_when_nobody_reads_and_read_resumes():
    s, t = stream(max_payload_bytes=4 << 20)
    big = packet(b"x" * (BUFFER_LIMIT_BYTES + 10), 0)
    s.data_received(big)
    assert t.paused
    assert (await s.read()).payload == b"x" * (BUFFER_LIMIT_BYTES + 10)
    s.data_received(packet(b"y", 0)[:3])
    reader = asyncio.ensure_future(s.read())
    await asyncio.sleep(0)
    assert not t.paused
    s.data_received(packet(b"y", 0)[3:])
    assert (await reader).payload == b"y"


async def test_push_mode_buffer_limit_is_the_listeners_call():
    s, t = stream(max_payload_bytes=4 << 20)
    s.listen(s.limit_buffer, lambda exc: None)  # a listener that takes nothing
    s.data_received(b"\x00" * 10)
    assert not t.paused
    s.data_received(b"\x00" * BUFFER_LIMIT_BYTES)
    assert t.paused
    s.release_buffer()
    assert not t.paused


async def test_partner_and_buffer_pauses_are_independent():
    a, ta = stream(max_payload_bytes=4 << 20)
    b, _ = stream()
    b.partner = a
    a.listen(a.limit_buffer, lambda exc: None)
    a.data_received(b"\x00" * (BUFFER_LIMIT_BYTES + 1))
    b.pause_writing()
    a.release_buffer()
    assert ta.paused  # still paused: b cannot send
    b.resume_writing()
    assert not ta.paused


async def test_oversized_packet_is_refused_from_its_header():
    s, _ = stream(max_payload_bytes=16)
    s.data_received(packet(b"x" * 17, 0)[:4])
    with pytest.raises(PacketTooLarge):
        s.poll()


@pytest.fixture(scope="module")
def cert(tmp_path_factory):
    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed")
    d = tmp_path_factory.mktemp("tls")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=dbmux",
                    "-keyout", str(d / "key.pem"), "-out", str(d / "cert.pem")], check=True, capture_output=True)
    return str(d / "cert.pem"), str(d / "key.pem")


async def test_tls_on_memory_bios_starts_with_bytes_already_buffered(cert):
    """The server side gets the ClientHello in the same receive as the plain packet before it (an
    SSLRequest): start_tls takes it from the frame buffer. Packets then flow encrypted both ways."""
    server, client = PacketStream(max_payload_bytes=1 << 20), PacketStream(max_payload_bytes=1 << 20)
    ts, tc = FakeTransport(), FakeTransport()
    server.connection_made(ts)
    client.connection_made(tc)
    held: list[bytes] = []
    tc.peer = None  # hold the client's first bytes to deliver them behind the plain packet
    tc.write = lambda data: held.append(bytes(data))  # type: ignore[method-assign]
    handshake = asyncio.ensure_future(client.start_tls(upstream_context(), server_side=False))
    await asyncio.sleep(0)
    assert held, "the client sent its ClientHello"
    server.data_received(packet(b"sslrequest", 1) + b"".join(held))
    assert (await server.read()).payload == b"sslrequest"
    ts.peer, tc.peer = client, server
    del tc.write  # back to FakeTransport.write, delivering to the server
    await asyncio.gather(handshake, server.start_tls(server_context(*cert), server_side=True))
    assert server.tls_version and server.tls_version == client.tls_version
    client.write(b"hello over tls", 2)
    client.flush()
    got = await server.read()
    assert got.payload == b"hello over tls" and b"hello over tls" not in b"".join(tc.writes)
    server.send(packet(b"answer", 3))
    assert (await client.read()).payload == b"answer"


async def test_tls_garbage_ends_the_stream_with_a_protocol_error(cert):
    s, _ = stream()
    s._tls = TlsLayer(server_context(*cert), server_side=True)  # as after start_tls
    ends = []
    s.listen(lambda: None, ends.append)
    s.data_received(b"\x16\x03\x01\x00\x05hello-not-tls")  # must not raise
    assert len(ends) == 1 and isinstance(ends[0], ProtocolError) and "TLS error" in str(ends[0])
    with pytest.raises(ProtocolError):
        await s.read()
