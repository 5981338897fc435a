"""``dbmux stack``: the local real stack (Kafka, MariaDB, PostgreSQL) on 127.0.0.1."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import Any

from dbmux.cli.common import stack_dir
from dbmux.stack.layout import DEFAULT_PORTS, MAX_KAFKA_BROKERS, Layout
from dbmux.stack.stack import Stack


def _stack(args: argparse.Namespace) -> Stack:
    overrides = {k: getattr(args, k, None) for k in DEFAULT_PORTS}
    return Stack(Layout.load(stack_dir(args.dir), overrides=overrides,
                             kafka_brokers=getattr(args, "kafka_brokers", None),
                             kafka_remote_port=getattr(args, "kafka_remote_port", None)))


def cmd_stack_up(args: argparse.Namespace) -> int:
    stack = _stack(args)
    t0 = time.monotonic()
    only = tuple(n.strip() for n in (args.only or "").split(",") if n.strip())
    started = asyncio.run(stack.up(timeout_s=args.timeout, only=only))
    took = time.monotonic() - t0
    what = f"started {', '.join(started)}" if started else "already running"
    print(f"stack up in {stack.layout.root} ({what}; {took:.1f}s)")
    print(f"pipeline config: {stack.layout.config_path}")
    return 0


def cmd_stack_down(args: argparse.Namespace) -> int:
    stopped = _stack(args).down(purge=args.purge)
    print(f"stopped {', '.join(stopped)}" if stopped else "nothing was running")
    return 0


def cmd_stack_status(args: argparse.Namespace) -> int:
    rows = _stack(args).status()
    print(f"{'service':<18} {'port':>6} {'pid':>8}  state")
    for r in rows:
        print(f"{r.name:<18} {r.port:>6} {r.pid or '-':>8}  {'up' if r.up else 'down'}")
    return 0 if all(r.up for r in rows) else 3


def cmd_stack_restart(args: argparse.Namespace) -> int:
    asyncio.run(_stack(args).restart(args.service))
    print(f"restarted {args.service}")
    return 0


def cmd_stack_env(args: argparse.Namespace) -> int:
    sys.stdout.write(_stack(args).env_script())
    return 0


def register(sub: Any) -> None:
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
            p.add_argument("service", help="kafka (kafka-1, kafka-2, ... with --kafka-brokers), mariadb-primary, "
                                           "mariadb-replica1, ... (see status)")
        if name == "down":
            p.add_argument("--purge", action="store_true", help="also delete all data of the stack")
        if name == "up":
            p.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for readiness")
            p.add_argument("--only", metavar="NAMES", help="start only these services, comma-separated "
                           "(kafka: every broker), e.g. --only kafka for Kafka alone")
            p.add_argument("--kafka-brokers", type=int, default=None, metavar="N",
                           help=f"Kafka brokers in the KRaft cluster, 1 .. {MAX_KAFKA_BROKERS} (default 1; env "
                                "DBMUX_STACK_KAFKA_BROKERS): kafka-1 .. kafka-N, broker n on --kafka-port + 2(n-1), "
                                "its controller on --kafka-controller-port + 2(n-1)")
            p.add_argument("--kafka-remote-port", type=int, default=None, metavar="P",
                           help="a remote region (env DBMUX_STACK_KAFKA_REMOTE_PORT; default none): every broker "
                                "also listens behind a Toxiproxy latency proxy, broker n's proxy on P + 2(n-1) "
                                "(advertised), its own socket on P + 2(n-1) + 1, Toxiproxy's API on P + 2N; "
                                "`stack env` exports DBMUX_KAFKA_REMOTE and DBMUX_TOXIPROXY_URL")
            for key in DEFAULT_PORTS:
                p.add_argument("--" + key.replace("_", "-"), dest=key, type=int,
                               help=f"override the {key.replace('_', ' ')} (env DBMUX_STACK_{key.upper()})")
