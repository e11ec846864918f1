"""``arbx run`` and ``arbx sync verify``: where the engine's pieces are wired, nothing more.

With no settings, the run is the embedded default: it starts a local devnet with the market
simulator, then follows it like any chain. With settings (TOML file or ``ARBX_`` variables) it
follows the configured chain in the configured mode. The run itself (start, supervised loop,
stop and its record) is ``arbx.engine.lifecycle``'s; the executor for the mode comes from
``arbx.executors.factory``; Ctrl-C or SIGTERM stops it cleanly with a summary.

Every run is a release (``ARBX_RELEASE``, default the package version) inside
``arbx.engine.handover``: ``--standby`` follows the chain in shadow beside the active engine,
never loading the signing key, until ``arbx release promote`` hands it the signer lock.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import signal
import sys
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from arbx import __version__
from arbx.chain.spec import ChainSpec
from arbx.cli.args import Parser, count, port
from arbx.config import Settings, load_settings
from arbx.domain.errors import ConfigError
from arbx.domain.modes import MODES, Mode, signs
from arbx.metrics import record
from arbx.risk.settings import RiskSettings, StageSettings

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

    from arbx.chain.rpc import RpcClient
    from arbx.devnet.deployment import Deployment
    from arbx.domain.journal import PoolBook
    from arbx.engine.lifecycle import Caps, RunContext
    from arbx.executors.factory import ShadowExecution
    from arbx.obs.view import RunView
    from arbx.strategies.cyclic import CyclicArbitrage

# The embedded devnet trades play money: its capital stages are wider than a real chain's, and
# its gates ask for no blocks, parity checks or latency bound (a devnet run is minutes long):
# included bundles, realized/expected and quiet hours move it, as before the gates measured more.
DEVNET_RISK = RiskSettings(
    promote_min_blocks=0,
    promote_min_parity_checks=0,
    promote_max_latency_p99_ms=None,
    stages=[
        StageSettings(mode="shadow", max_input={}, name="shadow"),
        StageSettings(mode="limited", max_input={"*": 10 * 10**18}, name="devnet limited 10"),
        StageSettings(mode="scaled", max_input={"*": 100 * 10**18}, name="devnet scaled 100"),
    ],
    daily_gas_cap_wei=10**20,
    daily_loss_cap_wei=10**19,
)


def register(sub: argparse._SubParsersAction[Parser]) -> None:
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
    run.add_argument(
        "--competitors", type=count, default=0, metavar="N",
        help="embedded devnet: N competing searchers bid for the same trades (default 0)",
    )  # fmt: skip
    run.add_argument("--plain", action="store_true", help="one line per block, no live view")
    run.add_argument("--mode", choices=MODES, help="overrides the settings' mode")
    run.add_argument(
        "--metrics-port", type=port, help="serve /metrics here (settings [metrics]; 0: any free)"
    )
    run.add_argument(
        "--standby",
        action="store_true",
        help="follow in shadow beside the active engine until promoted (settings: standby)",
    )
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
    competitors = getattr(args, "competitors", 0)
    if not settings.embedded:
        if competitors:
            raise ConfigError("--competitors runs on the embedded devnet, not a configured chain")
        yield spec_from_settings(settings)
        return
    from arbx.devnet.commands import EmbeddedDevnet, is_running
    from arbx.devnet.competitors import MAX_COMPETITORS

    if competitors > MAX_COMPETITORS:
        raise ConfigError(f"--competitors {competitors}: at most {MAX_COMPETITORS}")
    from arbx.devnet.deployment import DEFAULT_FILE, load_deployment

    if args.command == "sync" and DEFAULT_FILE.is_file():  # a devnet started by `devnet up`
        deployment = load_deployment(DEFAULT_FILE)
        if deployment.anvil_pid is not None and is_running(deployment.anvil_pid, "anvil"):
            yield devnet_spec(deployment)
            return

    print("starting the embedded devnet (anvil, Uniswap V2/V3, market simulator)...", flush=True)
    key_file = DEFAULT_FILE.parent / "devnet-searcher.key" if signs(settings.mode) else None
    if key_file is not None:
        key_file.parent.mkdir(parents=True, exist_ok=True)
    with EmbeddedDevnet.start(
        seed=getattr(args, "seed", 1),
        block_time=getattr(args, "block_time", None),
        n_pools=getattr(args, "pools", None),
        pace=getattr(args, "pace", 0.25),
        searcher_key_file=key_file,
        competitors=competitors,
    ) as devnet:
        spec = devnet_spec(devnet.deployment)
        yield replace(spec, builder_url=devnet.builder_url, searcher_key_file=key_file)


def devnet_spec(deployment: Deployment) -> ChainSpec:
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
    if args.standby:
        settings = settings.model_copy(update={"standby": True})
    if settings.standby and settings.embedded:
        raise ConfigError("a standby follows a configured chain beside the active engine")
    if settings.standby and not signs(settings.mode):
        raise ConfigError(
            "a standby signs once promoted: configure a live mode (limited or scaled)"
        )
    if settings.embedded and signs(settings.mode):  # play money, fast blocks
        execution = settings.execution.model_copy(
            update={"blocks_ahead": max(1, settings.execution.blocks_ahead)}
        )
        settings = settings.model_copy(update={"risk": DEVNET_RISK, "execution": execution})
    from arbx.metrics.server import serving

    local = settings.embedded and args.metrics_port is None
    with serving(settings.metrics, args.metrics_port, any_port_if_taken=local) as metrics:
        if metrics is not None:
            print(f"metrics: {metrics.url}", flush=True)
        with chain_for(settings, args) as spec:
            record.engine_started(__version__, spec.name)
            return asyncio.run(engine_run(settings, spec, args))


async def engine_run(
    settings: Settings, spec: ChainSpec, args: argparse.Namespace, record_to: Path | None = None
) -> int:
    """Wire a run: its plan, the strategy, the executor factory, the view; then start, run and
    stop it (the API and the dashboard beside it when configured; ``record_to``: the window it
    followed is written there, for ``arbx replay``)."""
    from functools import partial

    from arbx.chain.window import WindowRecorder
    from arbx.cli.live import devnet_keys, live_plan
    from arbx.cli.store import database_errors, redacted
    from arbx.engine.handover import ReleaseExecution, Taken
    from arbx.engine.lifecycle import EngineRun, RunPlan
    from arbx.executors.factory import build_execution
    from arbx.obs.progress import LoadingBar
    from arbx.obs.view import RunView
    from arbx.risk.mirror import key_caps
    from arbx.risk.signer_lock import SignerLock
    from arbx.strategies.cyclic import CyclicArbitrage, StrategyLimits, limits_record

    plan = RunPlan(
        spec=spec,
        mode="shadow" if settings.standby else settings.mode,
        database_url=settings.database_url,
        settings_record=settings.model_dump(mode="json"),
        poll_interval=settings.chain.poll_interval,
        check_chain_id=not settings.embedded,
    )
    limits = StrategyLimits(
        base_tokens=spec.base_tokens,
        max_hops=settings.strategy.max_hops,
        max_input=settings.strategy.max_input or None,
        min_net_profit_wei=settings.strategy.min_net_profit_wei,
        builder_share_bps=settings.strategy.builder_share_bps,
        priority_fee_wei=settings.strategy.priority_fee_wei,
        max_routes=settings.strategy.max_routes,
        max_sized=settings.strategy.max_sized_per_block,
        connector_min_pairs=settings.strategy.connector_min_pairs,
    )
    live = live_plan(
        settings,
        builder_url=spec.builder_url,
        environ=_key_environ(spec, devnet_keys),
        deploy=spec.builder_url is not None,
    )

    def strategy(book: PoolBook, caps: Caps) -> CyclicArbitrage:
        return CyclicArbitrage(book, limits, caps=caps)

    async def execution(run: RunContext) -> ReleaseExecution:
        async def build(mode: Mode, role: str, lock: SignerLock | None = None) -> ShadowExecution:
            return await build_execution(
                mode,
                live=live,
                engine=run.engine,
                sessions=run.sessions,
                client=run.client,
                chain_id=run.chain_id,
                run_id=run.run_id,
                base_tokens=spec.base_tokens,
                pools=run.book.pools,
                release=settings.release,
                role=role,
                lock=lock,
            )

        async def go_live(key: str | None) -> Taken | str:
            if not signs(settings.mode):
                raise ConfigError(f"release {settings.release} runs in shadow mode: it cannot sign")
            lock = None
            if key is not None:  # the lock first: the key is loaded only once it is ours
                lock = SignerLock(
                    run.engine,
                    key,
                    lease_seconds=settings.risk.signer_lease_seconds,
                    release=settings.release,
                    chain_id=run.chain_id,
                )
                refused = await asyncio.to_thread(lock.acquire)
                if refused is not None:
                    return refused
            try:
                taken = await build(settings.mode, "active", lock)
            except BaseException:
                if lock is not None:
                    lock.release()  # taken for nothing: the next attempt takes it again
                raise
            holding = taken.holding()
            if holding is None:
                why = getattr(getattr(taken, "risk", None), "reason", None) or "lock refused"
                await taken.close()
                if lock is not None:
                    lock.release()
                return str(why)
            return Taken(taken, *holding)

        async def go_standby() -> ShadowExecution:
            return await build("shadow", "standby")

        first = await (go_standby() if settings.standby else build(settings.mode, "active"))
        return ReleaseExecution(
            first,
            sessions=run.sessions,
            chain_id=run.chain_id,
            release=settings.release,
            # a standby, or a live engine refused the lock at its start: it waits to be promoted
            standby=settings.standby or (signs(settings.mode) and first.holding() is None),
            go_live=go_live,
            go_standby=go_standby,
            poll=settings.releases.handover_poll_s,
            mirror=partial(
                key_caps,
                chain_id=run.chain_id,
                limits=settings.risk.limits(),
                schedule=settings.risk.schedule(),
                bases=spec.base_tokens,
            )
            if signs(settings.mode)
            else None,
        )

    def view(symbols: dict[str, str]) -> RunView:
        title = f"arbx {settings.mode} · {spec.name}"
        return RunView(title, symbols, live=False if args.plain else None)

    url = settings.database_url
    stop = asyncio.Event()
    api_task: asyncio.Task[None] | None = None
    recorder = WindowRecorder(limits_record(limits), __version__) if record_to else None
    async with _client(spec, settings) as client:
        run = EngineRun(
            plan,
            client,
            strategy=strategy,
            execution=execution,
            observer=view,
            progress=LoadingBar(),
            recorder=recorder,
        )
        try:
            with database_errors(url):
                started = await run.start()
            print("\n".join(started.lines) + f", database {redacted(url)}", flush=True)
            if recorder is None and (settings.embedded or settings.api.serve_in_run):
                api_task = await _serve_api(
                    settings, started.sessions, started.chain_id, started.run_id, stop
                )
            _on_signals(stop)
            if recorder is None and not settings.embedded:
                print(await _record_replay(started.sessions, settings.release), flush=True)
            await run.run(stop, args.max_blocks)
        finally:
            record = await run.stop()
            stop.set()
            if api_task is not None:
                await asyncio.gather(api_task, return_exceptions=True)
    assert record is not None
    for line in record.closing:
        print(line, flush=True)
    print(f"report: arbx report --run {record.run_id}", flush=True)
    if recorder is not None and record_to is not None:
        totals = run.summary
        size = recorder.write(record_to, repairs=totals.reloads + totals.rebootstraps)
        print(f"window: {totals.blocks} heads in {record_to} ({size} bytes)", flush=True)
    return record.exit_code


async def _record_replay(sessions: sessionmaker[Session], release: str) -> str:
    """This release's decisions on the window the image ships, recorded under the release once
    (``arbx release compare --replay-shipped`` reads them when this release is the active one).
    A failure is said and the run goes on: the comparison then finds no decisions of this
    release, and says so."""
    import logging

    from arbx.cli.replay import record_release_replay

    try:
        return await asyncio.to_thread(record_release_replay, sessions, release)
    except Exception as exc:  # the run does not depend on it
        logging.getLogger(__name__).warning("replay of the shipped window not recorded: %s", exc)
        return f"replay: not recorded ({type(exc).__name__})"


def _key_environ(
    spec: ChainSpec, devnet_keys: Callable[[Path, Path, Mapping[str, str]], dict[str, str]]
) -> dict[str, str]:
    """The variables keys are read from; on the devnet, its keys where none is configured."""
    if spec.searcher_key_file is None:
        return dict(os.environ)
    folder = spec.searcher_key_file.parent
    return {**os.environ, **devnet_keys(folder, spec.searcher_key_file, os.environ)}


async def _serve_api(
    settings: Settings,
    sessions: sessionmaker[Session],
    chain_id: int,
    run_id: int,
    stop: asyncio.Event,
) -> asyncio.Task[None]:
    """Serve the API and the dashboard on loopback for this run; print where, with a token."""
    import socket

    from arbx.api.app import create_app, serve
    from arbx.api.auth import revoked_after
    from arbx.risk.alerts import CachedAlerts
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
        alerts=CachedAlerts(
            settings.risk.prometheus_url, timeout=settings.risk.prometheus_timeout_s
        ),
        admission=settings.api.admission(),
        share_s=settings.api.share_s,
        token_cache_s=settings.api.token_cache_s,
    )
    name = f"run-{run_id}-{secrets.token_hex(3)}"
    with sessions.begin() as session:
        token = api_repo.add_token(session, name, "operator")
    task = asyncio.ensure_future(revoked_after(serve(app, host, port, stop), sessions, name))
    print(f"dashboard: http://{host}:{port}/  (operator token for this run: {token})", flush=True)
    return task


@contextlib.asynccontextmanager
async def _client(spec: ChainSpec, settings: Settings) -> AsyncIterator[RpcClient]:
    from arbx.chain.rpc import Endpoint, RpcClient

    endpoints = [
        Endpoint(url, spec.ws[i] if i < len(spec.ws) else None) for i, url in enumerate(spec.rpc)
    ]
    chain = settings.chain
    async with RpcClient(endpoints, timeout=chain.timeout, hedge_after=chain.hedge_after) as client:
        yield client


def _on_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)


def _sync(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    with chain_for(settings, args) as spec:
        return asyncio.run(_verify(spec, settings, args.blocks))


async def _verify(spec: ChainSpec, settings: Settings, blocks: int) -> int:
    """Bootstrap, follow ``blocks`` new heads, then compare every pool with the chain."""
    from arbx.chain.verify import follow_and_verify
    from arbx.obs.progress import LoadingBar

    async with _client(spec, settings) as client:
        verified = await follow_and_verify(
            client, spec, blocks, poll_interval=settings.chain.poll_interval, progress=LoadingBar()
        )
    result = verified.parity
    print(
        f"verified {result.checked} pools at block {result.block} after {verified.blocks} blocks "
        f"({verified.sync.logs} logs, {verified.sync.reorgs} reorgs): {result.failures} differ"
    )
    for address, difference in list(result.differences.items())[:20]:
        print(f"  {address}: {difference}", file=sys.stderr)
    return 0 if result.failures == 0 else 1
