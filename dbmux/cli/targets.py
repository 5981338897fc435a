"""Commands that serve targets: ``status``, ``verify``, ``backfill`` and ``reshard``."""

from __future__ import annotations

import argparse
import sys
import urllib.request
from typing import Any

from dbmux.cli.common import add_config_arg, load_command_config, run_async
from dbmux.cli.render import ProgressLine, format_report, render_cache, render_status
from dbmux.core.config import Config
from dbmux.replicator.backfill.run import backfill
from dbmux.replicator.errors import BackfillError
from dbmux.replicator.reshard import add_shard
from dbmux.replicator.status import collect
from dbmux.replicator.verify import DEFAULT_CHUNK_ROWS, DEFAULT_WAIT_S, verify


def _seconds(text: str) -> float:
    """An argparse type: a number of seconds >= 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"{text} must be a number of seconds >= 0")
    return value


def cmd_status(args: argparse.Namespace) -> int:
    """Prints the table; returns 0 when every target is running and caught up with the primary, else 1."""
    config = load_command_config(args)
    report = run_async(collect(config, max_lag_s=args.max_lag))
    print(render_status(report))
    if config.ingress.cache_bytes:
        print(cache_line(config))
    return report.exit_code


def cache_line(config: Config) -> str:
    """The result cache's state, from the ingress's metrics endpoint (it serves on 127.0.0.1: status run on
    the ingress's machine sees it)."""
    ing = config.ingress
    if not ing.metrics_port:
        return "result cache: not visible here (set ingress.metrics_port to see it)"
    url = f"http://127.0.0.1:{ing.metrics_port}/metrics"
    try:
        text = urllib.request.urlopen(url, timeout=5).read().decode()
    except OSError as exc:
        return f"result cache: the ingress's metrics at {url} cannot be read ({exc})"
    return render_cache(text, ing.cache_bytes)


def cmd_verify(args: argparse.Namespace) -> int:
    """Prints the report to stdout; returns 0 (all caught up and equal), 1 (not caught up, or
    differences) or 2 (errors)."""
    config = load_command_config(args)
    report = run_async(verify(config, target=args.target, chunk_rows=args.chunk_rows, wait_s=args.wait))
    sys.stdout.write(format_report(report, details=args.details))
    return report.exit_code


def cmd_backfill(args: argparse.Namespace) -> int:
    if args.chunk_rows < 1:
        raise BackfillError("--chunk-rows must be at least 1")
    config = load_command_config(args)
    tables = [t.strip() for t in args.tables.split(",") if t.strip()] if args.tables else None
    progress = ProgressLine(enabled=not args.no_progress)
    rec = run_async(backfill(config, args.target, tables, chunk_rows=args.chunk_rows, restart=args.restart,
                             progress=progress, catchup_timeout_s=args.catchup_timeout))
    if rec.already_done:
        print(f"target {args.target} was backfilled at {','.join(rec.snapshot.values()) or 'an empty binlog'}"
              " and is handed to its replicator: nothing to do (--restart copies it again)", file=sys.stderr)
        return 0
    rows = sum(t.rows for t in rec.tables.values())
    print(f"target {args.target}: {len(rec.tables)} tables, {rows:,} rows copied; replication continues after "
          f"{','.join(rec.snapshot.values()) or 'the start of the binlog'} "
          f"(run: dbmux replicate --target {args.target})")
    return 0


def cmd_reshard(args: argparse.Namespace) -> int:
    config = load_command_config(args)
    new, gtid = run_async(add_shard(config, args.add_shard, lower_bound=args.lower_bound, chunk_rows=args.chunk_rows,
                                    progress=ProgressLine(enabled=not args.no_progress)))
    target = next(t.name for t in config.targets if t.shard == args.add_shard)
    print(f"shard map version {new.version} (shards {', '.join(new.shards)}) recorded at GTID {gtid}: each old "
          f"shard deletes the rows it gives away when its replicator reaches that GTID. Start the new shard: "
          f"dbmux replicate --target {target}")
    return 0


def register(sub: Any) -> None:
    st = sub.add_parser("status", help="per target: applied GTID, lag behind the primary, state (exit 1 unless "
                                       "all are running and caught up)")
    add_config_arg(st)
    st.add_argument("--max-lag", type=_seconds, default=0.0, metavar="SECONDS",
                    help="a running target at most this far behind the primary counts as caught up (default 0)")
    st.set_defaults(func=cmd_status)

    ver = sub.add_parser("verify", help="compare every target with the primary by chunked checksums "
                                        "(exit 0: all caught up and equal, 1: not caught up or differences, "
                                        "2: errors)")
    add_config_arg(ver)
    ver.add_argument("--target", help="verify only this target (default: every target)")
    ver.add_argument("--details", action="store_true", help="list differing key ranges and keys")
    ver.add_argument("--chunk-rows", type=int, default=DEFAULT_CHUNK_ROWS, help="rows per checksum chunk")
    ver.add_argument("--wait", type=_seconds, default=DEFAULT_WAIT_S, metavar="SECONDS",
                     help=f"how long a target behind the primary may take to catch up before it counts as behind "
                          f"(default {DEFAULT_WAIT_S:g})")
    ver.set_defaults(func=cmd_verify)

    bf = sub.add_parser("backfill", help="seed a target from a consistent snapshot of the primary, then hand it to "
                                         "its replicator at exactly that GTID")
    add_config_arg(bf)
    bf.add_argument("--target", required=True, help="target name from the config")
    bf.add_argument("--tables", help="comma-separated db.table patterns (default: every table the target replicates)")
    bf.add_argument("--chunk-rows", type=int, default=5000, help="rows per chunk / target transaction (default 5000)")
    bf.add_argument("--restart", action="store_true",
                    help="forget an earlier backfill of this target and empty the selected tables first")
    bf.add_argument("--no-progress", action="store_true", help="no progress line on stderr")
    bf.add_argument("--catchup-timeout", type=float, default=120.0,
                    help="seconds to wait for the binlog reader's copies when resuming (default 120)")
    bf.set_defaults(func=cmd_backfill)

    rs = sub.add_parser("reshard", help="add a shard online: backfill the keys it takes, then switch every shard "
                                        "to the new map version at a recorded GTID")
    add_config_arg(rs)
    rs.add_argument("--add-shard", required=True, metavar="NAME", help="the shard to add (a target with shard = NAME)")
    rs.add_argument("--lower-bound", type=int, metavar="N", help="placement 'range': the new shard's lower bound")
    rs.add_argument("--chunk-rows", type=int, default=5000, help="backfill rows per chunk (default 5000)")
    rs.add_argument("--no-progress", action="store_true", help="no progress line on stderr")
    rs.set_defaults(func=cmd_reshard)
