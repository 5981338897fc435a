"""Errors raised by the sans-IO MySQL protocol codec.

Every failure of the codec is a :class:`ProtocolError`, so a caller that handles one client connection
can catch that single root, end that one session, and keep serving the others. Anything else escaping
the codec (``IndexError``, ``struct.error``, ``UnicodeDecodeError``...) is a bug in the codec.
"""

from __future__ import annotations

from dbmux.ingress.errors import IngressError


class ProtocolError(IngressError):
    """Root of every codec error: the peer sent bytes this side cannot accept."""


class MalformedPacket(ProtocolError):
    """A payload is truncated or does not follow the packet layout it claims to have."""


class PacketTooLarge(ProtocolError):
    """A logical payload would exceed the configured ``max_payload_bytes``.

    Raised from the frame header alone, before the oversized payload is buffered.
    """

    def __init__(self, size_bytes: int, max_payload_bytes: int) -> None:
        super().__init__(
            f"payload of at least {size_bytes} bytes exceeds max_payload_bytes={max_payload_bytes}; "
            "raise the limit if this size is legitimate (it should match the primary's max_allowed_packet)"
        )
        self.size_bytes = size_bytes
        self.max_payload_bytes = max_payload_bytes


class SequenceError(ProtocolError):
    """A packet carries a sequence id other than the one the conversation expects."""

    def __init__(self, expected: int, got: int, where: str) -> None:
        super().__init__(
            f"packet sequence id {got} where {expected} was expected ({where}); "
            "the peer lost track of the conversation or packets were dropped or reordered"
        )
        self.expected = expected
        self.got = got


class IllegalTransition(ProtocolError):
    """An event arrived that the connection state machine does not allow in its current state."""

    def __init__(self, state: object, event_type: str) -> None:
        super().__init__(
            f"{event_type} is not allowed in state {state}; the connection is now in state ERROR "
            "and must be closed"
        )
        self.state = state
        self.event_type = event_type


class UnknownStatement(ProtocolError):
    """A COM_STMT_EXECUTE names a statement id the caller's statement table does not hold.

    The bytes may still be valid for the server (e.g. a statement prepared before the proxy started
    tracking, or MariaDB's ``0xFFFFFFFF`` "last prepared statement"); a proxy can forward the raw packet
    and let the server answer.
    """

    def __init__(self, statement_id: int) -> None:
        super().__init__(
            f"COM_STMT_EXECUTE for statement id {statement_id}, which is not in the prepared-statement "
            "table passed to the parser; forward it raw or pass the statement's PreparedStatementInfo"
        )
        self.statement_id = statement_id
