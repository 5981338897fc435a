"""Sans-IO MySQL/MariaDB protocol codec: bytes in, typed events out, and back.

No sockets, no asyncio, stdlib only. Layers, bottom up:

- ``encoding``: field primitives (``read_lenenc_int(buf, pos) -> (value, pos)``...)
- ``framing``: ``FrameReader`` (3-byte length + sequence id, 16 MiB continuation) and ``frame()``
- ``handshake``, ``generic_packets``, ``session_state``, ``commands``, ``resultset``, ``binary_values``:
  typed events with ``parse()``/``encode()`` (all re-exported by ``events``)
- ``response``: ``ResponseReader``, knows when one command's response is complete
- ``state``: the connection state machine table
- ``auth``: plugin names and caching_sha2 markers for pass-through authentication

Every failure is a ``ProtocolError`` (``errors``).
"""

from dbmux.ingress.protocol.errors import (
    IllegalTransition,
    MalformedPacket,
    PacketTooLarge,
    ProtocolError,
    SequenceError,
    UnknownStatement,
)
from dbmux.ingress.protocol.framing import FrameReader, Payload, frame

__all__ = [
    "FrameReader",
    "IllegalTransition",
    "MalformedPacket",
    "PacketTooLarge",
    "Payload",
    "ProtocolError",
    "SequenceError",
    "UnknownStatement",
    "frame",
]
