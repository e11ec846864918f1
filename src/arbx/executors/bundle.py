"""The live executor: each block's best trade, signed, simulated and sent as a bundle.

A block's trade is its best opportunity, or with ``routes_per_block`` above 1 its best
pool-disjoint opportunities (``capture.disjoint_batch``) in one transaction of the executor's
``executeMany``, where a route that reverts is skipped and the others still run (ADR 0033).
Each route pays the builder its own share: the configured one, or with a ``bidding`` policy the
share for the rivals self-scoring saw on its pools (``bidding.share_bps``). The trade is built by
``executors.trade``, which shadow mode's simulation uses too.

Every block it first settles what earlier bundles became (included, not included, reverted,
state moved), feeding the risk controller; it starts this as soon as the head arrives
(``on_head``), so that it overlaps the block's sync and evaluation. Then, if the controller
allows a live mode, it takes the block's best opportunity and does only what must come before
the bundle leaves. The pipeline gives it the block's lead (``on_lead``) before the block's
other routes are sized: only the best few by estimate are sized for the trade, the rest after
the bundle has left, for the block's record (``on_block``), which also counts a trade that all
of the routes sized would have chosen otherwise (``stats.lead_missed``; ADR 0039).

1. the risk gate in memory (mode, limits, kill switch) and the calldata; the gas limit is the gas
   model's figure plus a margin and the fees come from the head, so nothing is asked of the node;
2. the first fence (kill switch and signer lock read from the database, off the event loop,
   started as the head arrives so that it overlaps the block's sync and evaluation), then the
   signature (the nonce is known: one key's transactions are sequential);
3. simulation of the exact signed transaction at the node (``eth_call`` on the head's state),
   with a look at the chain's height: a failure drops it, a chain that moved on makes it late;
   with ``simulate_at_builders``, a builder's ``eth_callBundle`` runs at the same time and must
   pass too (it costs that builder's round trip: ADR 0023);
4. the wait for its intent (below), then the second fence, the last check before the send; then
   the bundle goes to every builder for the next block(s) under one replacement uuid (its
   requests built and signed while the simulation ran).

A bundle's intent (its row: target block, bundle hash, transaction and nonce) is written by a
thread of its own from the moment it is signed, while it is simulated, and the send waits for it
up to ``INTENT_WAIT``, so that a process killed during the send leaves a row the next start
settles (ADR 0029). A bundle that does not leave (failed simulation, late, refused by the last
fence) has its row marked ``sim_failed`` or removed, never left as ``sent``. The
other records (the block, the builders that acknowledged the bundle, its outcome) are written
afterwards by one worker thread, and the risk controller refreshes its view of the database
beside the engine. When the kill switch engages, every bundle already sent for a block not yet
built is cancelled at the builders. One bundle is in flight at a time.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from arbx.chain.heads import Head
from arbx.chain.receipts import Receipt, receipt
from arbx.chain.rpc import RpcClient, RpcError, hex_hash, to_quantity
from arbx.domain.bidding import Competition
from arbx.domain.errors import ArbxError
from arbx.domain.journal import DEFAULT_DEPTH
from arbx.domain.limits import Counted
from arbx.domain.limits import Outcome as RiskOutcome
from arbx.domain.pools import Pool
from arbx.domain.profit import Opportunity
from arbx.engine.pipeline import BlockResult, Lead
from arbx.errors import SignerLockLostError
from arbx.execution.flashbots import bundle_hash
from arbx.execution.inclusion import (
    BundleTracker,
    Outcome,
    OutcomeChange,
    block_tx_hashes,
    location_via,
)
from arbx.execution.keys import TxSigner
from arbx.execution.nonces import NonceManager
from arbx.execution.presim import presimulate_at_head
from arbx.execution.relay import BundleSubmitter, RelayClient
from arbx.execution.tx import fee_policy, sign_execute_tx
from arbx.executors.landed_rows import Decision, counted_of, decide, replaced_rows
from arbx.executors.records import (
    RecordWriter,
    SentBundle,
    drop_unsent,
    store_acks,
    store_outcome,
    store_row_outcome,
    store_sent,
)
from arbx.executors.shadow import ShadowExecutor
from arbx.executors.trade import LiveSettings, build_trade, choose_routes
from arbx.metrics import record as metrics
from arbx.risk.controller import RiskController
from arbx.store.execution_repo import LandedRow

log = logging.getLogger(__name__)
BALANCE_OF = bytes.fromhex("70a08231")  # balanceOf(address)
RISK_OUTCOMES: dict[Outcome, RiskOutcome] = {
    Outcome.INCLUDED: "included",
    Outcome.NOT_INCLUDED: "not_included",
    Outcome.REVERTED: "reverted",
    Outcome.STATE_MOVED: "state_moved",
}
MAX_SAMPLES = 10_000  # latency samples kept per stage
# How long a send waits for its intent (the bundle's row, written while it is simulated) to be
# committed: beyond it (a database locked or down) the bundle leaves anyway and its row follows
# in order once the database takes it (ADR 0029).
INTENT_WAIT = 0.05
# Heads after a reorg at which every landed bundle's block is compared with the node's (a node
# may answer for the old branch for a moment after it switched)
CHECK_AFTER_REORG = 3
# Blocks a settled bundle is still followed for: a reorg up to the engine's journal depth that
# takes its transaction out settles it again (its row moved off ``included``, its nonce freed).
KEEP_SETTLED_BLOCKS = DEFAULT_DEPTH


@dataclass(slots=True)
class _InFlight:
    key: str  # the replacement uuid, also the tracker's key
    nonce: int
    tx_hash: bytes
    blocks: tuple[int, ...]  # target blocks
    record: SentBundle
    decided: bool = False
    cancelled: bool = False
    counted: Counted | None = None  # what the risk limits counted for its settlement


@dataclass(slots=True)
class LiveStats:
    """What the live executor did, for the summary and metrics."""

    considered: int = 0
    stale: int = 0
    refused: int = 0
    sim_failed: int = 0
    unsimulated: int = 0  # dropped unsent: the node could not simulate
    sent: int = 0
    cancelled: int = 0  # cancel requests acknowledged by a builder (kill switch)
    rows_corrected: int = 0  # rows recorded as landed in blocks a deep reorg replaced
    outcomes: dict[str, int] = field(default_factory=dict)
    last_refusal: str = ""
    led: int = 0  # trades chosen from a block's lead (its best routes by estimate, sized first)
    lead_missed: int = 0  # of which all of the block's routes sized would have chosen otherwise
    bundle_latencies_ms: list[float] = field(default_factory=list)  # head seen -> bundle sent
    # CPU time of the event loop's thread from the head reaching the executor to the bundle sent:
    # what the engine itself spends (sync, detection, the trade), whatever else the machine runs
    bundle_cpu_ms: list[float] = field(default_factory=list)


class BundleExecutor:
    """Shadow recording plus, when the risk controller allows, one bundle per block."""

    def __init__(
        self,
        *,
        recorder: ShadowExecutor,
        sessions: sessionmaker[Session],
        client: RpcClient,
        relay: RelayClient,
        signer: TxSigner,
        nonces: NonceManager,
        risk: RiskController,
        pools: Mapping[str, Pool],
        settings: LiveSettings,
        executor_abi: Sequence[Mapping[str, Any]] = (),
        tracker: BundleTracker | None = None,
    ) -> None:
        self.recorder = recorder
        self.sessions = sessions
        self.client = client
        self.signer = signer
        self.nonces = nonces
        self.risk = risk
        self.pools = pools
        self.settings = settings
        self.abi = executor_abi
        # a bundle a reorg took out is looked for by its receipt (the new branch may hold it in
        # a block the heads never show: below its target, or in a gap)
        self.tracker = tracker or BundleTracker(confirmations=1, locate=location_via(client))
        self.submitter = BundleSubmitter(
            relay, settings.builders, blocks_ahead=settings.blocks_ahead
        )
        self.relay = relay
        self.competition = Competition()  # rivals seen per pool (fed by self-scoring)
        self.in_flight: dict[str, _InFlight] = {}
        self._done: dict[str, _InFlight] = {}  # settled, followed while a reorg may undo them
        self.stats = LiveStats()
        self.timings: dict[str, list[float]] = {}  # milliseconds per stage of a trade
        self.cpu_timings: dict[str, list[float]] = {}  # the event loop thread's CPU, the same
        self._cpu_at = 0.0
        self.records = RecordWriter()
        # bundles' intents, written before they leave: a thread of their own, never paused
        self.intents = RecordWriter("arbx-intents")
        self.head = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop = asyncio.Event()
        self._background: set[asyncio.Future[Any]] = set()
        self._refresher: asyncio.Future[None] | None = None
        self._prefence: tuple[int, asyncio.Future[str | None]] | None = None
        self._early: tuple[int, asyncio.Future[None]] | None = None
        self._head_cpu: tuple[int, float] = (-1, 0.0)  # head number, thread CPU time at on_head
        self._led: tuple[int, bytes] | None = None  # the head whose lead was traded on
        self._lead_batch: list[tuple[str, ...]] | None = None  # the routes the lead chose
        self._resync: asyncio.Future[None] | None = None
        self._unsettled: list[OutcomeChange] = []  # changes to settle again (receipt not read)
        self._check_landed = 0  # after a reorg: heads at which landed bundles are checked
        # after a re-bootstrap: the rows recorded as landed are checked against the chain
        self._check_rows = False
        self._pending_rows: dict[int, LandedRow] = {}  # reorged out, still pending at the node
        risk.kill_switch.on_engage(self._kill_seen)

    @property
    def mode(self) -> str:
        """The mode in force (from the risk controller)."""
        return self.risk.mode

    async def on_parity(self, result: Any) -> None:
        """Parity checks are recorded by the shadow recorder."""
        await self.recorder.on_parity(result)

    def on_head(self, head: Head) -> None:
        """A head arrived, before it is synced and evaluated: settle and fence in the meantime.

        Earlier bundles are settled with it (their node round trips, a nonce resync) and the
        fence before signing starts (its database reads), so that this work overlaps the block's
        sync and evaluation instead of following them. ``on_block`` waits for it.
        """
        self._start()
        self._head_cpu = (head.number, time.thread_time())
        self.records.pause()  # no record written while this head's bundle is on its way
        self.head = max(self.head, head.number)
        previous = self._early[1] if self._early is not None else None
        task = asyncio.ensure_future(self._prepare(head, previous))
        task.add_done_callback(_quiet)
        self._early = (head.number, task)

    def on_rebootstrap(self, block: int) -> None:
        """The engine re-bootstrapped its book at ``block`` (a reorg deeper than its journal, or
        a book far behind): before the next trade, the rows recorded as landed in blocks the
        chain has since replaced are checked against the chain (``executors.landed_rows``).
        Bundles settled more than ``KEEP_SETTLED_BLOCKS`` ago are no longer followed here, and a
        reorg deeper than the journal can have taken them out."""
        log.info("re-bootstrap at block %d: landed bundle rows checked at the next head", block)
        self._check_rows = True

    async def on_lead(self, lead: Lead) -> None:
        """A head's best opportunities, before the block's other routes are sized: settle
        earlier bundles and maybe send the trade (sizing only what it needs, ``lead.best``);
        ``on_block`` then records the block with all of them."""
        self._start()
        head = lead.head
        self.head = max(self.head, head.number)
        _sample(self.timings.setdefault("detect", []), lead.latency_ms)
        self._led = (head.number, head.hash)
        self._lead_batch = None
        try:
            await self._settle_and_trade(
                head, lead.seen_at, lambda: lead.best(self.settings.routes_per_block)
            )
        except BaseException:
            self.records.resume()
            raise

    async def on_block(self, block: BlockResult) -> None:
        """Settle earlier bundles, maybe send this block's best trade, then record the block.

        The trade goes first (in ``on_lead`` when the pipeline gave the block's lead); the
        block's record is queued for the writer thread.
        """
        self._start()
        head = block.head
        self.head = max(self.head, head.number)
        led, self._led = self._led, None
        try:
            if led == (head.number, head.hash):  # traded on the lead: check it against all
                self._check_lead(block.opportunities, head.number)
            else:
                _sample(self.timings.setdefault("detect", []), block.latency_ms)
                await self._settle_and_trade(head, block.seen_at, lambda: block.opportunities)
        finally:
            self.records.resume()
        self._drop_prefence()
        self.risk.wake()  # the database work of this head, now that the bundle is out
        self.records.submit(self.recorder.write_block, block)

    async def _settle_and_trade(
        self, head: Head, seen_at: datetime, opportunities: Callable[[], Sequence[Opportunity]]
    ) -> None:
        """The head's settlement (started by ``on_head``), then maybe a trade."""
        started = time.perf_counter()
        self._cpu_at = time.thread_time()
        if self._head_cpu[0] == head.number:  # the loop's work since the head: mostly detection
            cpu = (self._cpu_at - self._head_cpu[1]) * 1000
            _sample(self.cpu_timings.setdefault("detect", []), cpu)
        early, self._early = self._early, None
        if early is not None and early[0] == head.number:
            await early[1]
        else:  # no head came first (or another one): settle now
            await self._prepare(head, early[1] if early is not None else None)
        started = self._time("settle", started)
        await self._maybe_trade(head, seen_at, opportunities, started)

    def _check_lead(self, opportunities: Sequence[Opportunity], block: int) -> None:
        """Count a trade chosen from the lead that all of the block's opportunities would have
        chosen otherwise (a better route the estimates ranked too low)."""
        chosen, self._lead_batch = self._lead_batch, None
        if chosen is None:  # no trade was chosen at this head
            return
        full = [o.route.pools for o in self._batch(opportunities, block)]
        if full != chosen:
            self.stats.lead_missed += 1
            log.info("block %d: the lead's trade %s, all its routes sized %s", block, chosen, full)

    async def close(self) -> None:
        """Stop the refresher, wait for cancels and records, and stop the writer thread."""
        self._stop.set()
        if self._early is not None:
            await asyncio.gather(self._early[1], return_exceptions=True)
            self._early = None
        self._drop_prefence()
        if self._resync is not None:
            await self._resync
        if self._refresher is not None:
            await asyncio.gather(self._refresher, return_exceptions=True)
        if self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)
        await self.intents.drain()
        await self.records.drain()
        self.intents.close()
        self.records.close()

    def _start(self) -> None:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
            self._refresher = asyncio.ensure_future(self.risk.keep_fresh(self._stop))

    async def _prepare(self, head: Head, previous: asyncio.Future[None] | None) -> None:
        """Settle with ``head`` (after ``previous``), then start the fence if a trade may follow."""
        if previous is not None:  # never cancelled: a settlement is finished, not cut short
            await asyncio.gather(previous, return_exceptions=True)
        pending, self._unsettled = self._unsettled, []
        changes = await self._track(head, check_landed=bool(pending))
        if self._check_rows or self._pending_rows:
            await self._check_landed_rows()
        queue = [*[c for c in pending if self._current(c)], *changes]
        while queue:
            change = queue.pop(0)
            try:
                await self._settle(change)
            except (ArbxError, LookupError, TypeError, ValueError) as exc:  # the receipt, mostly
                if await self._left_its_block(change):  # the node no longer has it there
                    log.warning("bundle %s: its transaction left its block", change.key)
                    queue[:0] = await self.tracker.reorged_out(change.key, head.number)
                    continue
                log.warning("settling bundle %s failed, again next head: %s", change.key, exc)
                self._unsettled.append(change)
        for forgotten in self.tracker.pop_settled(keep=KEEP_SETTLED_BLOCKS):
            self._done.pop(forgotten.key, None)
        self._drop_prefence()
        if self.risk.mode != "shadow" and all(f.decided for f in self.in_flight.values()):
            task = asyncio.ensure_future(self.risk.fence())  # with the nonce resync, if any
            task.add_done_callback(_quiet)
            self._prefence = (head.number, task)
        resync, self._resync = self._resync, None
        if resync is not None:
            await resync

    async def _track(self, head: Head, *, check_landed: bool = False) -> list[OutcomeChange]:
        """Feed the head to the tracker; its transactions are read only when a bundle waits.

        After a reorg (or while a settlement waits for a receipt), every bundle a block decided
        is checked against the chain: the head shows where the new branch joins the blocks it
        told only when the reorg is one block deep, so a landed bundle whose block is no longer
        canonical is reopened here (and decided again, not included once its window passed).
        So is every landed bundle after a gap in the heads (a loaded engine is told only the
        newest of several), which would hide a reorg inside it.
        """
        txs: tuple[bytes, ...] = ()
        if len(self.tracker):
            found = await block_tx_hashes(self.client, head.hash)
            if found is None:  # reorged away between the head and now: the next head says more
                return []
            txs = found
        reorgs = self.tracker.stats.reorgs
        joined = self.tracker.joins(head.number, head.parent_hash)
        changes = await self.tracker.on_block(head.number, txs, head.hash, head.parent_hash)
        if self.tracker.stats.reorgs > reorgs or not joined:
            self._check_landed = CHECK_AFTER_REORG
        if self._check_landed or check_landed:
            try:
                changes += await self._reorged_out(head.number)
                self._check_landed = max(0, self._check_landed - 1)
            except (ArbxError, LookupError, TypeError) as exc:  # the node, right after a reorg
                log.warning("landed bundles not checked against the chain, again next head: %s",
                            exc)  # fmt: skip
        return changes

    async def _reorged_out(self, at: int) -> list[OutcomeChange]:
        """Reopen the landed bundles whose block the chain no longer has at its number."""
        landed = self.tracker.landed()
        if not landed:
            return []
        hashes = await self.client.batch(
            [("eth_getBlockByNumber", [to_quantity(b.block_number or 0), False]) for b in landed],
            decode=lambda raw: None if raw is None else hex_hash(raw["hash"]),
        )
        changes: list[OutcomeChange] = []
        for bundle, canonical in zip(landed, hashes, strict=True):
            if canonical is not None and canonical != bundle.block_hash:
                log.warning("bundle %s: block %s was reorged out", bundle.key, bundle.block_number)
                changes += await self.tracker.reorged_out(bundle.key, at)
        return changes

    async def _check_landed_rows(self) -> None:
        """After a re-bootstrap: correct the rows recorded as landed in replaced blocks that the
        tracker no longer follows (and, at every head, the ones found still pending)."""
        check, self._check_rows = self._check_rows, False
        try:
            if check:
                for row in await replaced_rows(
                    self.sessions,
                    self.client,
                    self.recorder.chain_id,
                    self.signer.address,
                    known=self._follows,
                ):
                    self._pending_rows.setdefault(row.bundle_id, row)
            for bundle_id, row in list(self._pending_rows.items()):
                decision = await decide(
                    self.client, row, (self.settings.base_token, self.settings.executor)
                )
                if decision.status == "pending" and row.status == "pending":
                    continue  # still waiting at the node
                await self._correct(row, decision)
                if decision.status == "pending":
                    self._pending_rows[bundle_id] = replace(row, status="pending")
                else:
                    del self._pending_rows[bundle_id]
        except (ArbxError, LookupError, TypeError, KeyError, SQLAlchemyError) as exc:
            self._check_rows = self._check_rows or check
            log.warning("landed bundle rows not checked against the chain, again next head: %s",
                        exc)  # fmt: skip

    def _follows(self, tx_hash: str) -> bool:
        """Whether the bundle of transaction ``tx_hash`` is followed in memory (the tracker
        settles it again itself)."""
        raw = bytes.fromhex(tx_hash.removeprefix("0x"))
        flights = (*self.in_flight.values(), *self._done.values())
        return self.tracker.holds(raw) or any(f.tx_hash == raw for f in flights)

    async def _correct(self, row: LandedRow, decision: Decision) -> None:
        """Apply ``decision`` to ``row`` (recorded as landed in a replaced block, or pending
        again): its record, the risk limits (what its settlement counted taken back, the new
        one counted) and the nonces (a transaction taken out frees its nonce)."""
        if row.status in ("included", "reverted"):
            log.warning(
                "bundle row %d: block %d was replaced by a reorg deeper than the journal; %s",
                row.bundle_id,
                row.included_block,
                decision.reason,
            )
            self.risk.undo(counted_of(row, self.recorder.run_id, datetime.now(UTC)))
        details = dict(decision.details)
        if decision.status in ("included", "reverted"):
            details["realized_profit"] = await self._realized_at(
                details["included_block"],
                details["gas_cost"],
                decision.status == "included",
                decision.kept,
            )
            realized = details["realized_profit"]
            self.risk.count(
                RISK_OUTCOMES[Outcome(decision.status)],
                details["gas_cost"],
                -details["gas_cost"] if realized is None else realized,
            )
        elif decision.status == "not_included":
            self.risk.count("not_included", 0, 0)
        if decision.status != "pending" or row.status != "pending":
            self.records.submit(store_row_outcome, self.sessions, row.bundle_id, decision.status,
                                details)  # fmt: skip
        if row.status in ("included", "reverted"):
            self.stats.rows_corrected += 1
        if decision.status in ("not_included", "pending") and self._resync is None:
            self._resync = asyncio.ensure_future(self._resync_nonces())  # its nonce is free

    async def _realized_at(
        self, block: int, gas_cost: int, included: bool, kept: int | None
    ) -> int | None:
        """The profit kept by a bundle that landed in ``block``: what its logs moved of the base
        token to the executor (``kept``), else the executor's balance across the block (None if
        that state is gone), less its gas."""
        if not included:
            return -gas_cost
        if kept is not None:
            return kept - gas_cost
        after, before = await asyncio.gather(self._balance_at(block), self._balance_at(block - 1))
        return None if after is None or before is None else after - before - gas_cost

    async def _left_its_block(self, change: OutcomeChange) -> bool:
        """Whether the node says the transaction of a landed bundle whose receipt it lacks is in
        no block, or in another one (a reorg the blocks did not show; a node that only lags
        behind with its receipts still knows the transaction where it was)."""
        flight = self.in_flight.get(change.key)
        landed = (Outcome.INCLUDED, Outcome.REVERTED)
        if flight is None or change.outcome not in landed or self.tracker.get(change.key) is None:
            return False
        try:
            tx = await self.client.call("eth_getTransactionByHash", ["0x" + flight.tx_hash.hex()])
        except ArbxError:
            return False
        where = tx.get("blockHash") if isinstance(tx, dict) else None
        return change.block_hash is not None and where != "0x" + change.block_hash.hex()

    def _current(self, change: OutcomeChange) -> bool:
        """Whether a change that could not be settled still says what the tracker knows (a
        reorg since then has told something newer, which is settled instead)."""
        tracked = self.tracker.get(change.key)
        return tracked is None or (
            tracked.outcome is change.outcome and tracked.block_hash == change.block_hash
        )

    async def _maybe_trade(
        self,
        head: Head,
        seen_at: datetime,
        opportunities: Callable[[], Sequence[Opportunity]],
        started: float,
    ) -> None:
        mode = self.risk.on_block()
        if mode == "shadow" or any(not f.decided for f in self.in_flight.values()):
            return
        batch = self._batch(opportunities(), head.number)
        self._time("choose", started)
        if self._led is not None:
            self._lead_batch = [o.route.pools for o in batch]
            self.stats.led += 1 if batch else 0
        if batch:
            self.stats.considered += len(batch)
            try:
                await self._trade(batch, head, seen_at)
            except SignerLockLostError as exc:  # not ours to sign: refused, not a failure
                self.stats.refused += 1
                self._record_refusal(str(exc))
            except ArbxError as exc:  # a failed simulation or send drops this opportunity only
                self.stats.sim_failed += 1
                self._record_refusal(f"{type(exc).__name__}: {exc}")

    def _batch(self, opportunities: Sequence[Opportunity], block: int) -> list[Opportunity]:
        """This block's trade before the risk limits (``trade.choose_routes``)."""
        return choose_routes(opportunities, block, self.settings, self.competition)

    async def _trade(self, batch: Sequence[Opportunity], head: Head, seen_at: datetime) -> None:
        started = time.perf_counter()
        self._cpu_at = time.thread_time()
        target = head.number + 1
        taken, why_not = self.risk.may_sign_batch(batch, max_routes=self.settings.routes_per_block)
        if not taken:
            self._refuse(why_not or "refused")
            return
        if why_not:  # some routes left out, the others go
            log.info("%d of %d routes left out: %s", len(batch) - len(taken), len(batch), why_not)
        routes = [batch[i] for i in taken]
        opportunity = routes[0]
        trade = build_trade(routes, head.number, self.settings, self.pools, self.competition)
        fees = fee_policy(head.base_fee, self.settings.priority_fee_wei)
        started = self._time("gate", started)
        why = await self._fence_before_signing(head.number)
        started = self._time("fence before signing", started)
        if why is not None:
            self._refuse(why)
            return
        signed = await sign_execute_tx(
            self.signer,
            self.nonces,
            self.recorder.chain_id,
            self.settings.executor,
            trade.calldata,
            gas_limit=trade.gas_limit,
            fees=fees,
        )
        started = self._time("sign", started)
        at_builders = self.settings.builders if self.settings.simulate_at_builders else ()
        simulation = asyncio.ensure_future(  # on the head's state, with the chain's height
            presimulate_at_head(
                self.client, [signed.raw], head.number, relay=self.relay, builders=at_builders
            )
        )
        record: SentBundle | None = None
        try:
            for _ in range(3):  # let the simulation's requests leave before the work below
                await asyncio.sleep(0)
            key = str(uuid.uuid4())  # its replacement uuid, recorded with its intent
            record = SentBundle(
                opportunity,
                target,
                [],
                signed,
                bundle_hash([signed.raw]).hex(),
                self.signer.address,
                self.settings.executor,
                self.settings.priority_fee_wei,
                expected_net_profit=trade.expected_net_profit,
                routes=len(routes),
                carried=tuple(routes),
                replacement_uuid=key,
            )
            # its intent, durable before it leaves, written while it is simulated: a process
            # killed during the send leaves a row the next start settles
            intent = self.intents.submit(store_sent, self.sessions, self.recorder.run_id, record)
            intent.add_done_callback(_set_when_done(record.written))
            prepared = self.submitter.prepare([signed.raw], target, replacement_uuid=key)
            check, latest = await simulation
        except BaseException:
            simulation.cancel()
            self.nonces.release(signed.nonce)  # simulated at most, never sent as a bundle
            if record is not None:
                self.records.submit(drop_unsent, self.sessions, record)
            raise
        started = self._time("simulate", started)
        if not check.ok and check.stage == "node":  # the node's failure, not the route's
            self.nonces.release(signed.nonce)
            self.stats.unsimulated += 1
            log.info("dropped unsent, the node could not simulate: %s", check.reason)
            self.records.submit(drop_unsent, self.sessions, record)
            return
        if not check.ok:
            self.nonces.release(signed.nonce)
            self.stats.sim_failed += 1
            metrics.bundle_outcome("none", "sim_failed")
            log.info("dropped after simulation: %s", check.reason)
            self.records.submit(store_outcome, self.sessions, record, "sim_failed", {})
            return
        if latest is not None and latest > head.number:  # a bundle for the next block is late
            self.nonces.release(signed.nonce)
            self.stats.stale += 1
            self.records.submit(drop_unsent, self.sessions, record)
            return
        if not intent.done():  # its record first: the fence below is the last thing before
            await asyncio.wait([intent], timeout=INTENT_WAIT)
            started = self._time("intent", started)
            if not intent.done():
                log.warning("bundle %s leaves before its record is written (database busy)", key)
        why = await self.risk.fence()
        started = self._time("fence before sending", started)
        if why is not None:
            self.nonces.release(signed.nonce)
            self._refuse(why)
            self.records.submit(drop_unsent, self.sessions, record)
            return
        blocks = prepared.blocks
        flight = _InFlight(key, signed.nonce, signed.hash, blocks, record)
        self.in_flight[key] = flight  # before the send: a kill during it cancels it too
        report = await self.submitter.send(prepared)
        self._time("send", started)
        elapsed = (datetime.now(UTC) - seen_at).total_seconds() * 1000
        _sample(self.stats.bundle_latencies_ms, elapsed)
        if self._head_cpu[0] == head.number:
            _sample(self.stats.bundle_cpu_ms, (time.thread_time() - self._head_cpu[1]) * 1000)
        if self.risk.kill_switch.engaged:  # engaged while it was on its way: take it back
            flight.cancelled = False
            self._cancel(flight)
        record.builders = [s.builder for s in report.acks]
        self.tracker.track(
            key, report.tx_hashes, report.blocks[0], report.blocks[-1], record.builders
        )
        self.records.submit(store_acks, self.sessions, record)
        self.stats.sent += 1
        _sent(key, record, head, elapsed, self.recorder.run_id)

    async def _fence_before_signing(self, number: int) -> str | None:
        """The fence started when head ``number`` arrived, else one now; then memory again."""
        early, self._prefence = self._prefence, None
        if early is None or early[0] != number:
            return await self.risk.fence()
        why = await early[1]
        if why is None and self.risk.kill_switch.engaged:  # since the reads: a signal, a breach
            why = f"kill switch set: {self.risk.kill_switch.state.reason}"
        return why

    def _drop_prefence(self) -> None:
        if self._prefence is not None:
            self._prefence[1].cancel()
            self._prefence = None

    # --- the kill switch ------------------------------------------------------------------

    def _kill_seen(self) -> None:
        """The kill switch engaged (in any thread): cancel what waits at the builders."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._cancel_all)

    def cancel_in_flight(self) -> None:
        """Cancel every bundle still waiting at the builders (a handover, a kill switch)."""
        self._cancel_all()

    def _cancel_all(self) -> None:
        for flight in list(self.in_flight.values()):
            if not flight.decided:
                self._cancel(flight)

    def _cancel(self, flight: _InFlight) -> None:
        """Cancel ``flight`` at every builder for each of its blocks not built yet."""
        blocks = [b for b in flight.blocks if b > self.head]
        if flight.cancelled or not blocks:
            return
        flight.cancelled = True
        log.info("kill switch: cancelling bundle %s for blocks %s", flight.key, blocks)
        self._spawn(self._send_cancels(flight.key, blocks))

    async def _send_cancels(self, key: str, blocks: list[int]) -> None:
        answers = await self.relay.cancel_fan_out(self.settings.builders, key, blocks)
        self.stats.cancelled += sum(1 for a in answers if a.ok)

    def _spawn(self, work: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _settle(self, change: OutcomeChange) -> None:
        flight = self.in_flight.get(change.key)
        outcome = change.outcome
        landed = (Outcome.INCLUDED, Outcome.REVERTED)
        if flight is None and (change.previous in landed) != (outcome in landed):
            # settled, and a reorg took it out (or the chain has it after all)
            flight = self._done.pop(change.key, None)
            if flight is None:
                return
            self.in_flight[change.key] = flight  # decided again by the new branch
            if flight.counted is not None:  # the limits follow its final settlement
                self.risk.undo(flight.counted)
                flight.counted = None
        if flight is None:
            return
        if outcome == Outcome.PENDING:  # a reorg took it out again
            flight.decided = False
            self.records.submit(store_outcome, self.sessions, flight.record, "pending", {})
            return
        details: dict[str, Any] = {}
        gas_cost = realized = 0
        if outcome in (Outcome.INCLUDED, Outcome.REVERTED):
            self.nonces.confirm(flight.nonce)
            # undecided (no next trade) until the gas it cost is known to the limits
            details = await self._realized(flight, outcome == Outcome.INCLUDED)
            gas_cost, realized = details["gas_cost"], details["realized_profit"]
            if realized is None:  # unknown: the limits count the gas paid as lost
                realized = -gas_cost
        flight.decided = True
        if outcome not in (Outcome.INCLUDED, Outcome.REVERTED):
            self.nonces.failed(flight.nonce)
            if self._resync is None:  # now, not when the next bundle needs a nonce
                self._resync = asyncio.ensure_future(self._resync_nonces())
        self.records.submit(store_outcome, self.sessions, flight.record, str(outcome), details)
        if change.settled or outcome != Outcome.INCLUDED:
            self.stats.outcomes[str(outcome)] = self.stats.outcomes.get(str(outcome), 0) + 1
            flight.counted, _ = self.risk.count(RISK_OUTCOMES[outcome], gas_cost, realized)
            self.in_flight.pop(change.key, None)
            if self.tracker.get(change.key) is not None:
                self._done[change.key] = flight
            _settled(flight, change, details, self.recorder.run_id)

    async def _realized(self, flight: _InFlight, included: bool) -> dict[str, Any]:
        """Gas paid and profit kept by an included (or reverted) bundle, from its receipt: what
        its logs moved of the base token to the executor, exact for its own transaction; the
        executor's balance across its block where the node sent no logs."""
        found: Receipt | None = await receipt(self.client, flight.tx_hash)
        if found is None:  # not indexed yet, or its block reorged out
            raise LookupError(f"no receipt for 0x{flight.tx_hash.hex()} (yet)")
        block, gas_cost = found.block_number, found.gas_cost
        kept = found.balance_change(self.settings.base_token, self.settings.executor)
        return {
            "included_block": block,
            "included_block_hash": found.block_hash_hex,
            "gas_used": found.gas_used,
            "gas_cost": gas_cost,
            "realized_profit": await self._realized_at(block, gas_cost, included, kept),
        }

    async def _balance_at(self, block: int) -> int | None:
        """The executor's base-token balance at ``block``; None when the node no longer serves
        that block's state (pruned, or replaced by a reorg): the outcome is settled without a
        realized profit rather than retried for ever, which would hold every later trade back."""
        try:
            return await self._balance(block)
        except RpcError as exc:
            log.warning("the balance at block %d is not served (%s): realized profit unknown",
                        block, exc)  # fmt: skip
            return None

    async def _resync_nonces(self) -> None:
        try:
            await self.nonces.sync()
        except ArbxError as exc:  # the next reservation reads the chain again
            log.info("nonce resync failed: %s", exc)

    async def _balance(self, block: int) -> int:
        data = BALANCE_OF + bytes(12) + bytes.fromhex(self.settings.executor[2:])
        raw = await self.client.call(
            "eth_call",
            [{"to": self.settings.base_token, "data": "0x" + data.hex()}, to_quantity(block)],
        )
        return int(raw, 16)

    # --- bookkeeping ----------------------------------------------------------------------

    def _time(self, stage: str, since: float) -> float:
        now, cpu = time.perf_counter(), time.thread_time()
        _sample(self.timings.setdefault(stage, []), (now - since) * 1000)
        _sample(self.cpu_timings.setdefault(stage, []), (cpu - self._cpu_at) * 1000)
        self._cpu_at = cpu
        return now

    def _refuse(self, reason: str) -> None:
        self.stats.refused += 1
        self._record_refusal(reason)

    def _record_refusal(self, reason: str) -> None:
        if reason != self.stats.last_refusal:
            log.info("not trading: %s", reason)
        self.stats.last_refusal = reason


def _set_when_done(event: threading.Event) -> Callable[[asyncio.Future[Any]], None]:
    """A done callback that sets ``event`` (the intent's writing ended, whatever its outcome)."""

    def done(_: asyncio.Future[Any]) -> None:
        event.set()

    return done


def _quiet(task: asyncio.Future[Any]) -> None:
    """Retrieve a background task's outcome, so that a dropped one raises no warning."""
    if not task.cancelled():
        task.exception()


def _sent(key: str, record: SentBundle, head: Head, elapsed_ms: float, run_id: int) -> None:
    """A bundle handed to its builders as metrics (head to bundle, sent by builder) and as one
    log event (bundle, head block and run)."""
    builders = sorted(set(record.builders))  # one ack per target block
    metrics.head_to_bundle(elapsed_ms / 1000)
    for builder in builders:
        metrics.bundle_outcome(builder, "sent")
    block_hash = "0x" + head.hash.hex()
    log.info(
        "bundle %s sent for block %d (head %d %s, run %d) to %s in %.1f ms",
        key,
        record.target,
        head.number,
        block_hash,
        run_id,
        ", ".join(builders) or "no builder",
        elapsed_ms,
        extra={
            "event": "bundle_sent",
            "run_id": run_id,
            "bundle": key,
            "block": head.number,
            "block_hash": block_hash,
            "target_block": record.target,
            "builders": ",".join(builders),
            "head_to_bundle_ms": round(elapsed_ms, 3),
            "expected_profit_wei": str(record.expected),
        },
    )


def _settled(
    flight: _InFlight, change: OutcomeChange, details: Mapping[str, Any], run_id: int
) -> None:
    """A settled bundle as metrics (outcome by builder, gas, expected and realized profit) and
    as one log event (bundle, block and run, to tie the two together)."""
    outcome, expected = change.outcome, flight.record.expected
    builders = set(flight.record.builders)
    metrics.bundle_outcome(builders.pop() if len(builders) == 1 else "multiple", str(outcome))
    metrics.bundle_settled(
        block=details.get("included_block"),
        expected_wei=expected,
        realized_wei=details.get("realized_profit") or 0,
        gas_wei=details.get("gas_cost", 0),
        included=outcome == Outcome.INCLUDED,
    )
    at = details.get("included_block", change.at)
    block_hash = details.get("included_block_hash") or (
        "0x" + change.block_hash.hex() if change.block_hash else None
    )
    log.info(
        "bundle %s %s at block %d (run %d)",
        change.key,
        outcome,
        at,
        run_id,
        extra={
            "event": "bundle_outcome",
            "run_id": run_id,
            "bundle": change.key,
            "bundle_id": flight.record.bundle_id,
            "outcome": str(outcome),
            "block": at,
            "block_hash": block_hash,
            "gas_cost_wei": str(details.get("gas_cost", 0)),
            "realized_profit_wei": str(details.get("realized_profit", 0)),
            "expected_profit_wei": str(expected),
        },
    )


def _sample(samples: list[float], value: float) -> None:
    samples.append(value)
    if len(samples) > MAX_SAMPLES:
        del samples[: len(samples) - MAX_SAMPLES]
