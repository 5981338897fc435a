"""Many clients connecting at the same instant: the ingress's listen backlog (``ingress.listen_backlog``,
1024 by default) queues them all, and every one completes its handshake and a query. With asyncio's
default backlog of 100, such a burst overflowed the accept queue: clients hung without a greeting or
were reset."""

from __future__ import annotations

import asyncio

import aiomysql
import pymysql
import pytest

CLIENTS = 500
STEP_TIMEOUT_S = 60  # a client that got no answer by then is a failure (a lost connect hangs forever)


@pytest.fixture
def primary_connections(stack):
    """Each client session through the ingress opens a session on the primary: make room for them all
    (and whatever else runs on the stack); the primary's own setting is restored afterwards."""
    conn = pymysql.connect(host=stack.primary.host, port=stack.primary.port, user=stack.primary.user,
                           password=stack.primary.password, autocommit=True)
    with conn.cursor() as cur:
        cur.execute("SELECT @@global.max_connections")
        (before,), = cur.fetchall()
        if before < CLIENTS + 100:
            cur.execute(f"SET GLOBAL max_connections = {CLIENTS + 100}")
    try:
        yield
    finally:
        with conn.cursor() as cur:
            cur.execute(f"SET GLOBAL max_connections = {before}")
        conn.close()


async def connect_burst(dsn, n: int, timeout_s: float = STEP_TIMEOUT_S) -> list:
    """``n`` clients created in one go (every connect sent in the same event-loop turn), each running one
    query; all sessions stay open until every client has its answer. Returns the failures as (i, what)."""
    answered = 0
    everyone = asyncio.Event()

    async def client(i: int) -> object:
        nonlocal answered
        conn = None
        try:
            async def session() -> object:
                nonlocal conn
                conn = await aiomysql.connect(host=dsn.host, port=dsn.port, user=dsn.user, password=dsn.password,
                                              connect_timeout=timeout_s)
                async with conn.cursor() as cur:
                    await cur.execute("SELECT %s", (i,))
                    return (await cur.fetchall())[0][0]

            result = await asyncio.wait_for(session(), timeout_s)
        except Exception as exc:  # noqa: BLE001 - recorded and asserted by the caller
            result = exc
        answered += 1
        if answered == n:
            everyone.set()
        await everyone.wait()
        if conn is not None:
            conn.close()
        return result

    results = await asyncio.gather(*(client(i) for i in range(n)))
    return [(i, r) for i, r in enumerate(results) if r != i]


async def test_500_simultaneous_clients_all_connect_and_query(stack, ingress, primary_connections):
    failures = await connect_burst(ingress.dsn(stack.primary), CLIENTS)
    assert not failures, f"{len(failures)} of {CLIENTS} clients failed, e.g. {failures[:5]}"
