"""A run from start to stop, below the command line.

``start``: the database is migrated (awaited for up to ``RunPlan.database_wait_s`` while it
cannot serve yet: restarting, or its host not up), the RPC checked to serve the configured
chain, the pool book discovered and loaded, the run recorded, the executor built (by the
factory handed in: shadow or live is decided there, once). ``run``: the supervised loop
(``engine.runner``). ``stop``: the executor released, the run closed in the database with its
status, its reason when an error ended it, and its summary (blocks, opportunities, parity
coverage, what supervision did, RPC and live totals).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sized
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol, TypeVar

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from arbx.chain.book import LoadedBook, LoadProgress, load_book
from arbx.chain.heads import heads
from arbx.chain.parity import ParityChecker, ParityResult
from arbx.chain.resync import BookResync
from arbx.chain.rpc import RpcClient
from arbx.chain.spec import ChainSpec
from arbx.chain.sync import ChainSync, RpcSource
from arbx.chain.window import RecordingSync, WindowRecorder
from arbx.domain.errors import ConfigError
from arbx.domain.journal import PoolBook
from arbx.domain.modes import Mode
from arbx.engine.pipeline import BlockResult, Pipeline, RunSummary, Strategy
from arbx.engine.runner import Supervisor
from arbx.engine.supervision import SupervisionPolicy, describe
from arbx.store import make_engine, make_session_factory, migrate, repo
from arbx.store.db import unavailable

log = logging.getLogger(__name__)
_T = TypeVar("_T")

Caps = Callable[[], Mapping[str, int] | None]


@dataclass(frozen=True, slots=True)
class RunPlan:
    """What to run: the chain, the mode, the database, and how to follow heads."""

    spec: ChainSpec
    mode: Mode
    database_url: str
    settings_record: Mapping[str, object]  # the settings as the runs table keeps them
    poll_interval: float = 1.0
    check_chain_id: bool = True  # the embedded devnet's chain id is whatever anvil says
    database_wait_s: float = 120.0  # at start, how long a database that cannot serve is awaited


class RunStrategy(Strategy, Protocol):
    """A strategy with its route index (counted in the opening line)."""

    @property
    def index(self) -> Sized:
        """The routes it evaluates."""
        ...


class Execution(Protocol):
    """The executor a run hands its blocks to (shadow or live), and its end."""

    @property
    def status(self) -> str:
        """One line: the mode and why."""
        ...

    @property
    def closing(self) -> tuple[str, ...]:
        """Lines for the end of the run, once closed."""
        ...

    async def on_block(self, block: BlockResult) -> None:
        """Act on one processed block."""
        ...

    async def on_parity(self, result: ParityResult) -> None:
        """Record one parity check."""
        ...

    def caps(self) -> Mapping[str, int] | None:
        """Input caps per base token now (None: the strategy's own)."""
        ...

    async def close(self) -> dict[str, object] | None:
        """Release what it holds; its totals for the run's summary, if any."""
        ...


class Observer(Protocol):
    """Shows the run (the terminal view)."""

    def update(self, block: BlockResult) -> None:
        """One block processed."""
        ...

    def close(self, summary: RunSummary) -> None:
        """The run is over."""
        ...


@dataclass(frozen=True, slots=True)
class RunContext:
    """What an executor factory may use."""

    run_id: int
    chain_id: int
    client: RpcClient
    engine: Engine
    sessions: sessionmaker[Session]
    book: PoolBook


@dataclass(frozen=True, slots=True)
class StartedRun:
    """A run once started: its id, the chain, the database, and its opening lines."""

    run_id: int
    chain_id: int
    sessions: sessionmaker[Session]
    lines: tuple[str, ...]  # the executor's mode and why; pools and routes


@dataclass(frozen=True, slots=True)
class RunRecord:
    """How a run ended, as recorded."""

    run_id: int
    status: str  # "stopped" or "failed"
    summary: dict[str, object]
    exit_code: int  # 0, or 1 when parity found a difference
    closing: tuple[str, ...] = ()  # the executor's closing lines


class EngineRun:
    """One run of the engine: ``start``, ``run``, ``stop`` (always, even after a failure)."""

    def __init__(
        self,
        plan: RunPlan,
        client: RpcClient,
        *,
        strategy: Callable[[PoolBook, Caps], RunStrategy],
        execution: Callable[[RunContext], Awaitable[Execution]],
        observer: Callable[[dict[str, str]], Observer] | None = None,
        progress: LoadProgress | None = None,
        policy: SupervisionPolicy | None = None,
        recorder: WindowRecorder | None = None,
    ) -> None:
        self.plan = plan
        self.recorder = recorder  # records the window the run follows (arbx record)
        self.client = client
        self._make_strategy = strategy
        self._make_execution = execution
        self._make_observer = observer
        self._progress = progress
        self._policy = policy
        self.engine: Engine | None = None
        self.sessions: sessionmaker[Session] | None = None
        self.chain_id = plan.spec.chain_id
        self.run_id: int | None = None
        self.loaded: LoadedBook | None = None
        self.execution: Execution | None = None
        self.observer: Observer | None = None
        self.pipeline: Pipeline | None = None
        self.status = "failed"
        self.fault = ""

    async def start(self) -> StartedRun:
        """Migrate, check the chain, load the book, record the run, build the executor."""
        plan, spec = self.plan, self.plan.spec
        await self._awaiting_database(migrate.upgrade, plan.database_url)
        self.engine = make_engine(plan.database_url)
        self.sessions = sessions = make_session_factory(self.engine)
        self.chain_id = await self.client.chain_id()
        if plan.check_chain_id and self.chain_id != spec.chain_id:
            raise ConfigError(
                f"the RPC serves chain {self.chain_id}, the settings say {spec.chain_id}"
            )
        self.loaded = loaded = await load_book(self.client, spec, self._progress)
        book = loaded.book
        strategy = self._make_strategy(book, self._caps)

        def record_run() -> tuple[int, list[int]]:
            with sessions.begin() as session:
                repo.upsert_chain(session, self.chain_id, spec.name)
                repo.upsert_pools(session, list(book.pools.values()))
                run_id = repo.start_run(
                    session, self.chain_id, mode=plan.mode, settings=dict(plan.settings_record)
                )
                return run_id, repo.close_stale_runs(session, self.chain_id, keep=[run_id])

        run_id, stale = await self._awaiting_database(record_run)
        self.run_id = run_id
        if stale:
            log.warning("closed runs %s as failed: %s", stale, repo.KILLED)
        context = RunContext(run_id, self.chain_id, self.client, self.engine, sessions, book)
        try:
            self.execution = execution = await self._make_execution(context)
        except BaseException as exc:
            self.fault = describe(exc)
            raise
        if self._make_observer is not None:
            self.observer = self._make_observer(loaded.symbols)
        stream = heads(self.client, poll_interval=plan.poll_interval, use_ws=bool(spec.ws))
        sync: ChainSync | RecordingSync = ChainSync(self.client, book)
        if self.recorder is not None:
            self.recorder.begin(self.chain_id, book)
            sync = self.recorder.sync(ChainSync(self.recorder.source(RpcSource(self.client)), book))
        self.pipeline = Pipeline(
            stream,
            sync,
            strategy,
            execution,
            parity=ParityChecker(self.client, book, loaded.metas),
            resync=BookResync(self.client, book, loaded.metas),
            on_block=self.observer.update if self.observer is not None else None,
            on_parity=execution.on_parity,
            pools=lambda: len(book),
            tip=lambda: stream.tip,
        )
        bases = ", ".join(loaded.symbols.get(b, b) for b in spec.base_tokens)
        opening = f"run {self.run_id}: {len(book)} pools, {len(strategy.index)} routes from {bases}"
        return StartedRun(run_id, self.chain_id, sessions, (execution.status, opening))

    async def _awaiting_database(self, work: Callable[..., _T], *args: object) -> _T:
        """``work(*args)`` in a thread, tried again while the database cannot serve (a restart,
        its host not resolvable yet) for up to ``database_wait_s``; any other error at once."""
        deadline = time.monotonic() + self.plan.database_wait_s
        delay = 0.25
        while True:
            try:
                return await asyncio.to_thread(work, *args)
            except Exception as exc:
                if not unavailable(exc) or time.monotonic() + delay > deadline:
                    raise
                detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
                log.warning("the database cannot serve yet, again in %.1f s: %s", delay, detail)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    def _caps(self) -> Mapping[str, int] | None:
        return self.execution.caps() if self.execution is not None else None

    async def run(self, stop: asyncio.Event, max_blocks: int | None = None) -> RunSummary:
        """The supervised loop until ``stop``, ``max_blocks`` or a fatal failure (raised)."""
        assert self.pipeline is not None, "start the run first"
        try:
            summary = await Supervisor(self.pipeline, self._policy).run(stop, max_blocks)
        except BaseException as exc:
            self.fault = self.pipeline.summary.fault or describe(exc)
            raise
        self.status = "stopped"
        return summary

    @property
    def summary(self) -> RunSummary:
        """The running totals (empty before ``start``)."""
        return self.pipeline.summary if self.pipeline is not None else RunSummary()

    async def stop(self) -> RunRecord | None:
        """Release the executor and close the run's record; None when no run was recorded."""
        live: dict[str, object] | None = None
        failure: Exception | None = None
        try:
            live = await self.execution.close() if self.execution is not None else None
        except Exception as exc:  # recorded below, then raised: the run row is closed first
            failure = exc
            self.status, self.fault = "failed", self.fault or describe(exc)
        if self.observer is not None:
            self.observer.close(self.summary)
        if self.run_id is None or self.sessions is None:
            if failure is not None:
                raise failure
            return None
        summary = summary_record(self.summary, self.client.stats.as_dict(), live, self.fault)
        with self.sessions.begin() as session:
            repo.finish_run(
                session, self.run_id, self.status, summary=summary, ended_at=datetime.now(UTC)
            )
        if failure is not None:
            raise failure
        exit_code = 0 if self.summary.parity_failures == 0 else 1
        closing = self.execution.closing if self.execution is not None else ()
        return RunRecord(self.run_id, self.status, summary, exit_code, closing)


def summary_record(
    s: RunSummary, rpc: Mapping[str, int], live: dict[str, object] | None, fault: str
) -> dict[str, object]:
    """The run's summary as the runs table keeps it."""
    return {
        "blocks": s.blocks,
        "opportunities": s.opportunities,
        "expected_net_profit_wei": str(s.expected_net_profit_wei),
        "reorgs": s.reorgs,
        "stopped_by": s.stopped_by or "error",
        "reason": fault or None,
        "parity": {
            "blocks_checked": s.parity_checks,
            "blocks_seen": s.blocks,
            "coverage": round(s.parity_coverage, 4),
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
            "catch_ups": s.catch_ups,
            "skipped_heads": s.skipped_heads,
            "replaced_heads": s.replaced_heads,
            "dropped_heads": s.dropped_heads,
        },
        "rpc": dict(rpc),
        "live": live,
    }
