import pytest

from ingress.protocol import events as ev
from ingress.protocol.errors import IllegalTransition, ProtocolError
from ingress.protocol.state import TRANSITIONS, ConnectionState, ConnectionStateMachine

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
