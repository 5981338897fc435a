"""The read router's decisions (issue 15): which replica a read may go to, how long it waits, and the
primary-position fence shared by reads that began before it was sent. No servers: replica positions are set
as the watchers would set them."""

from __future__ import annotations

import asyncio

import pytest

from dbmux.core.config import parse_config
from dbmux.ingress.read_router import PrimaryClock, ReadRouter
from dbmux.ingress.replica_link import ReplicaLinkError

RAW = {"primary": {"url": "mysql://u:p@h0:3306"},
       "ingress": {"reads": "replicas", "read_wait_ms": 200},
       "targets": {"r1": {"url": "mysql://u:p@h1:3306"},
                   "r2": {"url": "mysql://u:p@h2:3306", "tables": ["shop.*"]}}}


def _router(**ingress) -> ReadRouter:
    raw = {**RAW, "ingress": {**RAW["ingress"], **ingress}}
    router = ReadRouter(parse_config(raw, {}))
    for r in router.replicas:
        r.state, r.applied = "running", {"0": 10}
    return router


def _replica(router: ReadRouter, name: str):
    return next(r for r in router.replicas if r.name == name)


async def test_a_replica_that_covers_the_read_is_taken_at_once():
    router = _router()
    _replica(router, "r1").applied = {"0": 5}
    replica, why = await router.choose({"0": 9}, ["shop.orders"], None)
    assert (replica.name, why) == ("r2", "")  # r1 has not applied 0-x-9 yet


async def test_a_read_waits_for_a_replica_to_catch_up():
    router = _router()
    for r in router.replicas:
        r.applied = {"0": 5}

    async def replicator_applies() -> None:
        await asyncio.sleep(0.03)
        _replica(router, "r1").applied = {"0": 9}
        router._changed.set()  # what the watcher does after each poll

    task = asyncio.create_task(replicator_applies())
    replica, why = await router.choose({"0": 9}, ["t"], "shop")
    await task
    assert (replica.name, why) == ("r1", "")


async def test_a_read_no_replica_catches_up_with_goes_to_the_primary():
    router = _router(read_wait_ms=20)
    replica, why = await router.choose({"0": 11}, ["t"], "shop")
    assert (replica, why) == (None, "lagging")


@pytest.mark.parametrize(("states", "tables", "db", "why"), [
    ({"r1": "halted", "r2": "waiting for gap"}, ["t"], "shop", "no_replica"),
    ({"r1": "unreachable", "r2": "running"}, ["other.t"], None, "no_replica"),  # r2 does not hold other.t
    ({"r1": "running", "r2": "running"}, ["t"], None, ""),  # r1 holds everything
])
async def test_rotation_and_table_filters(states, tables, db, why):
    router = _router()
    for name, state in states.items():
        _replica(router, name).state = state
    replica, reason = await router.choose({}, tables, db)
    assert reason == why and (replica is None) == bool(why)


async def test_a_transaction_takes_only_a_replica_of_every_table():
    router = _router()
    _replica(router, "r1").state = "halted"  # r2 is running but replicates shop.* only
    assert await router.choose({}, (), None, whole=True) == (None, "no_replica")
    router.replicas = [_replica(router, "r2")]
    assert await router.choose({}, (), None, whole=True) == (None, "tables")


async def _until(cond, ticks: int = 100) -> None:
    for _ in range(ticks):
        if cond():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition not reached")


async def test_the_fence_is_a_position_read_after_the_read_began():
    """Reads that begin while a fence query runs wait for the next one; reads that begin together share one."""
    clock = PrimaryClock(parse_config(RAW, {}))
    started: list[int] = []
    gate = asyncio.Event()

    async def query() -> dict[str, int]:
        started.append(len(started) + 1)
        n = len(started)
        await gate.wait()
        return {"0": 100 * n}

    clock._query = query  # type: ignore[method-assign]
    first = asyncio.create_task(clock.fence())
    await _until(lambda: started == [1])
    late = [asyncio.create_task(clock.fence()) for _ in range(3)]  # began while query 1 runs
    await _until(lambda: clock._next is not None)
    gate.set()
    assert await first == {"0": 100}
    assert [await t for t in late] == [{"0": 200}] * 3  # one shared query, sent after they began
    assert started == [1, 2]
    assert await clock.recent(60) == {"0": 200}  # bounded: a recent enough position is reused
    assert started == [1, 2]


async def test_a_stuck_position_query_fails_the_waiting_reads_and_the_next_fence_reconnects():
    """A fence whose query never answers (a stuck connection to the primary) fails within the bound -- the
    reads go to the primary -- and the next fence starts a new query instead of waiting on the stuck one."""
    clock = PrimaryClock(parse_config(RAW, {}), timeout_s=0.05)
    calls: list[int] = []

    async def query() -> dict[str, int]:
        calls.append(1)
        if len(calls) == 1:
            await asyncio.Event().wait()  # never answers
        return {"0": 7}

    clock._query = query  # type: ignore[method-assign]
    with pytest.raises(ReplicaLinkError, match="no answer within 0.05s"):
        await asyncio.wait_for(clock.fence(), 5)
    assert await asyncio.wait_for(clock.fence(), 5) == {"0": 7} and len(calls) == 2
