"""Envelope v2: statements travel byte-exact in any character set (dbmux.core.charsets, .events, .codec);
envelope v1 events still decode."""

from __future__ import annotations

import base64
import dataclasses

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dbmux.core.charsets import bytes_fields, sql_text, statement_fields
from dbmux.core.codec import decode_event, encode_event
from dbmux.core.events import ChangeEvent, EnvelopeError, SessionContext, Statement
from dbmux.core.gtid import Gtid

G = Gtid.parse("0-1-42")

# (statement bytes, charset, the text they stand for, travels as a JSON string?)
FORMS = [
    (b"INSERT INTO t VALUES (1, 'plain')", "utf8mb4", "INSERT INTO t VALUES (1, 'plain')", True),
    (b"INSERT INTO t VALUES ('plain')", "latin1", "INSERT INTO t VALUES ('plain')", True),  # ASCII: any charset
    (b"INSERT INTO t VALUES (X'FF00')", "binary", "INSERT INTO t VALUES (X'FF00')", True),
    ("INSERT INTO t VALUES ('café ☃ 𝄞')".encode(), "utf8mb4", "INSERT INTO t VALUES ('café ☃ 𝄞')", True),
    ("INSERT INTO t VALUES ('café')".encode(), "utf8", "INSERT INTO t VALUES ('café')", True),
    ("INSERT INTO t VALUES ('café')".encode(), None, "INSERT INTO t VALUES ('café')", True),  # unknown: utf8mb4
    # the bytes: valid UTF-8, but the session said latin1 -- five characters, not four
    (b"INSERT INTO t VALUES ('caf\xc3\xa9')", "latin1", "INSERT INTO t VALUES ('cafÃ©')", False),
    (b"INSERT INTO t VALUES ('caf\xe9')", "latin1", "INSERT INTO t VALUES ('café')", False),
    (b"SELECT '\x81\x80'", "latin1", "SELECT '\x81€'", False),  # MySQL's latin1: cp1252 + C1 controls
    (b"INSERT INTO t VALUES ('\xcf\xf0\xe8')", "cp1251", "INSERT INTO t VALUES ('При')", False),
    (b"INSERT INTO t VALUES ('\xd0\x9f')", "cp1251", "INSERT INTO t VALUES ('Рџ')", False),  # UTF-8 'П' read as cp1251
    (b"INSERT INTO t VALUES ('\xd0\x9f')", "utf8mb4", "INSERT INTO t VALUES ('П')", True),
    (b"INSERT INTO t VALUES (_binary'\xff\x00\x80')", "utf8mb4", "INSERT INTO t VALUES (_binary'\ufffd\x00\ufffd')",
     False),
    (b"INSERT INTO t VALUES ('\xc3\xa9\xff')", "binary", "INSERT INTO t VALUES ('é\ufffd')", False),
    (b"INSERT INTO t VALUES (_latin1'\xe9')", "utf8mb4", "INSERT INTO t VALUES (_latin1'\ufffd')", False),
    (b"INSERT INTO t VALUES ('\xe9')", "geostd8", "INSERT INTO t VALUES ('\ufffd')", False),  # no codec: informative
]
IDS = [f"{cs}-{data[-12:]!r}" for data, cs, _, _ in FORMS]


def _event(*statements: Statement, charset: str | None = "utf8mb4") -> ChangeEvent:
    return ChangeEvent(G, "ingress", 1, "d", statements=statements,
                       session=SessionContext(user="u", charset=charset))


@pytest.mark.parametrize("data,charset,text,as_string", FORMS, ids=IDS)
def test_statement_forms_and_round_trip(data, charset, text, as_string):
    stmt = Statement.from_bytes(data, charset, params=(b"\xe9", "x"), insert_id=3)
    assert stmt.sql == text
    assert stmt.data == data and stmt.charset == charset
    assert (stmt.raw is None) is as_string
    assert stmt.is_utf8 is (as_string and (charset in ("utf8mb4", "utf8", None)))  # (b"\xe9": text in charset)
    # the ingress holds a statement as its bytes decoded as UTF-8 with surrogateescape: same fields
    assert statement_fields(data.decode("utf-8", "surrogateescape"), charset) == (stmt.sql, stmt.raw)
    for session_charset in ("utf8mb4", charset, None):
        ev = _event(stmt, charset=session_charset)
        wire = encode_event(ev)
        doc = orjson.loads(wire)["statements"][0]
        if as_string:
            assert doc["sql"] == text
        else:
            assert doc["sql"] == {"$b": base64.b64encode(data).decode()}
        assert ("charset" in doc) is (charset != session_charset)  # written only where not the session's
        back = decode_event(wire)
        assert back == ev
        assert back.statements[0].data == data and back.statements[0].charset == charset


def test_statements_of_one_transaction_keep_their_own_charsets():
    """SET NAMES between two statements of one transaction: each keeps the character set it was sent in."""
    ev = _event(Statement.from_bytes(b"INSERT INTO t VALUES ('caf\xc3\xa9')", "latin1"),
                Statement.from_bytes(b"INSERT INTO t VALUES ('caf\xc3\xa9')", "utf8mb4"),
                Statement("INSERT INTO t VALUES (1)"), charset="utf8mb4")
    doc = orjson.loads(encode_event(ev))
    assert [s.get("charset", "(session)") for s in doc["statements"]] == ["latin1", "(session)", None]
    back = decode_event(encode_event(ev))
    assert [(s.sql, s.charset) for s in back.statements] == [
        ("INSERT INTO t VALUES ('cafÃ©')", "latin1"), ("INSERT INTO t VALUES ('café')", "utf8mb4"),
        ("INSERT INTO t VALUES (1)", None)]


@pytest.mark.parametrize("stmt,utf8", [
    (Statement("INSERT INTO t VALUES (?)", (b"\xe9",), charset="latin1"), False),  # latin1 text parameter
    (Statement("INSERT INTO t VALUES (?)", (b"plain", 1, "x"), charset="latin1"), True),
    (Statement("INSERT INTO t VALUES (?)", (b"\xc3\xa9",), charset="utf8mb4"), True),
    (Statement("INSERT INTO t VALUES (?)", (b"\xff",), charset=None), True),  # (a BLOB, as in v1)
    (Statement("INSERT INTO t VALUES ('plain')", charset="cp1251"), True),
    (Statement.from_bytes(b"INSERT INTO t VALUES ('\xe9')", "cp1251"), False),
])
def test_is_utf8(stmt, utf8):
    assert stmt.is_utf8 is utf8


def test_the_common_case_stays_plain_json():
    ev = _event(Statement.from_bytes("UPDATE t SET v = 'ü' WHERE id = 1".encode(), "utf8mb4"))
    assert b'"sql":"UPDATE t SET v = \'\xc3\xbc\' WHERE id = 1"' in encode_event(ev)
    assert b"$b" not in encode_event(ev) and b'"charset":"utf8mb4"' in encode_event(ev)  # the session's only


# A v1 event exactly as dbmux wrote it before envelope v2 (statement text, the session's charset only).
V1 = (b'{"v":1,"gtid":"0-1-7","source":"ingress","ts_ms":5,"db":"d","statements":[{"sql":"INSERT INTO t '
      b'VALUES (\'caf\xc3\xa9\', ?)","params":[{"$b":"6Q=="}],"insert_id":0,"last_insert_id":0,"unsafe":false,'
      b'"kind":"dml"}],"rows":[],"session":{"user":"u","client_addr":"h","connection_id":1,"db":"d",'
      b'"sql_mode":"","time_zone":"+00:00","charset":"latin1"}}')


def test_v1_events_still_decode_as_they_did():
    ev = decode_event(V1)
    (stmt,) = ev.statements
    assert stmt.sql == "INSERT INTO t VALUES ('café', ?)" and stmt.params == (b"\xe9",)
    assert stmt.charset is None and stmt.raw is None  # unknown: appliers use utf8mb4, as for v1
    assert ev.session is not None and ev.session.charset == "latin1"
    assert orjson.loads(encode_event(ev))["v"] == 2


def _v2(stmt_over: dict, session_charset: str | None = "utf8mb4", v: int = 2) -> bytes:
    stmt = {"sql": "DO 1", "params": None, "insert_id": 0, "last_insert_id": 0, "unsafe": False, "kind": "dml"}
    stmt.update(stmt_over)
    return orjson.dumps({"v": v, "gtid": "0-1-1", "source": "ingress", "ts_ms": 0, "statements": [stmt],
                         "session": {"charset": session_charset}})


BAD = [
    (_v2({"sql": {"$b": "!!"}}), r"statements\[0\]\.sql"),
    (_v2({"sql": {"$d": "1"}}), r"'sql' must be a string or"),
    (_v2({"sql": 5}), "'sql' must be str/dict"),
    (_v2({"charset": 5}), "'charset' must be str or null"),
    (_v2({"sql": "DO 'é'", "charset": "latin1"}), r"statements\[0\]: .*needs its bytes"),
    (_v2({"sql": "DO 'é'"}, session_charset="cp1251"), "needs its bytes"),
    (_v2({"sql": {"$b": "AA=="}}, v=1), "'sql' must be str"),
]


@pytest.mark.parametrize("data,message", BAD, ids=[m for _, m in BAD])
def test_decode_rejects_bad_statements(data, message):
    with pytest.raises(EnvelopeError, match=message):
        decode_event(data)


def test_a_statement_text_cannot_drift_from_its_bytes():
    stmt = Statement.from_bytes(b"CREATE USER u IDENTIFIED BY 'p\xe9'", "latin1")
    with pytest.raises(EnvelopeError, match="text of its bytes"):
        dataclasses.replace(stmt, sql="CREATE USER u IDENTIFIED BY '<redacted>'")  # raw would keep the secret
    with pytest.raises(EnvelopeError, match="needs its bytes"):
        Statement("DO 'é'", charset="latin1")
    assert dataclasses.replace(stmt, unsafe=True).data == stmt.data
    assert Statement("x", charset="latin1", raw=bytearray(b"x")).raw == b"x"  # type: ignore[arg-type]


CHARSETS = ["utf8mb4", "utf8", "utf8mb3", "latin1", "cp1251", "binary", "ascii", "sjis", "gbk", "big5", "ucs2",
            "geostd8", None]


@settings(max_examples=400)
@given(st.binary(max_size=64), st.sampled_from(CHARSETS), st.sampled_from(CHARSETS))
def test_property_any_bytes_in_any_charset_travel_exactly(data, charset, session_charset):
    stmt = Statement.from_bytes(data, charset, kind="other")
    assert stmt.sql == sql_text(data, charset) or stmt.raw is None
    assert statement_fields(data.decode("utf-8", "surrogateescape"), charset) == bytes_fields(data, charset)
    ev = _event(stmt, charset=session_charset)
    back = decode_event(encode_event(ev))
    assert back == ev and back.statements[0].data == data


def test_mysql_latin1_decodes_every_byte_as_mysql_does():
    """MySQL's latin1 is cp1252 with its five undefined bytes as the C1 controls of the same number
    (the decoding table against the per-byte definition)."""
    for b in range(256):
        try:
            want = bytes([b]).decode("cp1252")
        except UnicodeDecodeError:
            want = chr(b)
            assert b in (0x81, 0x8D, 0x8F, 0x90, 0x9D)
        assert sql_text(bytes([b]), "latin1") == sql_text(bytes([b]), "LATIN1") == want


def test_constructors_agree_and_raw_is_kept_as_given():
    data = b"INSERT INTO t VALUES ('caf\xe9', _binary'\xff')"
    for charset in ("latin1", "utf8mb4", "binary", None):
        a = Statement.from_bytes(data, charset, kind="dml")
        assert a == Statement.from_escaped(data.decode("utf-8", "surrogateescape"), charset, kind="dml")
        assert a == Statement(sql_text(data, charset), charset=charset, raw=data, kind="dml")  # checked form
    given = Statement.from_raw(b"DO 'caf\xc3\xa9'", "utf8mb4")  # valid UTF-8, yet given as bytes: kept so
    assert given.raw == b"DO 'caf\xc3\xa9'" and given.sql == "DO 'café'"
    back = decode_event(encode_event(_event(given)))
    assert back.statements[0] == given
    with pytest.raises(EnvelopeError, match="kind"):
        Statement.from_raw(b"\xff", "binary", kind="select")
