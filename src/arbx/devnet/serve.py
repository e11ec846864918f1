"""``arbx devnet serve``: the devnet in the foreground, for a container.

Anvil listens on ``--listen`` (e.g. ``0.0.0.0``) and a fixed ``--port``, the local builder on the
same address and ``--builder-port`` when given (bundles from other containers); the world, the
builder and the market run in this process (:class:`~arbx.devnet.commands.EmbeddedDevnet`). It
writes the deployment file and, with ``--settings-out``, the settings file a searcher elsewhere
follows the devnet with (its RPC address is ``--public-rpc``, the name other containers use).
SIGTERM or SIGINT stops everything; so does the market or anvil failing (exit 1).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import tempfile
import threading
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from arbx.devnet.competitors import competitor_count
from arbx.devnet.deployment import Deployment

if TYPE_CHECKING:
    from arbx.devnet.commands import EmbeddedDevnet

DEFAULT_LISTEN = "127.0.0.1"
CHECK_EVERY = 1.0  # seconds between two looks at anvil and the market


def add_serve_parser(sub: Any, port: Any, count: Any, non_negative: Any) -> None:
    """Add ``devnet serve`` to the devnet's subparsers (argument types shared with the others)."""
    serve = sub.add_parser("serve", help="run the devnet in the foreground (for a container)")
    serve.add_argument("--listen", default=DEFAULT_LISTEN, help="address anvil listens on")
    serve.add_argument("--port", type=port, default=8545)
    serve.add_argument("--seed", type=count, default=0, help="same seed, same world and market")
    serve.add_argument(
        "--block-time", type=non_negative, default=0.0, metavar="SECONDS",
        help="a block every SECONDS; 0 (default): the market mines one every --pace seconds",
    )  # fmt: skip
    serve.add_argument("--pace", type=non_negative, default=1.0, metavar="SECONDS")
    serve.add_argument("--pools", type=count, metavar="N", help="scale out to N pools in all")
    serve.add_argument(
        "--competitors", type=competitor_count, default=0, metavar="N",
        help="N competing searchers send bundles to the local builder (default 0: none)",
    )  # fmt: skip
    serve.add_argument("--file", type=Path, default=Path("devnet.json"), help="deployment file")
    serve.add_argument("--settings-out", type=Path, metavar="PATH", help="settings to follow it")
    serve.add_argument(
        "--builder-port", type=port, metavar="PORT",
        help="serve the local builder on --listen and PORT (default: a free loopback port)",
    )  # fmt: skip
    serve.add_argument(
        "--public-rpc", metavar="URL",
        help="the RPC address written in --settings-out (default: http://127.0.0.1:PORT)",
    )  # fmt: skip


def settings_toml(
    deployment: Deployment,
    rpc_url: str | Sequence[str],
    poll_interval: float = 0.5,
    *,
    mode: str = "shadow",
    chain_extra: Sequence[str] = (),
    sections: Sequence[str] = (),
) -> str:
    """A settings file (TOML) that follows ``deployment`` in ``mode`` (shadow by default)
    through ``rpc_url`` (one endpoint or several); ``chain_extra`` are more ``[chain]`` lines and
    ``sections`` more lines after the venues (further tables)."""

    def text(value: str) -> str:
        return json.dumps(value)  # a TOML basic string for the ASCII values written here

    rpcs = [rpc_url] if isinstance(rpc_url, str) else list(rpc_url)
    lines = [
        "# Follows a devnet",
        f"mode = {text(mode)}",
        "",
        "[chain]",
        f"id = {deployment.chain_id}",
        'name = "devnet"',
        f"rpc = [{', '.join(text(u) for u in rpcs)}]",
        f"multicall = {text(deployment.multicall)}",
        f"poll_interval = {poll_interval}",
        *chain_extra,
        "",
        "[strategy]",
        f"base_tokens = [{text(deployment.weth)}]",
    ]
    for venue in deployment.venues:
        lines += [
            "",
            "[[venues]]",
            f"name = {text(venue.name)}",
            f"kind = {text(venue.kind)}",
            f"factory = {text(venue.factory)}",
            f"fee_bps = {venue.fee_bps or 30}",
            f"init_code_hash = {text(venue.init_code_hash)}",
        ]
    if sections:
        lines += ["", *sections]
    return "\n".join(lines) + "\n"


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    with os.fdopen(handle, "w", encoding="utf-8") as out:
        out.write(text)
    os.chmod(temporary, 0o644)  # read by the searcher's container, another user
    Path(temporary).replace(path)


def run_serve(
    args: argparse.Namespace, start: Callable[..., AbstractContextManager[EmbeddedDevnet]]
) -> int:
    """Serve the devnet (``start``: ``EmbeddedDevnet.start``) until SIGTERM/SIGINT (0), or until
    anvil or the market fails (1)."""
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    with start(
        seed=args.seed, block_time=args.block_time or None, n_pools=args.pools,
        pace=args.pace, file=args.file, listen=(args.listen, args.port),
        competitors=args.competitors,
        builder_listen=None if args.builder_port is None else (args.listen, args.builder_port),
    ) as devnet:  # fmt: skip
        public = args.public_rpc or f"http://127.0.0.1:{args.port}"
        if args.settings_out is not None:
            _write(args.settings_out, settings_toml(devnet.deployment, public))
        pools = len(devnet.deployment.pools)
        print(f"devnet serve: {public} ({pools} pools), deployment {args.file}", flush=True)
        if args.builder_port is not None:
            print(f"devnet serve: local builder on {args.listen}:{args.builder_port}", flush=True)
        while not stop.wait(CHECK_EVERY):
            if devnet.error is not None or not devnet.anvil.is_running():
                reason = devnet.error or "anvil exited"
                print(f"devnet serve: stopping: {reason}", flush=True)
                return 1
        print("devnet serve: stopped", flush=True)
    return 0
