"""What every command shares: the ``-c/--config`` option and the one way a command loads its config,
running a coroutine on the fast event loop, stopping on SIGINT/SIGTERM, the metrics endpoint."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

from prometheus_client import start_http_server

from dbmux.core.config import Config, load_config
from dbmux.core.errors import ConfigError

try:
    import uvloop
except ImportError:  # pragma: no cover - uvloop is a dependency except on Windows
    _HAVE_UVLOOP = False
else:
    _HAVE_UVLOOP = True

T = TypeVar("T")

log = logging.getLogger("dbmux")


def add_config_arg(parser: argparse.ArgumentParser) -> None:
    """``-c/--config``, the same for every command: the file given, else $DBMUX_CONFIG, else the local
    stack's generated config ($DBMUX_STACK_DIR or ./.stack)."""
    parser.add_argument("-c", "--config", default=None,
                        help="pipeline config TOML (default: $DBMUX_CONFIG, else the local stack's dbmux.toml)")


def config_path(args: argparse.Namespace) -> str:
    """Which config file a command reads (see :func:`add_config_arg`)."""
    if getattr(args, "config", None):
        return str(args.config)
    if os.environ.get("DBMUX_CONFIG"):
        return os.environ["DBMUX_CONFIG"]
    path = stack_dir(None) / "dbmux.toml"
    if not path.exists():
        raise ConfigError("-c/--config", f"no config given, $DBMUX_CONFIG is unset and {path} does not exist",
                          "pass -c FILE, set DBMUX_CONFIG, or run 'dbmux stack up' first")
    return str(path)


def load_command_config(args: argparse.Namespace) -> Config:
    """The one way a command loads its config: read, override from the environment, validate."""
    return load_config(config_path(args))


def stack_dir(arg: str | None) -> Path:
    return Path(arg or os.environ.get("DBMUX_STACK_DIR") or ".stack")


def run_async(main: Coroutine[Any, Any, T]) -> T:
    """Run a command's coroutine on uvloop when it is installed, else asyncio's loop."""
    if _HAVE_UVLOOP:
        return uvloop.run(main)
    return asyncio.run(main)


def start_metrics(port: int) -> None:
    if port:
        start_http_server(port, addr="127.0.0.1")
        log.info("Prometheus metrics on http://127.0.0.1:%s/metrics", port)


def stop_event() -> asyncio.Event:
    """An event set on SIGINT or SIGTERM (call inside the running loop)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop
