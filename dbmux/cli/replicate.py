"""``dbmux replicate``: one target's replicator, until SIGINT/SIGTERM (a module of its own: a replicator
started again after a crash, or by ``dbmux up``, loads only what it needs)."""

from __future__ import annotations

import argparse
from typing import Any

from dbmux.cli.common import add_config_arg, load_command_config, run_async, start_metrics, stop_event
from dbmux.replicator.runner import Replicator


def cmd_replicate(args: argparse.Namespace) -> int:
    config = load_command_config(args)
    replicator = Replicator(config, args.target)
    replicator.tune_gc = True
    start_metrics(config.replicator.metrics_port)

    async def main() -> int:
        return await replicator.run(stop_event())

    return run_async(main())


def register(sub: Any) -> None:
    rep = sub.add_parser("replicate", help="apply the change stream to one target, exactly once, in order")
    add_config_arg(rep)
    rep.add_argument("--target", required=True, help="target name from the config")
    rep.set_defaults(func=cmd_replicate)
