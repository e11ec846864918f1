"""The run's loop under supervision: heads in, each block's work retried, repaired or stopped
by the class of what failed (the policy is ``engine.supervision``).

A block whose work fails is not dropped: after a transient failure it is tried again once the
back-off has passed (a stop signal cuts the wait short); after a stale one the pools in doubt
are reloaded, or the whole book is re-bootstrapped at the chain's head, and heads that the new
book already covers are skipped; an executor with ``on_rebootstrap`` is told (a reorg deeper
than the journal may have replaced blocks its records name). A fatal failure ends the loop: the
summary names it (``stopped_by = "error"``, ``fault``) and the exception goes on to the caller,
which records the run as failed.

A head whose work fails as stale because a reorg replaced its block after the head arrived (the
node then serves neither the block's logs nor its state: "unknown block") is not tried again:
it never can succeed, and after ``stale_retries`` the book would be re-bootstrapped. On a stale
failure the node is asked for its block at the head's number: another block is processed in the
head's place, at once, and the sync unwinds what the book lost through its journal (a reorg of
the book's depth, as any other); after ``MAX_REPLACED`` replacements in a row (a chain that keeps
changing under one number) the policy's action stands. No block at that number when the policy
would re-bootstrap (a chain shorter than the head: anvil's reorg unwinds, then mines the new
blocks one by one; a revert) drops the head instead: the next head's sync walks back to the book
and re-bootstraps only if the journal cannot reach the fork. After ``MAX_DROPPED`` heads dropped
in a row (a node that answers no block at any number, not a reorg's mining, which ends), the
policy's re-bootstrap stands: the book is read again at the chain's head (through the client's
failover), and the count starts again once a head is processed or the book re-bootstrapped.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Literal

from arbx.chain.heads import Head
from arbx.domain.errors import ArbxError
from arbx.engine.pipeline import Pipeline, RunSummary, tell_rebootstrap
from arbx.engine.supervision import Action, Decision, Fault, SupervisionPolicy

log = logging.getLogger(__name__)

MAX_REPLACED = 8  # replacements of one head in a row followed before the policy acts again
MAX_DROPPED = 3  # heads dropped in a row (no block at their number) before the policy acts again


class Supervisor:
    """Runs a pipeline over its heads, acting on failures by class."""

    def __init__(self, pipeline: Pipeline, policy: SupervisionPolicy | None = None) -> None:
        self.pipeline = pipeline
        self.policy = policy if policy is not None else SupervisionPolicy()
        self.floor = -1  # heads at or below this block are behind the book (re-bootstrapped)
        self.dropped_in_row = 0  # heads dropped since the last one processed or re-bootstrap

    @property
    def summary(self) -> RunSummary:
        """The pipeline's running totals."""
        return self.pipeline.summary

    async def run(self, stop: asyncio.Event, max_blocks: int | None = None) -> RunSummary:
        """Process heads until ``stop`` is set, ``max_blocks`` are done, the heads end, or a
        fatal failure (raised after the summary names it)."""
        summary = self.summary
        stop_wait = asyncio.ensure_future(stop.wait())
        collector = self.pipeline.collector
        try:
            collector.__enter__()  # full collections between blocks (engine.collector)
            while not stop.is_set():
                next_head = asyncio.ensure_future(anext(self.pipeline.heads))
                done, _ = await asyncio.wait(
                    {next_head, stop_wait}, return_when=asyncio.FIRST_COMPLETED
                )
                if next_head not in done:
                    next_head.cancel()
                    summary.stopped_by = "signal"
                    break
                try:
                    head = next_head.result()
                except StopAsyncIteration:
                    summary.stopped_by = "end of heads"
                    break
                if head.number <= self.floor:
                    summary.skipped_heads += 1
                    continue
                catch_up = None
                if self._far_behind(head):  # after an outage: jump to the chain's head
                    summary.catch_ups += 1
                    catch_up = Decision(Fault.STALE, Action.REBOOTSTRAP, reason="far behind")
                if not await self._supervised(head, stop_wait, catch_up):
                    summary.stopped_by = "signal"
                    break
                collector.after_block()
                if max_blocks is not None and summary.blocks >= max_blocks:
                    summary.stopped_by = f"{max_blocks} blocks"
                    break
            else:
                summary.stopped_by = "signal"
        finally:
            collector.__exit__(None, None, None)
            stop_wait.cancel()
            await self.pipeline.finish_checks()
        return summary

    def _far_behind(self, head: Head) -> bool:
        """Whether ``head`` is more than ``catch_up_blocks`` behind the chain's newest block,
        so that reloading every pool at the head beats replaying the blocks in between."""
        tip = self.pipeline.tip
        if tip is None or self.pipeline.resync is None:
            return False
        return tip() - head.number > self.policy.catch_up_blocks

    async def _supervised(
        self,
        head: Head,
        stop_wait: asyncio.Future[Literal[True]],
        repair: Decision | None = None,
    ) -> bool:
        """``head``'s work (after ``repair``), retried and repaired until done; False if stopped
        meanwhile."""
        attempt = 0
        replaced = 0
        while True:
            try:
                if repair is not None:
                    await self._repair(repair)
                    repair = None
                    if head.number <= self.floor:  # the new book already covers this head
                        self.summary.skipped_heads += 1
                        return True
                await self.pipeline.process(head)
                self.dropped_in_row = 0
                return True
            except Exception as exc:
                decision = self._decide(exc, attempt)
                if decision.action is Action.STOP:
                    self.summary.stopped_by = "error"
                    self.summary.fault = decision.reason
                    log.error(
                        "block %d: %s failure, stopping: %s",
                        head.number,
                        decision.fault.value,
                        decision.reason,
                    )
                    raise
                now = await self._now_at(head) if decision.fault is Fault.STALE else head
                if now is not None and now.hash != head.hash and replaced < MAX_REPLACED:
                    log.warning(  # gone for good: the chain's block at its number instead
                        "block %d: %s failure (%s); a reorg replaced it (%s), following %s",
                        head.number,
                        decision.fault.value,
                        decision.reason,
                        "0x" + head.hash.hex()[:8],
                        "0x" + now.hash.hex()[:8],
                    )
                    self.summary.replaced_heads += 1
                    head, attempt, replaced = now, 0, replaced + 1
                    continue
                gone = now is None and decision.action is Action.REBOOTSTRAP and repair is None
                if gone and self.dropped_in_row < MAX_DROPPED:
                    log.warning(
                        "block %d: %s failure (%s); the node has no block %d now: dropped, the "
                        "next head is synced from the book",
                        head.number,
                        decision.fault.value,
                        decision.reason,
                        head.number,
                    )
                    self.summary.dropped_heads += 1
                    self.dropped_in_row += 1
                    return True
                if gone:
                    log.warning(
                        "block %d: the node has no block %d now either, the %d heads before "
                        "it dropped: the policy acts",
                        head.number,
                        head.number,
                        self.dropped_in_row,
                    )
                log.warning(
                    "block %d: %s failure (%s); %s in %.2f s",
                    head.number,
                    decision.fault.value,
                    decision.reason,
                    decision.action.value,
                    decision.delay,
                )
                if decision.delay > 0:
                    await asyncio.wait({stop_wait}, timeout=decision.delay)
                    if stop_wait.done():
                        return False
                if decision.action in (Action.RELOAD, Action.REBOOTSTRAP):
                    repair = decision
                attempt += 1

    async def _now_at(self, head: Head) -> Head | None:
        """The chain's block at ``head``'s number now: None when the node has none, ``head``
        itself when the node cannot tell (the policy's action then stands)."""
        try:
            return await self.pipeline.sync.block_at(head.number)
        except ArbxError:
            return head

    def _decide(self, exc: Exception, attempt: int) -> Decision:
        decision = self.policy.decide(exc, attempt)
        if decision.fault is Fault.TRANSIENT:
            self.summary.transient_faults += 1
        elif decision.fault is Fault.STALE:
            self.summary.stale_faults += 1
        needs_resync = decision.action in (Action.RELOAD, Action.REBOOTSTRAP)
        if needs_resync and self.pipeline.resync is None:
            return Decision(Fault.FATAL, Action.STOP, reason=decision.reason)
        return decision

    async def _repair(self, decision: Decision) -> None:
        resync = self.pipeline.resync
        assert resync is not None
        if decision.action is Action.RELOAD:
            self.pipeline.changed_outside |= await resync.reload(decision.pools)
            self.summary.reloads += len(decision.pools)
            return
        floor, changed = await resync.rebootstrap()
        self.dropped_in_row = 0
        self.floor = max(self.floor, floor)
        self.pipeline.changed_outside |= changed
        self.summary.rebootstraps += 1
        log.warning(
            "re-bootstrapped the pool book at block %d (%d pools changed)", floor, len(changed)
        )
        tell_rebootstrap(self.pipeline.executor, floor)  # the live one checks its rows (ADR 0029)
