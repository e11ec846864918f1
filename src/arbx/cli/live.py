"""Wiring of the live modes (``limited``, ``scaled``) for ``arbx run``.

Shadow mode never comes here, so it never reads the signing key. Live modes: keys from the
keystore, secret file or variable (on the embedded devnet, the devnet's searcher key file and a
fresh relay key); the signer lock and the risk controller; the executor contract (deployed by
the signing key on the devnet, configured elsewhere); the builders; and the bundle executor.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from arbx.chain.rpc import RpcClient
from arbx.config import Settings
from arbx.domain.errors import ConfigError
from arbx.domain.modes import Mode
from arbx.domain.pools import Pool
from arbx.domain.stages import stage_limits
from arbx.execution.contract import locked_build
from arbx.execution.deploy import deploy_executor
from arbx.execution.keys import key_source, load_keys
from arbx.execution.nonces import NonceManager
from arbx.execution.relay import BuilderSpec, RelayClient
from arbx.executors.bundle import BundleExecutor, LiveSettings
from arbx.executors.shadow import ShadowExecutor
from arbx.risk.controller import RiskController
from arbx.risk.killswitch import KillSwitch
from arbx.risk.signer_lock import SignerGuard, SignerLock

ZERO_ADDRESS = "0x" + "00" * 20


def devnet_keys(
    folder: Path, searcher_key_file: Path, environ: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Key variables for a devnet run, for each role ``environ`` gives no key: the searcher key
    file (signing) and a fresh relay key (0600)."""
    keys: dict[str, str] = {}
    if key_source("signing", environ or {}) is None:
        keys["ARBX_SIGNING_KEY_FILE"] = str(searcher_key_file)
    if key_source("relay", environ or {}) is None:
        relay = folder / "devnet-relay.key"
        if not relay.exists():
            relay.write_text("0x" + secrets.token_hex(32) + "\n")
            relay.chmod(0o600)
        keys["ARBX_RELAY_KEY_FILE"] = str(relay)
    return keys


async def live_executor(
    *,
    settings: Settings,
    mode: Mode,
    engine: Engine,
    sessions: sessionmaker[Session],
    client: RpcClient,
    chain_id: int,
    base_token: str,
    pools: Mapping[str, Pool],
    recorder: ShadowExecutor,
    builder_url: str | None,
    environ: Mapping[str, str] | None = None,
    deploy: bool = False,
) -> tuple[BundleExecutor, RiskController, RelayClient]:
    """The bundle executor for a live run, its risk controller and relay client (to close)."""
    env = dict(os.environ if environ is None else environ)
    guard = SignerGuard()
    keys = load_keys(env, live=True, guard=guard)
    assert keys.signer is not None
    assert keys.relay is not None
    lock = SignerLock(engine, keys.signer.address, lease_seconds=settings.risk.signer_lease_seconds)
    guard.lock = lock
    risk = RiskController(
        sessions,
        chain_id=chain_id,
        key_address=keys.signer.address,
        ceiling=mode,
        limits=settings.risk.limits(),
        schedule=settings.risk.schedule(),
        lock=lock,
        kill_switch=KillSwitch(sessions, chain_id),
    )
    risk.start()
    nonces = NonceManager(client, keys.signer.address)
    await nonces.sync()
    executor = settings.execution.executor
    if deploy and lock.held:
        deployed = await deploy_executor(
            client, keys.signer, nonces, base_token, priority_fee=settings.strategy.priority_fee_wei
        )
        executor = deployed.address
    if executor is None and lock.held:
        raise ConfigError("no executor contract: set execution.executor")
    if executor is None:  # the key is someone else's: this instance stays in shadow for good
        executor = ZERO_ADDRESS
    specs = [
        BuilderSpec(b.name, b.url, b.uuid_field, b.cancel, b.supports_call_bundle)
        for b in settings.execution.builders
    ]
    if builder_url is not None:
        specs.append(BuilderSpec("devnet", builder_url, supports_call_bundle=True))
    relay = RelayClient(keys.relay.flashbots_signature)
    bundle_executor = BundleExecutor(
        recorder=recorder,
        sessions=sessions,
        client=client,
        relay=relay,
        signer=keys.signer,
        nonces=nonces,
        risk=risk,
        pools=pools,
        settings=LiveSettings(
            executor=executor,
            base_token=base_token,
            builders=tuple(specs),
            builder_share_bps=settings.strategy.builder_share_bps,
            priority_fee_wei=settings.strategy.priority_fee_wei,
            slippage_bps=settings.execution.slippage_bps,
            blocks_ahead=settings.execution.blocks_ahead,
        ),
        executor_abi=locked_build().abi,
    )
    return bundle_executor, risk, relay


def stage_caps(risk: RiskController, bases: tuple[str, ...]) -> dict[str, int]:
    """The input cap per base token at the risk controller's current stage and limits."""
    limits = stage_limits(risk.limits, risk.schedule.stages[risk.stage])
    caps = {}
    for base in bases:
        cap = limits.input_cap(base)
        if cap is not None:
            caps[base] = cap
    return caps
