"""Pipeline configuration: one TOML file, validated once, environment overrides on top.

Every component receives the frozen :class:`Config` (or its section), never loose keyword arguments.
Errors are :class:`~dbmux.core.errors.ConfigError` naming the key, what is wrong and the fix.

Environment overrides (applied before validation, values parsed as the key's type):

* ``DBMUX_<SECTION>_<KEY>`` for the single sections, e.g. ``DBMUX_KAFKA_BOOTSTRAP``,
  ``DBMUX_PRIMARY_URL``, ``DBMUX_INGRESS_DURABILITY``;
* ``DBMUX_TARGET_<NAME>_<KEY>`` for a target, e.g. ``DBMUX_TARGET_REPLICA1_URL``;
* ``DBMUX_KAFKA`` is an alias of ``DBMUX_KAFKA_BOOTSTRAP`` (what ``dbmux stack env`` exports).

Lists are comma-separated in the environment.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args, get_origin

from dbmux.core.dsn import Dsn, DsnError
from dbmux.core.errors import ConfigError
from dbmux.core.mysql_connect import TLS_MODES
from dbmux.core.topics import topic_for

_TOPIC_RE = re.compile(r"^[A-Za-z0-9._-]{1,200}$")
_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_HOSTPORT_RE = re.compile(r"^(?P<host>[^:\s]+|\[[0-9a-fA-F:]+\]):(?P<port>\d{1,5})$")


def _check_hostport(key: str, value: str) -> None:
    m = _HOSTPORT_RE.match(value)
    if not m or not 0 < int(m["port"]) < 65536:
        raise ConfigError(key, f"{value!r} is not host:port", "e.g. '127.0.0.1:16033'")


def _check_dsn(key: str, value: str, kinds: tuple[str, ...]) -> Dsn:
    try:
        dsn = Dsn.parse(value)
    except DsnError as exc:
        raise ConfigError(key, str(exc)) from None
    if dsn.kind not in kinds:
        raise ConfigError(key, f"a {dsn.kind} URL is not allowed here", f"use a {' or '.join(kinds)} URL")
    if dsn.kind == "mysql":
        params = dict(dsn.params)
        if "tls" in params and params["tls"] not in TLS_MODES:
            raise ConfigError(key, f"URL parameter tls={params['tls']!r} is not one of {', '.join(TLS_MODES)}")
        if params.get("tls_ca") and not Path(params["tls_ca"]).is_file():
            raise ConfigError(key, f"URL parameter tls_ca: file {params['tls_ca']!r} does not exist")
    return dsn


def _with_tls(dsn: Dsn, mode: str, ca: str) -> Dsn:
    """``dsn`` with ``tls``/``tls_ca`` URL parameters (see dbmux.core.mysql_connect) unless it has its own."""
    params = dict(dsn.params)
    params.setdefault("tls", mode)
    if ca:
        params.setdefault("tls_ca", ca)
    return dataclasses.replace(dsn, params=tuple(params.items()))


def _check_choice(key: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(key, f"{value!r} is not one of {', '.join(choices)}")


def _check_min(key: str, value: int | float, minimum: int | float) -> None:
    if value < minimum:
        raise ConfigError(key, f"{value} is below the minimum {minimum}")


MAX_FRAGMENT_BYTES = 8 * 1024 * 1024
READS = ("primary", "replicas")
READ_CONSISTENCY = ("session", "causal", "bounded")


@dataclass(frozen=True, slots=True)
class ClusterConfig:
    name: str = "local"

    def validate(self, prefix: str) -> None:
        if not _NAME_RE.match(self.name):
            raise ConfigError(f"{prefix}.name", f"{self.name!r} is not a valid name",
                              "use lowercase letters, digits and '_', starting with a letter")


@dataclass(frozen=True, slots=True)
class KafkaConfig:
    bootstrap: str = "127.0.0.1:19092"
    topic: str = ""  # empty: dbmux.<cluster.name>.txn
    partitions: int = 1
    replication_factor: int = 1
    # brokers that must hold an event before an acks=all write succeeds: the topic's min.insync.replicas
    # when dbmux creates it, and the least an existing topic may have (checked at start)
    min_insync_replicas: int = 1
    request_timeout_ms: int = 30000
    # the largest message dbmux produces: a bigger event travels as fragments (dbmux.core.fragments); it
    # must stay under the topic's max.message.bytes (checked at start) and consumers' fetch size (8 MiB)
    fragment_bytes: int = 512 * 1024

    def validate(self, prefix: str) -> None:
        for hp in self.bootstrap.split(","):
            _check_hostport(f"{prefix}.bootstrap", hp.strip())
        if self.topic and not _TOPIC_RE.match(self.topic):
            raise ConfigError(f"{prefix}.topic", f"{self.topic!r} is not a legal Kafka topic name",
                              "use letters, digits, '.', '_' and '-'")
        _check_min(f"{prefix}.partitions", self.partitions, 1)
        _check_min(f"{prefix}.replication_factor", self.replication_factor, 1)
        _check_min(f"{prefix}.min_insync_replicas", self.min_insync_replicas, 1)
        if self.min_insync_replicas > self.replication_factor:
            raise ConfigError(f"{prefix}.min_insync_replicas",
                              f"{self.min_insync_replicas} is above replication_factor = {self.replication_factor}: "
                              "Kafka would refuse every acks=all write",
                              f"use at most {self.replication_factor}; replication_factor - 1 keeps writes going "
                              "while one broker is down")
        _check_min(f"{prefix}.request_timeout_ms", self.request_timeout_ms, 1)
        _check_min(f"{prefix}.fragment_bytes", self.fragment_bytes, 1024)
        if self.fragment_bytes > MAX_FRAGMENT_BYTES:
            raise ConfigError(f"{prefix}.fragment_bytes", f"{self.fragment_bytes} is over {MAX_FRAGMENT_BYTES} (what "
                              "consumers fetch per partition)", "use at most 8388608; bigger events are split anyway")


@dataclass(frozen=True, slots=True)
class PrimaryConfig:
    url: str = field(default="", repr=False)
    # empty: same as url (the user needs REPLICATION SLAVE/CLIENT privileges)
    binlog_url: str = field(default="", repr=False)
    binlog_server_id: int = 4242
    tls: str = "preferred"  # dbmux -> primary: preferred (when offered), required, disabled
    tls_ca: str = ""  # verify the primary's certificate against this CA (default: encrypt only)

    def validate(self, prefix: str) -> None:
        _check_choice(f"{prefix}.tls", self.tls, ("preferred", "required", "disabled"))
        if self.tls_ca and not Path(self.tls_ca).is_file():
            raise ConfigError(f"{prefix}.tls_ca", f"file {self.tls_ca!r} does not exist")
        if not self.url:
            raise ConfigError(f"{prefix}.url", "is required", "set it to mysql://user:password@host:port")
        _check_dsn(f"{prefix}.url", self.url, ("mysql",))
        if self.binlog_url:
            _check_dsn(f"{prefix}.binlog_url", self.binlog_url, ("mysql",))
        _check_min(f"{prefix}.binlog_server_id", self.binlog_server_id, 1)

    @property
    def dsn(self) -> Dsn:
        """The primary's URL with ``tls``/``tls_ca`` set from this section (dbmux's own connections)."""
        return _with_tls(Dsn.parse(self.url), self.tls, self.tls_ca)

    @property
    def binlog_dsn(self) -> Dsn:
        return _with_tls(Dsn.parse(self.binlog_url or self.url), self.tls, self.tls_ca)


@dataclass(frozen=True, slots=True)
class IngressConfig:
    listen: str = "127.0.0.1:16033"
    durability: str = "sync"
    publish_timeout_ms: int = 5000
    reorder_window_ms: int = 50  # how long a commit waits for its predecessor GTID before publishing
    max_packet_bytes: int = 64 * 1024 * 1024
    listen_backlog: int = 1024  # connections the kernel queues before the ingress accepts them
    tls_cert: str = ""
    tls_key: str = ""
    metrics_port: int = 0  # 0: no metrics endpoint
    # session and schema rules for unsafe statements (ingress.statement_safety); false only in tests
    statement_safety: bool = True
    schema_refresh_ms: int = 30000  # the primary's schema facts are reloaded at least this often
    # read routing (ingress.read_router): "primary" sends every query to the primary; "replicas" sends
    # safe reads to replicas whose applied GTID covers what read_consistency promises
    reads: str = "primary"
    read_consistency: str = "causal"  # causal | session | bounded (ingress.read_router)
    read_wait_ms: int = 50  # how long a read may wait for a replica to catch up before it goes to the primary
    max_replica_lag_ms: int = 1000  # read_consistency = "bounded": how far behind a replica may be
    replica_poll_ms: int = 20  # how often each replica's applied position is read (faster while reads wait)
    # result cache (ingress.result_cache): 0 bytes = off
    cache_bytes: int = 0
    cache_tables: tuple[str, ...] = ("*",)  # db.table patterns whose reads may be cached
    cache_ttl_ms: int = 0  # 0: entries live until invalidated or evicted

    def validate(self, prefix: str) -> None:
        _check_hostport(f"{prefix}.listen", self.listen)
        _check_choice(f"{prefix}.reads", self.reads, READS)
        _check_choice(f"{prefix}.read_consistency", self.read_consistency, READ_CONSISTENCY)
        _check_min(f"{prefix}.read_wait_ms", self.read_wait_ms, 0)
        _check_min(f"{prefix}.max_replica_lag_ms", self.max_replica_lag_ms, 1)
        _check_min(f"{prefix}.replica_poll_ms", self.replica_poll_ms, 1)
        _check_min(f"{prefix}.cache_bytes", self.cache_bytes, 0)
        if 0 < self.cache_bytes < 1 << 20:
            raise ConfigError(f"{prefix}.cache_bytes", f"{self.cache_bytes} is below 1 MiB",
                              "use 0 (off) or at least 1048576")
        _check_min(f"{prefix}.cache_ttl_ms", self.cache_ttl_ms, 0)
        if not self.cache_tables or any(not p for p in self.cache_tables):
            raise ConfigError(f"{prefix}.cache_tables", "is empty or holds an empty pattern",
                              "use ['*'] for every table, or db.table patterns such as 'shop.*'")
        if self.cache_bytes and not self.statement_safety:
            raise ConfigError(f"{prefix}.cache_bytes", "needs ingress.statement_safety (the schema facts tell "
                              "tables from views and triggers)", "set statement_safety = true or cache_bytes = 0")
        _check_choice(f"{prefix}.durability", self.durability, ("sync", "async"))
        _check_min(f"{prefix}.publish_timeout_ms", self.publish_timeout_ms, 1)
        _check_min(f"{prefix}.reorder_window_ms", self.reorder_window_ms, 0)
        _check_min(f"{prefix}.max_packet_bytes", self.max_packet_bytes, 1024)
        _check_min(f"{prefix}.listen_backlog", self.listen_backlog, 1)
        _check_min(f"{prefix}.schema_refresh_ms", self.schema_refresh_ms, 100)
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ConfigError(f"{prefix}.tls_key" if self.tls_cert else f"{prefix}.tls_cert",
                              "tls_cert and tls_key must be set together")
        for key in ("tls_cert", "tls_key"):
            path = getattr(self, key)
            if path and not Path(path).is_file():
                raise ConfigError(f"{prefix}.{key}", f"file {path!r} does not exist")
        _check_min(f"{prefix}.metrics_port", self.metrics_port, 0)


ON_ERROR = ("halt", "dead-letter")
SELF_VERIFY = ("halt", "log", "off")


@dataclass(frozen=True, slots=True)
class ReplicatorDefaults:
    batch_max_txns: int = 500
    batch_max_bytes: int = 4 * 1024 * 1024
    batch_linger_ms: int = 20
    gap_alert_ms: int = 30000
    max_held_bytes: int = 64 * 1024 * 1024  # events held in memory behind a GTID gap, at most
    on_error: str = "halt"
    self_verify: str = "halt"  # a statement-applied transaction differing from its row copy: halt, log, off
    # an ingress copy whose binlog copy is in the same fetch is skipped and the row copy applied
    prefer_row_copies: bool = True
    metrics_port: int = 0

    def validate(self, prefix: str) -> None:
        _check_min(f"{prefix}.batch_max_txns", self.batch_max_txns, 1)
        _check_min(f"{prefix}.batch_max_bytes", self.batch_max_bytes, 1024)
        _check_min(f"{prefix}.batch_linger_ms", self.batch_linger_ms, 0)
        _check_min(f"{prefix}.gap_alert_ms", self.gap_alert_ms, 1)
        _check_min(f"{prefix}.max_held_bytes", self.max_held_bytes, 65536)
        _check_choice(f"{prefix}.on_error", self.on_error, ON_ERROR)
        _check_choice(f"{prefix}.self_verify", self.self_verify, SELF_VERIFY)
        _check_min(f"{prefix}.metrics_port", self.metrics_port, 0)


@dataclass(frozen=True, slots=True)
class TargetConfig:
    name: str
    url: str = field(default="", repr=False)
    tables: tuple[str, ...] = ("*",)
    shard: str = ""  # non-empty: a shard target owning this shard of the shard map
    on_error: str = ""  # empty: [replicator].on_error
    batch_max_txns: int = 0  # 0: [replicator] default
    batch_linger_ms: int = -1  # -1: [replicator] default
    max_held_bytes: int = 0  # 0: [replicator] default
    # with ingress.reads = "replicas": whether the ingress sends reads here (MySQL/MariaDB non-shard targets
    # only), and this target's share of them relative to the other replicas'
    serve_reads: bool = True
    read_weight: int = 1

    def validate(self, prefix: str) -> None:
        _check_min(f"{prefix}.read_weight", self.read_weight, 1)
        if not self.url:
            raise ConfigError(f"{prefix}.url", "is required",
                              "set it to mysql://... or postgresql://user:password@host:port/db")
        _check_dsn(f"{prefix}.url", self.url, ("mysql", "postgresql"))
        if not self.tables:
            raise ConfigError(f"{prefix}.tables", "is empty", "use ['*'] for every table")
        if self.on_error:
            _check_choice(f"{prefix}.on_error", self.on_error, ON_ERROR)
        if self.max_held_bytes:
            _check_min(f"{prefix}.max_held_bytes", self.max_held_bytes, 65536)

    @property
    def dsn(self) -> Dsn:
        return Dsn.parse(self.url)

    @property
    def reads_here(self) -> bool:
        """Reads may be routed to this target (when the ingress routes reads at all): a full MySQL copy."""
        return self.serve_reads and not self.shard and self.url.startswith("mysql")


@dataclass(frozen=True, slots=True)
class ShardMapConfig:
    shards: tuple[str, ...] = ()
    default_rule: str = "primary_key"  # every table sharded by its primary key
    placement: str = "jump"
    reference_tables: tuple[str, ...] = ()
    version: int = 1
    tables: dict[str, tuple[str, ...]] = field(default_factory=dict)  # "db.table" -> shard-key columns
    unsharded: str = "default"  # tables without a shard key: "default" (on default_shard) or "all"
    default_shard: str = ""  # empty: the first shard
    vnodes: int = 128  # placement "ring": points per shard
    ranges: tuple[int, ...] = ()  # placement "range": each shard's inclusive lower bound

    def validate(self, prefix: str) -> None:
        _check_choice(f"{prefix}.default_rule", self.default_rule, ("primary_key", "none"))
        _check_choice(f"{prefix}.placement", self.placement, ("jump", "ring", "range"))
        if len(set(self.shards)) != len(self.shards):
            raise ConfigError(f"{prefix}.shards", "names a shard twice")
        if any(not s for s in self.shards):
            raise ConfigError(f"{prefix}.shards", "contains an empty shard name", "name every shard")
        _check_min(f"{prefix}.version", self.version, 1)
        _check_choice(f"{prefix}.unsharded", self.unsharded, ("default", "all"))
        if self.default_shard and self.default_shard not in self.shards:
            raise ConfigError(f"{prefix}.default_shard", f"shard {self.default_shard!r} is not in shardmap.shards",
                              f"use one of {list(self.shards)}, or leave it unset for the first shard")
        _check_min(f"{prefix}.vnodes", self.vnodes, 1)
        for pattern in self.reference_tables:
            if not pattern:
                raise ConfigError(f"{prefix}.reference_tables", "contains an empty pattern",
                                  "use db.table patterns such as 'shop.countries' or 'shop.ref_*'")
        self._validate_ranges(prefix)
        self._validate_tables(prefix)

    def _validate_ranges(self, prefix: str) -> None:
        key = f"{prefix}.ranges"
        if self.placement == "range" and self.shards and not self.ranges:
            raise ConfigError(key, "is required when placement = 'range'",
                              "give each shard's inclusive lower bound, e.g. ranges = [0, 1000000]")
        if not self.ranges:
            return
        if len(self.ranges) != len(self.shards):
            raise ConfigError(key, f"has {len(self.ranges)} bounds for {len(self.shards)} shards",
                              "give exactly one inclusive lower bound per shard, in the order of shards")
        if len(set(self.ranges)) != len(self.ranges):
            raise ConfigError(key, "names a lower bound twice", "every shard needs its own lower bound")

    def _validate_tables(self, prefix: str) -> None:
        seen: dict[str, str] = {}
        for name, cols in self.tables.items():
            key = f'{prefix}.tables."{name}"'
            db, dot, table = name.partition(".")
            if not dot or not db or not table or "." in table or any(c in name for c in "*?[]"):
                raise ConfigError(key, "is not an exact db.table name", 'write it as "db.table" = ["column", ...]')
            if not cols or any(not c for c in cols):
                raise ConfigError(key, "needs at least one key column", 'e.g. "shop.orders" = ["customer_id"]')
            if len({c.lower() for c in cols}) != len(cols):
                raise ConfigError(key, "names a key column twice")
            if name.lower() in seen:
                raise ConfigError(key, f"is the same table as {seen[name.lower()]!r} (names compare "
                                       "case-insensitively)", "keep one entry")
            seen[name.lower()] = name
            if self.placement == "range" and len(cols) != 1:
                raise ConfigError(key, f"placement 'range' needs exactly one integer key column, got {list(cols)}")
            for pattern in self.reference_tables:
                if fnmatch.fnmatchcase(name.lower(), pattern.lower()):
                    raise ConfigError(key, f"also matches reference_tables pattern {pattern!r}",
                                      "a table is either sharded or a reference table: remove one")


_SECTIONS: dict[str, type] = {
    "cluster": ClusterConfig,
    "kafka": KafkaConfig,
    "primary": PrimaryConfig,
    "ingress": IngressConfig,
    "replicator": ReplicatorDefaults,
    "shardmap": ShardMapConfig,
}


@dataclass(frozen=True, slots=True)
class Config:
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    kafka: KafkaConfig = field(default_factory=KafkaConfig)
    primary: PrimaryConfig = field(default_factory=PrimaryConfig)
    ingress: IngressConfig = field(default_factory=IngressConfig)
    replicator: ReplicatorDefaults = field(default_factory=ReplicatorDefaults)
    shardmap: ShardMapConfig = field(default_factory=ShardMapConfig)
    targets: tuple[TargetConfig, ...] = ()
    source: str = "<defaults>"

    @property
    def topic(self) -> str:
        return self.kafka.topic or topic_for(self.cluster.name)

    def target(self, name: str) -> TargetConfig:
        for t in self.targets:
            if t.name == name:
                return t
        known = ", ".join(t.name for t in self.targets) or "none"
        raise ConfigError(f"targets.{name}", "no such target", f"configured targets: {known}")

    def on_error(self, target: TargetConfig) -> str:
        return target.on_error or self.replicator.on_error


def _coerce(key: str, value: Any, typ: Any, *, from_env: bool = False) -> Any:
    """Check ``value`` against the annotated type; strings from the environment are parsed."""
    origin = get_origin(typ)
    if origin is tuple and get_args(typ)[0] is int:
        if from_env and isinstance(value, str):
            try:
                value = [int(v) for v in value.split(",") if v.strip()]
            except ValueError:
                raise ConfigError(key, f"expected a comma-separated list of integers, got {value!r}") from None
        if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            raise ConfigError(key, f"expected a list of integers, got {value!r}")
        return tuple(value)
    if origin is tuple:
        if from_env and isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(key, f"expected a list of strings, got {type(value).__name__}")
        return tuple(value)
    if origin is dict:  # a TOML table of name -> list of strings; env: "name=a,b;name2=c"
        if from_env and isinstance(value, str):
            parsed: dict[str, list[str]] = {}
            for entry in (e.strip() for e in value.split(";")):
                if not entry:
                    continue
                name, eq, rest = entry.partition("=")
                if not eq or not name.strip():
                    raise ConfigError(key, f"expected 'name=a,b;name2=c', got {entry!r}")
                parsed[name.strip()] = [v.strip() for v in rest.split(",") if v.strip()]
            value = parsed
        if not isinstance(value, Mapping):
            raise ConfigError(key, f"expected a table, got {type(value).__name__}",
                              f"write it as [{key}] with \"name\" = [...] lines")
        out = {}
        for name, item in value.items():
            if not isinstance(item, list) or not all(isinstance(v, str) for v in item):
                raise ConfigError(f'{key}."{name}"', f"expected a list of strings, got {item!r}")
            out[name] = tuple(item)
        return out
    if typ is bool:
        if from_env and isinstance(value, str) and value.lower() in ("true", "1", "yes", "false", "0", "no"):
            return value.lower() in ("true", "1", "yes")
        if not isinstance(value, bool):
            raise ConfigError(key, f"expected true or false, got {value!r}")
        return value
    if typ is int:
        if from_env and isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                raise ConfigError(key, f"expected an integer, got {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(key, f"expected an integer, got {value!r}")
        return value
    if typ is str:
        if not isinstance(value, str):
            raise ConfigError(key, f"expected a string, got {value!r}")
        return value
    raise AssertionError(f"unsupported config type {typ!r}")  # pragma: no cover - schema bug


def _types(cls: type) -> dict[str, Any]:
    hints = {f.name: f.type for f in dataclasses.fields(cls)}
    ns = {"tuple": tuple, "dict": dict, "str": str, "int": int, "bool": bool}
    return {k: (eval(v, ns) if isinstance(v, str) else v) for k, v in hints.items()}  # noqa: S307


def _build(cls: type, prefix: str, raw: Mapping[str, Any], env: Mapping[str, str], env_prefix: str,
           **fixed: Any) -> Any:
    if not isinstance(raw, Mapping):
        raise ConfigError(prefix, f"expected a table, got {type(raw).__name__}", f"write it as [{prefix}]")
    types = {k: v for k, v in _types(cls).items() if k not in fixed}
    unknown = sorted(set(raw) - set(types))
    if unknown:
        raise ConfigError(f"{prefix}.{unknown[0]}", "unknown key", f"known keys: {', '.join(sorted(types))}")
    values: dict[str, Any] = dict(fixed)
    for name, typ in types.items():
        env_name = f"{env_prefix}_{name.upper()}"
        if env_name in env:
            values[name] = _coerce(f"{prefix}.{name} (from ${env_name})", env[env_name], typ, from_env=True)
        elif name in raw:
            values[name] = _coerce(f"{prefix}.{name}", raw[name], typ)
    obj = cls(**values)
    obj.validate(prefix)
    return obj


def load_config(path: str | os.PathLike[str] | None, env: Mapping[str, str] | None = None) -> Config:
    """Read, override from the environment, and validate the whole configuration once."""
    env = os.environ if env is None else env
    raw: dict[str, Any] = {}
    source = "<environment>"
    if path is not None:
        source = str(path)
        try:
            with open(path, "rb") as fh:
                raw = tomllib.load(fh)
        except FileNotFoundError:
            raise ConfigError("<file>", f"{path} does not exist", "pass -c with an existing TOML file") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError("<file>", f"{path} is not valid TOML: {exc}") from None
    return parse_config(raw, env, source=source)


def parse_config(raw: Mapping[str, Any], env: Mapping[str, str], *, source: str = "<dict>") -> Config:
    env = dict(env)
    if "DBMUX_KAFKA" in env and "DBMUX_KAFKA_BOOTSTRAP" not in env:
        env["DBMUX_KAFKA_BOOTSTRAP"] = env["DBMUX_KAFKA"]
    allowed = set(_SECTIONS) | {"targets"}
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise ConfigError(unknown[0], "unknown section", f"known sections: {', '.join(sorted(allowed))}")
    sections = {
        name: _build(cls, name, raw.get(name, {}), env, f"DBMUX_{name.upper()}")
        for name, cls in _SECTIONS.items()
    }
    raw_targets = raw.get("targets", {})
    if not isinstance(raw_targets, Mapping):
        raise ConfigError("targets", "expected tables [targets.NAME]", "e.g. [targets.replica1] url = ...")
    targets = []
    for name, body in raw_targets.items():
        if not _NAME_RE.match(name):
            raise ConfigError(f"targets.{name}", "is not a valid target name",
                              "use lowercase letters, digits and '_', starting with a letter")
        targets.append(_build(TargetConfig, f"targets.{name}", body, env, f"DBMUX_TARGET_{name.upper()}",
                              name=name))
    cfg = Config(**sections, targets=tuple(targets), source=source)
    if cfg.ingress.reads == "replicas" and not any(t.reads_here for t in cfg.targets):
        raise ConfigError("ingress.reads", "is 'replicas' but no target can serve reads",
                          "add a MySQL/MariaDB [targets.NAME] that is not a shard (serve_reads = true), or set "
                          "reads = 'primary'")
    shards = set(cfg.shardmap.shards)
    for t in cfg.targets:
        # A shard outside [shardmap] shards is one to be added by `dbmux reshard --add-shard`; its
        # replicator refuses to run until a recorded map version contains it.
        if t.shard and not shards:
            raise ConfigError(f"targets.{t.name}.shard", f"names shard {t.shard!r} but there is no shard map",
                              f"add [shardmap] shards = [\"{t.shard}\", ...]")
    return cfg
