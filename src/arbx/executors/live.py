"""The live executor (``limited``, ``scaled``) and what it trades under.

Shadow mode never comes here, so it never reads the signing key. Live modes: keys from the
keystore, secret file or variable named in ``LivePlan.environ``; the signer lock and the risk
controller; the executor contract (deployed by the signing key when ``deploy``, configured
otherwise); the builders; what an earlier process with the key left in flight, settled
(``executors.reconcile``); and the bundle executor.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from arbx.chain.rpc import RpcClient
from arbx.domain.bidding import BidPolicy
from arbx.domain.errors import ConfigError
from arbx.domain.modes import Mode
from arbx.domain.pools import Pool
from arbx.domain.stages import stage_limits
from arbx.execution.contract import locked_build
from arbx.execution.deploy import deploy_executor
from arbx.execution.keys import load_keys
from arbx.execution.nonces import NonceManager
from arbx.execution.relay import BuilderSpec, RelayClient
from arbx.executors.bundle import BundleExecutor
from arbx.executors.reconcile import cancel_left_open, settle_earlier
from arbx.executors.shadow import ShadowExecutor
from arbx.executors.trade import LiveSettings
from arbx.risk.alerts import firing_alerts
from arbx.risk.controller import RiskController
from arbx.risk.killswitch import KillSwitch
from arbx.risk.settings import RiskSettings
from arbx.risk.signer_lock import SignerGuard, SignerLock

ZERO_ADDRESS = "0x" + "00" * 20


@dataclass(frozen=True, slots=True)
class LivePlan:
    """What a live executor is built from (taken from the settings by the command line)."""

    risk: RiskSettings
    executor: str | None  # the configured contract; None: deploy it (``deploy``) or refuse
    builders: tuple[BuilderSpec, ...]
    environ: Mapping[str, str]  # where the keys are named
    builder_share_bps: int = 0
    priority_fee_wei: int = 1_000_000_000
    slippage_bps: int = 0
    blocks_ahead: int = 0
    simulate_at_builders: bool = False  # wait for a builder's eth_callBundle too
    routes_per_block: int = 1  # pool-disjoint routes in one transaction (ADR 0033)
    extra_routes: str = "all"  # which join the best: "all" or "contested"
    contested_memory_blocks: int = 100  # a rival seen this recently makes a pool contested
    extra_min_net_wei: int = 0  # the least expected net profit of a route joining the best
    bidding: BidPolicy | None = None  # the builder's share per route from rivals seen
    deploy: bool = False  # deploy a fresh executor contract from the signing key (devnet)


async def live_executor(
    plan: LivePlan,
    *,
    mode: Mode,
    engine: Engine,
    sessions: sessionmaker[Session],
    client: RpcClient,
    chain_id: int,
    base_token: str,
    pools: Mapping[str, Pool],
    recorder: ShadowExecutor,
    lock: SignerLock | None = None,
    release: str | None = None,
    chain_id_of_lock: int | None = None,
) -> tuple[BundleExecutor, RiskController, RelayClient]:
    """The bundle executor for a live run, its risk controller and relay client (to close).

    ``lock``: the signer lock already taken (a standby promoted): the key loaded must be its key.
    """
    guard = SignerGuard()
    keys = load_keys(dict(plan.environ), live=True, guard=guard, witness=guard.witness)
    assert keys.signer is not None
    assert keys.relay is not None
    if lock is None:
        lock = SignerLock(
            engine,
            keys.signer.address,
            lease_seconds=plan.risk.signer_lease_seconds,
            release=release,
            chain_id=chain_id_of_lock,
        )
    elif lock.key_address != keys.signer.address.lower():
        lock.release()
        raise ConfigError(
            f"the signing key of this release is {keys.signer.address}, the key handed over "
            f"is {lock.key_address}"
        )
    guard.lock = lock
    risk = RiskController(
        sessions,
        chain_id=chain_id,
        key_address=keys.signer.address,
        ceiling=mode,
        limits=plan.risk.limits(),
        schedule=plan.risk.schedule(),
        lock=lock,
        kill_switch=KillSwitch(sessions, chain_id),
        alerts=partial(
            firing_alerts, plan.risk.prometheus_url, timeout=plan.risk.prometheus_timeout_s
        ),
        gate_interval=plan.risk.gate_interval_s,
    )
    risk.start()
    relay = RelayClient(keys.relay.flashbots_signature)
    if lock.held and risk.kill_switch.engaged:  # what it sent for later blocks, taken back
        await cancel_left_open(
            sessions,
            client,
            relay,
            plan.builders,
            keys.signer.address,
            blocks_ahead=plan.blocks_ahead,
        )
    if lock.held:  # what an earlier process with this key left in flight, before any nonce
        await settle_earlier(
            sessions, client, keys.signer.address, recorder.run_id, blocks_ahead=plan.blocks_ahead
        )
    nonces = NonceManager(client, keys.signer.address)
    await nonces.sync()
    executor = plan.executor
    if plan.deploy and lock.held:
        deployed = await deploy_executor(
            client, keys.signer, nonces, base_token, priority_fee=plan.priority_fee_wei
        )
        executor = deployed.address
    if executor is None and lock.held:
        raise ConfigError("no executor contract: set execution.executor")
    if executor is None:  # the key is someone else's: this instance stays in shadow for good
        executor = ZERO_ADDRESS
    bundle_executor = BundleExecutor(
        recorder=recorder,
        sessions=sessions,
        client=client,
        relay=relay,
        signer=keys.signer,
        nonces=nonces,
        risk=risk,
        pools=pools,
        settings=trade_settings(plan, base_token, executor),
        executor_abi=locked_build().abi,
    )
    return bundle_executor, risk, relay


def trade_settings(plan: LivePlan, base_token: str, executor: str) -> LiveSettings:
    """How a run with ``plan`` trades (or, in shadow mode, would trade) through ``executor``."""
    return LiveSettings(
        executor=executor,
        base_token=base_token,
        builders=plan.builders,
        builder_share_bps=plan.builder_share_bps,
        priority_fee_wei=plan.priority_fee_wei,
        slippage_bps=plan.slippage_bps,
        blocks_ahead=plan.blocks_ahead,
        simulate_at_builders=plan.simulate_at_builders,
        routes_per_block=plan.routes_per_block,
        extra_routes=plan.extra_routes,
        contested_memory_blocks=plan.contested_memory_blocks,
        extra_min_net_wei=plan.extra_min_net_wei,
        bidding=plan.bidding,
    )


def stage_caps(risk: RiskController, bases: tuple[str, ...]) -> dict[str, int]:
    """The input cap per base token at the risk controller's current stage and limits."""
    limits = stage_limits(risk.limits, risk.schedule.stages[risk.stage])
    caps = {}
    for base in bases:
        cap = limits.input_cap(base)
        if cap is not None:
            caps[base] = cap
    return caps
