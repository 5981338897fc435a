"""The result cache (issue 16), pure: never a hit older than an acknowledged write, bounded bytes, LRU,
single flight, TTL, too-big answers."""

from __future__ import annotations

import asyncio
import random

import pytest

from dbmux.ingress.result_cache import ENTRY_OVERHEAD, SLOT_OVERHEAD, ResultCache, read_slots, write_slots

TABLES = ("db.a", "db.b", "db.c")


KEYS = (1, 2, 3)


def _answer(values: tuple[int, ...]) -> bytes:
    """A read's answer as the cache keeps it (bytes): the versions of the cells it shows."""
    return ",".join(map(str, values)).encode()


def _values(answer: bytes) -> tuple[int, ...]:
    return tuple(int(v) for v in answer.split(b","))


def _read(rnd: random.Random) -> tuple[tuple, tuple, tuple]:
    """A random read: its key, its slots, the cells (table, row key) its answer shows."""
    if rnd.random() < 0.5:  # whole tables
        tables = tuple(sorted(rnd.sample(TABLES, rnd.randint(1, 2))))
        return ("tables", tables), tuple(s for t in tables for s in read_slots(t, None)), \
            tuple((t, k) for t in tables for k in KEYS)
    t, keys = rnd.choice(TABLES), tuple(sorted(rnd.sample(KEYS, rnd.randint(1, 2))))
    return ("keys", t, keys), read_slots(t, frozenset(keys)), tuple((t, k) for k in keys)


def _write(rnd: random.Random) -> tuple[tuple, tuple]:
    """A random write: its slots and the cells it changes."""
    t = rnd.choice(TABLES)
    if rnd.random() < 0.5:  # to known keys
        keys = rnd.sample(KEYS, rnd.randint(1, 2))
        return write_slots(t, frozenset(keys)), tuple((t, k) for k in keys)
    return write_slots(t, None), tuple((t, k) for k in KEYS)


@pytest.mark.parametrize("seed", range(300))
async def test_no_hit_misses_a_write_whose_ok_went_out(seed):
    """Random interleavings of writes (commit, then OK: the ingress invalidates as the OK passes) and reads
    (ticket when sent, answer computed later from the database as it then is, stored later still), each to
    whole tables or to keys of one: every hit answers at least what each acknowledged write left."""
    rnd = random.Random(seed)
    cache = ResultCache(1 << 20)
    cells = [(t, k) for t in TABLES for k in KEYS]
    committed = dict.fromkeys(cells, 0)  # what the database holds
    acked = dict.fromkeys(cells, 0)  # what writers were told (their OK went out)
    writes: list[tuple[tuple, tuple, int]] = []  # committed, OK not yet out: slots, cells, version
    reads: list[list] = []  # [ticket, cells, answer or None]
    waiting: list = []  # (future, cells, what was acknowledged when the waiting read began)
    version = 0
    for _ in range(400):
        op = rnd.random()
        if op < 0.2:  # a write commits
            slots, changed = _write(rnd)
            version += 1
            for cell in changed:
                committed[cell] = version
            writes.append((slots, changed, version))
        elif op < 0.35 and writes:  # a write's OK passes through the ingress (unknown tables now and then)
            slots, changed, v = writes.pop(rnd.randrange(len(writes)))
            cache.invalidate_all() if rnd.random() < 0.1 else cache.invalidate(slots)
            for cell in changed:
                acked[cell] = max(acked[cell], v)
        elif op < 0.6:  # a read is looked up; on a miss it is sent
            key, slots, shown = _read(rnd)
            hit = cache.get(key)
            if hit is not None:
                got = dict(zip(shown, _values(hit), strict=True))
                assert all(got[c] >= acked[c] for c in shown), (got, acked)
            elif (flight := cache.in_flight(key)) is not None:  # single flight: wait for its answer
                waiting.append((cache.wait_for(flight), shown, dict(acked)))
            else:
                reads.append([cache.begin(key, slots, 10), shown, None])
        elif op < 0.8 and reads:  # a read in flight is answered by the database as it is now
            r = rnd.choice(reads)
            if r[2] is None:
                r[2] = tuple(committed[c] for c in r[1])
        elif reads:  # an answered read is stored
            for i, r in enumerate(reads):
                if r[2] is not None:
                    cache.store(r[0], _answer(r[2]))
                    del reads[i]
                    break
            for fut, shown, seen in [w for w in waiting if w[0].done()]:
                answer = fut.result()
                if answer is not None:  # (None: the waiter asks the database itself)
                    got = dict(zip(shown, _values(answer), strict=True))
                    assert all(got[c] >= seen[c] for c in shown), (got, seen)
            waiting = [w for w in waiting if not w[0].done()]


def test_a_write_to_other_keys_leaves_a_pinned_entry():
    """Per-key invalidation: an entry pinned to key 5 survives a write to key 7 (and one to the table's
    other rows does not), while an entry over the whole table goes with either."""
    cache = ResultCache(1 << 20)
    pinned = cache.begin("five", read_slots("db.a", frozenset({5})), 1)
    whole = cache.begin("all", read_slots("db.a", None), 1)
    cache.store(pinned, b"row 5")
    cache.store(whole, b"all rows")
    cache.invalidate(write_slots("db.a", frozenset({7})))
    assert cache.get("five") == b"row 5"
    assert cache.get("all") is None
    cache.invalidate(write_slots("db.a", frozenset({5})))
    assert cache.get("five") is None
    cache.store(cache.begin("five", read_slots("db.a", frozenset({5})), 1), b"row 5")
    cache.invalidate(write_slots("db.a", None))
    assert cache.get("five") is None


def test_bytes_are_bounded_and_the_least_recently_used_goes_first():
    cache = ResultCache(10 * (100 + ENTRY_OVERHEAD + SLOT_OVERHEAD + 1), max_entry_bytes=1000)
    for i in range(10):
        cache.store(cache.begin(i, ("db.a",), 1), b"x" * 100)
    assert len(cache) == 10 and cache.bytes <= cache.max_bytes
    assert cache.get(0) is not None  # 0 is used again: 1 is now the least recently used
    cache.store(cache.begin(10, ("db.a",), 1), b"x" * 100)
    assert cache.get(1) is None and cache.get(0) is not None and cache.evictions == 1
    for i in range(100, 400):
        cache.store(cache.begin(i, ("db.b",), 1), b"y" * 100)
    assert cache.bytes <= cache.max_bytes


def test_an_answer_bigger_than_the_limit_is_not_kept():
    cache = ResultCache(1 << 20, max_entry_bytes=1000)
    assert not cache.store(cache.begin("k", ("db.a",), 1), b"x" * 2000)
    assert cache.get("k") is None


def test_ttl():
    now = [0.0]
    cache = ResultCache(1 << 20, ttl_s=5, clock=lambda: now[0])
    cache.store(cache.begin("k", ("db.a",), 1), b"v")
    now[0] = 4.9
    assert cache.get("k") == b"v"
    now[0] = 5.1
    assert cache.get("k") is None


async def test_misses_of_one_key_share_the_first_ones_answer():
    cache = ResultCache(1 << 20)
    first = cache.begin("k", ("db.a",), 1)
    assert cache.in_flight("k") is first
    waiters = [cache.wait_for(first) for _ in range(3)]
    cache.store(first, b"answer")
    assert [await w for w in waiters] == [b"answer"] * 3 and cache.in_flight("k") is None


async def test_waiters_of_a_read_whose_tables_changed_ask_themselves():
    cache = ResultCache(1 << 20)
    first = cache.begin("k", ("db.a",), 1)
    waiter = cache.wait_for(first)
    cache.invalidate(["db.a"])
    assert not cache.store(first, b"old")
    assert await asyncio.wait_for(waiter, 1) is None and cache.get("k") is None


async def test_waiting_on_a_read_that_already_landed_gets_its_answer():
    """A session decides to wait, but the read in flight lands before its waiting starts: no hang."""
    cache = ResultCache(1 << 20)
    first = cache.begin("k", ("db.a",), 1)
    cache.store(first, b"answer")
    assert await asyncio.wait_for(cache.wait_for(first), 1) == b"answer"
    other = cache.begin("j", ("db.a",), 1)
    cache.abandon(other)
    assert await asyncio.wait_for(cache.wait_for(other), 1) is None


def _execute(stmt_id: int, n: int, *, types: bytes | None, values: bytes, nulls: bytes | None = None) -> bytes:
    head = bytes([0x17]) + stmt_id.to_bytes(4, "little") + b"\x00" + (1).to_bytes(4, "little")
    if not n:
        return head
    bitmap = nulls if nulls is not None else bytes((n + 7) // 8)
    return head + bitmap + (b"\x01" + types if types is not None else b"\x00") + values


@pytest.mark.parametrize(("n", "types", "values"), [
    (0, None, b""),
    (1, b"\x08\x00", (5).to_bytes(8, "little")),
    (2, b"\x08\x00\xfe\x00", (5).to_bytes(8, "little") + b"\x03abc"),
    (9, b"\x08\x00" * 9, b"".join(i.to_bytes(8, "little") for i in range(9))),  # a two-byte NULL bitmap
])
def test_an_executions_key_parts(n, types, values):
    """The types an execute binds, and its values, whether it sends the types or relies on the last ones."""
    from dbmux.ingress.statements import bound_types, bound_values

    with_types = _execute(7, n, types=types, values=values)
    without = _execute(7, n, types=None, values=values)
    assert bound_types(with_types, n) == (types if n else None)
    assert bound_types(without, n) is None
    assert bound_values(with_types, n) == bound_values(without, n)  # the same execution either way
    if n:
        other = _execute(7, n, types=types, values=values[:-1] + bytes([values[-1] ^ 1]))
        assert bound_values(other, n) != bound_values(with_types, n)
        nulls = _execute(7, n, types=types, values=values, nulls=b"\x01" + bytes((n + 7) // 8 - 1))
        assert bound_values(nulls, n) != bound_values(with_types, n)


def test_the_primary_gets_the_types_an_execute_answered_elsewhere_carried():
    """A statement's first execute (types bound) answered by the cache or a replica: the next execute the
    primary gets, sent without types, carries them (else: error 1210, or values read with old types)."""
    from dbmux.ingress.protocol.framing import frame
    from dbmux.ingress.statements import PlannedStatement, QueryPlan, _Prepared, bound_types, with_types_for_primary

    sql = "SELECT c FROM t WHERE id = ?"
    st = _Prepared(sql, 1, QueryPlan((PlannedStatement(sql, "read", None, False),)))
    value = (5).to_bytes(8, "little")
    first = _execute(3, 1, types=b"\x08\x00", values=value)
    later = _execute(3, 1, types=None, values=value)
    st.raw_types = bound_types(first, 1)  # (the first went to the cache: the primary never saw it)
    sent = with_types_for_primary(frame(later, 0), st)
    assert sent == frame(first, 0) and st.primary_types == b"\x08\x00"
    assert with_types_for_primary(frame(later, 0), st) == frame(later, 0)  # the primary has them now
    st.raw_types = b"\xfe\x00"  # rebound with other types, answered elsewhere again
    assert bound_types(with_types_for_primary(frame(later, 0), st)[4:], 1) == b"\xfe\x00"


@pytest.mark.parametrize("answer_bytes", [60, 4200])
@pytest.mark.parametrize("pinned", [True, False])
def test_the_accounted_bytes_cover_what_entries_hold(answer_bytes, pinned):
    """cache_bytes bounds the process only if an entry's accounted size covers the Python memory it holds
    (tracemalloc): its answer, key, slots, versions, the entry and the dictionary's slot."""
    import tracemalloc

    from dbmux.ingress.cache_session import key_size, qualified

    n = 3000
    tracemalloc.start()
    try:
        cache = ResultCache(1 << 40)
        before = tracemalloc.get_traced_memory()[0]
        for i in range(n):
            sql = f"SELECT c, pad FROM sbtest{i % 4} WHERE id = {i}"
            key = ("sbuser", "sbtest", sql, "STRICT_TRANS_TABLES,NO_ENGINE_SUBSTITUTION", "SYSTEM", "utf8mb4",
                   "utf8mb4", "utf8mb4_general_ci", "utf8mb4", 0x3FFFFF, 0)
            table = qualified(f"sbtest{i % 4}", "sbtest")
            slots = read_slots(table, frozenset({i})) if pinned else read_slots(table, None)
            cache.store(cache.begin(key, slots, key_size(key)), bytes(answer_bytes))
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(cache) == n
    assert held <= cache.bytes, (held / n, cache.bytes / n)


def test_an_executions_values_decoded_for_its_keys():
    """A prepared read's bound values, decoded to pin keys: with the types it binds, or the statement's
    last ones when it binds none; None when no types are known."""
    from dbmux.ingress.statements import PlannedStatement, QueryPlan, _Prepared, bound_types, execute_values

    sql = "SELECT c FROM t WHERE k = ? AND id = ?"
    st = _Prepared(sql, 2, QueryPlan((PlannedStatement(sql, "read", None, False),)))
    values = b"\x01x" + (5).to_bytes(8, "little")  # a one-byte string 'x', then the BIGINT 5
    first = _execute(3, 2, types=b"\xfe\x00\x08\x00", values=values)
    later = _execute(3, 2, types=None, values=values)
    assert execute_values(later, st, 0) is None  # (no types known yet)
    assert execute_values(first, st, 0) == (b"x", 5)
    st.raw_types = bound_types(first, 2)
    assert execute_values(later, st, 0) == execute_values(first, st, 0)
