"""The ``dbmux`` command line."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import time
from pathlib import Path

from dbmux.errors import DbmuxError

log = logging.getLogger("dbmux")


def _stack_dir(args: argparse.Namespace) -> Path:
    return Path(args.dir or os.environ.get("DBMUX_STACK_DIR") or ".stack")


def _layout(args: argparse.Namespace):
    from dbmux.stack.layout import DEFAULT_PORTS, Layout

    overrides = {k: getattr(args, k, None) for k in DEFAULT_PORTS}
    return Layout.load(_stack_dir(args), overrides=overrides)


def cmd_stack_up(args: argparse.Namespace) -> int:
    from dbmux.stack.stack import Stack

    stack = Stack(_layout(args))
    t0 = time.monotonic()
    started = asyncio.run(stack.up(timeout_s=args.timeout))
    took = time.monotonic() - t0
    what = f"started {', '.join(started)}" if started else "already running"
    print(f"stack up in {stack.layout.root} ({what}; {took:.1f}s)")
    print(f"pipeline config: {stack.layout.config_path}")
    return 0


def cmd_stack_down(args: argparse.Namespace) -> int:
    from dbmux.stack.stack import Stack

    stopped = Stack(_layout(args)).down(purge=args.purge)
    print(f"stopped {', '.join(stopped)}" if stopped else "nothing was running")
    return 0


def cmd_stack_status(args: argparse.Namespace) -> int:
    from dbmux.stack.stack import Stack

    rows = Stack(_layout(args)).status()
    print(f"{'service':<18} {'port':>6} {'pid':>8}  state")
    for r in rows:
        print(f"{r.name:<18} {r.port:>6} {r.pid or '-':>8}  {'up' if r.up else 'down'}")
    return 0 if all(r.up for r in rows) else 3


def cmd_stack_restart(args: argparse.Namespace) -> int:
    from dbmux.stack.stack import Stack

    stack = Stack(_layout(args))
    asyncio.run(stack.restart(args.service))
    print(f"restarted {args.service}")
    return 0


def cmd_stack_env(args: argparse.Namespace) -> int:
    from dbmux.stack.stack import Stack

    sys.stdout.write(Stack(_layout(args)).env_script())
    return 0


def cmd_ingress(args: argparse.Namespace) -> int:
    from dbmux.config import load_config
    from ingress.server import run

    config = load_config(args.config)
    _start_metrics(config.ingress.metrics_port)
    run(config)
    return 0


def _run_async(main) -> int:
    try:
        import uvloop

        return uvloop.run(main)
    except ImportError:
        return asyncio.run(main)


def _start_metrics(port: int) -> None:
    if port:
        from prometheus_client import start_http_server

        start_http_server(port, addr="127.0.0.1")
        log.info("Prometheus metrics on http://127.0.0.1:%s/metrics", port)


def _stop_event() -> asyncio.Event:
    import signal

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


def cmd_replicate(args: argparse.Namespace) -> int:
    from dbmux.config import load_config
    from replicator.runner import Replicator

    config = load_config(args.config)
    replicator = Replicator(config, args.target)
    replicator.tune_gc = True
    _start_metrics(config.replicator.metrics_port)

    async def main() -> int:
        return await replicator.run(_stop_event())

    return _run_async(main())


def cmd_up(args: argparse.Namespace) -> int:
    """The whole pipeline of the config in one process: ingress, binlog reader, one replicator per target."""
    from dbmux.config import load_config
    from ingress.server import IngressServer
    from replicator.binlog_reader import BinlogReader
    from replicator.runner import Replicator

    config = load_config(args.config or _stack_config())
    _start_metrics(config.ingress.metrics_port or config.replicator.metrics_port)

    async def main() -> int:
        stop = _stop_event()
        server = IngressServer(config)
        await server.start()
        targets = [t.name for t in config.targets]
        tasks = {name: asyncio.ensure_future(Replicator(config, name).run(stop)) for name in targets}
        tasks["binlog"] = asyncio.ensure_future(BinlogReader(config).run(stop))
        print(f"dbmux up: ingress on {config.ingress.listen}, binlog reader on, replicating to "
              f"{', '.join(targets) or 'nothing'}", flush=True)
        try:
            await stop.wait()
        finally:
            codes = await asyncio.gather(*tasks.values())
            await server.stop()
        return max(codes, default=0)

    return _run_async(main())


def cmd_status(args: argparse.Namespace) -> int:
    from dbmux.config import load_config
    from replicator import status

    return status.run(load_config(args.config or _stack_config()))


def cmd_events(args: argparse.Namespace) -> int:
    from dbmux import audit
    from dbmux.config import load_config

    return audit.run(load_config(args.config or _stack_config()), args.last, args.follow)


def _stack_config() -> str:
    path = Path(os.environ.get("DBMUX_STACK_DIR") or ".stack") / "dbmux.toml"
    if not path.exists():
        raise DbmuxError(f"no -c given and {path} does not exist: run 'dbmux stack up' first or pass -c")
    return str(path)


def _default_config() -> str | None:
    return os.environ.get("DBMUX_CONFIG")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dbmux", description="MySQL database multiplexer")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv: debug)")
    sub = parser.add_subparsers(dest="command", required=True)

    ing = sub.add_parser("ingress", help="run the ingress (MySQL protocol proxy publishing to Kafka)")
    ing.add_argument("-c", "--config", default=_default_config(), required=_default_config() is None,
                     help="pipeline config TOML (default: $DBMUX_CONFIG)")
    ing.set_defaults(func=cmd_ingress)

    rep = sub.add_parser("replicate", help="apply the change stream to one target, exactly once, in order")
    rep.add_argument("-c", "--config", default=_default_config(), required=_default_config() is None,
                     help="pipeline config TOML (default: $DBMUX_CONFIG)")
    rep.add_argument("--target", required=True, help="target name from the config")
    rep.set_defaults(func=cmd_replicate)

    up = sub.add_parser("up", help="run the whole pipeline (ingress, binlog reader, a replicator per target) "
                                   "until Ctrl-C")
    up.add_argument("-c", "--config", default=_default_config(),
                    help="pipeline config TOML (default: $DBMUX_CONFIG, else the local stack's)")
    up.set_defaults(func=cmd_up)

    st = sub.add_parser("status", help="per target: applied GTID, lag, state (exit 1 unless all running)")
    st.add_argument("-c", "--config", default=_default_config(),
                    help="pipeline config TOML (default: $DBMUX_CONFIG, else the local stack's)")
    st.set_defaults(func=cmd_status)

    evp = sub.add_parser("events", help="print change events from the topic (the audit trail) as JSON lines")
    evp.add_argument("-c", "--config", default=_default_config(),
                     help="pipeline config TOML (default: $DBMUX_CONFIG, else the local stack's)")
    evp.add_argument("--last", type=int, default=10, help="start this many events before the end (per partition)")
    evp.add_argument("-f", "--follow", action="store_true", help="keep printing new events")
    evp.set_defaults(func=cmd_events)

    from replicator.backfill import add_backfill_parser
    from replicator.binlog_reader import add_binlog_parser
    from replicator.verify import add_verify_parser

    add_verify_parser(sub)
    add_binlog_parser(sub)
    from dbmux.shardmap_cli import add_shardmap_parser

    add_shardmap_parser(sub)
    add_backfill_parser(sub)
    from replicator.reshard import add_reshard_parser

    add_reshard_parser(sub)

    stack = sub.add_parser("stack", help="the local real stack (Kafka, MariaDB, PostgreSQL) on 127.0.0.1")
    ssub = stack.add_subparsers(dest="stack_command", required=True)
    for name, fn, helptext in (
        ("up", cmd_stack_up, "start every server (idempotent); returns when all answer"),
        ("down", cmd_stack_down, "stop exactly the processes the stack started"),
        ("status", cmd_stack_status, "show each service up/down (exit 3 if any is down)"),
        ("env", cmd_stack_env, "print export lines: addresses and the generated pipeline config"),
        ("restart", cmd_stack_restart, "stop one service cleanly and start it again (tests, demos)"),
    ):
        p = ssub.add_parser(name, help=helptext)
        p.add_argument("--dir", help="stack state directory (default: $DBMUX_STACK_DIR or ./.stack)")
        p.set_defaults(func=fn)
        if name == "restart":
            p.add_argument("service", help="kafka, mariadb-primary, mariadb-replica1, ... (see status)")
        if name == "down":
            p.add_argument("--purge", action="store_true", help="also delete all data of the stack")
        if name == "up":
            p.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for readiness")
            for key in ("kafka_port", "kafka_controller_port", "primary_port", "replica1_port",
                        "replica2_port", "shard_a_port", "shard_b_port", "ingress_port"):
                p.add_argument("--" + key.replace("_", "-"), dest=key, type=int,
                               help=f"override the {key.replace('_', ' ')} (env DBMUX_STACK_{key.upper()})")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except DbmuxError as exc:
        print(f"dbmux: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
