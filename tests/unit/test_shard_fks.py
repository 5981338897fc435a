"""Foreign keys on shard targets (issue 20 #9/#7): clauses kept only where the parent's rows are all on the shard."""

from __future__ import annotations

import pytest

from dbmux.replicator.shard_fks import drop_foreign_key_if_exists, foreign_keys, without_foreign_keys

HERE = {(None, "ref"), ("shop", "ref")}  # parents whose rows are all on this shard


def keep(fk) -> bool:
    return fk.parent in HERE


@pytest.mark.parametrize("sql, expected", [
    # not a foreign key anywhere: untouched
    ("CREATE TABLE t (id INT PRIMARY KEY)", "CREATE TABLE t (id INT PRIMARY KEY)"),
    ("INSERT INTO t VALUES ('FOREIGN KEY')", "INSERT INTO t VALUES ('FOREIGN KEY')"),
    # a sharded parent: the clause goes, from the comma before it
    ("CREATE TABLE c (id INT PRIMARY KEY, a_id INT, FOREIGN KEY (a_id) REFERENCES a (id) ON DELETE CASCADE)",
     "CREATE TABLE c (id INT PRIMARY KEY, a_id INT)"),
    ("CREATE TABLE c (id INT, a_id INT, CONSTRAINT fk_a FOREIGN KEY (a_id) REFERENCES shop.a(id), KEY (a_id))",
     "CREATE TABLE c (id INT, a_id INT, KEY (a_id))"),
    ("CREATE TABLE c (id INT, a_id INT, CONSTRAINT FOREIGN KEY (a_id) REFERENCES `a` (`id`))",
     "CREATE TABLE c (id INT, a_id INT)"),
    # a reference parent stays; a sharded one beside it goes
    ("CREATE TABLE c (id INT, r INT, a INT, FOREIGN KEY (r) REFERENCES ref (id), FOREIGN KEY (a) REFERENCES a (id))",
     "CREATE TABLE c (id INT, r INT, a INT, FOREIGN KEY (r) REFERENCES ref (id))"),
    # ALTER TABLE: the spec goes; nothing left: None (the shard skips it)
    ("ALTER TABLE c ADD CONSTRAINT fk FOREIGN KEY (a_id) REFERENCES a (id)", None),
    ("ALTER TABLE shop.c ADD FOREIGN KEY (a_id) REFERENCES a (id)", None),
    ("ALTER TABLE c ADD FOREIGN KEY (a_id) REFERENCES a (id), ADD COLUMN x INT", "ALTER TABLE c ADD COLUMN x INT"),
    ("ALTER TABLE c ADD COLUMN x INT, ADD FOREIGN KEY (x) REFERENCES a (id)", "ALTER TABLE c ADD COLUMN x INT"),
    ("ALTER TABLE c ADD FOREIGN KEY (r) REFERENCES shop.ref (id)",
     "ALTER TABLE c ADD FOREIGN KEY (r) REFERENCES shop.ref (id)"),
    # DROP FOREIGN KEY is not a clause to leave out
    ("ALTER TABLE c DROP FOREIGN KEY fk", "ALTER TABLE c DROP FOREIGN KEY fk"),
])
def test_without_foreign_keys(sql, expected):
    assert without_foreign_keys(sql, keep) == expected


def test_foreign_keys_lists_parents():
    assert foreign_keys("CREATE TABLE c (a INT, b INT, FOREIGN KEY (a) REFERENCES x.p (id), "
                        "CONSTRAINT k FOREIGN KEY (b) REFERENCES q (id))") == [("x", "p"), (None, "q")]


@pytest.mark.parametrize("sql, expected", [
    ("ALTER TABLE c DROP FOREIGN KEY fk", "ALTER TABLE c DROP FOREIGN KEY IF EXISTS fk"),
    ("ALTER TABLE c DROP FOREIGN KEY IF EXISTS fk", "ALTER TABLE c DROP FOREIGN KEY IF EXISTS fk"),
    ("ALTER TABLE c DROP FOREIGN KEY f1, DROP FOREIGN KEY f2",
     "ALTER TABLE c DROP FOREIGN KEY IF EXISTS f1, DROP FOREIGN KEY IF EXISTS f2"),
    ("ALTER TABLE c DROP COLUMN x", "ALTER TABLE c DROP COLUMN x"),
])
def test_drop_foreign_key_if_exists(sql, expected):
    assert drop_foreign_key_if_exists(sql) == expected


def test_foreign_key_columns_are_read():
    """The columns of each FOREIGN KEY clause and the parent's it references (a child keyed like its
    parent lives on the parent's shard: the router keeps such keys)."""
    from dbmux.replicator.shard_fks import ForeignKey

    seen = []
    without_foreign_keys("CREATE TABLE manager (name VARCHAR(20) PRIMARY KEY, a INT, b INT, "
                         "CONSTRAINT fk FOREIGN KEY (`Name`) REFERENCES person (name) ON UPDATE CASCADE, "
                         "FOREIGN KEY(a, b) REFERENCES shop.pair (x, y))", lambda fk: seen.append(fk) or True)
    assert seen == [ForeignKey((None, "person"), ("name",), ("name",)),
                    ForeignKey(("shop", "pair"), ("a", "b"), ("x", "y"))]
