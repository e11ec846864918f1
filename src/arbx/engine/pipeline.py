"""One block's work, top to bottom: a new head arrives, its logs update the pools they touch,
only the routes through those pools are re-evaluated, and the executor acts on what is found.
An executor that trades is handed the block's best few routes, sized, before the others are
(``Executor.on_lead``): its bundle leaves while the rest are sized for the block's record.

The pieces come in through small protocols; the command line wires the concrete ones. The loop
over heads, with its supervision by error class, is the runner's (``engine.runner``);
``Pipeline.run`` is that loop with the default policy.

Parity: after each block the pool states are copied and queued for a check against the chain,
which a background task runs once the block is settled (the pipeline has processed a later
block: a node's word for its head is not enough, it may announce one it cannot serve yet),
pinned by the block's hash. Every ``parity_every``-th block is queued (1: every block); when
checks fall more than ``parity_backlog`` blocks behind, the oldest waiting one is dropped. The
summary counts blocks checked, skipped (reorged away, or not settled in time), dropped and
failed to read, so the coverage (blocks checked / blocks seen) is stated, never implied. Pools a
check finds wrong are reloaded from the chain before the next block.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from arbx.chain.heads import Head
from arbx.chain.parity import ParityResult, ParitySnapshot
from arbx.chain.sync import SyncUpdate
from arbx.domain.errors import ArbxError
from arbx.domain.profit import Opportunity
from arbx.engine.collector import BetweenBlocks
from arbx.metrics import record

log = logging.getLogger(__name__)


class Sync(Protocol):
    """Keeps pool states at the chain's head."""

    async def advance(self, head: Head) -> SyncUpdate:
        """Bring the states to ``head``."""
        ...

    async def block_at(self, number: int) -> Head | None:
        """The chain's block at ``number`` now; None when the node has none."""
        ...


class Strategy(Protocol):
    """Finds opportunities in the pools a block changed."""

    def on_block(self, changed: Iterable[str], base_fee_wei: int) -> list[Opportunity]:
        """Opportunities through ``changed``, best first."""
        ...


class Detection(Protocol):
    """A block's live routes, sized on demand: the best few first, then all of them."""

    def best(self, routes: int) -> list[Opportunity]:
        """Opportunities enough for a trade of ``routes`` pool-disjoint routes, best first."""
        ...

    def all(self) -> list[Opportunity]:
        """Every opportunity, best first (what ``Strategy.on_block`` returns)."""
        ...


class Executor(Protocol):
    """Acts on a block's opportunities (shadow: records them; live: trades).

    An executor that trades may also have ``async on_lead(lead: Lead)``: the pipeline then
    hands it the block's best opportunities before the others are sized (with a strategy that
    has ``detect``), and ``on_block`` after, with all of them.
    """

    async def on_block(self, block: BlockResult) -> None:
        """Handle one processed block."""
        ...


def tell_head(executor: object, head: Head) -> None:
    """Tell ``executor`` a head arrived, before its block is synced, if it works ahead of the
    block (an optional ``on_head``: the live one settles earlier bundles and starts its fence)."""
    early = getattr(executor, "on_head", None)
    if early is not None:
        early(head)


def tell_rebootstrap(executor: object, block: int) -> None:
    """Tell ``executor`` the engine re-bootstrapped its book at ``block``, if it checks its
    records against the chain then (an optional ``on_rebootstrap``: the live one, ADR 0029)."""
    told = getattr(executor, "on_rebootstrap", None)
    if told is not None:
        told(block)


async def tell_lead(executor: object, lead: Lead) -> None:
    """Give ``executor`` a block's lead, before the block's other routes are sized, if it trades
    on it (an optional ``on_lead``: the live one, ADR 0039)."""
    told = getattr(executor, "on_lead", None)
    if told is not None:
        await told(lead)


class Parity(Protocol):
    """Compares our pool states with the chain's."""

    def snapshot(self) -> ParitySnapshot:
        """Our states at our head, copied now."""
        ...

    async def check(self, ours: ParitySnapshot) -> ParityResult:
        """``ours`` against the chain at the same block."""
        ...


class Resync(Protocol):
    """Repairs the pool book from the chain."""

    async def reload(self, pools: Iterable[str]) -> set[str]:
        """Reload ``pools`` at the book's head; the ones that changed."""
        ...

    async def rebootstrap(self) -> tuple[int, set[str]]:
        """Reload every pool at the chain's head; that head's number and the pools changed."""
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
    errors: int = 0  # faults handled since the previous block (retried, repaired, unread parity)


@dataclass(slots=True)
class Lead:
    """A head's best opportunities, for the trade, before the block's other routes are sized.

    ``best(routes)`` sizes the routes best estimate first until ``routes`` pool-disjoint ones
    pay (and a margin more), once: ``on_block`` then has every opportunity, those included.
    """

    head: Head
    seen_at: datetime
    best: Callable[[int], list[Opportunity]]
    latency_ms: float  # head seen -> the routes found (sync and the walk; no sizing yet)


@dataclass(slots=True)
class RunSummary:
    """Totals of a run, for the closing line and the run record."""

    blocks: int = 0
    opportunities: int = 0
    expected_net_profit_wei: int = 0
    reorgs: int = 0
    parity_checks: int = 0  # blocks whose every pool was compared with the chain
    parity_failures: int = 0  # pools found different, over all checks
    parity_skipped: int = 0  # blocks reorged away or not settled in time
    parity_dropped: int = 0  # blocks not checked because checks fell behind
    parity_errors: int = 0  # checks the chain could not answer
    latencies_ms: list[float] = field(default_factory=list)
    stopped_by: str = ""
    transient_faults: int = 0  # failures retried after a back-off
    stale_faults: int = 0  # our state and the node's answers disagreed
    reloads: int = 0  # pools reloaded from the chain (suspect, wrong at parity, stale)
    rebootstraps: int = 0  # whole book reloaded at the chain's head (stale, or far behind)
    catch_ups: int = 0  # of which: the book was too far behind the chain to replay blocks
    skipped_heads: int = 0  # heads at or below a re-bootstrap's block
    replaced_heads: int = 0  # heads a reorg replaced before their work was done: the chain's
    # block at their number followed instead (the journal unwinds what the book lost)
    dropped_heads: int = 0  # heads the chain had no block for any more (a reorg under way)
    fault: str = ""  # what stopped the run, when an error did

    @property
    def parity_coverage(self) -> float:
        """Blocks checked / blocks seen (0 when none were seen)."""
        return self.parity_checks / self.blocks if self.blocks else 0.0


class Pipeline:
    """One head in, executor called; parity in the background."""

    def __init__(
        self,
        heads: AsyncIterator[Head],
        sync: Sync,
        strategy: Strategy,
        executor: Executor,
        *,
        parity: Parity | None = None,
        parity_every: int = 1,
        parity_backlog: int = 8,
        resync: Resync | None = None,
        on_block: Callable[[BlockResult], None] | None = None,
        on_parity: Callable[[ParityResult], Awaitable[None]] | None = None,
        pools: Callable[[], int] = lambda: 0,
        tip: Callable[[], int] | None = None,
    ) -> None:
        self.heads = heads
        self.sync = sync
        self.strategy = strategy
        self.executor = executor
        self.parity = parity
        self.parity_every = max(1, parity_every)
        self.parity_backlog = max(1, parity_backlog)
        self.resync = resync
        self.on_block = on_block
        self.on_parity = on_parity
        self.pools = pools
        self.tip = tip  # the chain's newest block as the heads know it, when they can tell
        self.summary = RunSummary()
        self.collector = BetweenBlocks()  # full collections after a block's work (its run's)
        self.changed_outside: set[str] = set()  # pools changed by a reload between blocks
        self._wrong: set[str] = set()  # pools to reload: undecodable logs, wrong at parity
        self._waiting: deque[ParitySnapshot] = deque()
        self._checker: asyncio.Future[None] | None = None
        self._latest = -1  # the highest block processed
        self._advanced = asyncio.Event()  # set when a block is processed, or at the end
        self._finishing = False
        self._faulted = 0  # faults counted up to the previous block

    def _faults(self) -> int:
        s = self.summary
        return s.transient_faults + s.stale_faults + s.parity_errors

    async def run(self, stop: asyncio.Event, max_blocks: int | None = None) -> RunSummary:
        """Process heads until ``stop`` is set, ``max_blocks`` are done, or the heads end,
        supervised with the default policy (see ``engine.supervision``)."""
        from arbx.engine.runner import Supervisor  # noqa: PLC0415 (the runner imports this module)

        return await Supervisor(self).run(stop, max_blocks)

    async def process(self, head: Head) -> BlockResult:
        """One block: sync, evaluate, execute, and queue its parity check."""
        started = time.perf_counter()
        seen_at = datetime.now(UTC)
        tell_head(self.executor, head)  # work it can start before the block is evaluated
        update = await self.sync.advance(head)
        self._wrong |= update.suspects  # kept until reloaded: a retry of this head syncs nothing
        if self._wrong and self.resync is not None:
            self.changed_outside |= await self.resync.reload(self._wrong)
            self.summary.reloads += len(self._wrong)
            self._wrong.clear()
        if self.changed_outside:
            update.changed |= self.changed_outside
            self.changed_outside = set()
        detect = getattr(self.strategy, "detect", None)
        lead = getattr(self.executor, "on_lead", None)
        if detect is None or lead is None:
            opportunities = self.strategy.on_block(update.changed, head.base_fee)
            latency_ms = (time.perf_counter() - started) * 1000
        else:  # the trade first, on the best few sized; then the rest
            opportunities, latency_ms = await self._lead_first(
                detect(update.changed, head.base_fee), lead, head, seen_at, started
            )
        faults = self._faults()
        result = BlockResult(
            head, seen_at, update, opportunities, latency_ms, self.pools(), faults - self._faulted
        )
        self._faulted = faults
        await self.executor.on_block(result)
        self._count(result)
        self._latest = max(self._latest, head.number)
        self._advanced.set()
        if self.parity is not None and head.number % self.parity_every == 0:
            self._queue_parity(self.parity.snapshot())
        if self.on_block is not None:
            self.on_block(result)
        return result

    async def _lead_first(
        self,
        detection: Detection,
        lead: Callable[[Lead], Awaitable[None]],
        head: Head,
        seen_at: datetime,
        started: float,
    ) -> tuple[list[Opportunity], float]:
        """Hand the executor the block's lead, then size the rest: every opportunity, and the
        time spent finding them (the trade's own time left out)."""
        found = time.perf_counter()
        sizing = 0.0  # seconds the executor's calls of ``best`` took

        def best(routes: int) -> list[Opportunity]:
            nonlocal sizing
            since = time.perf_counter()
            try:
                return detection.best(routes)
            finally:
                sizing += time.perf_counter() - since

        await lead(Lead(head, seen_at, best, (found - started) * 1000))
        resumed = time.perf_counter()
        opportunities = detection.all()
        ended = time.perf_counter()
        return opportunities, (found - started + sizing + ended - resumed) * 1000

    def _queue_parity(self, ours: ParitySnapshot) -> None:
        if len(self._waiting) >= self.parity_backlog:
            self._waiting.popleft()
            self.summary.parity_dropped += 1
        self._waiting.append(ours)
        if self._checker is None or self._checker.done():
            self._checker = asyncio.ensure_future(self._check_waiting())

    async def _check_waiting(self) -> None:
        assert self.parity is not None
        while self._waiting:
            ours = self._waiting[0]
            while self._latest <= ours.block and not self._finishing:
                self._advanced.clear()
                await self._advanced.wait()
            if not self._waiting or self._waiting[0] is not ours:  # dropped meanwhile
                continue
            self._waiting.popleft()
            try:
                checked = await self.parity.check(ours)
            except ArbxError as exc:  # the chain could not answer: this block goes unchecked
                self.summary.parity_errors += 1
                log.warning("parity check of block %d failed: %s", ours.block, exc)
                continue
            if checked.skipped:
                self.summary.parity_skipped += 1
            else:
                self.summary.parity_checks += 1
                self.summary.parity_failures += checked.failures
                record.parity_checked(checked.checked, checked.failures)
                self._wrong |= set(checked.differences)
            if self.on_parity is not None:
                try:
                    await self.on_parity(checked)
                except Exception as exc:  # its record is lost (a database down); checks go on
                    line = str(exc).splitlines()[0] if str(exc) else repr(exc)
                    log.warning(
                        "recording the parity check of block %d failed: %s", ours.block, line
                    )

    async def finish_checks(self) -> None:
        """Wait for the parity checks queued or running (the last block's waits for the chain
        to show a later block, as no later head will come through the pipeline)."""
        self._finishing = True
        self._advanced.set()
        if self._checker is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._checker

    def _count(self, result: BlockResult) -> None:
        s = self.summary
        s.blocks += 1
        s.opportunities += len(result.opportunities)
        s.expected_net_profit_wei += sum(o.net_profit for o in result.opportunities)
        s.reorgs += 1 if result.update.reorg_depth else 0
        s.latencies_ms.append(result.latency_ms)
        head, found = result.head, result.opportunities
        record.observe_block(head.number, result.latency_ms / 1000, block_timestamp=head.timestamp)
        record.opportunities_found(len(found), sum(o.net_profit for o in found))
        record.pools_tracked(result.pools)
        if result.update.reorg_depth:
            record.reorg(result.update.reorg_depth)
