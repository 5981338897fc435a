"""The ``dbmux`` command line: one parser, every command registered by its module, one error handler."""

from __future__ import annotations

import argparse
import logging
import sys

from dbmux.cli import audit, events, history, pipeline, shardmap, stack, targets
from dbmux.core import lograte
from dbmux.core.errors import DbmuxError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dbmux", description="MySQL database multiplexer")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv: debug)")
    sub = parser.add_subparsers(dest="command", required=True)
    for module in (pipeline, targets, events, history, audit, shardmap, stack):
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
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
