"""Config: validated once, every error names the key; environment overrides; secrets redacted."""

from __future__ import annotations

import pytest

from dbmux.core.config import load_config, parse_config
from dbmux.core.dsn import Dsn, DsnError, redact_url
from dbmux.core.errors import ConfigError

BASE = {"primary": {"url": "mysql://app:s3cret@db1:3306"},
        "targets": {"replica1": {"url": "mysql://app:s3cret@db2:3306"}}}


def _with(section: str, key: str, value) -> dict:
    raw = {k: dict(v) for k, v in BASE.items()}
    raw.setdefault(section, {})[key] = value
    return raw


@pytest.mark.parametrize("raw, key, fragment", [
    ({}, "primary.url", "is required"),
    (_with("kafka", "bootstrap", "localhost"), "kafka.bootstrap", "host:port"),
    (_with("kafka", "bootstrap", "h:99999"), "kafka.bootstrap", "host:port"),
    (_with("kafka", "topic", "bad topic!"), "kafka.topic", "legal Kafka topic"),
    (_with("kafka", "partitions", 0), "kafka.partitions", "minimum 1"),
    (_with("kafka", "partitions", "3"), "kafka.partitions", "expected an integer"),
    (_with("kafka", "bogus", 1), "kafka.bogus", "unknown key"),
    (_with("kafka", "fragment_bytes", 100), "kafka.fragment_bytes", "minimum 1024"),
    (_with("kafka", "fragment_bytes", 9 * 1024 * 1024), "kafka.fragment_bytes", "use at most 8388608"),
    (_with("ingress", "durability", "maybe"), "ingress.durability", "not one of sync, async"),
    (_with("ingress", "tls_cert", "/nonexistent.pem"), "ingress.tls_key", "set together"),
    (_with("ingress", "listen", "16033"), "ingress.listen", "host:port"),
    (_with("ingress", "listen_backlog", 0), "ingress.listen_backlog", "minimum 1"),
    (_with("replicator", "on_error", "skip"), "replicator.on_error", "halt, dead-letter"),
    (_with("replicator", "batch_max_txns", True), "replicator.batch_max_txns", "expected an integer"),
    (_with("replicator", "max_held_bytes", 1000), "replicator.max_held_bytes", "minimum 65536"),
    ({**BASE, "targets": {"r1": {"url": "mysql://u@h", "max_held_bytes": 10}}}, "targets.r1.max_held_bytes",
     "minimum 65536"),
    (_with("primary", "url", "postgresql://u:p@h/db"), "primary.url", "not allowed here"),
    (_with("primary", "url", "redis://h"), "primary.url", "unsupported URL scheme"),
    (_with("cluster", "name", "Bad-Name"), "cluster.name", "not a valid name"),
    ({**BASE, "nope": {}}, "nope", "unknown section"),
    ({**BASE, "targets": {"r1": {"tables": ["*"]}}}, "targets.r1.url", "is required"),
    ({**BASE, "targets": {"r1": {"url": "mysql://u@h", "shard": "x"}}}, "targets.r1.shard", "no shard map"),
    ({**BASE, "targets": {"R1": {"url": "mysql://u@h"}}}, "targets.R1", "not a valid target name"),
    ({**BASE, "targets": {"r1": {"url": "mysql://u@h?tls=maybe"}}}, "targets.r1.url", "tls='maybe' is not one of"),
    ({**BASE, "targets": {"r1": {"url": "mysql://u@h?tls=required&tls_ca=/nonexistent.pem"}}}, "targets.r1.url",
     "does not exist"),
    (_with("primary", "tls", "sometimes"), "primary.tls", "not one of preferred, required, disabled"),
    ({**BASE, "targets": {"r1": {"url": "mysql://u@h", "tables": "*"}}}, "targets.r1.tables", "list of strings"),
    ({**BASE, "shardmap": {"shards": ["a", "a"]}}, "shardmap.shards", "twice"),
])
def test_errors_name_the_key(raw, key, fragment):
    with pytest.raises(ConfigError) as info:
        parse_config(raw, {})
    assert info.value.key == key
    assert fragment in str(info.value)
    assert "s3cret" not in str(info.value)


def test_defaults_and_derived_values():
    cfg = parse_config(BASE, {})
    assert cfg.topic == "dbmux.local.txn"
    assert cfg.ingress.durability == "sync"
    assert cfg.target("replica1").tables == ("*",)
    assert cfg.on_error(cfg.target("replica1")) == "halt"
    with pytest.raises(ConfigError, match="configured targets: replica1"):
        cfg.target("nope")


@pytest.mark.parametrize("env, attr, expected", [
    ({"DBMUX_KAFKA": "k1:9092"}, ("kafka", "bootstrap"), "k1:9092"),
    ({"DBMUX_KAFKA": "k1:9092", "DBMUX_KAFKA_BOOTSTRAP": "k2:9092"}, ("kafka", "bootstrap"), "k2:9092"),
    ({"DBMUX_KAFKA_PARTITIONS": "4"}, ("kafka", "partitions"), 4),
    ({"DBMUX_INGRESS_DURABILITY": "async"}, ("ingress", "durability"), "async"),
    ({"DBMUX_PRIMARY_URL": "mysql://x:y@other:1"}, ("primary", "url"), "mysql://x:y@other:1"),
    ({"DBMUX_CLUSTER_NAME": "eu1"}, ("cluster", "name"), "eu1"),
])
def test_environment_overrides(env, attr, expected):
    cfg = parse_config(BASE, env)
    assert getattr(getattr(cfg, attr[0]), attr[1]) == expected


def test_target_environment_override_and_list_parsing():
    cfg = parse_config(BASE, {"DBMUX_TARGET_REPLICA1_TABLES": "shop.*, crm.users",
                              "DBMUX_TARGET_REPLICA1_ON_ERROR": "dead-letter"})
    t = cfg.target("replica1")
    assert t.tables == ("shop.*", "crm.users")
    assert cfg.on_error(t) == "dead-letter"


def test_bad_environment_value_names_the_variable():
    with pytest.raises(ConfigError) as info:
        parse_config(BASE, {"DBMUX_KAFKA_PARTITIONS": "many"})
    assert info.value.key == "kafka.partitions (from $DBMUX_KAFKA_PARTITIONS)"


def test_load_config_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.toml", env={})
    bad = tmp_path / "bad.toml"
    bad.write_text("[kafka\nbootstrap=1")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad, env={})
    good = tmp_path / "good.toml"
    good.write_text('[primary]\nurl = "mysql://a:b@h:1"\n[targets.r]\nurl = "postgresql://u:p@h/db"\n')
    cfg = load_config(good, env={})
    assert cfg.target("r").dsn.kind == "postgresql" and cfg.source == str(good)


def test_secrets_never_in_repr():
    cfg = parse_config(BASE, {})
    assert "s3cret" not in repr(cfg)
    assert "s3cret" not in repr(cfg.primary.dsn) and "s3cret" not in str(cfg.primary.dsn)


@pytest.mark.parametrize("url, kind, host, port, user, password, db", [
    ("mysql://u:zz%2Fq@h:3307/db", "mysql", "h", 3307, "u", "zz/q", "db"),
    ("mariadb://u@h", "mysql", "h", 3306, "u", "", None),
    ("postgresql://u:p%40ss@127.0.0.1/x", "postgresql", "127.0.0.1", 5432, "u", "p@ss", "x"),
    ("postgres://u:pw9x@h:1/d", "postgresql", "h", 1, "u", "pw9x", "d"),
])
def test_dsn_parse_and_roundtrip(url, kind, host, port, user, password, db):
    d = Dsn.parse(url)
    assert (d.kind, d.host, d.port, d.user, d.password, d.database) == (kind, host, port, user, password, db)
    assert Dsn.parse(d.url()) == d
    if password:
        assert password not in d.redacted() and "***" in d.redacted()


@pytest.mark.parametrize("url", ["mysql://h:1", "mysql://u@:1", "ftp://u@h", "mysql://u@h:port"])
def test_dsn_rejects(url):
    with pytest.raises(DsnError):
        Dsn.parse(url)


def test_redact_url():
    assert redact_url("mysql://u:pw@h:1/x") == "mysql://u:***@h:1/x"
    assert redact_url("mysql://u@h:1") == "mysql://u@h:1"


def test_primary_tls_reaches_the_primary_urls_unless_a_url_sets_its_own(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    cfg = parse_config({**BASE, "primary": {"url": "mysql://app:s3cret@db1:3306", "tls": "required",
                                            "tls_ca": str(ca),
                                            "binlog_url": "mysql://repl:pw@db1:3306?tls=disabled"}}, {})
    assert dict(cfg.primary.dsn.params) == {"tls": "required", "tls_ca": str(ca)}
    assert dict(cfg.primary.binlog_dsn.params) == {"tls": "disabled", "tls_ca": str(ca)}  # its own tls wins
    assert dict(parse_config(BASE, {}).primary.dsn.params) == {"tls": "preferred"}  # the default
    assert dict(parse_config(BASE, {}).target("replica1").dsn.params) == {}  # targets: only what the URL says
