"""MySQL DDL forms found by client suites run through the ingress, in PostgreSQL's spelling (replicator.pg_ddl,
replicator.pg_sql): clock defaults, FULLTEXT keys, partitioning."""

from __future__ import annotations

import pytest

from dbmux.replicator.pg_sql import translate_statement


@pytest.mark.parametrize(("default", "pg"), [
    ("now(3)", "CURRENT_TIMESTAMP(3)"), ("NOW()", "CURRENT_TIMESTAMP"), ("CURRENT_TIMESTAMP", "CURRENT_TIMESTAMP"),
    ("current_timestamp()", "CURRENT_TIMESTAMP"), ("LOCALTIMESTAMP(2)", "CURRENT_TIMESTAMP(2)"),
    ("localtime", "CURRENT_TIMESTAMP"), ("'2020-01-01 00:00:00'", "'2020-01-01 00:00:00'"),
])
def test_clock_defaults_in_postgresql_spelling(default, pg):
    """SQLAlchemy's suite: ``thecol TIMESTAMP(3) NULL DEFAULT now(3)`` halted a shard (``function now(integer)
    does not exist``); a bare ``localtime`` became a column reference."""
    [st] = translate_statement(f"CREATE TABLE t (id INT PRIMARY KEY, c TIMESTAMP(3) NULL DEFAULT {default})", "d")
    assert st.sql == f'CREATE TABLE "d"."t" ("id" INTEGER PRIMARY KEY, "c" TIMESTAMP(3) DEFAULT {pg} NULL)'


@pytest.mark.parametrize(("mysql", "pg"), [
    ("CREATE FULLTEXT INDEX ix_d ON cattable (description)",
     ['CREATE INDEX "cattable_ix_d" ON "d"."cattable" USING gin '
      '(to_tsvector(\'simple\', coalesce("description", \'\')))']),
    ("CREATE TABLE t (id INT PRIMARY KEY, a TEXT, b VARCHAR(9), FULLTEXT KEY ft (a, b))",
     ['CREATE TABLE "d"."t" ("id" INTEGER PRIMARY KEY, "a" TEXT, "b" VARCHAR(9))',
      'CREATE INDEX "t_ft" ON "d"."t" USING gin (to_tsvector(\'simple\', coalesce("a", \'\') || \' \' || '
      'coalesce("b", \'\')))']),
])
def test_fulltext_keys_as_gin_indexes(mysql, pg):
    """SQLAlchemy's suite halted a shard on ``CREATE FULLTEXT INDEX``: a GIN text-search index of the same
    name (DROP INDEX finds it)."""
    assert [s.sql for s in translate_statement(mysql, "d")] == pg


@pytest.mark.parametrize("partitioning", [
    "PARTITION BY HASH(MONTH(c2)) PARTITIONS 6",
    "PARTITION BY RANGE(YEAR(c2)) SUBPARTITION BY HASH (TO_DAYS (c2)) SUBPARTITIONS 2(PARTITION p0 VALUES LESS "
    "THAN (1990), PARTITION p1 VALUES LESS THAN MAXVALUE)",
])
def test_create_table_partitioning_is_dropped(partitioning):
    """SQLAlchemy's suite halted a shard on ``PARTITION BY``: MySQL's physical layout, like ENGINE."""
    [st] = translate_statement(f"CREATE TABLE `partition` (c1 INTEGER, c2 DATETIME)ENGINE=InnoDB {partitioning}", "d")
    assert st.sql == 'CREATE TABLE "d"."partition" ("c1" INTEGER, "c2" TIMESTAMP(0))'


def test_physical_table_options_are_dropped():
    """SQLAlchemy's suite halted a shard on ``AVG_ROW_LENGTH=3`` (storage hints, like ENGINE)."""
    [st] = translate_statement("CREATE TABLE t (c1 INTEGER)ENGINE=MEMORY DEFAULT CHARSET=utf8mb4 AUTO_INCREMENT=5 "
                               "AVG_ROW_LENGTH=3 PASSWORD='secret' MAX_ROWS=10 STATS_PERSISTENT=0 KEY_BLOCK_SIZE=8 "
                               "COMMENT='Comment types '' \" \\\\ '''' Fun!'", "d")
    assert st.sql == 'CREATE TABLE "d"."t" ("c1" INTEGER)'


def test_zerofill_and_parenthesised_defaults():
    """SQLAlchemy's suite halted the shards on ``TINYINT(4) ZEROFILL`` (sqlglot cannot parse it; MySQL makes a
    ZEROFILL integer UNSIGNED, so an INT ZEROFILL needs BIGINT) and on ``DEFAULT (nextval(s))`` (PostgreSQL:
    ``cannot use column reference in DEFAULT expression``)."""
    [st] = translate_statement("CREATE TABLE m (c2 TINYINT(4) ZEROFILL, c4 INT(11) UNSIGNED ZEROFILL, c6 INT ZEROFILL, "
                               "c7 INT ZEROFILL UNSIGNED, c8 FLOAT ZEROFILL, c5 DECIMAL(10,2) ZEROFILL)", "d")
    assert st.sql == ('CREATE TABLE "d"."m" ("c2" SMALLINT, "c4" BIGINT, "c6" BIGINT, "c7" BIGINT, "c8" REAL, '
                      '"c5" NUMERIC(10,2))')
    [st] = translate_statement("CREATE TABLE t (id INTEGER NOT NULL DEFAULT (nextval(common_sequence)), "
                               "d DATETIME DEFAULT (now()), PRIMARY KEY (id))", "d")
    assert st.sql == ('CREATE TABLE "d"."t" ("id" INTEGER DEFAULT nextval(\'"d"."common_sequence"\') NOT NULL, '
                      '"d" TIMESTAMP(0) DEFAULT CURRENT_TIMESTAMP, PRIMARY KEY ("id"))')


@pytest.mark.parametrize(("text", "mariadb"), [
    ("::1.2.3.4", "::1.2.3.4"), ("::102:304", "::1.2.3.4"), ("::0.0.255.255", "::ffff"), ("::1", "::1"), ("::2", "::2"),
    ("::ffff:0.0.0.1", "::ffff:0.0.0.1"), ("1::ffff:1.2.3.4", "1::ffff:102:304"), ("::", "::"), ("fe80::1", "fe80::1"),
])
def test_an_inet6_address_compares_as_mariadb_prints_it(text, mariadb):
    """``dbmux verify`` reads a PostgreSQL inet as an address and the primary's INET6 as MariaDB's text (the
    expected texts are MariaDB 10.11's ``CAST(text AS INET6)``)."""
    import ipaddress

    from dbmux.replicator.checksum import canonical
    from dbmux.replicator.pg_types import inet_address, inet_binary

    assert canonical(ipaddress.ip_address(text)) == mariadb
    assert inet_address(inet_binary(ipaddress.ip_address(text).packed)) == ipaddress.ip_address(text)
    assert inet_address(inet_binary(text)) == inet_address(inet_binary(text.encode()))


def test_unnamed_foreign_keys_get_innodb_names_that_drop_foreign_key_finds():
    """SQLAlchemy's suite on a PostgreSQL target: ``ALTER TABLE a DROP FOREIGN KEY a_ibfk_1`` halted it
    (``constraint "a_ibfk_1" of relation "a" does not exist``): PostgreSQL had named the key itself."""
    from dbmux.replicator.pg_sql import translate_statement

    (create,) = translate_statement("CREATE TABLE a (id INT PRIMARY KEY, b INT, c INT, FOREIGN KEY (b) REFERENCES b "
                                    "(id), CONSTRAINT kept FOREIGN KEY (c) REFERENCES c (id), FOREIGN KEY (c) "
                                    "REFERENCES c (id))", "d")
    assert 'CONSTRAINT "a_ibfk_1" FOREIGN KEY ("b")' in create.sql and 'CONSTRAINT "kept" FOREIGN KEY' in create.sql
    assert 'CONSTRAINT "a_ibfk_2" FOREIGN KEY ("c")' in create.sql
    (add,) = translate_statement("ALTER TABLE a ADD FOREIGN KEY (b) REFERENCES b (id)", "d")
    # one more than the highest the table has when it runs (InnoDB's rule)
    assert add.sql.startswith("DO $dbmux$") and "starts_with(conname, 'a_ibfk_')" in add.sql
    assert """format('ALTER TABLE "d"."a" ADD CONSTRAINT %I FOREIGN KEY ("b") REFERENCES "d"."b" ("id") DEFERRABLE""" \
        in add.sql
    (named,) = translate_statement("ALTER TABLE a ADD CONSTRAINT x FOREIGN KEY (b) REFERENCES b (id)", "d")
    assert named.sql == ('ALTER TABLE "d"."a" ADD CONSTRAINT "x" FOREIGN KEY ("b") REFERENCES "d"."b" ("id") '
                         "DEFERRABLE INITIALLY IMMEDIATE")
