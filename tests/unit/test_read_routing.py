"""Read routing's pure parts (issue 15): the statement rules, the login math, the session's SET rules,
positions and table filters, configuration."""

from __future__ import annotations

import hashlib

import pytest
from pymysql._auth import scramble_native_password

from dbmux.core.config import parse_config
from dbmux.core.errors import ConfigError
from dbmux.ingress import read_rules as R
from dbmux.ingress.read_router import ReplicaState, covers, merge
from dbmux.ingress.read_rules import judge_read
from dbmux.ingress.read_session import _set_names
from dbmux.ingress.replica_auth import native_response, stage1, stored_hash
from dbmux.ingress.replica_link import Settings

# (statement, reason it stays on the primary -- "" when a replica may answer it, tables it reads)
RULES = [
    ("SELECT c FROM sbtest1 WHERE id = 5", "", ("sbtest1",)),
    ("SELECT c FROM sbtest1 WHERE id = ?", "", ("sbtest1",)),
    ("select a.x, b.y from shop.a join shop.b on a.id = b.id", "", ("shop.a", "shop.b")),
    ("SELECT x FROM t UNION ALL SELECT y FROM u", "", ("t", "u")),
    ("WITH c AS (SELECT id FROM t) SELECT * FROM c JOIN u USING (id)", "", ("t", "u")),
    ("SELECT (SELECT MAX(v) FROM t) AS m", "", ("t",)),
    ("SELECT NOW(), COUNT(*), CONCAT(a, 'x') FROM t", "", ("t",)),
    ("SELECT * FROM t WHERE s = 'it''s @x and @@y'", "", ("t",)),  # a literal is no variable
    ("/* app */ SELECT a FROM t", "", ("t",)),
    ("INSERT INTO t VALUES (1)", R.NOT_A_READ, ()),
    ("UPDATE t SET a = 1", R.NOT_A_READ, ()),
    ("SET @a = 1", R.NOT_A_READ, ()),
    ("CALL p()", R.NOT_A_READ, ()),
    ("SELECT * FROM t FOR UPDATE", R.LOCKING_READ, ()),
    ("SELECT * FROM t FOR SHARE", R.LOCKING_READ, ()),
    ("SELECT * FROM t LOCK IN SHARE MODE", R.LOCKING_READ, ()),
    ("SELECT a INTO @x FROM t", R.LOCKING_READ, ()),
    ("SELECT a FROM t INTO OUTFILE '/tmp/x'", R.LOCKING_READ, ()),
    ("SELECT GET_LOCK('x', 1)", R.LOCKING_READ, ()),
    ("SELECT NEXTVAL(s)", R.NOT_A_READ, ()),
    ("SHOW TABLES", R.NOT_SELECT, ()),
    ("DESCRIBE t", R.NOT_SELECT, ()),
    ("EXPLAIN SELECT * FROM t", R.NOT_SELECT, ()),
    ("SELECT a FROM t WHERE b = @x", R.VARIABLES, ()),
    ("SELECT @@sql_mode", R.VARIABLES, ()),
    ("SELECT a FROM t WHERE @@session.autocommit", R.VARIABLES, ()),
    ("SELECT @r := a FROM t", R.LOCKING_READ, ()),  # (classify: := assigns; primary_only)
    ("SELECT SQL_CALC_FOUND_ROWS a FROM t LIMIT 1", R.FOUND_ROWS, ()),
    ("SELECT FOUND_ROWS()", R.FUNCTION, ()),
    ("SELECT LAST_INSERT_ID() FROM t", R.FUNCTION, ()),
    ("SELECT ROW_COUNT() FROM t", R.FUNCTION, ()),
    ("SELECT CONNECTION_ID() FROM t", R.FUNCTION, ()),
    ("SELECT VERSION() FROM t", R.FUNCTION, ()),
    ("SELECT my_stored_function(a) FROM t", R.FUNCTION, ()),
    ("SELECT * FROM mysql.user", R.SYSTEM_SCHEMA, ()),
    ("SELECT * FROM information_schema.tables", R.SYSTEM_SCHEMA, ()),
    ("SELECT * FROM performance_schema.threads", R.SYSTEM_SCHEMA, ()),
    ("SELECT 1", R.NO_TABLES, ()),
    ("SELECT 1 FROM dual", R.NO_TABLES, ()),
    ("SELECT NOW()", R.NO_TABLES, ()),
]


@pytest.mark.parametrize(("sql", "reason", "tables"), RULES)
def test_statement_rules(sql, reason, tables):
    route = judge_read(sql)
    assert (route.replica, route.reason) == (not reason, reason)
    if not reason:
        assert sorted(route.tables) == sorted(tables)


def test_verdicts_do_not_depend_on_literals():
    """Cached per digest: the same shape with other literals gets the same verdict, and the tables of the
    statement it was asked for."""
    first = judge_read("SELECT v FROM k WHERE id = 1 AND s = 'a'")
    again = judge_read("SELECT v FROM k WHERE id = 2 AND s = 'zzz'")
    assert first == again and first.replica


# ---- logging in as the client's user ------------------------------------------------------------------
@pytest.mark.parametrize("password", [b"dbmux-app-secret", b"x", "pässwörd".encode(), b"\x00\xff" * 30])
def test_the_secret_from_a_native_login_answers_any_other_challenge(password):
    stored = hashlib.sha1(hashlib.sha1(password).digest()).digest()
    hash_text = "*" + stored.hex().upper()
    primary_scramble, replica_scramble = b"A" * 20, bytes(range(20))
    client_response = scramble_native_password(password, primary_scramble)  # what the client sends (PyMySQL's)
    secret = stage1(primary_scramble, client_response, stored_hash(hash_text))
    assert secret == hashlib.sha1(password).digest()
    assert native_response(secret, replica_scramble) == scramble_native_password(password, replica_scramble)


def test_a_response_that_does_not_match_the_stored_hash_gives_nothing():
    stored = stored_hash("*" + hashlib.sha1(hashlib.sha1(b"right").digest()).hexdigest())
    assert stored is not None
    assert stage1(b"s" * 20, scramble_native_password(b"wrong", b"s" * 20), stored) is None
    assert stage1(b"s" * 20, b"\x01" * 32, stored) is None  # another plugin's (caching_sha2) response


@pytest.mark.parametrize("text", ["", "invalid", "*ZZ", "abc", "*" + "0" * 39, "$A$005$..."])
def test_stored_hash_is_only_a_native_password_hash(text):
    assert stored_hash(text) is None


# ---- the session's SET statements ------------------------------------------------------------------------
@pytest.mark.parametrize(("sql", "names"), [
    ("SET NAMES utf8mb4", ["NAMES"]),
    ("SET NAMES utf8mb4 COLLATE utf8mb4_bin", ["NAMES"]),
    ("SET CHARACTER SET latin1", ["CHARACTER"]),
    ("SET SESSION sql_mode = 'ANSI', time_zone = '+00:00'", ["SQL_MODE", "TIME_ZONE"]),
    ("SET @@session.sql_select_limit = 5", ["SQL_SELECT_LIMIT"]),
    ("SET @a = 1, @b = (SELECT 1, 2)", ["@", "@"]),
    ("SET LOCAL div_precision_increment = 8", ["DIV_PRECISION_INCREMENT"]),
    ("SET autocommit = 0", ["AUTOCOMMIT"]),
    ("SET ROLE app_reader", ["ROLE"]),
    ("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED", ["TRANSACTION"]),
    ("SET max_statement_time = IF(@x, 1, 2), @y = 3", ["MAX_STATEMENT_TIME", "@"]),
])
def test_set_statement_names(sql, names):
    assert _set_names(sql) == names


def test_settings_carried_to_a_replica():
    s = Settings("ANSI_QUOTES,STRICT_TRANS_TABLES", "+03:00", "latin1", "latin1", "latin1_swedish_ci", None)
    assert s.set_statement() == (
        "SET SESSION sql_mode = 'ANSI_QUOTES,STRICT_TRANS_TABLES', time_zone = '+03:00', "
        "character_set_client = 'latin1', character_set_connection = 'latin1', "
        "collation_connection = 'latin1_swedish_ci', character_set_results = NULL")
    assert "'it''s'" in Settings("", "it's", None, None, None, "utf8mb4").set_statement()


# ---- positions, table filters -----------------------------------------------------------------------------
@pytest.mark.parametrize(("applied", "need", "ok"), [
    ({"0": 10}, {}, True),
    ({"0": 10}, {"0": 10}, True),
    ({"0": 10}, {"0": 11}, False),
    ({"0": 10}, {"0": 5, "1": 1}, False),
    ({"0": 10, "1": 3}, {"0": 5, "1": 3}, True),
    ({}, {"0": 1}, False),
])
def test_covers(applied, need, ok):
    assert covers(applied, need) is ok


def test_merge_raises_each_domain():
    floor = {"0": 5, "1": 9}
    merge(floor, {"0": 7, "1": 2, "2": 1})
    assert floor == {"0": 7, "1": 9, "2": 1}


PRIMARY = {"url": "mysql://u:p@h0:3306"}


def _config(**ingress) -> dict:
    return {"primary": PRIMARY, "ingress": ingress, "targets": {
        "r1": {"url": "mysql://u:p@h1:3306", "tables": ["shop.*"]},
        "r2": {"url": "mysql://u:p@h2:3306", "read_weight": 3},
        "pg": {"url": "postgresql://u:p@h3:5432/db"},
        "off": {"url": "mysql://u:p@h4:3306", "serve_reads": False},
    }}


def test_which_targets_serve_reads_and_their_table_filters():
    cfg = parse_config(_config(reads="replicas"), {})
    states = {t.name: ReplicaState(t) for t in cfg.targets if t.reads_here}
    assert set(states) == {"r1", "r2"} and states["r2"].weight == 3
    assert states["r1"].holds(["shop.orders", "items"], "shop")
    assert not states["r1"].holds(["items"], "other")
    assert not states["r1"].holds(["items"], None)
    assert states["r2"].holds(["anything.at_all", "x"], None)


@pytest.mark.parametrize(("raw", "env", "key"), [
    ({"ingress": {"reads": "replica"}}, {}, "ingress.reads"),
    ({"ingress": {"read_consistency": "strong"}}, {}, "ingress.read_consistency"),
    ({}, {"DBMUX_INGRESS_READ_WAIT_MS": "-1"}, "ingress.read_wait_ms"),
    ({"ingress": {"reads": "replicas"}}, {}, "ingress.reads"),  # no target can serve reads
    ({"ingress": {"reads": "replicas"}, "targets": {"pg": {"url": "postgresql://u:p@h/db"}}}, {}, "ingress.reads"),
    ({"targets": {"r": {"url": "mysql://u:p@h:1", "read_weight": 0}}}, {}, "targets.r.read_weight"),
])
def test_bad_read_routing_config_names_the_key(raw, env, key):
    with pytest.raises(ConfigError) as err:
        parse_config({"primary": PRIMARY, **raw}, env)
    assert key in str(err.value)


def test_read_routing_from_the_environment():
    cfg = parse_config(_config(), {"DBMUX_INGRESS_READS": "replicas", "DBMUX_INGRESS_READ_CONSISTENCY": "causal"})
    assert (cfg.ingress.reads, cfg.ingress.read_consistency) == ("replicas", "causal")
