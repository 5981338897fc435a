"""Table-driven tests for dbmux.core.gtid."""

from __future__ import annotations

import pytest

from dbmux.core.gtid import Gtid, GtidError, parse_gtid_list

UUID = "3e11fa47-71ca-11e1-9e33-c80aa9429562"

PARSE_OK = [
    # text, domain, server, seq, kind, canonical str
    ("0-1-42", "0", "1", 42, "mariadb", "0-1-42"),
    ("  0-1-42\n", "0", "1", 42, "mariadb", "0-1-42"),
    ("10-200-1", "10", "200", 1, "mariadb", "10-200-1"),
    ("007-01-0005", "7", "1", 5, "mariadb", "7-1-5"),
    ("0-1-0", "0", "1", 0, "mariadb", "0-1-0"),
    ("4294967295-4294967295-18446744073709551615", "4294967295", "4294967295", 2**64 - 1, "mariadb",
     "4294967295-4294967295-18446744073709551615"),
    (f"{UUID}:23", UUID, "", 23, "mysql", f"{UUID}:23"),
    (f"{UUID.upper()}:1", UUID, "", 1, "mysql", f"{UUID}:1"),
    (f"{UUID.replace('-', '')}:7", UUID, "", 7, "mysql", f"{UUID}:7"),
    (f"{UUID}:Tag_1:9", f"{UUID}:tag_1", "", 9, "mysql", f"{UUID}:tag_1:9"),
]


@pytest.mark.parametrize("text,domain,server,seq,kind,canonical", PARSE_OK)
def test_parse_ok(text, domain, server, seq, kind, canonical):
    g = Gtid.parse(text)
    assert (g.domain, g.server, g.seq) == (domain, server, seq)
    assert g.kind == kind
    assert str(g) == canonical
    assert Gtid.parse(str(g)) == g
    assert g.key == (domain, seq)


PARSE_BAD = [
    "", "0-1", "0-1-2-3", "a-1-2", "-1-1-2", "0-1-x", "0 - 1 - 2", "4294967296-1-1", "0-4294967296-1",
    "0-1-18446744073709551616", f"{UUID}", f"{UUID}:", f"{UUID}:0", f"{UUID}:1-5", f"{UUID}:x",
    "3e11fa47-71ca-11e1-9e33:1", f"{UUID}:1tag:5", f"{UUID}:{2**63}", "0-1-5,1-2-3", None, 42,
]


@pytest.mark.parametrize("text", PARSE_BAD)
def test_parse_bad(text):
    with pytest.raises(GtidError) as ei:
        Gtid.parse(text)
    assert isinstance(ei.value, ValueError)
    msg = str(ei.value)
    assert "domain-server-seq" in msg and "uuid:n" in msg
    if isinstance(text, str) and text:
        assert repr(text) in msg


def test_gtid_is_frozen_and_slotted():
    g = Gtid.parse("0-1-2")
    with pytest.raises(AttributeError):
        g.seq = 3  # type: ignore[misc]
    assert not hasattr(g, "__dict__")
    assert hash(g) == hash(Gtid("0", "1", 2))


def test_ordering_by_domain_then_seq():
    a, b, c = Gtid.parse("0-9-5"), Gtid.parse("0-1-6"), Gtid.parse("1-1-1")
    assert a < b < c
    assert sorted([c, b, a]) == [a, b, c]
    assert Gtid.parse("0-1-5") <= Gtid.parse("0-2-5") and Gtid.parse("0-1-5") >= Gtid.parse("0-2-5")
    assert Gtid.parse("0-1-5") != Gtid.parse("0-2-5")  # equality includes the server
    assert Gtid.parse(f"{UUID}:10") > Gtid.parse(f"{UUID}:9")


LISTS = [
    ("", {}),
    ("  ", {}),
    ("0-1-5", {"0": "0-1-5"}),
    ("0-1-5,1-2-9", {"0": "0-1-5", "1": "1-2-9"}),
    ("0-1-5, 1-2-9\n", {"0": "0-1-5", "1": "1-2-9"}),
    ("0-1-5,0-2-7,0-3-6", {"0": "0-2-7"}),  # gtid_binlog_state: highest seq per domain
    (f"{UUID}:1-5", {UUID: f"{UUID}:5"}),
    (f"{UUID}:1-5:7-9", {UUID: f"{UUID}:9"}),
    (f"{UUID}:1-5:11", {UUID: f"{UUID}:11"}),
    (f"{UUID.upper()}:1-3,\n4f11fa47-71ca-11e1-9e33-c80aa9429562:1-100",
     {UUID: f"{UUID}:3", "4f11fa47-71ca-11e1-9e33-c80aa9429562": "4f11fa47-71ca-11e1-9e33-c80aa9429562:100"}),
    (f"{UUID}:1-5:tg:1-3", {UUID: f"{UUID}:5", f"{UUID}:tg": f"{UUID}:tg:3"}),
]


@pytest.mark.parametrize("text,expected", LISTS)
def test_parse_gtid_list(text, expected):
    got = parse_gtid_list(text)
    assert {d: str(g) for d, g in got.items()} == expected
    for d, g in got.items():
        assert g.domain == d


LISTS_BAD = [
    "0-1-5,,1-2-3", "0-1-5,", "0-1", f"{UUID}:5-1", f"{UUID}:0-3", f"{UUID}", f"{UUID}:tag",
    f"0-1-5,{UUID}:1-3", "zzz:1-2", f"{UUID}:1-x",
]


@pytest.mark.parametrize("text", LISTS_BAD)
def test_parse_gtid_list_bad(text):
    with pytest.raises(GtidError):
        parse_gtid_list(text)
