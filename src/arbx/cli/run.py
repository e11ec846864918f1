"""``arbx run`` (the shadow run) and ``arbx sync verify``: where the engine's pieces are wired.

With no settings, the run is the embedded default: it starts a local devnet with the market
simulator, then follows it like any chain. With settings (TOML file or ``ARBX_`` variables) it
follows the configured chain in shadow mode. Either way: discover pools, bootstrap them, then per
block sync, evaluate, record and show; Ctrl-C or SIGTERM stops it cleanly with a summary.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import os
import secrets
import signal
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from arbx.cli.args import count
from arbx.config import Settings, load_settings
from arbx.domain.errors import ConfigError
from arbx.domain.modes import MODES
from arbx.risk.settings import RiskSettings, StageSettings

# The embedded devnet trades play money: its capital stages are wider than a real chain's.
DEVNET_RISK = RiskSettings(
    stages=[
        StageSettings(mode="shadow", max_input={}, name="shadow"),
        StageSettings(mode="limited", max_input={"*": 10 * 10**18}, name="devnet limited 10"),
        StageSettings(mode="scaled", max_input={"*": 100 * 10**18}, name="devnet scaled 100"),
    ],
    daily_gas_cap_wei=10**20,
    daily_loss_cap_wei=10**19,
)


@dataclass(frozen=True, slots=True)
class ChainSpec:
    """Everything the run needs to know about the chain it follows."""

    name: str
    chain_id: int
    rpc: tuple[str, ...]
    ws: tuple[str, ...]
    multicall: str
    venues: tuple[Any, ...]  # arbx.chain.discovery.Venue
    start_block: int
    base_tokens: tuple[str, ...]
    allow: tuple[str, ...] = ()
    deny: tuple[str, ...] = ()
    min_reserve: int = 0
    symbols: dict[str, str] = field(default_factory=dict)
    builder_url: str | None = None  # the embedded devnet's local builder
    searcher_key_file: Path | None = None  # the embedded devnet's searcher key (live modes)


def register(sub: Any) -> None:
    """Add ``run`` and ``sync verify``."""
    run = sub.add_parser("run", help="the searcher (shadow mode; embedded devnet by default)")
    run.add_argument("--config", type=Path, help="settings file (TOML)")
    run.add_argument("--max-blocks", type=count, help="stop after this many blocks")
    run.add_argument("--seed", type=count, default=1, help="embedded devnet: market seed")
    run.add_argument("--block-time", type=float, help="embedded devnet: seconds per block")
    run.add_argument(
        "--pace", type=float, default=0.25, help="embedded devnet: seconds between market blocks"
    )
    run.add_argument("--pools", type=count, help="embedded devnet: scale out to this many pools")
    run.add_argument("--plain", action="store_true", help="one line per block, no live view")
    run.add_argument("--mode", choices=MODES, help="overrides the settings' mode")
    run.set_defaults(handler=_run)

    sync = sub.add_parser("sync", help="pool state sync tools")
    sync.add_argument("action", choices=["verify"])
    sync.add_argument("--config", type=Path, help="settings file (TOML)")
    sync.add_argument("--blocks", type=count, default=20, help="blocks to follow before comparing")
    sync.set_defaults(handler=_sync)


def spec_from_settings(settings: Settings) -> ChainSpec:
    """The chain of a configured (non-embedded) run."""
    from arbx.chain.discovery import Venue

    if settings.chain.multicall is None:
        raise ConfigError("chain.multicall must name the multicall contract of the chain")
    return ChainSpec(
        name=settings.chain.name,
        chain_id=settings.chain.id,
        rpc=tuple(settings.chain.rpc),
        ws=tuple(settings.chain.ws),
        multicall=settings.chain.multicall,
        venues=tuple(
            Venue(v.name, v.kind, v.factory, v.fee_bps, v.init_code_hash) for v in settings.venues
        ),
        start_block=settings.chain.start_block,
        base_tokens=tuple(settings.strategy.base_tokens),
        allow=tuple(settings.filters.allow_tokens),
        deny=tuple(settings.filters.deny_tokens),
        min_reserve=settings.filters.min_reserve,
    )


@contextlib.contextmanager
def chain_for(settings: Settings, args: argparse.Namespace) -> Iterator[ChainSpec]:
    """The configured chain, or a fresh embedded devnet that lives as long as the context."""
    if not settings.embedded:
        yield spec_from_settings(settings)
        return
    from arbx.devnet.commands import EmbeddedDevnet, is_running
    from arbx.devnet.deployment import DEFAULT_FILE, load_deployment

    if args.command == "sync" and DEFAULT_FILE.is_file():  # a devnet started by `devnet up`
        deployment = load_deployment(DEFAULT_FILE)
        if deployment.anvil_pid is not None and is_running(deployment.anvil_pid, "anvil"):
            yield devnet_spec(deployment)
            return

    print("starting the embedded devnet (anvil, Uniswap V2/V3, market simulator)...", flush=True)
    live = settings.mode != "shadow"
    key_file = DEFAULT_FILE.parent / "devnet-searcher.key" if live else None
    if key_file is not None:
        key_file.parent.mkdir(parents=True, exist_ok=True)
    with EmbeddedDevnet.start(
        seed=getattr(args, "seed", 1),
        block_time=getattr(args, "block_time", None),
        n_pools=getattr(args, "pools", None),
        pace=getattr(args, "pace", 0.25),
        searcher_key_file=key_file,
    ) as devnet:
        spec = devnet_spec(devnet.deployment)
        yield replace(spec, builder_url=devnet.builder_url, searcher_key_file=key_file)


def devnet_spec(deployment: Any) -> ChainSpec:
    """The ChainSpec of a devnet deployment."""
    from arbx.chain.discovery import Venue

    return ChainSpec(
        name="devnet",
        chain_id=deployment.chain_id,
        rpc=(deployment.rpc_url,),
        ws=(deployment.ws_url,) if deployment.ws_url else (),
        multicall=deployment.multicall,
        venues=tuple(
            Venue(v.name, v.kind, v.factory, v.fee_bps or 30, v.init_code_hash)
            for v in deployment.venues
        ),
        start_block=0,
        base_tokens=(deployment.weth,),
        symbols={t.address: t.symbol for t in deployment.tokens} | {deployment.weth: "WETH"},
    )


def _run(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    if args.mode is not None:
        settings = settings.model_copy(update={"mode": args.mode})
    if settings.embedded and settings.mode != "shadow":  # play money, fast blocks
        execution = settings.execution.model_copy(
            update={"blocks_ahead": max(1, settings.execution.blocks_ahead)}
        )
        settings = settings.model_copy(update={"risk": DEVNET_RISK, "execution": execution})
    with chain_for(settings, args) as spec:
        return asyncio.run(_shadow(settings, spec, args))


async def _shadow(settings: Settings, spec: ChainSpec, args: argparse.Namespace) -> int:
    from arbx.chain.heads import heads
    from arbx.chain.parity import ParityChecker
    from arbx.chain.resync import BookResync
    from arbx.chain.sync import ChainSync
    from arbx.cli.live import stage_caps
    from arbx.cli.store import database_errors
    from arbx.engine.pipeline import Pipeline
    from arbx.engine.runner import Supervisor
    from arbx.engine.supervision import describe
    from arbx.executors.shadow import ShadowExecutor
    from arbx.obs.view import RunView
    from arbx.store import make_engine, make_session_factory, migrate, repo
    from arbx.strategies.cyclic import CyclicArbitrage, StrategyLimits

    url = settings.database_url
    with database_errors(url):
        migrate.upgrade(url)
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    async with _client(spec, settings) as client:
        chain_id = await client.chain_id()
        if chain_id != spec.chain_id and not settings.embedded:
            raise ConfigError(f"the RPC serves chain {chain_id}, the settings say {spec.chain_id}")
        book, metas, symbols = await _bootstrap(client, spec)
        strategy = CyclicArbitrage(
            book,
            StrategyLimits(
                base_tokens=spec.base_tokens,
                max_hops=settings.strategy.max_hops,
                max_input=settings.strategy.max_input or None,
                min_net_profit_wei=settings.strategy.min_net_profit_wei,
                builder_share_bps=settings.strategy.builder_share_bps,
                priority_fee_wei=settings.strategy.priority_fee_wei,
                max_routes=settings.strategy.max_routes,
                max_sized=settings.strategy.max_sized_per_block,
            ),
        )
        with database_errors(url), sessions.begin() as session:
            repo.upsert_chain(session, chain_id, spec.name)
            repo.upsert_pools(session, list(book.pools.values()))
            run_id = repo.start_run(
                session, chain_id, mode=settings.mode, settings=settings.model_dump(mode="json")
            )
        recorder = ShadowExecutor(sessions, run_id, chain_id)
        executor: Any = recorder
        risk: Any = None
        relay: Any = None
        if settings.mode != "shadow":
            executor, risk, relay = await _live(
                settings, spec, engine, sessions, client, chain_id, book, recorder
            )
            live_risk = risk
            strategy.caps = lambda: (
                stage_caps(live_risk, spec.base_tokens)
                if live_risk.mode != "shadow"
                else strategy.limits.max_input
            )
            print(f"mode {risk.mode} (stage {risk.stage}): {risk.reason or 'trading'}", flush=True)
        print(
            f"run {run_id}: {len(book)} pools, {len(strategy.index)} routes from "
            f"{', '.join(symbols.get(b, b) for b in spec.base_tokens)}, "
            f"database {_short(url)}",
            flush=True,
        )
        stop = asyncio.Event()
        api_task = None
        if settings.embedded or settings.api.serve_in_run:
            api_task = await _serve_api(settings, sessions, chain_id, run_id, stop)
        view = RunView(
            f"arbx {settings.mode} · {spec.name}", symbols, live=False if args.plain else None
        )

        pipeline = Pipeline(
            heads(client, poll_interval=settings.chain.poll_interval, use_ws=bool(spec.ws)),
            ChainSync(client, book),
            strategy,
            executor,
            parity=ParityChecker(client, book, metas),
            resync=BookResync(client, book, metas),
            on_block=view.update,
            on_parity=recorder.on_parity,
            pools=lambda: len(book),
        )
        _on_signals(stop)
        status = "failed"
        try:
            summary = await Supervisor(pipeline).run(stop, args.max_blocks)
            status = "stopped"
        except BaseException as exc:
            if not pipeline.summary.fault:
                pipeline.summary.fault = describe(exc)
            raise
        finally:
            s = pipeline.summary
            with sessions.begin() as session:
                repo.finish_run(
                    session,
                    run_id,
                    status,
                    summary={
                        "blocks": s.blocks,
                        "opportunities": s.opportunities,
                        "expected_net_profit_wei": str(s.expected_net_profit_wei),
                        "reorgs": s.reorgs,
                        "stopped_by": s.stopped_by or "error",
                        "reason": s.fault or None,
                        "parity": {
                            "blocks_checked": s.parity_checks,
                            "blocks_seen": s.blocks,
                            "failures": s.parity_failures,
                            "skipped": s.parity_skipped,
                            "dropped": s.parity_dropped,
                            "errors": s.parity_errors,
                        },
                        "supervision": {
                            "transient_faults": s.transient_faults,
                            "stale_faults": s.stale_faults,
                            "reloads": s.reloads,
                            "rebootstraps": s.rebootstraps,
                            "skipped_heads": s.skipped_heads,
                        },
                        "rpc": client.stats.as_dict(),
                        "live": dataclasses.asdict(executor.stats) if risk is not None else None,
                    },
                    ended_at=datetime.now(UTC),
                )
            view.close(s)
            stop.set()
            if api_task is not None:
                await asyncio.gather(api_task, return_exceptions=True)
            if risk is not None:
                await executor.close()
                risk.stop()
                await relay.close()
                live = executor.stats
                print(
                    f"live: {live.considered} considered, {live.sent} bundles sent, "
                    f"outcomes {live.outcomes or '{}'}, {live.refused} refused, "
                    f"{live.sim_failed} failed simulation",
                    flush=True,
                )
    print(f"report: arbx report --run {run_id}", flush=True)
    return 0 if summary.parity_failures == 0 else 1


async def _serve_api(
    settings: Settings, sessions: Any, chain_id: int, run_id: int, stop: asyncio.Event
) -> asyncio.Task[None]:
    """Serve the API and the dashboard on loopback for this run; print where, with a token."""
    import socket

    from arbx.api.app import create_app, serve
    from arbx.api.auth import revoked_after
    from arbx.store import api_repo

    host, port = "127.0.0.1", settings.api.port
    with socket.socket() as probe:  # the configured port, or any free one when it is taken
        if probe.connect_ex((host, port)) == 0:
            port = 0
    if port == 0:
        from arbx.devnet.anvil import free_port

        port = free_port()
    app = create_app(
        sessions,
        chain_id=chain_id,
        poll_interval=settings.api.poll_interval,
        heartbeat_max_age_s=settings.api.heartbeat_max_age_s,
        configured_mode=settings.mode,
        configured_limits=settings.risk.limits(),
        schedule=settings.risk.schedule(),
    )
    name = f"run-{run_id}-{secrets.token_hex(3)}"
    with sessions.begin() as session:
        token = api_repo.add_token(session, name, "operator")
    task = asyncio.ensure_future(revoked_after(serve(app, host, port, stop), sessions, name))
    print(f"dashboard: http://{host}:{port}/  (operator token for this run: {token})", flush=True)
    return task


async def _live(
    settings: Settings,
    spec: ChainSpec,
    engine: Any,
    sessions: Any,
    client: Any,
    chain_id: int,
    book: Any,
    recorder: Any,
) -> tuple[Any, Any, Any]:
    """The live executor; on the embedded devnet with the devnet's keys and a fresh contract."""
    from arbx.cli.live import devnet_keys, live_executor

    environ = None
    if spec.searcher_key_file is not None:  # the devnet's keys where none is configured
        folder = spec.searcher_key_file.parent
        environ = {**os.environ, **devnet_keys(folder, spec.searcher_key_file, os.environ)}
    executor, risk, relay = await live_executor(
        settings=settings,
        mode=settings.mode,
        engine=engine,
        sessions=sessions,
        client=client,
        chain_id=chain_id,
        base_token=spec.base_tokens[0],
        pools=book.pools,
        recorder=recorder,
        builder_url=spec.builder_url,
        environ=environ,
        deploy=spec.builder_url is not None,
    )
    risk.kill_switch.install()
    return executor, risk, relay


@contextlib.asynccontextmanager
async def _client(spec: ChainSpec, settings: Settings) -> AsyncIterator[Any]:
    from arbx.chain.rpc import Endpoint, RpcClient

    endpoints = [
        Endpoint(url, spec.ws[i] if i < len(spec.ws) else None) for i, url in enumerate(spec.rpc)
    ]
    async with RpcClient(endpoints, timeout=settings.chain.timeout) as client:
        yield client


async def _bootstrap(client: Any, spec: ChainSpec) -> tuple[Any, list[Any], dict[str, str]]:
    """Discover the venues' pools and load them all at the current head."""
    from rich.progress import Progress

    from arbx.chain.bootstrap import load_pools
    from arbx.chain.discovery import discover, token_metadata, with_metadata
    from arbx.chain.heads import decode_head
    from arbx.chain.sync import hex_hash
    from arbx.domain.journal import PoolBook
    from arbx.domain.pools import V2Pool

    head = decode_head(await client.call("eth_getBlockByNumber", ["latest", False]))
    metas = await discover(
        client,
        spec.venues,
        spec.start_block,
        head.number,
        spec.chain_id,
        spec.allow,
        spec.deny,
        multicall_address=spec.multicall,
    )
    if not metas:
        raise ConfigError("no pools found: check the venues' factories and chain.start_block")
    addresses = sorted({t.address for m in metas for t in (m.token0, m.token1)})
    tokens = await token_metadata(client, spec.multicall, addresses, head.number)
    metas = with_metadata(metas, tokens)
    with Progress(transient=True) as progress:
        task = progress.add_task(
            f"loading {len(metas)} pools at block {head.number}", total=len(metas)
        )
        pools = await load_pools(client, metas, head.number, lambda n: progress.advance(task, n))
    if spec.min_reserve:
        pools = [
            p
            for p in pools
            if not isinstance(p, V2Pool) or min(p.reserve0, p.reserve1) >= spec.min_reserve
        ]
        kept = {p.address for p in pools}
        metas = [m for m in metas if m.address in kept]
    symbols = {a: t.symbol for a, t in tokens.items() if t.symbol} | spec.symbols
    return PoolBook(pools, head.number, hex_hash(head.hash)), metas, symbols


def _on_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)


def _short(url: str) -> str:
    from arbx.cli.store import redacted

    return redacted(url)


def _sync(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    with chain_for(settings, args) as spec:
        return asyncio.run(_verify(spec, settings, args.blocks))


async def _verify(spec: ChainSpec, settings: Settings, blocks: int) -> int:
    """Bootstrap, follow ``blocks`` new heads, then compare every pool with the chain."""
    from arbx.chain.heads import heads
    from arbx.chain.parity import check_parity
    from arbx.chain.sync import ChainSync

    async with _client(spec, settings) as client:
        book, metas, _ = await _bootstrap(client, spec)
        sync = ChainSync(client, book)
        seen = 0
        if blocks:
            async for head in heads(client, poll_interval=settings.chain.poll_interval):
                await sync.advance(head)
                seen += 1
                if seen >= blocks:
                    break
        result = await check_parity(client, book, metas)
    print(
        f"verified {result.checked} pools at block {result.block} after {seen} blocks "
        f"({sync.stats.logs} logs, {sync.stats.reorgs} reorgs): {result.failures} differ"
    )
    for address, difference in list(result.differences.items())[:20]:
        print(f"  {address}: {difference}", file=sys.stderr)
    return 0 if result.failures == 0 else 1
