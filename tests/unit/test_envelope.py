"""Tests for the change event (dbmux.core.events, .codec, .topics): value fidelity, round trips, strict decoding,
topic naming."""

from __future__ import annotations

import datetime as dt
import math
from decimal import Decimal

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dbmux.core.codec import VERSION, decode_event, decode_value, encode_event, encode_value
from dbmux.core.errors import DbmuxError
from dbmux.core.events import ChangeEvent, EnvelopeError, RowChange, SessionContext, Statement
from dbmux.core.gtid import Gtid
from dbmux.core.topics import dlq_topic, partition_key, topic_for

G = Gtid.parse("0-1-42")

# value, expected JSON form (None = plain, same as value)
VALUES = [
    (None, None),
    (True, True),
    (False, False),
    (0, 0),
    (-1, -1),
    (2**63 - 1, 2**63 - 1),
    (-(2**63), -(2**63)),
    (2**64 - 1, 2**64 - 1),  # unsigned BIGINT max stays a plain JSON number
    (2**64, {"$i": "18446744073709551616"}),
    (-(2**63) - 1, {"$i": "-9223372036854775809"}),
    (10**40, {"$i": str(10**40)}),
    (0.0, 0.0),
    (-0.0, -0.0),
    (1.5, 1.5),
    (1e308, 1e308),
    (5e-324, 5e-324),
    (0.1, 0.1),
    (float("inf"), {"$f": "inf"}),
    (float("-inf"), {"$f": "-inf"}),
    ("", ""),
    ("héllo ✓ 漢字 🎉", "héllo ✓ 漢字 🎉"),
    ('{"$b": "AA=="}', '{"$b": "AA=="}'),  # a string that looks like a tag stays a string
    ("\x00nul", "\x00nul"),
    (b"", {"$b": ""}),
    (b"\x00\xff", {"$b": "AP8="}),
    (bytes(range(256)), None),
    (Decimal("12.30"), {"$d": "12.30"}),
    (Decimal("-0.00"), {"$d": "-0.00"}),
    (Decimal("0"), {"$d": "0"}),
    (Decimal("99999999999999999999999999999999999.999999999999999999999999999999"), None),
    (Decimal("1E+2"), {"$d": "1E+2"}),
    (dt.datetime(2024, 1, 2, 3, 4, 5, 123456), {"$dt": "2024-01-02T03:04:05.123456"}),
    (dt.datetime(2024, 1, 2, 3, 4, 5), {"$dt": "2024-01-02T03:04:05"}),
    (dt.datetime(1000, 1, 1), None),
    (dt.datetime(9999, 12, 31, 23, 59, 59, 999999), None),
    (dt.datetime(2024, 1, 2, 3, 4, 5, 1, tzinfo=dt.timezone(dt.timedelta(hours=2))), None),
    (dt.date(2024, 2, 29), {"$date": "2024-02-29"}),
    (dt.date(1, 1, 1), None),
    (dt.time(0, 0), {"$time": "00:00:00"}),
    (dt.time(23, 59, 59, 1), {"$time": "23:59:59.000001"}),
    (dt.timedelta(0), {"$td": 0}),
    (dt.timedelta(hours=838, minutes=59, seconds=59), {"$td": 838 * 3600_000_000 + 59 * 60_000_000 + 59_000_000}),
    (dt.timedelta(microseconds=-1), {"$td": -1}),
    (-dt.timedelta(hours=1, microseconds=500000), {"$td": -3_600_500_000}),
    (dt.timedelta(days=-3, seconds=5), None),
    (dt.timedelta.min, {"$td": str(dt.timedelta.min // dt.timedelta(microseconds=1))}),
    (dt.timedelta.max, None),
]


@pytest.mark.parametrize("value,wire", VALUES, ids=[repr(v)[:40] for v, _ in VALUES])
def test_value_round_trip(value, wire):
    encoded = encode_value(value)
    if wire is not None or value is None:
        assert encoded == wire
    # through real JSON bytes
    back = decode_value(orjson.loads(orjson.dumps(encoded)))
    assert type(back) is type(value)
    assert back == value
    if isinstance(value, (float, Decimal)):
        assert str(back) == str(value)  # sign of zero, scale
    if isinstance(value, (dt.datetime, dt.time)):
        assert back.utcoffset() == value.utcoffset()


def test_nan_round_trips():
    assert math.isnan(decode_value(orjson.loads(orjson.dumps(encode_value(float("nan"))))))
    d = decode_value(encode_value(Decimal("NaN")))
    assert isinstance(d, Decimal) and d.is_nan()


def test_bytearray_and_memoryview_encode_as_bytes():
    assert decode_value(encode_value(bytearray(b"ab"))) == b"ab"
    assert type(decode_value(encode_value(memoryview(b"ab")))) is bytes


@pytest.mark.parametrize("bad", [{"a": 1}, [1, 2], (1,), {1, 2}, object(), 1j])
def test_unsupported_values_rejected(bad):
    with pytest.raises(EnvelopeError, match="unsupported value type"):
        encode_value(bad)
    ev = ChangeEvent(G, "binlog", 1, rows=(RowChange("t", "d", "insert", after={"c": bad}),))
    with pytest.raises(EnvelopeError, match=r"rows\[0\]\.after\.c"):
        encode_event(ev)


BAD_TAGGED = [
    {"$x": "1"},
    {"$b": "not base64!"},
    {"$b": 5},
    {"$d": "abc"},
    {"$dt": "2024-13-01T00:00:00"},
    {"$date": 20240101},
    {"$time": "25:00:00"},
    {"$td": "5x"},
    {"$td": 1.5},
    {"$td": 10**30},
    {"$i": "12a"},
    {"$f": "NaN!"},
    {"$b": "AA==", "$d": "1"},
    {},
    [1],
]


@pytest.mark.parametrize("raw", BAD_TAGGED, ids=[repr(r) for r in BAD_TAGGED])
def test_bad_tagged_values_rejected(raw):
    with pytest.raises(EnvelopeError):
        decode_value(raw)


def _full_event() -> ChangeEvent:
    return ChangeEvent(
        gtid=G,
        source="ingress",
        ts_ms=1_700_000_000_123,
        db="shop",
        statements=(
            Statement("INSERT INTO t (a, b) VALUES (?, ?)", (2**64 - 1, b"\x00\xff"), insert_id=7,
                      last_insert_id=3, unsafe=False, kind="dml"),
            Statement("UPDATE t SET a = a + 1 LIMIT 1", None, unsafe=True, kind="dml"),
            Statement("CREATE TABLE x (i INT)", kind="ddl"),
        ),
        session=SessionContext("app", "10.0.0.1:5555", 12, "shop", "STRICT_TRANS_TABLES", "+02:00", "utf8mb4"),
    )


def test_event_round_trip_and_wire_shape():
    ev = _full_event()
    data = encode_event(ev)
    assert isinstance(data, bytes)
    doc = orjson.loads(data)
    assert doc["v"] == VERSION == 2
    assert doc["gtid"] == "0-1-42"
    assert doc["statements"][0]["params"] == [2**64 - 1, {"$b": "AP8="}]
    assert doc["session"]["time_zone"] == "+02:00"
    back = decode_event(data)
    assert back == ev
    assert back.unsafe is True
    assert decode_event(bytearray(data)) == ev
    assert decode_event(data.decode()) == ev


def test_binlog_event_round_trip():
    ev = ChangeEvent(
        gtid=Gtid.parse("3e11fa47-71ca-11e1-9e33-c80aa9429562:9"),
        source="binlog",
        ts_ms=0,
        db=None,
        rows=(
            RowChange("t", "d", "insert", None, {"id": 1, "price": Decimal("1.10"), "at": dt.datetime(2024, 1, 1)}),
            RowChange("t", "d", "update", {"id": 1, "n": None}, {"id": 1, "n": "x"}),
            RowChange("t", "d", "delete", {"id": 1, "t": dt.timedelta(seconds=-5)}, None),
        ),
        statements=(Statement("ALTER TABLE t ADD c INT", kind="ddl"),),
    )
    back = decode_event(encode_event(ev))
    assert back == ev
    assert back.unsafe is False
    assert type(back.rows[0].after["price"]) is Decimal


def test_lists_are_normalised_to_tuples():
    ev = ChangeEvent(G, "ingress", 1, statements=[Statement("DO 1", [1, 2], kind="other")])  # type: ignore[arg-type]
    assert isinstance(ev.statements, tuple) and ev.statements[0].params == (1, 2)


def test_partition_key_is_domain():
    assert partition_key(_full_event()) == b"0"
    ev = ChangeEvent(Gtid.parse("3E11FA47-71CA-11E1-9E33-C80AA9429562:5"), "binlog", 0)
    assert partition_key(ev) == b"3e11fa47-71ca-11e1-9e33-c80aa9429562"


def _doc(**over):
    doc = orjson.loads(encode_event(_full_event()))
    for k, v in over.items():
        if v is _DEL:
            del doc[k]
        else:
            doc[k] = v
    return orjson.dumps(doc)


_DEL = object()


def _stmt_doc(**over):
    doc = orjson.loads(encode_event(_full_event()))
    for k, v in over.items():
        if v is _DEL:
            del doc["statements"][0][k]
        else:
            doc["statements"][0][k] = v
    return orjson.dumps(doc)


GARBAGE = [
    (b"", "not valid JSON"),
    (b"{", "not valid JSON"),
    (b"\xff\xfe", "not valid JSON"),
    (b"[]", "JSON object"),
    (b"null", "JSON object"),
    (b'"x"', "JSON object"),
    (b"{}", "'v'"),
    (_doc(v=3), "newer than supported"),
    (_doc(v=0), "invalid envelope version"),
    (_doc(v="1"), "'v' must be int"),
    (_doc(v=True), "'v' must be int"),
    (_doc(gtid=_DEL), "'gtid'"),
    (_doc(gtid="nope"), "bad gtid"),
    (_doc(gtid=5), "'gtid' must be str"),
    (_doc(source="magic"), "source must be"),
    (_doc(ts_ms="now"), "'ts_ms' must be int"),
    (_doc(ts_ms=1.5), "'ts_ms' must be int"),
    (_doc(db=3), "'db'"),
    # the top-level fields a well-formed event has are checked inline; each wrong one is still named
    (_doc(source=["binlog"]), "'source' must be str"),
    (_doc(source="snapshot"), "snapshot part"),
    (_doc(snapshot={"id": "s", "table": "d.t", "part": "p", "position": "x", "chunk": 0, "primary_key": ["a"]}),
     "snapshot part"),
    (_doc(no_fk_checks=1), "'no_fk_checks' must be bool"),
    (_doc(rows={}), "'rows' must be list"),
    (_doc(ts_ms=True), "'ts_ms' must be int"),
    (_doc(statements={}), "'statements' must be list"),
    (_doc(statements=[1]), r"statements\[0\]: must be an object"),
    (_doc(rows=[{"table": "t", "db": "d", "op": "upsert", "after": {}}], statements=[]), "row op"),
    (_doc(rows=[{"table": "t", "db": "d", "op": "delete"}]), "before image"),
    (_doc(rows=[{"table": "t", "op": "insert", "after": {}}]), "'db'"),
    (_doc(rows=[{"table": "t", "db": "d", "op": "insert", "after": []}]), "row image must be an object"),
    (_doc(rows=[{"table": "t", "db": "d", "op": "insert", "after": {"c": {"$zz": 1}}}]), r"after\.c"),
    # cases the plain-row fast path must hand to the checking path
    (_doc(rows=[{"table": "t", "db": "d", "op": "insert", "after": {"a": 1, "c": [1]}}]), r"rows\[0\]\.after\.c"),
    (_doc(rows=[{"table": "t", "db": "d", "op": "update", "before": {"a": 1}, "after": None}]), "after image"),
    (_doc(rows=[{"table": "t", "db": "d", "op": "update", "before": {"a": {}}, "after": {"a": 2}}]),
     r"before\.a"),
    (_doc(rows=[{"table": "t", "db": "d", "op": "insert", "after": {"a": 1}},
                {"table": 7, "db": "d", "op": "insert", "after": {"a": 1}}]), r"rows\[1\]: field 'table'"),
    (_doc(session=[]), "session must be"),
    (_doc(session={"connection_id": "12"}), "'connection_id'"),
    (_stmt_doc(sql=_DEL), "'sql'"),
    (_stmt_doc(kind="weird"), "kind must be"),
    (_stmt_doc(unsafe=1), "'unsafe' must be bool"),
    (_stmt_doc(insert_id=None), "'insert_id' must be int"),
    (_stmt_doc(params="x"), "'params'"),
    (_stmt_doc(params=[{"$b": "!!"}]), r"params\[0\]"),
]


@pytest.mark.parametrize("data,message", GARBAGE, ids=[m for _, m in GARBAGE])
def test_decode_rejects_garbage(data, message):
    with pytest.raises(EnvelopeError, match=message) as ei:
        decode_event(data)
    assert isinstance(ei.value, DbmuxError) and isinstance(ei.value, ValueError)


def test_decode_ignores_unknown_fields_of_same_version():
    doc = orjson.loads(encode_event(_full_event()))
    doc["future_field"] = {"x": 1}
    doc["statements"][0]["also_new"] = True
    assert decode_event(orjson.dumps(doc)) == _full_event()


def test_constructor_validation():
    with pytest.raises(EnvelopeError):
        Statement("x", kind="select")
    with pytest.raises(EnvelopeError):
        ChangeEvent(G, "elsewhere", 0)
    with pytest.raises(EnvelopeError):
        ChangeEvent("0-1-1", "binlog", 0)  # type: ignore[arg-type]
    with pytest.raises(EnvelopeError):
        RowChange("t", "d", "insert", before={"a": 1})


TOPICS = [
    ("main", "dbmux.main.txn"),
    ("eu-west_1.prod", "dbmux.eu-west_1.prod.txn"),
    ("A" * 235, "dbmux." + "A" * 235 + ".txn"),
]


@pytest.mark.parametrize("cluster,topic", TOPICS)
def test_topic_for(cluster, topic):
    assert topic_for(cluster) == topic
    assert dlq_topic(topic) == topic + ".dlq"
    assert len(dlq_topic(topic)) <= 249


@pytest.mark.parametrize("cluster", ["", "a b", "a/b", "é", "x" * 236, None, "a:b"])
def test_topic_for_rejects_bad_cluster(cluster):
    with pytest.raises(EnvelopeError):
        topic_for(cluster)


@pytest.mark.parametrize("topic", ["", "a b", "x" * 246])
def test_dlq_topic_rejects_bad_topic(topic):
    with pytest.raises(EnvelopeError):
        dlq_topic(topic)


# ------------------------------------------------------------------------- property test

scalar_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    st.text(),
    st.binary(),
    st.decimals(allow_nan=False, allow_infinity=False),
    st.datetimes(),
    st.datetimes(timezones=st.timezones() | st.just(dt.UTC)).map(
        lambda d: d.replace(tzinfo=dt.timezone(d.utcoffset())) if d.utcoffset() is not None else d
    ),
    st.dates(),
    st.times(),
    st.timedeltas(),
)
names = st.text(min_size=1, max_size=10)
images = st.dictionaries(names, scalar_values, max_size=5)


@st.composite
def row_changes(draw):
    op = draw(st.sampled_from(["insert", "update", "delete"]))
    before = draw(images) if op != "insert" else None
    after = draw(images) if op != "delete" else None
    return RowChange(draw(names), draw(names), op, before, after)


statements = st.builds(
    Statement,
    sql=st.text(),
    params=st.none() | st.lists(scalar_values, max_size=5).map(tuple),
    insert_id=st.integers(0, 2**64 - 1),
    last_insert_id=st.integers(0, 2**64 - 1),
    unsafe=st.booleans(),
    kind=st.sampled_from(["dml", "ddl", "other"]),
)
gtids = st.one_of(
    st.builds(lambda d, s, n: Gtid(str(d), str(s), n), st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1),
              st.integers(0, 2**64 - 1)),
    st.builds(lambda u, n: Gtid(str(u), "", n), st.uuids(), st.integers(1, 2**63 - 1)),
)
opt_text = st.none() | st.text(max_size=20)
sessions = st.none() | st.builds(SessionContext, opt_text, opt_text, st.none() | st.integers(0, 2**64 - 1),
                                 opt_text, opt_text, opt_text, opt_text)
events = st.builds(
    ChangeEvent,
    gtid=gtids,
    source=st.sampled_from(["ingress", "binlog"]),
    ts_ms=st.integers(0, 2**63 - 1),
    db=opt_text,
    statements=st.lists(statements, max_size=3).map(tuple),
    rows=st.lists(row_changes(), max_size=3).map(tuple),
    session=sessions,
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(events)
def test_property_round_trip(ev):
    assert decode_event(encode_event(ev)) == ev


@settings(max_examples=300)
@given(st.binary(max_size=200))
def test_property_garbage_only_raises_envelope_error(data):
    try:
        decode_event(data)
    except EnvelopeError:
        pass


@settings(max_examples=300)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
                    lambda c: st.lists(c) | st.dictionaries(st.text(), c), max_leaves=20))
def test_property_arbitrary_json_only_raises_envelope_error(obj):
    doc = {"v": 1, "gtid": "0-1-1", "source": "binlog", "ts_ms": 0, "rows": obj, "statements": obj, "session": obj}
    try:
        data = orjson.dumps(doc)
    except orjson.JSONEncodeError:
        return
    try:
        decode_event(data)
    except EnvelopeError:
        pass


# --------------------------------------------------------------------------------------------------
# encode_event's fast paths produce exactly the bytes of the straightforward implementation below
# (the one before the fast paths: encode_value for every value, error location built per value).


def _reference_encode_image(image, where):
    if image is None:
        return None
    if not isinstance(image, dict):
        raise EnvelopeError(f"{where}: row image must be a dict, got {type(image).__name__}")
    out = {}
    for col, val in image.items():
        if not isinstance(col, str):
            raise EnvelopeError(f"{where}: column names must be str, got {col!r}")
        out[col] = encode_value(val, f"{where}.{col}")
    return out


def _reference_encode_event(ev: ChangeEvent) -> bytes:
    statements = []
    for i, st_ in enumerate(ev.statements):
        where = f"statements[{i}]"
        params = None
        if st_.params is not None:
            params = [encode_value(p, f"{where}.params[{j}]") for j, p in enumerate(st_.params)]
        doc_st = {"sql": st_.sql if st_.raw is None else encode_value(st_.raw), "params": params,
                  "insert_id": st_.insert_id, "last_insert_id": st_.last_insert_id, "unsafe": st_.unsafe,
                  "kind": st_.kind}
        if st_.charset != (ev.session.charset if ev.session is not None else None):
            doc_st["charset"] = st_.charset  # (v2: only where it differs from the session's)
        statements.append(doc_st)
    rows = [{"table": r.table, "db": r.db, "op": r.op, "before": _reference_encode_image(r.before, f"rows[{i}].before"),
             "after": _reference_encode_image(r.after, f"rows[{i}].after")} for i, r in enumerate(ev.rows)]
    session = None
    if ev.session is not None:
        s = ev.session
        session = {"user": s.user, "client_addr": s.client_addr, "connection_id": s.connection_id, "db": s.db,
                   "sql_mode": s.sql_mode, "time_zone": s.time_zone, "charset": s.charset}
    doc = {"v": VERSION, "gtid": str(ev.gtid), "source": ev.source, "ts_ms": ev.ts_ms, "db": ev.db,
           "statements": statements, "rows": rows, "session": session}
    try:
        return orjson.dumps(doc)
    except (TypeError, orjson.JSONEncodeError) as e:
        raise EnvelopeError(f"event {ev.gtid}: cannot encode: {e}") from None


def _encoding_outcome(fn, ev):
    try:
        return ("ok", fn(ev))
    except EnvelopeError as exc:
        return ("error", str(exc))


class _Str(str):
    pass


class _Int(int):
    pass


class _Float(float):
    pass


class _Dec(Decimal):
    pass


class _DateTime(dt.datetime):
    pass


class _Bytes(bytes):
    pass


_MORE_VALUES = [
    _Str("sub"), _Int(7), _Int(2**64), _Float(2.5), _Float("nan"), _Dec("1.10"), _DateTime(2024, 1, 2, 3, 4, 5),
    _Bytes(b"\x01"), bytearray(b"\x00\x01"), memoryview(b"mv"), float("nan"), float("-inf"), True, False, None,
    2**64 - 1, 2**64, -(2**63), -(2**63) - 1, Decimal("NaN"), Decimal("-Infinity"), Decimal("1E+2"),
    dt.date(2024, 2, 29), dt.time(1, 2, 3, 4), dt.timedelta(days=-1, microseconds=3),
    dt.datetime.min, dt.datetime.max, dt.datetime(999, 1, 2, 3, 4, 5, 60), dt.datetime(2024, 11, 3, 1, 30, fold=1),
    dt.datetime(2024, 1, 2, tzinfo=dt.UTC), dt.datetime(2024, 1, 2, 3, 4, 5, 6, tzinfo=dt.timezone(
        dt.timedelta(hours=-3, minutes=-30, seconds=-15))), dt.date.min, dt.date.max, dt.date(999, 9, 9),
]
_BAD_VALUES = [{"a": 1}, [1], object(), {1, 2}, 1j]


def _events_for(values):
    rows = (RowChange("t", "d", "insert", None, {f"c{i}": v for i, v in enumerate(values)}),
            RowChange("t", "d", "update", {"id": 1, "x": values[0] if values else None},
                      {"id": 1, "x": values[-1] if values else None}),
            RowChange("t", "d", "delete", {"c": values[len(values) // 2]} if values else {}, None))
    return [
        ChangeEvent(G, "binlog", 1, "d", rows=rows),
        ChangeEvent(G, "ingress", 1, "d", statements=(Statement("q", params=tuple(values)), Statement("r")),
                    session=SessionContext(user="u")),
    ]


def test_encode_event_fast_paths_are_byte_identical_to_the_reference():
    values = [v for v, _ in VALUES] + _MORE_VALUES
    for ev in _events_for(values) + [ev for v in values for ev in _events_for([v])]:
        # (a float subclass is an error in both: orjson does not serialise it)
        assert _encoding_outcome(encode_event, ev) == _encoding_outcome(_reference_encode_event, ev)


@pytest.mark.parametrize("bad", _BAD_VALUES, ids=repr)
def test_encode_event_fast_paths_raise_the_reference_errors(bad):
    for ev in _events_for([1, "a", bad, Decimal("1")]):
        got = _encoding_outcome(encode_event, ev)
        assert got[0] == "error" and got == _encoding_outcome(_reference_encode_event, ev)
    for image in ({1: "x"}, ["not", "a", "dict"]):
        ev = ChangeEvent(G, "binlog", 1, rows=(RowChange("t", "d", "insert", None, {"ok": 1}),
                                              RowChange("t", "d", "insert", None, image)))
        got = _encoding_outcome(encode_event, ev)
        assert got[0] == "error" and got == _encoding_outcome(_reference_encode_event, ev)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(events)
def test_property_encode_event_matches_the_reference(ev):
    assert encode_event(ev) == _reference_encode_event(ev)


@settings(max_examples=500)
@given(st.lists(st.datetimes() | st.dates() | st.datetimes(timezones=st.timezones()), min_size=1, max_size=8))
def test_property_temporal_values_encode_as_the_reference(values):
    for ev in _events_for(values):
        assert encode_event(ev) == _reference_encode_event(ev)
