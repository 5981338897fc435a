"""MariaDB sequences and MySQL views reach PostgreSQL shard targets (found running SQLAlchemy's own test
suite through the ingress: both shards halted on ``CREATE SEQUENCE``, then one on ``CREATE VIEW``).

Each shard keeps a PostgreSQL sequence of the same name: CREATE/ALTER/DROP SEQUENCE are translated, and
the sequence's state rows (the binlog holds one whenever NEXTVAL runs past the primary's cache, and on
SETVAL) set it to the primary's next value not handed out yet. Rows whose keys NEXTVAL gave come in their
row form, through the ingress and straight to the primary; a column default ``NEXTVAL(s)`` becomes
``nextval('db.s')``. Then ``dbmux verify`` must pass, and each shard's sequence must be where the
primary's is.
"""

from __future__ import annotations

import asyncio

from .conftest import assert_targets_equal
from .test_pg_spatial_uuid import _all_rows, _pg_rows
from .test_replicator_mysql import _conn
from .test_shard_targets import shard_pipeline


def test_sequences_and_views_reach_pg_shards(stack, tmp_path):
    with shard_pipeline(stack, tmp_path, "seq") as (db, shards, cfg, logs, ing):
        c = _conn(stack.primary)
        c.autocommit(True)
        i = _conn(ing.dsn(stack.primary))
        i.autocommit(True)
        try:
            with i.cursor() as cur:
                cur.execute(f"CREATE DATABASE {db}")
                cur.execute(f"USE {db}")
                cur.execute("CREATE SEQUENCE s1")
                cur.execute("CREATE TABLE t1 (id BIGINT PRIMARY KEY DEFAULT NEXTVAL(s1), x INT)")
                cur.execute("INSERT INTO t1 (x) VALUES (1), (2), (3), (4)")
                cur.execute("INSERT INTO t1 VALUES (NEXTVAL(s1), 5)")
            with c.cursor() as cur:  # straight to the primary: a sequence with every option, and its state rows
                cur.execute(f"USE {db}")
                cur.execute("CREATE SEQUENCE s2 START WITH 10 INCREMENT BY 5 MINVALUE 10 MAXVALUE 1000 CACHE 2 CYCLE")
                cur.execute("INSERT INTO t1 (x) VALUES (6)")
                cur.execute("SELECT NEXTVAL(s2), NEXTVAL(s2), NEXTVAL(s2)")
                cur.execute("CREATE SEQUENCE s4 INCREMENT BY -1 MINVALUE -3 MAXVALUE -1 START WITH -1 NOCACHE")
                cur.execute("SELECT NEXTVAL(s4), NEXTVAL(s4), NEXTVAL(s4)")  # exhausted
            with i.cursor() as cur:
                cur.execute("ALTER SEQUENCE s1 RESTART WITH 100")
                cur.execute("INSERT INTO t1 (x) VALUES (7), (8)")
                cur.execute("SELECT SETVAL(s2, 500)")
                cur.execute("CREATE OR REPLACE SEQUENCE s3 NOMAXVALUE ENGINE=InnoDB")
                cur.execute("DROP SEQUENCE s3")
                # views (SQLAlchemy's suite halted a shard on its first CREATE VIEW): each shard's view shows
                # its part of the table
                cur.execute("CREATE VIEW big AS SELECT id, x FROM t1 WHERE x > 2")
                cur.execute("CREATE VIEW gone AS SELECT 1 AS one")
                cur.execute("ALTER ALGORITHM=MERGE VIEW big AS SELECT id, x, x * 2 AS x2 FROM t1 WHERE x > 2")
                cur.execute("DROP VIEW gone")
                cur.execute("CREATE TABLE k (id INT)")  # keyless: on the default shard only, and so is its view
                cur.execute("INSERT INTO k VALUES (1), (2)")
                cur.execute("CREATE VIEW kv AS SELECT id FROM k")
            assert_targets_equal(cfg, logs, 2)
            with c.cursor() as cur:
                cur.execute(f"SELECT id, x FROM {db}.t1 ORDER BY id")
                want_rows = [tuple(r) for r in cur.fetchall()]
                cur.execute(f"SELECT next_not_cached_value FROM {db}.s1")
                next_s1 = cur.fetchone()[0]
                cur.execute(f"SELECT next_not_cached_value FROM {db}.s2")
                next_s2 = cur.fetchone()[0]
            assert [x for _, x in want_rows] == [1, 2, 3, 4, 5, 6, 7, 8] and want_rows[-1][0] == 101
            got_rows = _all_rows(shards, f'SELECT id, x FROM "{db}"."t1"')
            assert got_rows == want_rows
            with c.cursor() as cur:
                cur.execute(f"SELECT id, x, x2 FROM {db}.big ORDER BY id")
                want_view = [tuple(r) for r in cur.fetchall()]
            got_view = _all_rows(shards, f'SELECT id, x, x2 FROM "{db}"."big"')
            assert got_view == want_view and len(want_view) == 6
            kv = [asyncio.run(_pg_rows(s, f"SELECT count(*) FROM pg_views WHERE schemaname = '{db}' AND "
                                          "viewname = 'kv'")) for s in shards.values()]
            assert sorted(kv) == [[(0,)], [(1,)]]
            for s in shards.values():  # every shard's sequences stand where the primary's do
                [(last, called)] = asyncio.run(_pg_rows(s, f'SELECT last_value, is_called FROM "{db}"."s1"'))
                assert (last, called) == (next_s1, False)
                [(last, called, inc, lo, hi, cycle)] = asyncio.run(_pg_rows(
                    s, f'SELECT s.last_value, s.is_called, increment_by, min_value, max_value, cycle '
                       f"FROM \"{db}\".\"s2\" s, pg_sequences p WHERE schemaname = '{db}' AND sequencename = 's2'"))
                assert (last, called, inc, lo, hi, cycle) == (next_s2, False, 5, 10, 1000, True) and next_s2 == 505
                [(last, called)] = asyncio.run(_pg_rows(s, f'SELECT last_value, is_called FROM "{db}"."s4"'))
                assert (last, called) == (-3, True)  # exhausted on the primary: nextval fails here too
                assert asyncio.run(_pg_rows(s, f"SELECT 1 FROM pg_class WHERE relname IN ('s3', 'gone') AND "
                                               f"relnamespace = '{db}'::regnamespace")) == []
                [(default,)] = asyncio.run(_pg_rows(
                    s, f"SELECT pg_get_expr(adbin, adrelid) FROM pg_attrdef WHERE adrelid = '\"{db}\".t1'::regclass"))
                assert default == f"nextval('{db}.s1'::regclass)"
        finally:
            i.close()
            c.close()
