"""The one place where the mode picks the executor: shadow records, simulates the trade a live
engine would send (without a key: ``executors.simulation``) and scores; limited and scaled trade
through the bundle executor, under the risk controller. The rest of the run does not know which
it got."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Mapping

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from arbx import __version__
from arbx.chain.heads import Head
from arbx.chain.parity import ParityResult
from arbx.chain.rpc import RpcClient
from arbx.domain.errors import ConfigError
from arbx.domain.modes import Mode
from arbx.domain.pools import Pool
from arbx.engine.pipeline import BlockResult, Executor, Lead, tell_head, tell_lead, tell_rebootstrap
from arbx.execution.relay import RelayClient
from arbx.executors.bundle import BundleExecutor
from arbx.executors.live import ZERO_ADDRESS, LivePlan, live_executor, stage_caps, trade_settings
from arbx.executors.scoring import Scorer
from arbx.executors.shadow import ShadowExecutor
from arbx.executors.simulation import ShadowSimulator
from arbx.executors.trade import LiveSettings
from arbx.risk.controller import RiskController
from arbx.risk.signer_lock import SignerLock

log = logging.getLogger(__name__)


class ShadowExecution:
    """Shadow mode: every block recorded, nothing signed."""

    def __init__(self, recorder: ShadowExecutor) -> None:
        self.recorder = recorder
        self.executor: Executor = recorder
        self.status = "mode shadow: records and simulates, never signs"
        self.closing: tuple[str, ...] = ()  # lines for the end of the run
        self.scorer: Scorer | None = None  # self-scoring, when the run has it
        # shadow mode's simulation of the trade a live engine would send (never in live modes:
        # they simulate what they sign)
        self.simulator: ShadowSimulator | None = None
        self._scoring: asyncio.Future[None] | None = None
        self._reorged = False  # a reorg came while a scoring ran: the next one starts afresh
        self._unscored: BlockResult | None = None  # the newest block that came meanwhile

    def on_head(self, head: Head) -> None:
        """A head arrived, before its block is synced: tell an executor that works ahead of the
        block (the live one settles earlier bundles and starts its fence meanwhile)."""
        tell_head(self.executor, head)

    def on_rebootstrap(self, block: int) -> None:
        """The engine re-bootstrapped its book at ``block``: tell an executor that checks its
        records against the chain then (the live one: ADR 0029)."""
        tell_rebootstrap(self.executor, block)

    async def on_lead(self, lead: Lead) -> None:
        """A block's best opportunities before the rest are sized: to an executor that trades
        on them (the live one), nothing otherwise."""
        await tell_lead(self.executor, lead)

    async def on_block(self, block: BlockResult) -> None:
        """Hand the block to the executor, then score what the block completes the window of.

        Scoring runs beside the next heads, one at a time (a block that comes while one runs
        is scored by the next one, which scores every window ended by its head): its database
        and node round trips never hold a head back, which would make every trade late.
        """
        await self.executor.on_block(block)
        if self.simulator is not None:
            self.simulator.on_block(block)  # in the background, after the block's record
        if self.scorer is None:
            return
        self._reorged = self._reorged or bool(block.update.reorg_depth)
        if self._scoring is not None and not self._scoring.done():
            self._unscored = block  # scored by the next one, or at the close
            return
        self._unscored = None
        if self._reorged:
            self.scorer.forget_swaps()
            self._reorged = False
        self._scoring = asyncio.ensure_future(self.scorer.on_block(block))
        self._scoring.add_done_callback(_scoring_ended)

    async def _scored(self) -> None:
        """Wait for the scoring in progress, if any, and score the block that came meanwhile."""
        if self._scoring is not None:
            await asyncio.gather(self._scoring, return_exceptions=True)
        if self._unscored is not None and self.scorer is not None:
            await self.scorer.on_block(self._unscored)
            self._unscored = None

    async def on_parity(self, result: ParityResult) -> None:
        """Record a parity check."""
        await self.recorder.on_parity(result)

    def caps(self) -> Mapping[str, int] | None:
        """No caps of its own: the strategy's settings apply."""
        return None

    async def close(self) -> dict[str, object] | None:
        """Finish the simulations, stop the recorder's writer; nothing to add to the run's
        summary (the routes' simulations are in their records, the totals in a closing line)."""
        if self.simulator is not None:
            await self.simulator.close()
            self.closing = (self.simulator.stats.line(),)
        await self._scored()
        self.recorder.close()
        return None

    def holding(self) -> tuple[str, int, str] | None:
        """Shadow holds no signer lock."""
        return None

    def cancel_in_flight(self) -> None:
        """Nothing is in flight in shadow."""

    def set_role(self, role: str) -> None:
        """What the block results call this engine."""
        self.recorder.role = role


class LiveExecution(ShadowExecution):
    """A live mode: bundles sent within the risk controller's stage and limits."""

    def __init__(
        self,
        recorder: ShadowExecutor,
        bundles: BundleExecutor,
        risk: RiskController,
        relay: RelayClient,
        bases: tuple[str, ...],
    ) -> None:
        super().__init__(recorder)
        self.bundles = bundles
        self.executor = bundles
        self.risk = risk
        self.relay = relay
        self.bases = bases
        self.status = f"mode {risk.mode} (stage {risk.stage}): {risk.reason or 'trading'}"

    def caps(self) -> Mapping[str, int] | None:
        """The input caps of the risk stage while trading; the strategy's own in shadow."""
        return stage_caps(self.risk, self.bases) if self.risk.mode != "shadow" else None

    def holding(self) -> tuple[str, int, str] | None:
        """(key, epoch, holder) while the signer lock is ours, else None."""
        lock = self.risk.lock
        epoch = lock.epoch if lock is not None else None
        if lock is None or epoch is None:
            return None
        return lock.key_address, epoch, lock.holder_id

    def cancel_in_flight(self) -> None:
        """Cancel the bundles still waiting at the builders (before a handover)."""
        self.bundles.cancel_in_flight()

    async def close(self) -> dict[str, object] | None:
        """Stop trading (in-flight bundles, the risk controller, the relays); the live totals."""
        await self._scored()
        await self.bundles.close()
        self.risk.stop()
        await self.relay.close()
        self.recorder.close()
        live = self.bundles.stats
        self.closing = (
            f"live: {live.considered} considered, {live.sent} bundles sent, "
            f"outcomes {live.outcomes or '{}'}, {live.refused} refused, "
            f"{live.stale} late (the chain moved on before they could leave), "
            f"{live.sim_failed} failed simulation"
            + (
                f", {live.unsimulated} unsent (the node could not simulate)"
                if live.unsimulated
                else ""
            ),
        )
        return dataclasses.asdict(live)


def _scoring_ended(task: asyncio.Future[None]) -> None:
    """Log a scoring that failed in a way it does not handle itself (the run goes on)."""
    if not task.cancelled() and task.exception() is not None:
        log.error("self-scoring failed: %r", task.exception())


async def build_execution(
    mode: Mode,
    *,
    live: LivePlan | None,
    engine: Engine,
    sessions: sessionmaker[Session],
    client: RpcClient,
    chain_id: int,
    run_id: int,
    base_tokens: tuple[str, ...],
    pools: Mapping[str, Pool],
    release: str | None = None,
    role: str = "active",
    lock: SignerLock | None = None,
) -> ShadowExecution:
    """The executor of a run in ``mode`` (a live mode needs ``live``), recording its blocks
    under ``release`` and ``role``; a live one with ``lock`` when it is taken already."""
    recorder = ShadowExecutor(sessions, run_id, chain_id, release=release or __version__, role=role)
    scorer = Scorer(sessions, client, pools, run_id, chain_id, weth=base_tokens[0])
    if mode == "shadow":
        shadow = ShadowExecution(recorder)
        shadow.scorer = scorer
        settings = (
            trade_settings(live, base_tokens[0], live.executor or ZERO_ADDRESS)
            if live is not None
            else LiveSettings(executor=ZERO_ADDRESS, base_token=base_tokens[0], builders=())
        )
        shadow.simulator = ShadowSimulator(
            client,
            pools,
            settings,
            recorder,
            scorer.competition,  # the rivals self-scoring sees set the shares, as in live
            executor=live.executor if live is not None else None,
        )
        return shadow
    if live is None:
        raise ConfigError(f"mode {mode} needs the live settings (keys, builders, executor)")
    bundles, risk, relay = await live_executor(
        live,
        mode=mode,
        engine=engine,
        sessions=sessions,
        client=client,
        chain_id=chain_id,
        base_token=base_tokens[0],
        pools=pools,
        recorder=recorder,
        lock=lock,
        release=release,
        chain_id_of_lock=chain_id,
    )
    risk.kill_switch.install()
    execution = LiveExecution(recorder, bundles, risk, relay, base_tokens)
    scorer.addresses = {bundles.signer.address.lower(), bundles.settings.executor.lower()}
    scorer.competition = bundles.competition  # what scoring sees, the bids use
    execution.scorer = scorer
    return execution
