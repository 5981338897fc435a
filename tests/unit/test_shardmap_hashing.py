"""Shard-map hashing: the canonical key encoding, the 64-bit hash and jump hash, by test vectors.

The vectors are the ones README.md ("Shard map") publishes for reimplementations; changing any of them
moves rows between shards, so they must never change.
"""

from __future__ import annotations

import hashlib
import random
from datetime import date, datetime, time, timedelta
from decimal import Decimal

import pytest

from dbmux.shardmap import ShardMapError, canonical_key, jump_hash, shard_hash
from dbmux.shardmap.hashing import canonical_text

# key tuple, canonical encoding (hex), shard_hash (hex), jump bucket for 2, 3, 4 shards
VECTORS = [
    ((5,), "010000000135", "4a015889636f9554", (1, 2, 2)),
    (("5",), "010000000135", "4a015889636f9554", (1, 2, 2)),
    ((Decimal("5.00"),), "010000000135", "4a015889636f9554", (1, 2, 2)),
    ((-42,), "01000000032d3432", "6dd012f6183c72e3", (1, 2, 3)),
    ((18446744073709551615,), "01000000143138343436373434303733373039353531363135", "35813d96e736f8c1",
     (0, 2, 2)),
    (("Zürich ☃",), "010000000b5ac3bc7269636820e29883", "5f0e286d449fe617", (0, 0, 0)),
    ((b"\x00\xffab",), "010000000400ff6162", "733c55c22206caa9", (0, 0, 3)),
    ((None,), "0000000000", "f01f0c001546991e", (0, 0, 0)),
    ((Decimal("-12.3400"),), "01000000062d31322e3334", "16ed6c6050463839", (1, 2, 3)),
    ((1.5,), "0100000003312e35", "8bbc99e0deb399cc", (1, 1, 1)),
    ((datetime(2024, 2, 29, 13, 45, 6),), "0100000013323032342d30322d32392031333a34353a3036",
     "18c5a249e77cb097", (0, 0, 3)),
    ((datetime(2024, 2, 29, 13, 45, 6, 120000),),
     "010000001a323032342d30322d32392031333a34353a30362e313230303030", "2f8f960db0e32d36", (0, 0, 0)),
    ((date(2024, 1, 2),), "010000000a323032342d30312d3032", "fe327ceca822cfba", (0, 0, 0)),
    ((timedelta(hours=-26, minutes=-3, seconds=-4),), "01000000092d32363a30333a3034", "68956b627579ba88",
     (0, 0, 0)),
    ((42, "abc"), "010000000234320100000003616263", "a6e873478b1f26fb", (0, 0, 0)),
    ((1, None, "x"), "0100000001310000000000010000000178", "be432fe901fa07b0", (0, 0, 0)),
    (("",), "0100000000", "eee3d4c1bbbd63d0", (0, 2, 2)),
]


@pytest.mark.parametrize("key, encoding, digest, buckets", VECTORS, ids=[repr(v[0]) for v in VECTORS])
def test_vectors(key, encoding, digest, buckets):
    assert canonical_key(key).hex() == encoding
    assert shard_hash(key) == int(digest, 16)
    # the hash is BLAKE2b-64 of the encoding, read big-endian
    assert hashlib.blake2b(bytes.fromhex(encoding), digest_size=8).hexdigest() == digest
    assert tuple(jump_hash(int(digest, 16), n) for n in (2, 3, 4)) == buckets


@pytest.mark.parametrize("value, text", [
    (True, "1"), (False, "0"), (0, "0"), (-7, "-7"), (10**30, "1" + "0" * 30),
    (Decimal("5.0"), "5"), (Decimal("5.00"), "5"), (Decimal("-0.000"), "0"), (Decimal("-0"), "0"),
    (Decimal("1E+3"), "1000"), (Decimal("1.2300"), "1.23"), (Decimal("0.001"), "0.001"),
    (Decimal("1E-7"), "0.0000001"),
    (5.0, "5"), (-0.0, "0"), (0.1, "0.1"), (2.0**53, repr(2.0**53)), (1e300, "1e+300"),
    ("05", "05"), ("", ""),
    (datetime(999, 1, 2, 3, 4, 5), "0999-01-02 03:04:05"),
    (datetime(2024, 1, 2, 3, 4, 5, 6), "2024-01-02 03:04:05.000006"),
    (date(2024, 12, 31), "2024-12-31"),
    (time(7, 8, 9), "07:08:09"), (time(7, 8, 9, 500), "07:08:09.000500"),
    (timedelta(0), "00:00:00"), (timedelta(hours=838, minutes=59, seconds=59), "838:59:59"),
    (timedelta(hours=1, minutes=2, seconds=3), "01:02:03"), (timedelta(seconds=-1), "-00:00:01"),
    (timedelta(days=-1, microseconds=1), "-23:59:59.999999"),
    (timedelta(seconds=5, microseconds=250000), "00:00:05.250000"),
])
def test_canonical_text(value, text):
    assert canonical_text(value) == text


@pytest.mark.parametrize("group", [
    [(5,), ("5",), (Decimal("5.00"),), (Decimal("5"),), (5.0,), (b"5",), (bytearray(b"5"),), (memoryview(b"5"),)],
    [(1,), (True,), ("1",)],
    [(timedelta(hours=1, minutes=2, seconds=3),), (time(1, 2, 3),), ("01:02:03",)],
    [(datetime(2024, 5, 6, 7, 8, 9),), ("2024-05-06 07:08:09",)],
    [(date(2024, 5, 6),), ("2024-05-06",), (b"2024-05-06",)],
    [(-3, "é"), ("-3", "é".encode()), (Decimal("-3.000"), "é")],
])
def test_values_from_different_sources_hash_alike(group):
    assert len({canonical_key(k) for k in group}) == 1
    assert len({shard_hash(k) for k in group}) == 1


@pytest.mark.parametrize("a, b", [
    ((None,), ("",)),              # NULL is not the empty string
    ((None,), (b"",)),
    (("ab", "c"), ("a", "bc")),    # lengths delimit the components
    ((1, 2), (12,)),
    (("5.0",), (5,)),              # a text value is taken as is
    ((5.5,), (5,)),
])
def test_distinct_keys_encode_differently(a, b):
    assert canonical_key(a) != canonical_key(b)


@pytest.mark.parametrize("bad", [(object(),), ({"a": 1},), ([1],), (Decimal("NaN"),), ("\ud800",)])
def test_unhashable_values_raise(bad):
    with pytest.raises(ShardMapError):
        shard_hash(bad)


def test_a_key_is_a_tuple():
    with pytest.raises(ShardMapError, match="tuple"):
        canonical_key("5")  # type: ignore[arg-type]
    assert canonical_key([5]) == canonical_key((5,))


# -- jump hash against published and independent references ----------------------------------------
# (key, buckets, bucket) published for the paper's algorithm: ClickHouse's jumpConsistentHash test
# (tests/queries/0_stateless/00580_consistent_hashing_functions) and the jump_consistent_hash crate's doc.
PUBLISHED = [
    (1, 1, 0), (42, 57, 43), (256, 1024, 520), (3735883980, 1, 0), (3735883980, 666, 361),
    (16045690984833335023, 255, 237), (0, 60, 0), (1, 60, 55), (2, 60, 46),
]


@pytest.mark.parametrize("key, buckets, expected", PUBLISHED)
def test_jump_hash_published_vectors(key, buckets, expected):
    assert jump_hash(key, buckets) == expected


def _guava_style_jump(key: int, buckets: int) -> int:
    """Independent port in the shape of Guava's Hashing.consistentHash (LCG object, candidate/next)."""

    class Lcg:
        def __init__(self, seed: int) -> None:
            self.state = seed

        def next_double(self) -> float:
            self.state = (2862933555777941757 * self.state + 1) % 2**64
            return ((self.state >> 33) + 1) / 2.0**31

    gen = Lcg(key % 2**64)
    candidate = 0
    while True:
        nxt = int((candidate + 1) / gen.next_double())
        if 0 <= nxt < buckets:
            candidate = nxt
        else:
            return candidate


def test_jump_hash_agrees_with_an_independent_port():
    rng = random.Random(20240229)
    for _ in range(3000):
        key = rng.getrandbits(64)
        for buckets in (1, 2, 3, 4, 5, 7, 10, 64, 1000):
            assert jump_hash(key, buckets) == _guava_style_jump(key, buckets), (key, buckets)


def test_jump_hash_moves_only_to_the_new_bucket():
    rng = random.Random(7)
    for _ in range(2000):
        key = rng.getrandbits(64)
        prev = jump_hash(key, 1)
        for n in range(2, 12):
            cur = jump_hash(key, n)
            assert cur == prev or cur == n - 1
            prev = cur


def test_jump_hash_takes_the_key_mod_2_64_and_needs_a_bucket():
    assert jump_hash(-1, 100) == jump_hash(2**64 - 1, 100)
    for bad in (0, -1, True, 2.0):
        with pytest.raises(ShardMapError):
            jump_hash(1, bad)  # type: ignore[arg-type]
