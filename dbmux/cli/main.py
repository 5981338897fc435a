"""The ``dbmux`` command line: one parser, every command registered by its module, one error handler."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from dbmux.core import lograte
from dbmux.core.errors import DbmuxError

# the module of dbmux.cli that registers each command, in help order
COMMAND_MODULES = {
    "ingress": "pipeline", "replicate": "replicate", "binlog": "pipeline", "up": "pipeline",
    "status": "targets", "verify": "targets", "backfill": "targets", "reshard": "targets",
    "events": "events", "history": "history", "snapshot": "audit", "rebuild": "audit",
    "shardmap": "shardmap", "stack": "stack",
}


def _modules(argv: list[str] | None) -> list[str]:
    """The command modules to load: only the named command's when ``argv`` names one (importing every
    command's dependencies is most of a short command's start-up, e.g. ``dbmux history``); all of them
    for the help, or anything else."""
    name = next((a for a in argv if not a.startswith("-")), None) if argv is not None else None
    if name in COMMAND_MODULES:
        return [COMMAND_MODULES[name]]
    return list(dict.fromkeys(COMMAND_MODULES.values()))


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dbmux", description="MySQL database multiplexer")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv: debug)")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in _modules(argv):
        importlib.import_module(f"dbmux.cli.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(argv).parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    lograte.install()  # a client library's retry storm (aiokafka with a broker gone) as one line per 10 s
    try:
        code: int = args.func(args)
        return code
    except DbmuxError as exc:
        print(f"dbmux: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
