"""The ``arbx devnet`` commands and the embedded devnet that ``arbx run`` starts by default.

``devnet up`` starts anvil detached (it outlives the command), builds the world, writes the
deployment file and starts the market simulator as a detached process (``python -m
arbx.devnet.commands market --builder-port P``), which also serves the local builder; ``devnet
down`` stops both and removes the file; ``devnet market`` runs the simulator in the foreground.
Logs go next to the deployment file (``anvil.log``, ``market.log``). :class:`EmbeddedDevnet` does
the same inside one process (the builder in a thread of its own), for ``arbx run``.

Blocks go through the local builder (:mod:`arbx.devnet.builder`, ADR 0008), so bundles sent to
``builder_url`` land on top of their block: anvil runs with ``--order fifo`` and never mines on
its own. In manual pacing the market sends its transactions and ``evm_mine`` to the builder; with
a block time, the builder mines every ``block_time`` seconds (``mine_every``, not anvil's interval
mining) and the market trades on each new block. Readers use anvil's URL (``rpc_url``). Whoever
rewrites the chain (``anvil_reorg``, ``evm_revert``) first sends ``devnet_hold`` to the builder:
it answers once neither a block nor a market step is under way, and none starts until
``devnet_release``.

Every anvil here runs with ``--prune-history 64``: by default anvil writes a copy of the state of
every block under ``~/.foundry/anvil/tmp`` and never removes it, which fills the disk within
hours of simulated trading. So ``eth_call`` reaches back 64 blocks; logs reach back to genesis.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from arbx.devnet.anvil import Anvil, AnvilOptions, find_anvil, free_port, rpc_chain_id, start_anvil
from arbx.devnet.builder_thread import BuilderThread
from arbx.devnet.competitors import competitor_count
from arbx.devnet.deployment import (
    DEFAULT_FILE,
    Deployment,
    load_deployment,
    save_deployment,
    write_searcher_key,
)
from arbx.devnet.market import DEFAULT_PACE, BlockStats, MarketSimulator
from arbx.devnet.serve import add_serve_parser, run_serve
from arbx.devnet.world import WorldOptions, build_world
from arbx.domain.errors import ArbxError, ConfigError
from arbx.errors import TransientError
from arbx.obs.logging import configure_logging
from arbx.scrub import child_environ

DEFAULT_PORT = 8545
DEFAULT_BLOCK_TIME = 2.0
STOP_TIMEOUT = 5.0
START_TIMEOUT = 30.0
REPORT_EVERY = 50  # blocks between two progress lines of `devnet market`
EXIT_USAGE = 2
_HOST = "127.0.0.1"
COMPETITORS_HELP = "N competing searchers send bundles to the local builder (default 0: none)"
FIFO = ("--order", "fifo")  # anvil's pool in arrival order: the local builder needs it
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}  # detached processes started here, to reap


# --- the command line ----------------------------------------------------------------------------


def _non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"{text} is negative")
    return value


def _count(text: str) -> int:
    if not text.isascii() or not text.isdigit() or len(text) > 30:
        raise argparse.ArgumentTypeError(f"{text!r} is not a non-negative integer")
    return int(text)


def _port(text: str) -> int:
    value = _count(text)
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{text} is not a TCP port")
    return value


def add_devnet_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``devnet up|down|market|serve`` to the CLI's subparsers; the ``devnet`` parser."""
    devnet: argparse.ArgumentParser = subparsers.add_parser(
        "devnet", help="a local chain with Uniswap V2/V3 venues and a simulated market"
    )
    sub = devnet.add_subparsers(dest="devnet_command", required=True, parser_class=type(devnet))
    up = sub.add_parser("up", help="start anvil, deploy the world, start the market (detached)")
    up.add_argument("--port", type=_port, default=DEFAULT_PORT)
    up.add_argument("--seed", type=_count, default=0, help="same seed, same world and market")
    up.add_argument(
        "--block-time", type=_non_negative, default=DEFAULT_BLOCK_TIME, metavar="SECONDS",
        help=f"anvil mines every SECONDS (default {DEFAULT_BLOCK_TIME:g}); 0: the market "
        "mines a block every --pace seconds",
    )  # fmt: skip
    up.add_argument("--pace", type=_non_negative, default=DEFAULT_PACE, metavar="SECONDS")
    up.add_argument("--pools", type=_count, metavar="N", help="scale out to N pools in all")
    up.add_argument("--file", type=Path, default=DEFAULT_FILE, help="deployment file to write")
    up.add_argument("--builder-port", type=_port, help="the local builder's (default: any free)")
    up.add_argument(
        "--competitors", type=competitor_count, default=0, metavar="N", help=COMPETITORS_HELP
    )
    up.add_argument(
        "--searcher-key-file", type=Path, metavar="PATH",
        help="write the searcher's key (anvil account 9) to PATH, mode 0600",
    )  # fmt: skip
    down = sub.add_parser("down", help="stop the devnet started by `devnet up`")
    down.add_argument("--file", type=Path, default=DEFAULT_FILE)
    market = sub.add_parser("market", help="run the market simulator in the foreground")
    market.add_argument("--file", type=Path, default=DEFAULT_FILE)
    market.add_argument("--seed", type=_count, help="default: the deployment's seed")
    market.add_argument("--pace", type=_non_negative, default=DEFAULT_PACE, metavar="SECONDS")
    market.add_argument("--blocks", type=_count, metavar="N", help="stop after N blocks")
    market.add_argument(
        "--competitors", type=competitor_count, default=0, metavar="N", help=COMPETITORS_HELP
    )
    market.add_argument(
        "--builder-port", type=_port, metavar="PORT",
        help="serve a local builder on PORT and send and mine through it (default: through "
        "the deployment's builder_url if it names one, else straight to anvil)",
    )  # fmt: skip
    add_serve_parser(sub, _port, _count, _non_negative)
    return devnet


def run_devnet(args: argparse.Namespace) -> int:
    """Run ``devnet up|down|market``; a user error prints one line and returns 2."""
    try:
        if args.devnet_command == "up":
            return _up(args)
        if args.devnet_command == "serve":
            return run_serve(args, EmbeddedDevnet.start)
        if args.devnet_command == "down":
            return _down(args)
        return _market(args)
    except ArbxError as exc:
        print(f"arbx: error: {exc}", file=sys.stderr)
        return EXIT_USAGE


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m arbx.devnet.commands up|down|market ...`` (what ``devnet up`` detaches)."""
    parser = argparse.ArgumentParser(prog="arbx")
    add_devnet_parser(parser.add_subparsers(dest="command", required=True))
    try:
        configure_logging()
    except ArbxError as exc:
        print(f"arbx: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return run_devnet(parser.parse_args(["devnet", *(sys.argv[1:] if argv is None else argv)]))


# --- up, down, market ----------------------------------------------------------------------------


def _up(args: argparse.Namespace) -> int:
    path: Path = args.file
    _refuse_if_running(path)
    if not _port_free(args.port):
        raise ConfigError(f"port {args.port} is in use: choose another with --port")
    builder_port = args.builder_port or free_port()
    if builder_port == args.port or not _port_free(builder_port):
        raise ConfigError(f"port {builder_port} is in use: choose another with --builder-port")
    block_time = args.block_time or None
    options = AnvilOptions(extra_args=FIFO)  # the builder mines, every block_time or on demand
    path.parent.mkdir(parents=True, exist_ok=True)
    anvil_log, market_log = path.parent / "anvil.log", path.parent / "market.log"
    anvil = _spawn([str(find_anvil()), *options.arguments(args.port)], anvil_log)
    url, builder_url = f"http://{_HOST}:{args.port}", f"http://{_HOST}:{builder_port}"
    market_pid: int | None = None
    try:
        _wait_for_node(anvil, url, anvil_log)
        world = WorldOptions(seed=args.seed, n_pools=args.pools)
        deployment = build_world(url, world, block_time=block_time, anvil_pid=anvil.pid)
        save_deployment(deployment, path)  # `down` can stop anvil even if the market fails
        if args.searcher_key_file is not None:
            write_searcher_key(args.searcher_key_file, deployment.accounts.searcher)
        argv = [sys.executable, "-m", "arbx.devnet.commands", "market", "--file", str(path)]
        argv += ["--seed", str(args.seed), "--pace", str(args.pace)]
        argv += ["--competitors", str(args.competitors)]
        market = _spawn([*argv, "--builder-port", str(builder_port)], market_log)
        market_pid = market.pid
        _wait_for_node(market, builder_url, market_log, "the market's builder")
        _check_started(market, market_log)
        deployment = replace(deployment.with_pids(anvil.pid, market.pid), builder_url=builder_url)
        save_deployment(deployment, path)
    except BaseException:
        for pid, marker in ((market_pid, "arbx.devnet"), (anvil.pid, "anvil")):
            if pid is not None:
                _stop(pid, marker)
        raise
    mode = f"block time {block_time:g}s" if block_time else f"mined every {args.pace:g}s"
    print(f"devnet up: {url} ({mode}, {len(deployment.pools)} pools); deployment {path}")
    print(f"local builder (bundles): {builder_url}, served by the market process")
    print(f"anvil pid {anvil.pid} (log {anvil_log}), market pid {market.pid} (log {market_log})")
    if args.searcher_key_file is not None:
        print(f"searcher key (anvil account 9): {args.searcher_key_file} (mode 0600)")
    return 0


def _down(args: argparse.Namespace) -> int:
    path: Path = args.file
    if not path.exists():
        print(f"devnet down: no deployment file at {path}: nothing to stop")
        return 0
    deployment = load_deployment(path)
    stopped = [
        f"{name} (pid {pid})"
        for name, pid, marker in (
            ("market", deployment.market_pid, "arbx.devnet"),
            ("anvil", deployment.anvil_pid, "anvil"),
        )
        if pid is not None and _stop(pid, marker)
    ]
    path.unlink(missing_ok=True)
    print(
        f"devnet down: stopped {', '.join(stopped) or 'nothing (already stopped)'}; removed {path}"
    )
    return 0


def _market(args: argparse.Namespace) -> int:
    deployment = load_deployment(args.file)
    seed = deployment.seed if args.seed is None else args.seed
    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
    with contextlib.ExitStack() as stack:
        url = deployment.builder_url  # that of a running `devnet up`, or None: anvil's
        hold = threading.Lock()  # the market's, taken by the builder's devnet_hold
        if args.builder_port is not None:
            interval = deployment.block_time or None
            served = BuilderThread.serving(
                deployment.rpc_url, port=args.builder_port, mine_every=interval, hold=hold
            )
            url = stack.enter_context(served).url
            print(f"market: local builder on {url}", flush=True)
        simulator = MarketSimulator(
            deployment, seed=seed, url=url, competitors=args.competitors, hold=hold
        )
        return _trade(args, simulator, stop)


def _trade(args: argparse.Namespace, simulator: MarketSimulator, stop: threading.Event) -> int:
    deployment = simulator.deployment
    mode = "manual mining" if simulator.manual else f"block time {deployment.block_time:g}s"
    print(f"market: {deployment.rpc_url}, {len(deployment.pools)} pools, {mode}", flush=True)

    def report(stats: BlockStats) -> None:
        if simulator.totals.block and stats.block % REPORT_EVERY == 0:
            print(f"market: totals to {simulator.totals.line()}", flush=True)

    totals = simulator.run(stop, pace=args.pace, max_blocks=args.blocks, on_block=report)
    print(f"market: stopped; totals to {totals.line()}", flush=True)
    if simulator.competitors is not None:
        rivals = simulator.competitors
        print(f"market: competitors sent {len(rivals.sent)} bundles, {rivals.refused} refused")
    return 0


# --- processes -----------------------------------------------------------------------------------


def _spawn(argv: list[str], log: Path) -> subprocess.Popen[bytes]:
    """Start ``argv`` in its own session (it survives our exit), output appended to ``log``."""
    with log.open("ab") as out:
        process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True, env=child_environ(os.environ),
        )  # fmt: skip
    _CHILDREN[process.pid] = process
    return process


def _wait_for_node(
    process: subprocess.Popen[bytes], url: str, log: Path, what: str = "anvil"
) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ConfigError(f"{what} exited with code {process.returncode}: {_tail(log)}")
        if rpc_chain_id(url, timeout=0.5) is not None:
            return
        time.sleep(0.05)
    raise TransientError(f"{what} did not answer at {url} within {START_TIMEOUT:g}s")


def _check_started(process: subprocess.Popen[bytes], log: Path, wait: float = 1.0) -> None:
    """Give a detached process a moment; ConfigError if it has already exited."""
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ConfigError(f"the market simulator exited at once: {_tail(log)}")
        time.sleep(0.05)


def _tail(log: Path, lines: int = 5) -> str:
    try:
        text = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    except OSError:
        return "(no log)"
    return " | ".join(text[-lines:]) or "(empty log)"


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as anvil binds
        try:
            sock.bind((_HOST, port))
        except OSError:
            return False
    return True


def _refuse_if_running(path: Path) -> None:
    if not path.exists():
        return
    try:
        existing = load_deployment(path)
    except ConfigError:
        return  # unreadable: nothing we could stop, overwrite it
    for pid, marker in ((existing.anvil_pid, "anvil"), (existing.market_pid, "arbx.devnet")):
        if pid is not None and is_running(pid, marker):
            raise ConfigError(
                f"a devnet from {path} is still running ({existing.rpc_url}, pid {pid}): "
                f"stop it with `arbx devnet down --file {path}`"
            )


def is_running(pid: int, marker: str = "") -> bool:
    """True if process ``pid`` is alive (not a zombie) and its command line contains ``marker``."""
    child = _CHILDREN.get(pid)
    if child is not None and child.poll() is not None:
        del _CHILDREN[pid]
        return False
    proc = Path("/proc") / str(pid)
    if Path("/proc/self").exists():
        try:
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
            command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, IndexError):
            return False
        return state not in ("Z", "X") and marker in command
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _stop(pid: int, marker: str, timeout: float = STOP_TIMEOUT) -> bool:
    """SIGTERM ``pid``, SIGKILL it after ``timeout``; False if it was not running."""
    if not is_running(pid, marker):
        return False
    for signum, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, timeout)):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not is_running(pid, marker):
                return True
            time.sleep(0.05)
    return not is_running(pid, marker)


# --- embedded ------------------------------------------------------------------------------------


class EmbeddedDevnet:
    """A devnet owned by this process: anvil, the world, the builder and the market in threads."""

    def __init__(
        self,
        anvil: Anvil,
        deployment: Deployment,
        simulator: MarketSimulator | None,
        builder: BuilderThread | None = None,
    ) -> None:
        self.anvil = anvil
        self.deployment = deployment
        self.simulator = simulator
        self.builder = builder
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The node's HTTP JSON-RPC endpoint (anvil's: for reads)."""
        return self.anvil.url

    @property
    def builder_url(self) -> str | None:
        """The local builder's endpoint (bundles, transactions), None without a builder."""
        return self.builder.url if self.builder is not None else None

    @property
    def stats(self) -> BlockStats:
        """What the market has done so far."""
        return self.simulator.totals if self.simulator is not None else BlockStats()

    @classmethod
    @contextlib.contextmanager
    def start(
        cls,
        seed: int = 0,
        block_time: float | None = None,
        n_pools: int | None = None,
        *,
        pace: float = DEFAULT_PACE,
        market: bool = True,
        file: Path | None = None,
        builder: bool = True,
        searcher_key_file: Path | None = None,
        listen: tuple[str, int] | None = None,
        competitors: int = 0,
        builder_listen: tuple[str, int] | None = None,
    ) -> Iterator[EmbeddedDevnet]:
        """Start anvil, the world (``file``), the builder and the market; stop all on exit."""
        # With `builder`, it makes every block: every `block_time` seconds (mine_every) or, in
        # manual pacing, on the market's `evm_mine` (no market, no block time: only on demand).
        # `searcher_key_file`: the searcher's key is written there, mode 0600. `listen`: the
        # address and port anvil serves on (default: a free loopback port); `builder_listen`: the
        # builder's (default: a free loopback port). `competitors`: that many competing searchers
        # send bundles to the builder (arbx.devnet.competitors).
        interval = block_time or None
        options = AnvilOptions(block_time=None if builder else interval, extra_args=FIFO)
        if listen is not None:
            options = replace(options, host=listen[0], port=listen[1])
        with start_anvil(options) as node, contextlib.ExitStack() as stack:
            deployment = build_world(
                node.url, WorldOptions(seed=seed, n_pools=n_pools), block_time=interval,
                anvil_pid=node.process.pid,
            )  # fmt: skip
            if searcher_key_file is not None:
                write_searcher_key(searcher_key_file, deployment.accounts.searcher)
            local = None
            hold = threading.Lock()  # the market's, taken by the builder's devnet_hold
            if builder:
                host, port = builder_listen or ("127.0.0.1", 0)
                local = stack.enter_context(
                    BuilderThread.serving(
                        node.url, host=host, port=port, mine_every=interval, hold=hold
                    )
                )
                deployment = replace(deployment, builder_url=local.url)
            if file is not None:
                save_deployment(deployment, file)
            url = local.url if local is not None else None
            simulator = (
                MarketSimulator(deployment, seed=seed, url=url, competitors=competitors, hold=hold)
                if market
                else None
            )
            devnet = cls(node, deployment, simulator, local)
            devnet._start_market(pace)
            try:
                yield devnet
            finally:
                devnet._stop_market()  # before the builder stops: the market sends through it

    def _start_market(self, pace: float) -> None:
        if self.simulator is None:
            return
        simulator = self.simulator

        def work() -> None:
            try:
                simulator.run(self._stop, pace=pace)
            except BaseException as exc:  # kept for the owner to inspect
                self.error = exc

        self._thread = threading.Thread(target=work, name="arbx-market", daemon=True)
        self._thread.start()

    def _stop_market(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=STOP_TIMEOUT)


if __name__ == "__main__":
    sys.exit(main())
