"""The audit trail's commands: ``snapshot`` (publish tables' full state into the topic) and ``rebuild``
(tables as of a GTID or a time, from the topic alone)."""

from __future__ import annotations

import argparse
from typing import Any

from dbmux.cli.common import add_config_arg, load_command_config, run_async
from dbmux.cli.event_filters import parse_time
from dbmux.cli.render import ProgressLine
from dbmux.core.dsn import Dsn, DsnError
from dbmux.core.gtid import Gtid, GtidError
from dbmux.replicator.audit.rebuild import rebuild
from dbmux.replicator.audit.rename import parse_renames
from dbmux.replicator.audit.snapshot import publish_snapshot
from dbmux.replicator.errors import BackfillError


def _patterns(text: str | None) -> list[str] | None:
    return [p.strip() for p in text.split(",") if p.strip()] if text else None


def cmd_snapshot(args: argparse.Namespace) -> int:
    config = load_command_config(args)
    res = run_async(publish_snapshot(config, _patterns(args.tables), chunk_rows=args.chunk_rows, restart=args.restart,
                                     progress=ProgressLine(enabled=not args.no_progress)))
    for name in res.resumed:
        print(f"{name}: published by the interrupted run before ({res.run.done[name] or 'empty binlog'})")
    for name, rows in res.rows.items():
        print(f"{name}: {rows} rows at GTID position {res.run.done[name] or '(empty binlog)'}")
    print(f"snapshot run {res.run.id}: {len(res.run.done)} tables in {config.topic}")
    return 0


def cmd_rebuild(args: argparse.Namespace) -> int:
    config = load_command_config(args)
    try:
        into = Dsn.parse(args.into)
    except DsnError as exc:
        raise BackfillError(f"--into: {exc}") from None
    until_gtid = None
    if args.until_gtid:
        try:
            until_gtid = Gtid.parse(args.until_gtid)
        except GtidError as exc:
            raise BackfillError(f"--until-gtid: {exc} (e.g. 0-1-42 on MariaDB, uuid:42 on MySQL)") from None
    until_ms = parse_time(args.until_time, "--until-time") if args.until_time else None
    res = run_async(rebuild(config, into, until_gtid=until_gtid, until_ms=until_ms, patterns=_patterns(args.tables),
                            renames=parse_renames(args.rename_db or []),
                            progress=ProgressLine(enabled=not args.no_progress)))
    upto = ",".join(str(g) for _, g in sorted(res.last.items())) or "(no transaction after the snapshots)"
    for src, dst in sorted(res.tables.items()):
        print(f"{src} -> {dst}")
    print(f"rebuilt {len(res.tables)} table(s) into {into.redacted()} as of {upto}: {res.snapshot_rows} snapshot rows, "
          f"{res.changes} row changes, {res.ddl} DDL statements")
    return 0


def register(sub: Any) -> None:
    sp = sub.add_parser("snapshot", help="publish a consistent snapshot of tables into the topic (the topic then "
                                         "holds their full state: for rebuild and history)")
    add_config_arg(sp)
    sp.add_argument("--tables", help="comma-separated db.table patterns (default: every table of the primary)")
    sp.add_argument("--chunk-rows", type=int, default=1000, help="rows per snapshot event (default 1000)")
    sp.add_argument("--restart", action="store_true", help="do not continue an interrupted run: publish every table")
    sp.add_argument("--no-progress", action="store_true", help="no progress line on stderr")
    sp.set_defaults(func=cmd_snapshot)

    rb = sub.add_parser("rebuild", help="rebuild tables as they were after a GTID (or at a time) from the topic "
                                        "alone, into a MySQL/MariaDB or PostgreSQL server")
    add_config_arg(rb)
    rb.add_argument("--into", required=True, metavar="URL", help="the server to build into (mysql:// or postgresql://)")
    until = rb.add_mutually_exclusive_group(required=True)
    until.add_argument("--until-gtid", metavar="GTID", help="the last transaction the tables reflect")
    until.add_argument("--until-time", metavar="TIME", help="the tables as of the last transaction committed at or "
                                                            "before this time (ISO 8601, UTC unless it says; or "
                                                            "epoch ms)")
    rb.add_argument("--tables", help="comma-separated db.table patterns (default: every table the topic holds)")
    rb.add_argument("--rename-db", action="append", metavar="OLD=NEW",
                    help="build database OLD's tables in NEW (repeatable): a copy next to the live one")
    rb.add_argument("--no-progress", action="store_true", help="no progress line on stderr")
    rb.set_defaults(func=cmd_rebuild)
