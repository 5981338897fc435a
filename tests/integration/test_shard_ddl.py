"""Shard targets and DDL (issue 20 #9 / deliver #7): foreign keys across shards are not created where
the parent's rows are not, and DROP TABLE reaches every shard that has the table, also when the
primary dropped it long before the replicator reads the event.

Reproduced before: two PostgreSQL shards halted on the child's foreign key (``Key (a_id)=(1) is not
present``: its parent row lives on the other shard), and a shard skipped the DROP TABLE of a table the
primary no longer had ("placed as unsharded") and then halted on the re-created table ("relation
already exists")."""

from __future__ import annotations

import signal
import uuid

from .conftest import (
    assert_targets_equal,
    pipeline_config,
    start_binlog_reader,
    start_ingress,
    stop_ingress,
    stop_processes,
    verify_until_equal,
)
from .test_pg_spatial_uuid import _pg_rows
from .test_replicator_mysql import _conn, _start_replicator
from .test_shard_targets import _drop_history, _pg_keys, shard_pipeline, two_shards


def test_foreign_keys_and_drop_table_on_pg_shards(stack, tmp_path):
    import asyncio

    ing = start_ingress(stack, tmp_path)
    db = f"sfk_{uuid.uuid4().hex[:8]}"
    tag = uuid.uuid4().hex[:6]  # target names of its own: a target's status row outlives a test's topic
    shards = {f"fka{tag}": stack.shards[0], f"fkb{tag}": stack.shards[1]}
    _drop_history(stack.primary, list(shards.values()))
    cfg = pipeline_config(tmp_path / "shards.toml", stack, ing.topic, shards, tables=f"{db}.*", shard="{name}",
                          extra=f'[shardmap]\nshards = ["fka{tag}", "fkb{tag}"]\n'
                                f'reference_tables = ["{db}.countries"]\n')
    procs = [start_binlog_reader(cfg, tmp_path / "binlog.log")]
    try:
        c = _conn(ing.dsn(stack.primary))
        with c.cursor() as cur:
            cur.execute(f"CREATE DATABASE {db}")
            cur.execute(f"USE {db}")
            cur.execute("CREATE TABLE countries (code CHAR(2) PRIMARY KEY, name VARCHAR(40))")
            cur.execute("CREATE TABLE a (id INT PRIMARY KEY, v INT NOT NULL)")
            cur.execute("CREATE TABLE c (id INT PRIMARY KEY, a_id INT NOT NULL, country CHAR(2) NOT NULL, "
                        "CONSTRAINT fk_a FOREIGN KEY (a_id) REFERENCES a (id), "
                        "CONSTRAINT fk_country FOREIGN KEY (country) REFERENCES countries (code))")
            cur.execute("INSERT INTO countries VALUES ('de', 'Germany'), ('fr', 'France')")
            cur.execute("INSERT INTO a VALUES " + ", ".join(f"({i}, {i * 10})" for i in range(1, 41)))
            # each child points at a parent keyed otherwise: many sit on the other shard
            cur.execute("INSERT INTO c VALUES " + ", ".join(f"({i}, {41 - i}, '{'de' if i % 2 else 'fr'}')"
                                                              for i in range(1, 41)))
            cur.execute("ALTER TABLE c DROP FOREIGN KEY fk_a")
            cur.execute("CREATE TABLE g (id INT PRIMARY KEY, a_id INT)")
            cur.execute("ALTER TABLE g ADD CONSTRAINT fk_ga FOREIGN KEY (a_id) REFERENCES a (id)")
            cur.execute("INSERT INTO g VALUES (1, 40), (2, 1)")
            cur.execute("DROP TABLE g")
            cur.execute("DROP TABLE c")
            cur.execute("DROP TABLE a")
            cur.execute("CREATE TABLE a (id INT PRIMARY KEY, v INT NOT NULL)")  # re-created: every shard again
            cur.execute("INSERT INTO a VALUES " + ", ".join(f"({i}, {i})" for i in range(1, 21)))
        c.close()
        for name in shards:  # started after the workload: the primary no longer has c, g or the old a
            procs.append(_start_replicator(cfg, name, tmp_path / f"{name}.log"))
        res = verify_until_equal(cfg, 300)
        logs = "".join((tmp_path / f"{n}.log").read_text() for n in shards)
        assert res.returncode == 0 and "all 2 targets equal" in res.stdout, res.stdout + res.stderr + logs[-4000:]
        assert "HALTED" not in logs
        held = {name: asyncio.run(_pg_keys(dsn, db, "a")) for name, dsn in shards.items()}
        first, second = held.values()
        assert first and second and not first & second
        assert first | second == set(range(1, 21))
    finally:
        stop_processes(procs)
        stop_ingress(ing)
        with _conn(stack.primary).cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {db}")
        _drop_history(stack.primary, list(shards.values()))


def test_ansi_quoted_tables_created_and_dropped_again_on_pg_shards(stack, tmp_path):
    """PyMySQL's MySQLdb capability tests: a session in sql_mode ANSI creates ``"tb<id>"`` (double quotes
    name it), fills it with parameters (a BLOB too), drops it, and creates a table of the same name with
    other columns, again and again. Shards halted: ``table "tb..." does not exist`` on a DROP, and a
    value of the old column type for the new one (a DROP that had not reached that shard). REAL is FLOAT
    in such a session (REAL_AS_FLOAT), DOUBLE otherwise."""
    db, shards, topic, cfg, logs = two_shards(stack, tmp_path, "ans")
    ing = start_ingress(stack, tmp_path, DBMUX_KAFKA_TOPIC=topic)
    procs = [start_binlog_reader(cfg, logs["binlog"])]
    try:
        c = _conn(ing.dsn(stack.primary))
        with c.cursor() as cur:
            cur.execute(f"CREATE DATABASE {db}")
            cur.execute(f"USE {db}")
            cur.execute("SET SESSION sql_mode = 'ANSI,STRICT_TRANS_TABLES,TRADITIONAL'")
            blob = bytes(range(256)) * 4
            for round_, cols in enumerate((("col1 INT", "col2 VARCHAR(255)"), ("col1 INT", "col2 BLOB"),
                                           ("col1 INT", "col2 TINYINT"), ("col1 CHAR(1)", "col2 BLOB"))):
                # backquoted, as PyMySQL's tests write it; the server logs the DROP as DROP TABLE "tb0"
                cur.execute(f'CREATE TABLE `tb{round_ % 2}` ({", ".join(cols)}) ENGINE=INNODB CHARACTER SET UTF8')
                rows = [(i if "INT" in cols[0] else chr(65 + i),
                         blob if "BLOB" in cols[1] else (i if "TINYINT" in cols[1] else f"v{i}")) for i in range(10)]
                cur.executemany(f'INSERT INTO `tb{round_ % 2}` VALUES (%s, %s)', rows)
                c.commit()
                cur.execute(f'SELECT COUNT(*) FROM "tb{round_ % 2}"')
                assert cur.fetchone() == (10,)
                if round_ < 3:
                    cur.execute(f'DROP TABLE `tb{round_ % 2}`')
            cur.execute('CREATE TABLE "keyed" (id INT PRIMARY KEY, "real" REAL)')  # REAL: FLOAT under ANSI
            cur.execute('INSERT INTO "keyed" VALUES (1, 0.1), (2, 1e38)')
            c.commit()
        c.close()
        # started after the workload, as a lagging replicator: the tables (keyless: on one shard) are gone
        # from the primary by the time their DROP TABLE is routed
        procs += [_start_replicator(cfg, n, logs[n]) for n in shards]
        assert_targets_equal(cfg, logs, 2, 180)
    finally:
        stop_processes(procs)
        stop_ingress(ing)
        with _conn(stack.primary).cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {db}")
        _drop_history(stack.primary, list(shards.values()))


def test_a_foreign_key_to_a_table_created_while_the_shards_run(stack, tmp_path):
    """SQLAlchemy's suite: its fixtures create ``users`` and then ``addresses`` (``FOREIGN KEY(user_id)
    REFERENCES users (id)``) back to back while the shard replicators run, before any row makes them load
    the source schema again. The default shard took the unknown parent for a keyless table of its own,
    kept the foreign key and halted on the first address whose user lives on the other shard."""
    import asyncio

    with shard_pipeline(stack, tmp_path, "fkn") as (db, shards, cfg, logs, ing):
        c = _conn(ing.dsn(stack.primary))
        try:
            with c.cursor() as cur:
                cur.execute(f"CREATE DATABASE {db}")
                cur.execute(f"USE {db}")
                cur.execute("CREATE TABLE users (id INTEGER NOT NULL AUTO_INCREMENT, name VARCHAR(30), "
                            "PRIMARY KEY (id))")
                cur.execute("CREATE TABLE addresses (id INTEGER NOT NULL AUTO_INCREMENT, user_id INTEGER, "
                            "email VARCHAR(50), PRIMARY KEY (id), FOREIGN KEY(user_id) REFERENCES users (id))")
                cur.execute("INSERT INTO users (id, name) VALUES " + ", ".join(f"({i}, 'u{i}')" for i in range(1, 21)))
                cur.execute("INSERT INTO addresses (id, user_id, email) VALUES "
                            + ", ".join(f"({i}, {21 - i}, 'a{i}')" for i in range(1, 21)))
                # natural keys (SQLAlchemy's person/manager): a child keyed like its parent lives on its
                # parent's shard, which keeps the key and runs the cascade the binlog does not carry
                cur.execute("CREATE TABLE person (name VARCHAR(20) PRIMARY KEY)")
                cur.execute("CREATE TABLE manager (name VARCHAR(20) PRIMARY KEY, FOREIGN KEY (name) REFERENCES "
                            "person (name) ON UPDATE CASCADE ON DELETE CASCADE)")
                cur.execute("INSERT INTO person VALUES " + ", ".join(f"('p{i}')" for i in range(10)))
                cur.execute("INSERT INTO manager VALUES " + ", ".join(f"('p{i}')" for i in range(10)))
                cur.execute("DELETE FROM person WHERE name IN ('p1', 'p2', 'p3', 'p4')")
                cur.execute("INSERT INTO person VALUES ('p1')")
                cur.execute("INSERT INTO manager VALUES ('p1')")  # (a shard still holding manager p1 halted)
            c.commit()
            assert_targets_equal(cfg, logs, 2)
            held = [asyncio.run(_pg_keys(dsn, db, "addresses")) for dsn in shards.values()]
            assert all(held) and set.union(*held) == set(range(1, 21))
        finally:
            c.close()


def test_a_split_insert_into_a_table_dropped_since_reaches_lagging_shards(stack, tmp_path):
    """SQLAlchemy's suite: a multi-row INSERT with explicit ids into an AUTO_INCREMENT table, split between
    the shards, into a table the primary had dropped by the time the shards applied it (a DDL applied in
    between had reloaded the source schema). The applier judged (and translated) the whole statement,
    each shard applied its part, which missed that translation and was translated again against that
    schema: ``INSERT generating auto-increment ids without a known AUTO_INCREMENT column``, both shards
    halted. Each shard's part is judged now, and its translation kept for the apply."""
    db, shards, topic, cfg, logs = two_shards(stack, tmp_path, "spl")
    procs = [start_binlog_reader(cfg, logs["binlog"])]
    ing = start_ingress(stack, tmp_path, DBMUX_KAFKA_TOPIC=topic)
    try:
        c = _conn(ing.dsn(stack.primary))
        c.autocommit(True)
        with c.cursor() as cur:
            cur.execute(f"CREATE DATABASE {db}")
            cur.execute(f"USE {db}")
            cur.execute("CREATE TABLE items (id INTEGER NOT NULL AUTO_INCREMENT, d VARCHAR(30), PRIMARY KEY (id))")
        shard_procs = [_start_replicator(cfg, n, logs[n]) for n in shards]  # their schema has items
        procs += shard_procs
        assert_targets_equal(cfg, logs, 2)
        for p in procs:  # lagging shards; the ingress's copies first in the topic: statements applied
            p.send_signal(signal.SIGSTOP)
        try:
            with c.cursor() as cur:
                cur.execute("CREATE TABLE later (id INT PRIMARY KEY)")  # applied: the schema reloaded, no items
                cur.execute("INSERT INTO items (id, d) VALUES " + ", ".join(f"({i}, 'item {i}')" for i in range(1, 9)))
                cur.execute("DROP TABLE items")
        finally:
            for p in procs:
                p.send_signal(signal.SIGCONT)
        c.close()
        assert_targets_equal(cfg, logs, 2)
    finally:
        stop_ingress(ing)
        stop_processes(procs)
        with _conn(stack.primary).cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {db}")
        _drop_history(stack.primary, list(shards.values()))


def test_a_natural_key_change_moves_cascaded_children_to_the_new_shard(stack, tmp_path):
    """SQLAlchemy's suite (shard_a halted at its GTID 3960): ``UPDATE person SET name = ...`` where
    ``manager`` and ``owner`` follow ``person``'s name by ON UPDATE CASCADE. The binlog carries only the
    person row; manager and owner live with it (their foreign keys kept) and must move with it when the
    new name belongs to the other shard. The shard that had them halted on the foreign key (``"person"
    ... is still referenced from table "manager"``), the other never got them."""
    import asyncio

    with shard_pipeline(stack, tmp_path, "mvk") as (db, shards, cfg, logs, ing):
        c = _conn(ing.dsn(stack.primary))
        names = [f"p{i}" for i in range(12)]
        try:
            with c.cursor() as cur:
                cur.execute(f"CREATE DATABASE {db}")
                cur.execute(f"USE {db}")
                cur.execute("CREATE TABLE person (name VARCHAR(20) PRIMARY KEY, type VARCHAR(20))")
                cur.execute("CREATE TABLE manager (name VARCHAR(20) PRIMARY KEY, paperwork VARCHAR(30), "
                            "salary DECIMAL(10, 2), hired DATETIME(6), photo BLOB, FOREIGN KEY (name) "
                            "REFERENCES person (name) ON UPDATE CASCADE ON DELETE CASCADE)")
                cur.execute("CREATE TABLE owner (name VARCHAR(20) PRIMARY KEY, owner_name VARCHAR(20), FOREIGN KEY "
                            "(name) REFERENCES manager (name) ON UPDATE CASCADE ON DELETE CASCADE)")
                for n in names:
                    cur.execute("INSERT INTO person VALUES (%s, 'owner')", (n,))
                    cur.execute("INSERT INTO manager VALUES (%s, %s, 1234.5, '2026-12-06 10:11:12.123456', %s)",
                                (n, f"paper {n}", bytes([0, 255, 10]) + n.encode()))
                    cur.execute("INSERT INTO owner VALUES (%s, 'dog')", (n,))
            c.commit()
            assert_targets_equal(cfg, logs, 2)
            before = {s: asyncio.run(_pg_names(dsn, db, "owner")) for s, dsn in shards.items()}
            with c.cursor() as cur:
                cur.execute("UPDATE manager SET paperwork = 'changed first' WHERE name = 'p0'")  # then moved
                for n in names:
                    cur.execute("UPDATE person SET name = %s WHERE name = %s", (n.replace("p", "q"), n))
            c.commit()
            assert_targets_equal(cfg, logs, 2)
            after = {s: asyncio.run(_pg_names(dsn, db, "owner")) for s, dsn in shards.items()}
            moved = [n for n in names for s in shards if n in before[s] and n.replace("p", "q") not in after[s]]
            assert moved, (before, after)  # some names changed shards (else this test proves nothing)
            assert sorted(set.union(*after.values())) == sorted(n.replace("p", "q") for n in names)
        finally:
            c.close()


async def _pg_names(dsn, db: str, table: str) -> set[str]:
    return {r[0] for r in await _pg_rows(dsn, f'SELECT name FROM "{db}"."{table}"')}


def test_rows_of_a_table_re_created_without_a_key_are_placed_as_keyless(stack, tmp_path):
    """SQLAlchemy's suite (shard_a halted at its GTID 5518: ``shard-key column 'id' is not in its
    image``): ``t1`` had a primary key ``id`` when the shard's router loaded the schema, then was dropped
    and created again as ``t1 (x INTEGER)``. Its row events said nothing of a key (unknown), so the router
    took the key from its schema -- the stale one. The binlog's table map says the table has none."""
    with shard_pipeline(stack, tmp_path, "kl") as (db, shards, cfg, logs, ing):
        d = _conn(stack.primary)
        try:
            with d.cursor() as cur:
                cur.execute(f"CREATE DATABASE {db}")
                cur.execute(f"CREATE TABLE {db}.t1 (id INT PRIMARY KEY, x INT)")
                cur.execute(f"INSERT INTO {db}.t1 VALUES (1, 1), (2, 2)")
            d.commit()
            assert_targets_equal(cfg, logs, 2)  # the routers know t1 keyed by id now
            with d.cursor() as cur:
                cur.execute(f"DROP TABLE {db}.t1")
                cur.execute(f"CREATE TABLE {db}.t1 (x INTEGER)")
                cur.execute(f"INSERT INTO {db}.t1 VALUES (5), (6)")
                cur.execute(f"UPDATE {db}.t1 SET x = 7 WHERE x = 6")
            d.commit()
            assert_targets_equal(cfg, logs, 2)
        finally:
            d.close()
