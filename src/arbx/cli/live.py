"""Wiring of the live modes (``limited``, ``scaled``): the settings' part of a live executor, and
the embedded devnet's keys. The executor itself is built in ``arbx.executors``."""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from arbx.chain.rpc import RpcClient
from arbx.config import Settings
from arbx.domain.modes import Mode
from arbx.domain.pools import Pool
from arbx.execution.keys import key_source
from arbx.execution.relay import BuilderSpec, RelayClient
from arbx.executors.bundle import BundleExecutor
from arbx.executors.live import LivePlan, stage_caps
from arbx.executors.live import live_executor as build_live_executor
from arbx.executors.shadow import ShadowExecutor
from arbx.risk.controller import RiskController

__all__ = ["devnet_keys", "live_executor", "live_plan", "stage_caps"]


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


def live_plan(
    settings: Settings,
    *,
    builder_url: str | None,
    environ: Mapping[str, str] | None = None,
    deploy: bool = False,
) -> LivePlan:
    """The live executor's plan from the settings (plus a local builder, e.g. the devnet's)."""
    specs = [
        BuilderSpec(b.name, b.url, b.uuid_field, b.cancel, b.supports_call_bundle)
        for b in settings.execution.builders
    ]
    if builder_url is not None:
        specs.append(BuilderSpec("devnet", builder_url, supports_call_bundle=True))
    return LivePlan(
        risk=settings.risk,
        executor=settings.execution.executor,
        builders=tuple(specs),
        environ=dict(os.environ if environ is None else environ),
        builder_share_bps=settings.strategy.builder_share_bps,
        priority_fee_wei=settings.strategy.priority_fee_wei,
        slippage_bps=settings.execution.slippage_bps,
        blocks_ahead=settings.execution.blocks_ahead,
        simulate_at_builders=settings.execution.simulate_at_builders,
        routes_per_block=settings.execution.routes_per_block,
        extra_routes=settings.execution.extra_routes,
        contested_memory_blocks=settings.execution.contested_memory_blocks,
        extra_min_net_wei=settings.execution.extra_min_net_wei,
        bidding=settings.execution.bidding.policy(
            settings.strategy.builder_share_bps, settings.execution.contested_memory_blocks
        ),
        deploy=deploy,
    )


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
    """The bundle executor for a live run from the settings, its risk controller and relay."""
    return await build_live_executor(
        live_plan(settings, builder_url=builder_url, environ=environ, deploy=deploy),
        mode=mode,
        engine=engine,
        sessions=sessions,
        client=client,
        chain_id=chain_id,
        base_token=base_token,
        pools=pools,
        recorder=recorder,
    )
