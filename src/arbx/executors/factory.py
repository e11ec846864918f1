"""The one place where the mode picks the executor: shadow records and simulates; limited and
scaled trade through the bundle executor, under the risk controller. The rest of the run does
not know which it got."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from arbx import __version__
from arbx.chain.parity import ParityResult
from arbx.chain.rpc import RpcClient
from arbx.domain.errors import ConfigError
from arbx.domain.modes import Mode
from arbx.domain.pools import Pool
from arbx.engine.pipeline import BlockResult, Executor
from arbx.execution.relay import RelayClient
from arbx.executors.bundle import BundleExecutor
from arbx.executors.live import LivePlan, live_executor, stage_caps
from arbx.executors.scoring import Scorer
from arbx.executors.shadow import ShadowExecutor
from arbx.risk.controller import RiskController
from arbx.risk.signer_lock import SignerLock


class ShadowExecution:
    """Shadow mode: every block recorded, nothing signed."""

    def __init__(self, recorder: ShadowExecutor) -> None:
        self.recorder = recorder
        self.executor: Executor = recorder
        self.status = "mode shadow: records and simulates, never signs"
        self.closing: tuple[str, ...] = ()  # lines for the end of the run
        self.scorer: Scorer | None = None  # self-scoring, when the run has it

    async def on_block(self, block: BlockResult) -> None:
        """Hand the block to the executor, then score what the block completes the window of."""
        await self.executor.on_block(block)
        if self.scorer is not None:
            await self.scorer.on_block(block)

    async def on_parity(self, result: ParityResult) -> None:
        """Record a parity check."""
        await self.recorder.on_parity(result)

    def caps(self) -> Mapping[str, int] | None:
        """No caps of its own: the strategy's settings apply."""
        return None

    async def close(self) -> dict[str, object] | None:
        """Stop the recorder's writer; nothing to add to the run's summary."""
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
        await self.bundles.close()
        self.risk.stop()
        await self.relay.close()
        self.recorder.close()
        live = self.bundles.stats
        self.closing = (
            f"live: {live.considered} considered, {live.sent} bundles sent, "
            f"outcomes {live.outcomes or '{}'}, {live.refused} refused, "
            f"{live.sim_failed} failed simulation",
        )
        return dataclasses.asdict(live)


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
    scorer = Scorer(sessions, client, pools, run_id, chain_id)
    if mode == "shadow":
        shadow = ShadowExecution(recorder)
        shadow.scorer = scorer
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
    execution.scorer = scorer
    return execution
