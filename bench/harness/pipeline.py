"""The dbmux pipeline under test: its generated config, the environment its processes see, and
starting ``dbmux ingress`` / ``dbmux replicate`` as background processes."""

from __future__ import annotations

import os
import secrets
import signal
import tempfile
from pathlib import Path

from .processes import PY, Proc


def env_without_dbmux(extra: dict[str, str] | None = None) -> dict[str, str]:
    """os.environ without DBMUX_* overrides (they would silently change the generated config), plus extra."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DBMUX_")}
    env.update(extra or {})
    return env


def ingress_env(port: int, topic: str, durability: str = "config",
                base: dict[str, str] | None = None) -> dict[str, str]:
    """``base`` (default os.environ) with the ingress listening on 127.0.0.1:``port`` and publishing to
    ``topic``; ``durability`` other than "config" overrides ``ingress.durability``."""
    env = dict(os.environ if base is None else base)
    env.update({"DBMUX_INGRESS_LISTEN": f"127.0.0.1:{port}", "DBMUX_KAFKA_TOPIC": topic,
                "PYTHONUNBUFFERED": "1"})
    if durability != "config":
        env["DBMUX_INGRESS_DURABILITY"] = durability
    return env


def config_head(env: dict[str, str], topic: str) -> str:
    """The ``[kafka]`` and ``[primary]`` sections of a bench's pipeline config: the local stack's Kafka and
    primary (``env``: :func:`harness.environment.stack_env`), the bench's own ``topic``."""
    return (f'[kafka]\nbootstrap = "{env["DBMUX_KAFKA"]}"\ntopic = "{topic}"\n[primary]\n'
            f'url = "{env["DBMUX_PRIMARY_URL"]}"\nbinlog_url = "{env["DBMUX_PRIMARY_BINLOG_URL"]}"\n')


def bench_pipeline(env: dict[str, str], name: str) -> tuple[str, Path, Path]:
    """A bench's own topic, a fresh work directory and a pipeline config there (:func:`config_head`):
    (topic, workdir, config path)."""
    topic = f"dbmux.{name}{secrets.token_hex(4)}.txn"
    workdir = Path(tempfile.mkdtemp(prefix=f"dbmux-{name}-"))
    cfg = workdir / f"{name}.toml"
    cfg.write_text(config_head(env, topic))
    return topic, workdir, cfg


def dbmux_argv(*args: str) -> list[str]:
    """``python -m dbmux.cli -v <args>`` with the venv's interpreter."""
    return [PY, "-m", "dbmux.cli", "-v", *args]


def start_ingress(workdir: Path, config: Path | str, env: dict[str, str]) -> Proc:
    return Proc("ingress", dbmux_argv("ingress", "-c", str(config)), workdir / "ingress.log", env=env)


def start_replicator(workdir: Path, config: Path, target: str) -> Proc:
    argv = dbmux_argv("replicate", "-c", str(config), "--target", target)
    profile_dir = os.environ.get("BENCH_PYSPY_DIR")  # profile the replicator: a py-spy flame graph per target
    rate = os.environ.get("BENCH_PYSPY_RATE", "200")  # samples per second
    if profile_dir:
        argv = [str(Path(PY).parent / "py-spy"), "record", "--nonblocking", "-r", rate, "-o",
                str(Path(profile_dir) / f"replicate-{target}.txt"), "-f", "raw", "--", *argv]
    proc = Proc(f"replicator[{target}]", argv, workdir / f"replicate-{target}.log",
                env=env_without_dbmux({"PYTHONUNBUFFERED": "1"}))
    if profile_dir:
        proc.stop_signal = signal.SIGINT  # py-spy writes its profile on SIGINT (and stops the replicator)
    return proc


def write_config(path: Path, *, bootstrap: str, topic: str, primary_url: str, targets: dict[str, str],
                 ingress_listen: str = "127.0.0.1:16033", durability: str = "sync",
                 replication: tuple[int, int] = (1, 1)) -> None:
    """``replication``: the topic's (replication factor, min.insync.replicas), e.g. (3, 2) on a 3-broker stack."""
    lines = ['[cluster]', 'name = "bench"', '', '[kafka]', f'bootstrap = "{bootstrap}"', f'topic = "{topic}"',
             f'replication_factor = {replication[0]}', f'min_insync_replicas = {replication[1]}', '',
             '[primary]', f'url = "{primary_url}"', '', '[ingress]', f'listen = "{ingress_listen}"',
             f'durability = "{durability}"', '', '[replicator]', 'batch_max_txns = 500', 'gap_alert_ms = 2000',
             'on_error = "halt"', '']
    for name, url in targets.items():
        lines += [f'[targets.{name}]', f'url = "{url}"', 'tables = ["*"]', '']
    path.write_text("\n".join(lines))
