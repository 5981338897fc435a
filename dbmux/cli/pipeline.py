"""The long-running commands: ``ingress``, ``binlog`` and ``up`` (all of them, ``replicate`` included, each
in a supervised process of its own; ``replicate`` is :mod:`dbmux.cli.replicate`). Each runs until
SIGINT/SIGTERM and stops cleanly."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from dbmux.binlog.reader import BinlogReader
from dbmux.cli.common import add_config_arg, config_path, load_command_config, run_async, start_metrics, stop_event
from dbmux.cli.supervisor import REPLICATION_NICE, run_pipeline
from dbmux.ingress.server import IngressServer


async def _serve_ingress(server: IngressServer, stop: asyncio.Event) -> None:
    await server.start()
    try:
        await stop.wait()
    finally:
        await server.stop()


def cmd_ingress(args: argparse.Namespace) -> int:
    config = load_command_config(args)
    start_metrics(config.ingress.metrics_port)

    async def main() -> int:
        await _serve_ingress(IngressServer(config), stop_event())
        return 0

    return run_async(main())


def cmd_binlog(args: argparse.Namespace) -> int:
    config = load_command_config(args)
    reader = BinlogReader(config, from_gtid=args.from_gtid, freeze_gc=True)

    async def main() -> int:
        return await reader.run(stop_event())

    return run_async(main())


def cmd_up(args: argparse.Namespace) -> int:
    """The whole pipeline of the config: ingress, binlog reader, one replicator per target, each its own
    supervised process (:mod:`dbmux.cli.supervisor`)."""
    config = load_command_config(args)
    path = config_path(args)

    async def main() -> int:
        return await run_pipeline(config, path, args.verbose, stop_event(), args.replication_nice)

    return run_async(main())


def register(sub: Any) -> None:
    ing = sub.add_parser("ingress", help="run the ingress (MySQL protocol proxy publishing to Kafka)")
    add_config_arg(ing)
    ing.set_defaults(func=cmd_ingress)

    binlog = sub.add_parser("binlog", help="tail the primary's binlog and publish row-form change events")
    add_config_arg(binlog)
    binlog.add_argument("--from-gtid", metavar="POS", default=None,
                        help="start after this GTID position (e.g. 0-1-123), overriding the stored one")
    binlog.set_defaults(func=cmd_binlog)

    up = sub.add_parser("up", help="run the whole pipeline (ingress, binlog reader, a replicator per target, each a "
                                   "supervised process) until Ctrl-C")
    add_config_arg(up)
    up.add_argument("--replication-nice", type=int, default=REPLICATION_NICE, choices=range(0, 20), metavar="N",
                    help="run the binlog reader and the replicators N lower in CPU priority than the ingress "
                         f"(0-19, default {REPLICATION_NICE}): replication takes the CPU the proxy leaves")
    up.set_defaults(func=cmd_up)
