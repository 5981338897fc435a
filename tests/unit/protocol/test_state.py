import pytest

from dbmux.ingress.protocol import constants as c
from dbmux.ingress.protocol import events as ev
from dbmux.ingress.protocol.errors import IllegalTransition, ProtocolError
from dbmux.ingress.protocol.state import TRANSITIONS, ConnectionState, ConnectionStateMachine

S = ConnectionState
GREETING = ev.HandshakeV10("10.11.6-MariaDB", 1, b"x" * 20, 0)
RESPONSE = ev.HandshakeResponse41(0, b"app")

# (events, final state)
LEGAL_PATHS = [
    pytest.param(
        [ev.TransportConnected(), GREETING, RESPONSE, ev.OkPacket(), ev.ComQuery(b"SELECT 1"), ev.ResponseComplete(),
         ev.ComStmtClose(1), ev.ComQuit()],
        S.CLOSED, id="plain-session",
    ),  # fmt: skip
    pytest.param(
        [ev.TransportConnected(), GREETING, ev.SSLRequest(0), ev.TlsEstablished(), RESPONSE,
         ev.AuthSwitchRequest("mysql_native_password", b"s"), ev.AuthSwitchResponse(b"r"), ev.AuthMoreData(b"\x03"),
         ev.OkPacket()],
        S.COMMAND, id="tls-and-auth-switch",
    ),  # fmt: skip
    pytest.param([ev.TransportConnected(), GREETING, RESPONSE, ev.ErrPacket(1045)], S.CLOSED, id="access-denied"),
    pytest.param([ev.TransportConnected(), ev.ErrPacket(1040)], S.CLOSED, id="too-many-connections"),
    pytest.param([ev.TransportConnected(), GREETING, ev.ConnectionClosed()], S.CLOSED, id="client-hung-up"),
]


@pytest.mark.parametrize(("events", "final"), LEGAL_PATHS)
def test_legal_paths(events, final):
    machine = ConnectionStateMachine()
    for event in events:
        machine.process(event)
    assert machine.state is final


ILLEGAL = [
    pytest.param(S.CONNECTING, ev.ComQuery(b"x"), id="query-before-connect"),
    pytest.param(S.AWAIT_SERVER_GREETING, RESPONSE, id="client-response-before-greeting"),
    pytest.param(S.AWAIT_CLIENT_HANDSHAKE_TLS, ev.SSLRequest(0), id="second-ssl-request"),
    pytest.param(S.AUTHENTICATING, ev.ComQuery(b"x"), id="query-during-auth"),
    pytest.param(S.COMMAND, ev.OkPacket(), id="unsolicited-ok"),
    pytest.param(S.AWAIT_RESPONSE, ev.ComQuery(b"x"), id="pipelined-command"),
    pytest.param(S.CLOSED, ev.ComPing(), id="after-close"),
    pytest.param(S.ERROR, ev.ConnectionClosed(), id="error-is-terminal"),
]


@pytest.mark.parametrize(("state", "event"), ILLEGAL)
def test_illegal_transition_raises_and_enters_error(state, event):
    machine = ConnectionStateMachine(state)
    assert not machine.can_process(event)
    with pytest.raises(IllegalTransition) as exc_info:
        machine.process(event)
    assert isinstance(exc_info.value, ProtocolError)
    assert exc_info.value.state is state
    assert machine.state is S.ERROR


def test_table_is_closed_over_states_and_event_types():
    for (state, event_type), target in TRANSITIONS.items():
        assert isinstance(state, ConnectionState) and isinstance(target, ConnectionState)
        assert isinstance(event_type, type)
        assert state not in (S.CLOSED, S.ERROR)


def test_applying_by_type_or_command_byte_follows_the_table():
    """The live session applies events by type (process_type) and commands by their first byte
    (process_command): both must agree with process() on an event."""
    for (state, event_type), target in TRANSITIONS.items():
        machine = ConnectionStateMachine(state)
        assert machine.can_process_type(event_type)
        assert machine.process_type(event_type) is target and machine.state is target
    command_bytes = {c.COM_QUERY: S.AWAIT_RESPONSE, c.COM_STMT_EXECUTE: S.AWAIT_RESPONSE,
                     c.COM_STMT_CLOSE: S.COMMAND, c.COM_STMT_SEND_LONG_DATA: S.COMMAND, c.COM_QUIT: S.CLOSED,
                     c.COM_BINLOG_DUMP: S.AWAIT_RESPONSE, 0xEE: S.AWAIT_RESPONSE}  # (unknown: UnknownCommand)
    for code, target in command_bytes.items():
        machine = ConnectionStateMachine(S.COMMAND)
        assert machine.process_command(code) is target and machine.state is target
        if target is S.AWAIT_RESPONSE:
            assert machine.process_type(ev.ResponseComplete) is S.COMMAND


def test_a_command_while_one_is_in_flight_is_illegal():
    machine = ConnectionStateMachine(S.AWAIT_RESPONSE)
    with pytest.raises(IllegalTransition) as exc_info:
        machine.process_command(c.COM_QUERY)
    assert exc_info.value.state is S.AWAIT_RESPONSE and exc_info.value.event_type == "ComQuery"
    assert machine.state is S.ERROR and not machine.can_process_type(ev.ConnectionClosed)
