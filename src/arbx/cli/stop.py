"""``arbx stop --pid PID``: stop a running engine and wait until it has ended (a preStop hook)."""

from __future__ import annotations

import argparse
from typing import Any

from arbx.cli.args import count


def register(sub: Any) -> None:
    """Add ``stop``."""
    stop = sub.add_parser(
        "stop", help="SIGTERM an engine (stops signing, releases its key) and wait until it ends"
    )
    stop.add_argument("--pid", type=count, required=True, help="the engine's process id")
    stop.add_argument("--timeout", type=float, default=50.0, help="seconds to wait (default 50)")
    stop.set_defaults(handler=_stop)


def _stop(args: argparse.Namespace) -> int:
    from arbx.engine.stop import stop_process

    if stop_process(args.pid, args.timeout):
        print(f"process {args.pid} has stopped", flush=True)
        return 0
    print(f"process {args.pid} still runs after {args.timeout:g} s", flush=True)
    return 1
