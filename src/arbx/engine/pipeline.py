"""One block's work, top to bottom: a new head arrives, its logs update the pools they touch,
only the routes through those pools are re-evaluated, and the executor acts on what is found.

The pieces come in through small protocols; ``cli.py`` wires the concrete ones. A stop event
(Ctrl-C, SIGTERM) or a block budget ends the loop between blocks, never inside one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from arbx.chain.heads import Head
from arbx.chain.parity import ParityResult
from arbx.chain.sync import SyncUpdate
from arbx.domain.profit import Opportunity


class Sync(Protocol):
    """Keeps pool states at the chain's head."""

    async def advance(self, head: Head) -> SyncUpdate:
        """Bring the states to ``head``."""
        ...


class Strategy(Protocol):
    """Finds opportunities in the pools a block changed."""

    def on_block(self, changed: Iterable[str], base_fee_wei: int) -> list[Opportunity]:
        """Opportunities through ``changed``, best first."""
        ...


class Executor(Protocol):
    """Acts on a block's opportunities (shadow: records them; live: trades)."""

    async def on_block(self, block: BlockResult) -> None:
        """Handle one processed block."""
        ...


@dataclass(slots=True)
class BlockResult:
    """What the pipeline made of one head."""

    head: Head
    seen_at: datetime
    update: SyncUpdate
    opportunities: list[Opportunity]
    latency_ms: float
    pools: int


@dataclass(slots=True)
class RunSummary:
    """Totals of a run, for the closing line and the run record."""

    blocks: int = 0
    opportunities: int = 0
    expected_net_profit_wei: int = 0
    reorgs: int = 0
    parity_checks: int = 0
    parity_failures: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    stopped_by: str = ""


class Pipeline:
    """Heads in, executor called: the engine's main loop."""

    def __init__(
        self,
        heads: AsyncIterator[Head],
        sync: Sync,
        strategy: Strategy,
        executor: Executor,
        *,
        parity: Callable[[], Awaitable[ParityResult]] | None = None,
        parity_every: int = 0,
        reload: Callable[[set[str], int], Awaitable[None]] | None = None,
        on_block: Callable[[BlockResult], None] | None = None,
        on_parity: Callable[[ParityResult], Awaitable[None]] | None = None,
        pools: Callable[[], int] = lambda: 0,
    ) -> None:
        self.heads = heads
        self.sync = sync
        self.strategy = strategy
        self.executor = executor
        self.parity = parity
        self.parity_every = parity_every
        self.reload = reload
        self.on_block = on_block
        self.on_parity = on_parity
        self.pools = pools
        self.summary = RunSummary()
        self._checks: set[asyncio.Future[None]] = set()

    async def run(self, stop: asyncio.Event, max_blocks: int | None = None) -> RunSummary:
        """Process heads until ``stop`` is set, ``max_blocks`` are done, or the heads end."""
        stop_wait = asyncio.ensure_future(stop.wait())
        try:
            while not stop.is_set():
                next_head = asyncio.ensure_future(anext(self.heads))
                done, _ = await asyncio.wait(
                    {next_head, stop_wait}, return_when=asyncio.FIRST_COMPLETED
                )
                if next_head not in done:
                    next_head.cancel()
                    self.summary.stopped_by = "signal"
                    break
                try:
                    head = next_head.result()
                except StopAsyncIteration:
                    self.summary.stopped_by = "end of heads"
                    break
                await self.process(head)
                if max_blocks is not None and self.summary.blocks >= max_blocks:
                    self.summary.stopped_by = f"{max_blocks} blocks"
                    break
            else:
                self.summary.stopped_by = "signal"
        finally:
            stop_wait.cancel()
            await self.finish_checks()
        return self.summary

    async def process(self, head: Head) -> BlockResult:
        """One block: sync, evaluate, execute, and a parity check when one is due."""
        started = time.perf_counter()
        seen_at = datetime.now(UTC)
        update = await self.sync.advance(head)
        if update.suspects and self.reload is not None:
            await self.reload(update.suspects, head.number)
        opportunities = self.strategy.on_block(update.changed, head.base_fee)
        latency_ms = (time.perf_counter() - started) * 1000
        result = BlockResult(head, seen_at, update, opportunities, latency_ms, self.pools())
        await self.executor.on_block(result)
        self._count(result)
        if self.parity is not None and self.parity_every and head.number % self.parity_every == 0:
            # started now (it copies the states at once), finished in the background
            task = asyncio.ensure_future(self._parity_check(self.parity()))
            self._checks.add(task)
            task.add_done_callback(self._checks.discard)
        if self.on_block is not None:
            self.on_block(result)
        return result

    async def _parity_check(self, check: Awaitable[ParityResult]) -> None:
        checked = await check
        if not checked.skipped:
            self.summary.parity_checks += 1
            self.summary.parity_failures += checked.failures
        if self.on_parity is not None:
            await self.on_parity(checked)

    async def finish_checks(self) -> None:
        """Wait for the parity checks still running."""
        if self._checks:
            await asyncio.gather(*self._checks)

    def _count(self, result: BlockResult) -> None:
        s = self.summary
        s.blocks += 1
        s.opportunities += len(result.opportunities)
        s.expected_net_profit_wei += sum(o.net_profit for o in result.opportunities)
        s.reorgs += 1 if result.update.reorg_depth else 0
        s.latencies_ms.append(result.latency_ms)
