"""compose/docker-compose.yml, compose/dbmux.toml and the config schema must agree.

Pure and fast: the YAML and TOML are parsed and checked against ``dbmux.core.config`` and the stack defaults;
nothing is started. Every check here fails when one side drifts (a renamed config key, a moved port, a
target without a replicator, a URL naming a host that is not a service).
"""

from __future__ import annotations

import dataclasses
import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from dbmux.core.config import Config, TargetConfig, load_config, parse_config
from dbmux.core.dsn import Dsn
from dbmux.stack.layout import DEFAULT_PORTS, Layout
from dbmux.stack.pipeline_config import render_pipeline_config

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_DIR = ROOT / "compose"
COMPOSE_FILE = COMPOSE_DIR / "docker-compose.yml"
PIPELINE_FILE = COMPOSE_DIR / "dbmux.toml"
CONFIG_MOUNT = "/etc/dbmux/dbmux.toml"

COMPOSE: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
RAW_PIPELINE: dict[str, Any] = tomllib.loads(PIPELINE_FILE.read_text())
PIPELINE: Config = load_config(PIPELINE_FILE, env={})
TARGET_NAMES = tuple(RAW_PIPELINE.get("targets", {}))

DBMUX_SERVICES = sorted(s for s in SERVICES if s.startswith("dbmux-"))
REPLICATE_PREFIX = "dbmux-replicate-"

# The port each server image listens on inside the network (the images' defaults; the compose file
# must not move them, see test_container_ports_are_the_image_defaults).
IMAGE_PORTS = {"mysql": 3306, "postgres": 5432}

# service -> (key of dbmux.stack.layout.DEFAULT_PORTS, container port the host port maps to)
PUBLISHED = {
    "kafka": ("kafka_port", 19092),
    "mysql-primary": ("primary_port", 3306),
    "mysql-replica1": ("replica1_port", 3306),
    "mysql-replica2": ("replica2_port", 3306),
    "pg-shard-a": ("shard_a_port", 5432),
    "pg-shard-b": ("shard_b_port", 5432),
    "dbmux-ingress": ("ingress_port", 16033),
}


# -- helpers --------------------------------------------------------------------------------------
def environment(service: str) -> dict[str, str]:
    """A service's environment as a dict (compose allows a mapping or a list of KEY=VALUE)."""
    env = SERVICES[service].get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    for key, value in env.items():
        assert isinstance(value, str), f"{service}: quote {key}'s value (got {value!r})"
    return dict(env)


def command(service: str) -> list[str]:
    cmd = SERVICES[service].get("command") or []
    return shlex.split(cmd) if isinstance(cmd, str) else [str(c) for c in cmd]


def flags(service: str) -> dict[str, str]:
    """mysqld ``--name=value`` flags of a service; mysqld treats '-' and '_' alike in names."""
    out = {}
    for token in command(service):
        assert token.startswith("--"), f"{service}: unexpected command token {token!r}"
        name, _, value = token[2:].partition("=")
        out[name.replace("_", "-").lower()] = value
    return out


def published_ports(service: str) -> list[tuple[int, int]]:
    """(host port, container port) pairs of the short ``[ip:]host:container`` syntax."""
    pairs = []
    for spec in SERVICES[service].get("ports") or []:
        parts = str(spec).split("/")[0].split(":")
        assert len(parts) in (2, 3), f"{service}: publish with an explicit host port, got {spec!r}"
        pairs.append((int(parts[-2]), int(parts[-1])))
    return pairs


def sections() -> dict[str, type]:
    """The single sections of Config and their dataclasses (everything but targets/source)."""
    default = Config()
    return {f.name: type(getattr(default, f.name)) for f in dataclasses.fields(Config)
            if f.name not in ("targets", "source")}


def keys_of(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)} - {"name"}


def override_path(env_name: str, target_names: tuple[str, ...]) -> tuple[str, ...]:
    """Map an environment variable to the Config attribute it overrides, by dbmux.core.config's rule.

    ``("kafka", "bootstrap")`` for ``DBMUX_KAFKA_BOOTSTRAP`` (and the alias ``DBMUX_KAFKA``),
    ``("targets", "replica1", "url")`` for ``DBMUX_TARGET_REPLICA1_URL``. Raises KeyError for a name
    the loader would silently ignore.
    """
    if env_name == "DBMUX_KAFKA":
        return ("kafka", "bootstrap")
    if env_name.startswith("DBMUX_TARGET_"):
        rest = env_name[len("DBMUX_TARGET_"):]
        for name in sorted(target_names, key=len, reverse=True):
            prefix = name.upper() + "_"
            if rest.startswith(prefix) and rest[len(prefix):].lower() in keys_of(TargetConfig):
                if rest[len(prefix):] == rest[len(prefix):].upper():
                    return ("targets", name, rest[len(prefix):].lower())
        raise KeyError(f"{env_name} names no key of any configured target {list(target_names)}")
    for section, cls in sections().items():
        prefix = f"DBMUX_{section.upper()}_"
        key = env_name[len(prefix):]
        if env_name.startswith(prefix) and key == key.upper() and key.lower() in keys_of(cls):
            return (section, key.lower())
    raise KeyError(f"{env_name} is not an override dbmux.core.config accepts")


def resolve(cfg: Config, path: tuple[str, ...]) -> Any:
    if path[0] == "targets":
        return getattr(cfg.target(path[1]), path[2])
    return getattr(getattr(cfg, path[0]), path[1])


def as_env(value: Any) -> str:
    """The environment spelling of a config value (lists are comma-separated)."""
    if isinstance(value, tuple):
        return ",".join(map(str, value))
    if isinstance(value, dict):  # name -> list, e.g. shardmap.tables: "db.t=a,b;db.u=c"
        return ";".join(f"{k}={','.join(v)}" for k, v in value.items())
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def dbmux_env(service: str) -> dict[str, str]:
    return {k: v for k, v in environment(service).items() if k.startswith("DBMUX_")}


def config_of(service: str) -> Config:
    """The Config the service's process loads: compose/dbmux.toml plus the service's environment."""
    return parse_config(RAW_PIPELINE, environment(service), source=f"{service}")


def hostport(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    return host, int(port)


def container_port(service: str, host: str) -> int:
    """The port a server service listens on inside the compose network."""
    svc = SERVICES[service]
    image = svc["image"].split(":")[0]
    if image == "apache/kafka":
        env = environment(service)
        names = dict(listener.split("://", 1) for listener in env["KAFKA_ADVERTISED_LISTENERS"].split(","))
        listening = dict(listener.split("://", 1) for listener in env["KAFKA_LISTENERS"].split(","))
        for name, address in names.items():
            if hostport(address)[0] == host:
                return hostport(listening[name])[1]
        raise AssertionError(f"kafka advertises no listener as {host!r}: {names}")
    assert image in IMAGE_PORTS, f"{service}: no known container port for image {image!r}"
    return IMAGE_PORTS[image]


def config_urls(cfg: Config) -> dict[str, str]:
    urls = {"primary.url": cfg.primary.url, "primary.binlog_url": cfg.primary.binlog_dsn.url()}
    urls.update({f"targets.{t.name}.url": t.url for t in cfg.targets})
    return urls


def init_sql(service: str) -> str:
    """The SQL files a MySQL service mounts into /docker-entrypoint-initdb.d."""
    text = []
    for spec in SERVICES[service].get("volumes") or []:
        source, _, rest = spec.partition(":")
        if rest.split(":")[0].startswith("/docker-entrypoint-initdb.d"):
            path = (COMPOSE_DIR / source).resolve()
            assert path.is_file(), f"{service} mounts {source}, which does not exist"
            text.append(path.read_text())
    return "\n".join(text)


# -- the helper itself follows the loader's naming rule ----------------------------------------------
@pytest.mark.parametrize("env_name, expected", [
    ("DBMUX_KAFKA", ("kafka", "bootstrap")),
    ("DBMUX_KAFKA_BOOTSTRAP", ("kafka", "bootstrap")),
    ("DBMUX_KAFKA_REQUEST_TIMEOUT_MS", ("kafka", "request_timeout_ms")),
    ("DBMUX_PRIMARY_URL", ("primary", "url")),
    ("DBMUX_PRIMARY_BINLOG_URL", ("primary", "binlog_url")),
    ("DBMUX_INGRESS_LISTEN", ("ingress", "listen")),
    ("DBMUX_TARGET_REPLICA1_URL", ("targets", "replica1", "url")),
    ("DBMUX_TARGET_SHARD_A_URL", ("targets", "shard_a", "url")),
    ("DBMUX_TARGET_SHARD_B_BATCH_MAX_TXNS", ("targets", "shard_b", "batch_max_txns")),
])
def test_override_path_maps_accepted_names(env_name: str, expected: tuple[str, ...]) -> None:
    assert override_path(env_name, TARGET_NAMES) == expected


@pytest.mark.parametrize("env_name", [
    "DBMUX_KAFKA_BOOTSTRAPS",          # typo of a key
    "DBMUX_KAFKA_bootstrap",           # the loader only reads upper case
    "DBMUX_INGRES_LISTEN",             # typo of a section
    "DBMUX_TARGETS_REPLICA1_URL",      # the section is TARGET, singular
    "DBMUX_TARGET_REPLICA3_URL",       # no such target in compose/dbmux.toml
    "DBMUX_TARGET_REPLICA1_NAME",      # the name is the table key, not overridable
    "DBMUX_TARGET_SHARD_A",            # no key
    "DBMUX_STACK_KAFKA_PORT",          # a `dbmux stack` variable, not a pipeline override
    "DBMUX_URL",
])
def test_override_path_rejects_names_the_loader_ignores(env_name: str) -> None:
    with pytest.raises(KeyError):
        override_path(env_name, TARGET_NAMES)


def _schema_env_names() -> list[str]:
    names = [f"DBMUX_{s.upper()}_{k.upper()}" for s, cls in sections().items() for k in keys_of(cls)]
    names += [f"DBMUX_TARGET_{t.upper()}_{k.upper()}" for t in TARGET_NAMES for k in keys_of(TargetConfig)]
    return sorted(names)


_PROBES = {
    "url": "mysql://u:p@probe-host:3306", "binlog_url": "mysql://u:p@probe-host:3306",
    "bootstrap": "probe-host:9092", "listen": "0.0.0.0:1234", "durability": "async",
    "on_error": "dead-letter", "self_verify": "log", "placement": "ring", "default_rule": "none",
    "name": "probe", "topic": "probe.topic", "tls": "disabled",
    "unsharded": "all", "default_shard": "shard_b", "tables": "shop.orders=customer_id",
    "reads": "replicas", "read_consistency": "bounded", "cache_tables": "shop.*",
}


@pytest.mark.parametrize("env_name", _schema_env_names())
def test_override_path_agrees_with_the_loader_for_every_schema_key(env_name: str, tmp_path: Path) -> None:
    """Every name the helper accepts really changes what parse_config returns (so the rule is the loader's)."""
    path = override_path(env_name, TARGET_NAMES)
    before = resolve(parse_config(RAW_PIPELINE, {}), path)
    env: dict[str, str] = {}
    # a valid value of the key's type, different from the file's
    if isinstance(before, bool):
        probe = as_env(not before)
    elif path[-1] == "cache_bytes":  # 0 (off) or at least 1 MiB
        probe = str(1 << 24)
    elif path[-1] == "max_held_bytes":  # minimum 65536 (0 on a target: the default)
        probe = str(max(before, 65536) * 2)
    elif path == ("kafka", "min_insync_replicas"):  # at most kafka.replication_factor
        probe = str(before + 7)
        env["DBMUX_KAFKA_REPLICATION_FACTOR"] = probe
    elif isinstance(before, int):
        probe = str(before + 7 if before >= 0 else 1)
    elif isinstance(before, tuple):
        probe = ("shard_a,shard_b,shard_c" if path == ("shardmap", "shards")
                 else "0,1000" if path == ("shardmap", "ranges") else "db_x.*")
    elif path[-1] == "shard":
        probe = "shard_b" if before == "shard_a" else "shard_a"
    elif path[-1] == "tls_ca":  # must exist
        (tmp_path / "ca.pem").write_text("x")
        probe = str(tmp_path / "ca.pem")
    elif path[-1] in ("tls_cert", "tls_key"):  # must exist and be set together
        for key in ("tls_cert", "tls_key"):
            (tmp_path / key).write_text("x")
            env[f"DBMUX_{path[0].upper()}_{key.upper()}"] = str(tmp_path / key)
        probe = env[env_name]
    else:
        probe = _PROBES[path[-1]]
    assert probe != as_env(before), f"{env_name}: the probe must differ from the file's value"
    env[env_name] = probe
    after = resolve(parse_config(RAW_PIPELINE, env), path)
    assert as_env(after) == probe, f"{env_name} did not override {'.'.join(path)}"


# -- compose environment vs config schema ------------------------------------------------------------
def test_there_are_dbmux_services() -> None:
    assert {"dbmux-ingress", "dbmux-binlog"} <= set(DBMUX_SERVICES)
    assert any(s.startswith(REPLICATE_PREFIX) for s in DBMUX_SERVICES)


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_every_dbmux_variable_is_an_accepted_override_that_lands(service: str) -> None:
    env = dbmux_env(service)
    if not env:
        return
    assert service in DBMUX_SERVICES, f"{service} is not a dbmux service but sets {sorted(env)}"
    cfg = config_of(service)
    for name, value in env.items():
        path = override_path(name, TARGET_NAMES)  # KeyError: the loader would ignore this variable
        assert as_env(resolve(cfg, path)) == value, f"{service}: ${name} did not land in {'.'.join(path)}"
        # and on its own, on top of the file alone
        alone = parse_config(RAW_PIPELINE, {name: value})
        assert as_env(resolve(alone, path)) == value


@pytest.mark.parametrize("service", DBMUX_SERVICES)
def test_dbmux_services_use_the_mounted_pipeline_config(service: str) -> None:
    svc = SERVICES[service]
    cmd = command(service)
    assert cmd[cmd.index("-c") + 1] == CONFIG_MOUNT
    mounts = {}
    for spec in svc.get("volumes") or []:
        source, target = spec.split(":")[:2]
        mounts[target] = source
    assert CONFIG_MOUNT in mounts, f"{service} does not mount the pipeline config"
    assert (COMPOSE_DIR / mounts[CONFIG_MOUNT]).resolve() == PIPELINE_FILE.resolve()
    build = svc["build"]
    context = (COMPOSE_DIR / build["context"]).resolve()
    assert (context / "pyproject.toml").is_file(), "build context is not the repository root"
    assert (context / build["dockerfile"]).is_file()


@pytest.mark.parametrize("service", DBMUX_SERVICES)
def test_dbmux_services_depend_on_healthy_servers_they_use(service: str) -> None:
    depends = SERVICES[service].get("depends_on") or {}
    assert isinstance(depends, dict), f"{service}: use the long depends_on form with conditions"
    for dep, spec in depends.items():
        assert spec == {"condition": "service_healthy"}, f"{service} -> {dep}"
        assert "healthcheck" in SERVICES[dep], f"{dep} has no healthcheck, {service} waits on it"
    cfg = config_of(service)
    sub = command(service)[0]
    used = [hostport(cfg.kafka.bootstrap)[0]]
    if sub == "ingress":
        used.append(cfg.primary.dsn.host)
    elif sub == "binlog":
        used.append(cfg.primary.binlog_dsn.host)
    elif sub == "replicate":
        used.append(cfg.target(command(service)[command(service).index("--target") + 1]).dsn.host)
    else:
        pytest.fail(f"{service}: unknown dbmux subcommand {sub!r}")
    assert set(used) <= set(depends), f"{service} uses {used} but depends on {sorted(depends)}"


# -- targets vs replicators ---------------------------------------------------------------------------
def test_pipeline_config_loads_and_has_the_stack_structure() -> None:
    assert PIPELINE.kafka.bootstrap == "kafka:9092"
    assert PIPELINE.shardmap.shards == ("shard_a", "shard_b")
    assert hostport(PIPELINE.ingress.listen) == ("0.0.0.0", DEFAULT_PORTS["ingress_port"])
    assert {t.name for t in PIPELINE.targets} == {"replica1", "replica2", "shard_a", "shard_b"}
    assert {t.shard for t in PIPELINE.targets if t.shard} == set(PIPELINE.shardmap.shards)
    # same sections as the config `dbmux stack up` generates
    stack_raw = tomllib.loads(render_pipeline_config(Layout(Path("/nonexistent"))))
    assert set(RAW_PIPELINE) == set(stack_raw)
    assert set(RAW_PIPELINE["targets"]) == set(stack_raw["targets"])
    for name, body in stack_raw["targets"].items():
        assert set(RAW_PIPELINE["targets"][name]) == set(body), name


@pytest.mark.parametrize("target", TARGET_NAMES)
def test_every_target_has_exactly_one_replicator(target: str) -> None:
    runners = [s for s in DBMUX_SERVICES
               if command(s)[:1] == ["replicate"] and command(s)[command(s).index("--target") + 1] == target]
    assert runners == [REPLICATE_PREFIX + target]
    cmd = command(runners[0])
    assert cmd.count("--target") == 1


def test_every_replicator_names_a_configured_target() -> None:
    for service in DBMUX_SERVICES:
        if service.startswith(REPLICATE_PREFIX):
            cmd = command(service)
            assert cmd[0] == "replicate" and cmd.count("--target") == 1, service
            assert cmd[cmd.index("--target") + 1] == service[len(REPLICATE_PREFIX):]
            # a replicator overrides only its own target
            for name in dbmux_env(service):
                path = override_path(name, TARGET_NAMES)
                if path[0] == "targets":
                    assert path[1] == service[len(REPLICATE_PREFIX):], f"{service} sets {name}"


# -- addresses: URLs name compose services and their container ports --------------------------------
def _all_addresses() -> list[tuple[str, str]]:
    """(where, host:port) for every address in compose/dbmux.toml and in each dbmux service's config."""
    out = [("kafka.bootstrap", hp.strip()) for hp in PIPELINE.kafka.bootstrap.split(",")]
    for key, url in config_urls(PIPELINE).items():
        dsn = Dsn.parse(url)
        out.append((key, f"{dsn.host}:{dsn.port}"))
    for service in DBMUX_SERVICES:
        cfg = config_of(service)
        out += [(f"{service} kafka.bootstrap", hp.strip()) for hp in cfg.kafka.bootstrap.split(",")]
        for key, url in config_urls(cfg).items():
            dsn = Dsn.parse(url)
            out.append((f"{service} {key}", f"{dsn.host}:{dsn.port}"))
    return out


@pytest.mark.parametrize("where, address", _all_addresses())
def test_addresses_name_a_service_and_its_container_port(where: str, address: str) -> None:
    host, port = hostport(address)
    assert host in SERVICES, f"{where}: {host!r} is not a compose service"
    assert port == container_port(host, host), f"{where}: {host} listens on {container_port(host, host)}"


def test_expected_addresses() -> None:
    got = {k: f"{Dsn.parse(u).host}:{Dsn.parse(u).port}" for k, u in config_urls(PIPELINE).items()}
    assert got == {
        "primary.url": "mysql-primary:3306",
        "primary.binlog_url": "mysql-primary:3306",
        "targets.replica1.url": "mysql-replica1:3306",
        "targets.replica2.url": "mysql-replica2:3306",
        "targets.shard_a.url": "pg-shard-a:5432",
        "targets.shard_b.url": "pg-shard-b:5432",
    }
    assert PIPELINE.kafka.bootstrap == "kafka:9092"


SERVER_SERVICES = sorted(s for s in SERVICES if SERVICES[s].get("image", "").split(":")[0] in IMAGE_PORTS)


@pytest.mark.parametrize("service", SERVER_SERVICES)
def test_container_ports_are_the_image_defaults(service: str) -> None:
    if SERVICES[service]["image"].startswith("mysql:"):
        assert "port" not in flags(service), f"{service} moves mysqld off {IMAGE_PORTS['mysql']}"
    else:
        assert "PGPORT" not in environment(service)
        assert "-p" not in command(service) and not any(c.startswith("port=") for c in command(service))
    assert [c for _, c in published_ports(service)] == [container_port(service, service)]


@pytest.mark.parametrize("service", DBMUX_SERVICES)
def test_credentials_match_the_servers(service: str) -> None:
    cfg = config_of(service)
    for key, url in config_urls(cfg).items():
        dsn = Dsn.parse(url)
        server = SERVICES[dsn.host]
        if dsn.kind == "mysql":
            sql = init_sql(dsn.host)
            pattern = (rf"CREATE USER IF NOT EXISTS '{re.escape(dsn.user)}'@'%'"
                       rf"[^;]*\bBY '{re.escape(dsn.password)}'")
            assert re.search(pattern, sql), f"{service} {key}: {dsn.host} init SQL creates no such user"
        else:
            env = environment(dsn.host)
            assert (env["POSTGRES_USER"], env["POSTGRES_PASSWORD"], env["POSTGRES_DB"]) == (
                dsn.user, dsn.password, dsn.database), f"{service} {key}"
        assert server["image"].split(":")[0] == {"mysql": "mysql", "postgresql": "postgres"}[dsn.kind]


def test_binlog_user_has_replication_grants() -> None:
    dsn = PIPELINE.primary.binlog_dsn
    sql = init_sql(dsn.host)
    grant = re.search(rf"GRANT ([^;]*) ON \*\.\* TO '{re.escape(dsn.user)}'@'%'", sql)
    assert grant, f"no global GRANT for {dsn.user}"
    privileges = {p.strip().upper() for p in grant[1].split(",")}
    assert {"REPLICATION SLAVE", "REPLICATION CLIENT", "SELECT", "RELOAD"} <= privileges \
        or privileges == {"ALL PRIVILEGES"}


# -- host ports are the `dbmux stack` defaults ----------------------------------------------------------
@pytest.mark.parametrize("service, key, container", [(s, k, c) for s, (k, c) in PUBLISHED.items()])
def test_host_ports_are_the_stack_defaults(service: str, key: str, container: int) -> None:
    assert published_ports(service) == [(DEFAULT_PORTS[key], container)]


def test_only_expected_services_publish_ports() -> None:
    assert {s for s in SERVICES if SERVICES[s].get("ports")} == set(PUBLISHED)


def test_ingress_container_port_is_its_listen_port() -> None:
    cfg = config_of("dbmux-ingress")
    host, port = hostport(cfg.ingress.listen)
    assert host == "0.0.0.0", "inside a container the ingress must listen on every interface"
    assert published_ports("dbmux-ingress") == [(DEFAULT_PORTS["ingress_port"], port)]


def test_kafka_external_listener_is_the_stack_bootstrap() -> None:
    env = environment("kafka")
    advertised = dict(listener.split("://", 1) for listener in env["KAFKA_ADVERTISED_LISTENERS"].split(","))
    listening = dict(listener.split("://", 1) for listener in env["KAFKA_LISTENERS"].split(","))
    assert advertised["EXTERNAL"] == Layout(Path("/nonexistent")).kafka_bootstrap()  # 127.0.0.1:19092
    assert hostport(listening["EXTERNAL"])[1] == DEFAULT_PORTS["kafka_port"]
    assert advertised["PLAINTEXT"] == PIPELINE.kafka.bootstrap


# -- the servers ---------------------------------------------------------------------------------------
def test_kafka_is_a_single_node_kraft_broker_with_infinite_retention() -> None:
    env = environment("kafka")
    assert SERVICES["kafka"]["image"] == "apache/kafka:3.9.1"
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    node = env["KAFKA_NODE_ID"]
    voters = env["KAFKA_CONTROLLER_QUORUM_VOTERS"].split(",")
    assert len(voters) == 1 and voters[0].startswith(f"{node}@")
    listening = dict(listener.split("://", 1) for listener in env["KAFKA_LISTENERS"].split(","))
    controller = env["KAFKA_CONTROLLER_LISTENER_NAMES"]
    assert hostport(voters[0].split("@", 1)[1])[1] == hostport(listening[controller])[1]
    protocol_map = dict(p.split(":") for p in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    assert set(listening) == set(protocol_map)
    assert env["KAFKA_INTER_BROKER_LISTENER_NAME"] in listening
    assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "1"
    assert env["KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"] == "1"
    assert env["KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"] == "1"
    assert env["KAFKA_LOG_RETENTION_HOURS"] == "-1"


@pytest.mark.parametrize("service", sorted(s for s in SERVICES if not s.startswith("dbmux-")))
def test_servers_have_healthchecks(service: str) -> None:
    test = SERVICES[service]["healthcheck"]["test"]
    text = " ".join(test) if isinstance(test, list) else test
    image = SERVICES[service]["image"].split(":")[0]
    assert {"mysql": "mysqladmin ping", "postgres": "pg_isready", "apache/kafka": "--bootstrap-server"}[image] in text


@pytest.mark.parametrize("flag, value", [
    ("log-bin", None),
    ("binlog-format", "ROW"),
    ("binlog-row-image", "FULL"),
    ("binlog-row-metadata", "FULL"),
    ("gtid-mode", "ON"),
    ("enforce-gtid-consistency", "ON"),
    ("session-track-gtids", "OWN_GTID"),
])
def test_primary_writes_a_full_row_gtid_binlog(flag: str, value: str | None) -> None:
    got = flags("mysql-primary")
    assert flag in got, f"mysql-primary lacks --{flag}"
    if value is not None:
        assert got[flag].upper() == value


def test_mysql_server_ids_are_distinct_and_not_the_binlog_readers() -> None:
    ids = {s: int(flags(s)["server-id"]) for s in SERVICES if SERVICES[s].get("image", "").startswith("mysql:")}
    assert len(set(ids.values())) == len(ids), ids
    for service in DBMUX_SERVICES:
        assert config_of(service).primary.binlog_server_id not in ids.values()


REPLICATION_SQL = re.compile(r"CHANGE\s+(MASTER|REPLICATION\s+SOURCE)\s+TO|START\s+(SLAVE|REPLICA)", re.I)
REPLICATION_FLAGS = ("replicate-", "relay-log", "master-", "source-")


@pytest.mark.parametrize("target", [t for t in TARGET_NAMES
                                    if Dsn.parse(RAW_PIPELINE["targets"][t]["url"]).kind == "mysql"])
def test_mysql_targets_have_no_native_replication(target: str) -> None:
    service = PIPELINE.target(target).dsn.host
    assert not REPLICATION_SQL.search(init_sql(service)), f"{service} init SQL sets up native replication"
    bad = [f for f in flags(service) if f.startswith(REPLICATION_FLAGS)]
    assert not bad, f"{service} has replication flags {bad}"
    assert not [k for k in environment(service) if "REPLICA" in k or "MASTER" in k or "SOURCE" in k]
