"""Wiring of the live modes (``limited``, ``scaled``) for ``arbx run``.

Shadow mode never comes here, so it never reads the signing key. Live modes: keys from the
keystore, secret file or variable (on the embedded devnet, the devnet's searcher key file and a
fresh relay key); the signer lock and the risk controller; the executor contract (deployed by
the signing key on the devnet, configured elsewhere); the builders; and the bundle executor.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from eth_abi.abi import encode
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from arbx.chain.rpc import RpcClient, hex_int
from arbx.config import Settings
from arbx.domain.errors import ConfigError
from arbx.domain.modes import Mode
from arbx.domain.pools import Pool
from arbx.domain.stages import stage_limits
from arbx.errors import SignerLockLostError
from arbx.execution.contract import locked_build, runtime_matches
from arbx.execution.keys import TxSigner, load_keys
from arbx.execution.nonces import NonceManager
from arbx.execution.relay import BuilderSpec, RelayClient
from arbx.execution.tx import current_fees, send_raw_transaction
from arbx.executors.bundle import BundleExecutor, LiveSettings
from arbx.executors.shadow import ShadowExecutor
from arbx.risk.controller import RiskController
from arbx.risk.killswitch import KillSwitch
from arbx.risk.signer_lock import SignerLock

DEPLOY_GAS = 3_000_000
ZERO_ADDRESS = "0x" + "00" * 20
RECEIPT_TIMEOUT = 60.0


def devnet_keys(folder: Path, searcher_key_file: Path) -> dict[str, str]:
    """Key variables for a devnet run: its searcher key file and a fresh relay key (0600)."""
    relay = folder / "devnet-relay.key"
    if not relay.exists():
        relay.write_text("0x" + secrets.token_hex(32) + "\n")
        relay.chmod(0o600)
    return {"ARBX_SIGNING_KEY_FILE": str(searcher_key_file), "ARBX_RELAY_KEY_FILE": str(relay)}


async def deploy_executor(
    client: RpcClient, signer: TxSigner, nonces: NonceManager, weth: str, priority_fee: int
) -> str:
    """Deploy the locked executor from the signing key (its owner); its address."""
    build = locked_build()
    code = build.bytecode + encode(["address"], [weth])
    fees = await current_fees(client, priority_fee)
    nonce = await nonces.reserve()
    tx = {
        "type": 2,
        "chainId": await client.chain_id(),
        "nonce": nonce,
        "value": 0,
        "data": code,
        "gas": DEPLOY_GAS,
        "maxFeePerGas": fees.max_fee,
        "maxPriorityFeePerGas": fees.priority_fee,
    }
    signed = signer.sign_transaction(tx)
    await send_raw_transaction(client, signed)
    receipt = await _receipt(client, signed.hash_hex)
    if hex_int(receipt["status"]) != 1 or not receipt.get("contractAddress"):
        nonces.failed(nonce)
        raise ConfigError("deploying the executor contract failed")
    nonces.confirm(nonce)
    address = str(receipt["contractAddress"])
    deployed = bytes.fromhex((await client.call("eth_getCode", [address, "latest"]))[2:])
    if not runtime_matches(deployed, build):
        raise ConfigError(f"the code at {address} is not the locked executor")
    return address


async def _receipt(client: RpcClient, tx_hash: str) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + RECEIPT_TIMEOUT
    while True:
        receipt = await client.call("eth_getTransactionReceipt", [tx_hash])
        if receipt is not None:
            return dict(receipt)
        if asyncio.get_running_loop().time() > deadline:
            raise ConfigError(f"transaction {tx_hash} was not mined in {RECEIPT_TIMEOUT:.0f} s")
        await asyncio.sleep(0.1)


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
    holder: dict[str, SignerLock] = {}

    def guard() -> None:
        lock = holder.get("lock")
        if lock is None:
            raise SignerLockLostError("refusing to sign: the signer lock is not taken yet")
        lock.require()

    keys = load_keys(env, live=True, guard=guard)
    assert keys.signer is not None
    assert keys.relay is not None
    lock = SignerLock(engine, keys.signer.address, lease_seconds=settings.risk.signer_lease_seconds)
    holder["lock"] = lock
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
        executor = await deploy_executor(
            client, keys.signer, nonces, base_token, settings.strategy.priority_fee_wei
        )
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
