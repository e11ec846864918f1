"""The live executor: the best opportunity of each block, signed, simulated and sent as a bundle.

Every block it first settles what earlier bundles became (included, not included, reverted,
state moved), feeding the risk controller; then, if the controller allows a live mode, it takes
the block's best opportunity, checks it against the limits, encodes the executor call, estimates
it (a revert reserves no nonce), signs it, simulates the exact signed transaction, and sends it
privately to the builders for the next block(s). One bundle is in flight at a time: a single
key's transactions are sequential. Everything is recorded; shadow recording goes on as before.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from arbx.chain.rpc import RpcClient, hex_int, to_quantity
from arbx.domain.errors import ArbxError
from arbx.domain.limits import Outcome as RiskOutcome
from arbx.domain.pools import Pool
from arbx.domain.profit import Opportunity, kept_profit
from arbx.domain.sizing import Sized
from arbx.engine.pipeline import BlockResult
from arbx.errors import SignerLockLostError
from arbx.execution.inclusion import BundleTracker, Outcome, OutcomeChange, track_head
from arbx.execution.keys import TxSigner
from arbx.execution.nonces import NonceManager
from arbx.execution.presim import presimulate
from arbx.execution.relay import BuilderSpec, BundleSubmitter, RelayClient
from arbx.execution.route_codec import encode_execute
from arbx.execution.tx import signed_execute_tx
from arbx.executors.shadow import ShadowExecutor
from arbx.risk.controller import RiskController
from arbx.store import api_repo
from arbx.store import execution_repo as xrepo

log = logging.getLogger(__name__)
BALANCE_OF = bytes.fromhex("70a08231")  # balanceOf(address)
RISK_OUTCOMES: dict[Outcome, RiskOutcome] = {
    Outcome.INCLUDED: "included",
    Outcome.NOT_INCLUDED: "not_included",
    Outcome.REVERTED: "reverted",
    Outcome.STATE_MOVED: "state_moved",
}


@dataclass(frozen=True, slots=True)
class LiveSettings:
    """How the live executor trades."""

    executor: str  # the deployed ArbExecutor, owned by the signing key
    base_token: str  # the wrapped native token the executor pays the builder in
    builders: tuple[BuilderSpec, ...]
    builder_share_bps: int = 0
    priority_fee_wei: int = 1_000_000_000
    slippage_bps: int = 0  # how far under the expected profit the contract may still accept
    blocks_ahead: int = 0  # target blocks after the next one


@dataclass(slots=True)
class _InFlight:
    bundle_id: int
    nonce: int
    tx_hash: bytes
    opportunity: Opportunity
    decided: bool = False


@dataclass(slots=True)
class LiveStats:
    """What the live executor did, for the summary and metrics."""

    considered: int = 0
    stale: int = 0
    refused: int = 0
    sim_failed: int = 0
    sent: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    last_refusal: str = ""
    bundle_latencies_ms: list[float] = field(default_factory=list)  # head seen -> bundle sent


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
        self.tracker = tracker or BundleTracker(confirmations=1)
        self.submitter = BundleSubmitter(
            relay, settings.builders, blocks_ahead=settings.blocks_ahead
        )
        self.relay = relay
        self.in_flight: dict[str, _InFlight] = {}
        self.stats = LiveStats()
        self.configured = (risk.ceiling, risk.limits)

    @property
    def mode(self) -> str:
        """The mode in force (from the risk controller)."""
        return self.risk.mode

    async def on_parity(self, result: Any) -> None:
        """Parity checks are recorded by the shadow recorder."""
        await self.recorder.on_parity(result)

    async def on_block(self, block: BlockResult) -> None:
        """Settle earlier bundles, maybe send this block's best trade, then record the block.

        The trade goes first: recording is bookkeeping and must not delay the bundle.
        """
        for change in await track_head(self.tracker, self.client, block.head):
            await self._settle(change)
        await self._maybe_trade(block)
        await self.recorder.on_block(block)

    async def _maybe_trade(self, block: BlockResult) -> None:
        await asyncio.to_thread(self._apply_controls)
        mode = self.risk.on_block()
        if mode == "shadow" or any(not f.decided for f in self.in_flight.values()):
            return
        if block.opportunities and await self.client.block_number() > block.head.number:
            self.stats.stale += 1  # the chain has moved on: a bundle for the next block is late
            return
        for opportunity in block.opportunities[:1]:
            if opportunity.route.base != self.settings.base_token:
                continue
            self.stats.considered += 1
            try:
                await self._trade(opportunity, block.head.number + 1, block.seen_at)
            except SignerLockLostError as exc:  # not ours to sign: refused, not a failure
                self.stats.refused += 1
                self._record_refusal(str(exc))
            except ArbxError as exc:  # a failed simulation or send drops this opportunity only
                self.stats.sim_failed += 1
                self._record_refusal(f"{type(exc).__name__}: {exc}")

    async def _trade(self, opportunity: Opportunity, target: int, seen_at: datetime) -> None:
        decision = self.risk.may_sign(opportunity, gas_cost_wei=opportunity.gas_cost)
        if not decision.allowed:
            self.stats.refused += 1
            self._record_refusal(decision.reason or "refused")
            return
        kept = kept_profit(opportunity.gross_profit, self.settings.builder_share_bps)
        min_profit = max(1, kept * (10_000 - self.settings.slippage_bps) // 10_000)
        sized = Sized(opportunity.amount_in, opportunity.amounts, (0,) * len(opportunity.amounts))
        calldata = encode_execute(
            opportunity.route,
            self.pools,
            sized,
            self.settings.base_token,
            min_profit,
            self.settings.builder_share_bps,
        )
        signed = await signed_execute_tx(
            self.client,
            self.signer,
            self.nonces,
            self.settings.executor,
            calldata,
            priority_fee=self.settings.priority_fee_wei,
            abi=self.abi,
        )
        check = await presimulate(
            self.client, [signed.raw], target, relay=self.relay, builders=self.settings.builders
        )
        if not check.ok:
            self.nonces.release(signed.nonce)
            self.stats.sim_failed += 1
            self._store_sim_failed(opportunity, target, signed.hash_hex, check.reason or "")
            return
        report = await self.submitter.submit(
            [signed.raw], target, replacement_uuid=str(uuid.uuid4())
        )
        elapsed = (datetime.now(UTC) - seen_at).total_seconds() * 1000
        self.stats.bundle_latencies_ms.append(elapsed)
        builders = [s.builder for s in report.acks]
        bundle_id = await asyncio.to_thread(
            self._store_sent, opportunity, target, builders, signed, report.bundle_hash.hex()
        )
        key = str(bundle_id)
        self.tracker.track(key, report.tx_hashes, report.blocks[0], report.blocks[-1], builders)
        self.in_flight[key] = _InFlight(bundle_id, signed.nonce, signed.hash, opportunity)
        self.stats.sent += 1

    async def _settle(self, change: OutcomeChange) -> None:
        flight = self.in_flight.get(change.key)
        if flight is None:
            return
        outcome = change.outcome
        if outcome == Outcome.PENDING:  # a reorg took it out again
            flight.decided = False
            await asyncio.to_thread(self._store_outcome, flight.bundle_id, "pending", {})
            return
        flight.decided = True
        details: dict[str, Any] = {}
        gas_cost = realized = 0
        if outcome in (Outcome.INCLUDED, Outcome.REVERTED):
            self.nonces.confirm(flight.nonce)
            receipt = await self.client.call(
                "eth_getTransactionReceipt", ["0x" + flight.tx_hash.hex()]
            )
            gas_used = hex_int(receipt["gasUsed"])
            gas_cost = gas_used * hex_int(receipt["effectiveGasPrice"])
            block = hex_int(receipt["blockNumber"])
            kept = 0
            if outcome == Outcome.INCLUDED:
                kept = await self._balance(block) - await self._balance(block - 1)
            realized = kept - gas_cost
            details = {
                "included_block": block,
                "included_block_hash": receipt["blockHash"],
                "gas_used": gas_used,
                "gas_cost": gas_cost,
                "realized_profit": realized,
            }
        else:
            self.nonces.failed(flight.nonce)
        await asyncio.to_thread(self._store_outcome, flight.bundle_id, str(outcome), details)
        if change.settled or outcome != Outcome.INCLUDED:
            self.stats.outcomes[str(outcome)] = self.stats.outcomes.get(str(outcome), 0) + 1
            self.risk.on_outcome(RISK_OUTCOMES[outcome], gas_cost, realized)
            self.in_flight.pop(change.key, None)

    async def _balance(self, block: int) -> int:
        data = BALANCE_OF + bytes(12) + bytes.fromhex(self.settings.executor[2:])
        raw = await self.client.call(
            "eth_call",
            [{"to": self.settings.base_token, "data": "0x" + data.hex()}, to_quantity(block)],
        )
        return int(raw, 16)

    def _apply_controls(self) -> None:
        """Operators' mode ceiling and limits (API or CLI), else the configured ones."""
        with self.sessions.begin() as session:
            controls = api_repo.get_controls(session, self.recorder.chain_id)
        self.risk.ceiling = (
            controls.ceiling_or(self.configured[0]) if controls else self.configured[0]
        )
        self.risk.limits = (controls.limits if controls else None) or self.configured[1]

    # --- records ------------------------------------------------------------------------

    def _store_sent(
        self,
        opportunity: Opportunity,
        target: int,
        builders: list[str],
        signed: Any,
        bundle_hash: str,
    ) -> int:
        with self.sessions.begin() as session:
            bundle_id = xrepo.record_bundle(
                session,
                self.recorder.run_id,
                target_block=target,
                builders=builders,
                tx_hashes=[signed.hash_hex],
                expected_net_profit=opportunity.net_profit,
                signer=self.signer.address,
                bundle_hash="0x" + bundle_hash,
            )
            api_repo.notify_event(session, "bundle", {"id": bundle_id})
            xrepo.record_tx(
                session,
                bundle_id,
                xrepo.TxRecord(
                    hash=signed.hash_hex,
                    nonce=signed.nonce,
                    from_address=self.signer.address,
                    to_address=self.settings.executor,
                    gas_limit=0,
                    max_fee=0,
                    priority_fee=self.settings.priority_fee_wei,
                ),
            )
        return bundle_id

    def _store_sim_failed(
        self, opportunity: Opportunity, target: int, tx_hash: str, reason: str
    ) -> None:
        with self.sessions.begin() as session:
            bundle_id = xrepo.record_bundle(
                session,
                self.recorder.run_id,
                target_block=target,
                builders=[],
                tx_hashes=[tx_hash],
                expected_net_profit=opportunity.net_profit,
                signer=self.signer.address,
            )
            xrepo.update_bundle_outcome(session, bundle_id, "sim_failed")
        log.info("dropped after simulation: %s", reason)

    def _store_outcome(self, bundle_id: int, status: str, details: dict[str, Any]) -> None:
        with self.sessions.begin() as session:
            xrepo.update_bundle_outcome(
                session, bundle_id, status, settled_at=datetime.now(UTC), **details
            )
            api_repo.notify_event(session, "bundle", {"id": bundle_id})

    def _record_refusal(self, reason: str) -> None:
        if reason != self.stats.last_refusal:
            log.info("not trading: %s", reason)
        self.stats.last_refusal = reason
