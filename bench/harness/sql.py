"""Short sessions with the stack's MariaDB and PostgreSQL servers: their versions, one-shot statements."""

from __future__ import annotations

import asyncio


def mysql_version(dsn) -> str:
    """The server's version string (MariaDB's "5.5.5-" compatibility prefix removed)."""
    import pymysql

    c = pymysql.connect(host=dsn.host, port=dsn.port, user=dsn.user, password=dsn.password)
    try:
        return c.get_server_info().removeprefix("5.5.5-")
    finally:
        c.close()


def pg_version(dsn) -> str:
    """PostgreSQL's ``server_version`` (the number only)."""
    import asyncpg

    async def go() -> str:
        conn = await asyncpg.connect(host=dsn.host, port=dsn.port, user=dsn.user, password=dsn.password,
                                     database=dsn.database)
        try:
            return (await conn.fetchval("SHOW server_version")).split()[0]
        finally:
            await conn.close()

    return asyncio.run(go())


async def mysql_exec(dsn, *sqls: str) -> None:
    import aiomysql

    conn = await aiomysql.connect(host=dsn.host, port=dsn.port, user=dsn.user, password=dsn.password,
                                  autocommit=True)
    try:
        async with conn.cursor() as cur:
            for sql in sqls:
                await cur.execute(sql)
    finally:
        conn.close()


async def pg_exec(dsn, *sqls: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(host=dsn.host, port=dsn.port, user=dsn.user, password=dsn.password,
                                 database=dsn.database or "postgres")
    try:
        for sql in sqls:
            await conn.execute(sql)
    finally:
        await conn.close()


def mysql_rows(dsn, *sqls: str) -> list[tuple]:
    """Run ``sqls`` in one autocommit session; the last one's rows."""
    import pymysql

    conn = pymysql.connect(host=dsn.host, port=dsn.port, user=dsn.user, password=dsn.password, autocommit=True,
                           max_allowed_packet=64 * 1024 * 1024)
    try:
        rows: list[tuple] = []
        with conn.cursor() as cur:
            for s in sqls:
                cur.execute(s)
                rows = list(cur.fetchall())
        return rows
    finally:
        conn.close()
