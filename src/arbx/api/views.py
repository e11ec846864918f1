"""Rows of the store as response bodies, and the status of the engine as the API reports it.

Shared by the REST routes and the live stream, so an event carries exactly what the matching
endpoint returns.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from datetime import datetime
from typing import Any

from fastapi import Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel
from sqlalchemy.orm import Session

from arbx.api.context import ApiContext
from arbx.api.schemas import (
    AuditOut,
    BundleOut,
    KillSwitchOut,
    LimitsOut,
    ModeOut,
    OpportunityOut,
    PoolOut,
    StatusOut,
    TransactionOut,
)
from arbx.domain.limits import Limits
from arbx.domain.modes import Mode, as_mode, mode_ceiling
from arbx.store import api_repo, browse_repo
from arbx.store import risk_repo as rrepo
from arbx.store.models import AuditLog, BundleRow, OpportunityRow, Run, TransactionRow


def json_response(body: BaseModel) -> Response:
    """A body already validated by its model, serialized once (FastAPI would validate it again)."""
    return Response(body.model_dump_json(), media_type="application/json")


async def shared_json(ctx: ApiContext, key: Hashable, build: Callable[[], BaseModel]) -> Response:
    """The body ``build`` makes (in a worker thread: it reads the database), shared with every
    request for the same read ``key`` for a moment (``arbx.api.share``); a shared body is
    answered from the event loop, with no thread and no database."""
    found = ctx.shared.shared(key)
    if found is not None:
        body = found.body
    else:
        body = await run_in_threadpool(
            ctx.shared.answer, key, lambda: build().model_dump_json().encode()
        )
    return Response(body, media_type="application/json")


def age_s(now: datetime, at: datetime) -> float:
    """Seconds from ``at`` to ``now``, never negative (the engine's clock may run ahead)."""
    return max(0.0, round((now - at).total_seconds(), 3))


def wei(value: int | None) -> str | None:
    """An amount as a decimal string (None stays None)."""
    return None if value is None else str(value)


def opportunity(row: OpportunityRow) -> OpportunityOut:
    """An opportunity row as sent."""
    return OpportunityOut(
        id=row.id,
        run_id=row.run_id,
        chain_id=row.chain_id,
        block_number=row.block_number,
        block_hash=row.block_hash,
        route_key=row.route_key,
        pools=[str(p) for p in row.pools_json],
        tokens=[str(t) for t in row.tokens_json],
        amount_in=str(row.amount_in),
        amount_out=str(row.amount_out),
        gross_profit=str(row.gross_profit),
        gas_units=row.gas_units,
        gas_cost=str(row.gas_cost),
        builder_payment=str(row.builder_payment),
        net_profit=str(row.net_profit),
        latency_ms=row.latency_ms,
        status=row.status,
        detected_at=row.detected_at,
    )


def bundle_fields(row: BundleRow) -> dict[str, Any]:
    """A bundle row as the fields of ``BundleOut``."""
    return {
        "id": row.id,
        "run_id": row.run_id,
        "opportunity_id": row.opportunity_id,
        "signer": row.signer,
        "builders": [str(b) for b in row.builders_json],
        "target_block": row.target_block,
        "replacement_uuid": row.replacement_uuid,
        "bundle_hash": row.bundle_hash,
        "status": row.status,
        "tx_hashes": [str(h) for h in row.tx_hashes_json],
        "included_block": row.included_block,
        "included_block_hash": row.included_block_hash,
        "gas_used": row.gas_used,
        "gas_cost": wei(row.gas_cost),
        "expected_net_profit": str(row.expected_net_profit),
        "realized_profit": wei(row.realized_profit),
        "sent_at": row.sent_at,
        "settled_at": row.settled_at,
    }


def bundle(row: BundleRow) -> BundleOut:
    """A bundle row as sent."""
    return BundleOut(**bundle_fields(row))


def transaction(row: TransactionRow) -> TransactionOut:
    """A transaction row as sent."""
    return TransactionOut(
        hash=row.hash,
        nonce=row.nonce,
        from_address=row.from_address,
        to_address=row.to_address,
        gas_limit=row.gas_limit,
        max_fee=str(row.max_fee),
        priority_fee=str(row.priority_fee),
        status=row.status,
        gas_used=row.gas_used,
        effective_gas_price=wei(row.effective_gas_price),
    )


def pool(view: browse_repo.PoolView) -> PoolOut:
    """A pool row (with its token symbols) as sent."""
    p = view.pool
    return PoolOut(
        chain_id=p.chain_id,
        address=p.address,
        family=p.family,
        venue=p.venue,
        token0=p.token0,
        token1=p.token1,
        token0_symbol=view.symbol0,
        token1_symbol=view.symbol1,
        fee=p.fee,
        tick_spacing=p.tick_spacing,
        created_block=p.created_block,
        last_synced_block=p.last_synced_block,
    )


def audit(row: AuditLog) -> AuditOut:
    """An audit entry as sent."""
    return AuditOut(
        id=row.id,
        at=row.at,
        actor=row.actor,
        action=row.action,
        before=row.before_json,
        after=row.after_json,
    )


def kill_switch(state: rrepo.KillSwitchState) -> KillSwitchOut:
    """A kill switch state as sent."""
    return KillSwitchOut(
        chain_id=state.chain_id,
        engaged=state.engaged,
        reason=state.reason,
        actor=state.actor,
        updated_at=state.updated_at,
    )


def effective_mode(session: Session, chain_id: int) -> tuple[Mode, int, str | None]:
    """(mode in force, stage, reason) from the chain's newest risk state; shadow without one."""
    risk = browse_repo.latest_risk_state(session, chain_id)
    if risk is None:
        return "shadow", 0, None
    mode: Mode = as_mode(risk.mode) or "shadow"
    return mode, risk.stage, risk.reason


def status(ctx: ApiContext, session: Session, now: datetime) -> StatusOut:
    """The engine's status on the API's chain."""
    chain = ctx.chain(session)
    mode: Mode = "shadow"
    stage, reason = 0, None
    controls = None
    if chain is not None:
        mode, stage, reason = effective_mode(session, chain)
        controls = api_repo.get_controls(session, chain)
    switch = rrepo.get_kill_switch(session, chain if chain is not None else rrepo.ALL_CHAINS)
    beat = api_repo.get_heartbeat(session, chain) if chain is not None else None
    run = None
    if beat is not None and beat.run_id is not None:
        run = session.get(Run, beat.run_id)
    if run is None and chain is not None:
        run = browse_repo.latest_run(session, chain)
    ceiling, source = _ceiling(ctx, controls)
    stages = ctx.schedule.stages
    lag = None
    if beat is not None and beat.head_block is not None and beat.synced_block is not None:
        lag = max(0, beat.head_block - beat.synced_block)
    return StatusOut(
        mode=mode,
        mode_ceiling=ceiling,
        mode_ceiling_source=source,
        stage=stage,
        stage_name=(stages[stage].name or stages[stage].mode)
        if 0 <= stage < len(stages)
        else f"stage {stage}",
        risk_reason=reason,
        kill_switch=kill_switch(switch),
        chain_id=chain,
        head_block=beat.head_block if beat else None,
        synced_block=beat.synced_block if beat else None,
        sync_lag_blocks=lag,
        heartbeat_at=beat.at if beat else None,
        heartbeat_age_s=age_s(now, beat.at) if beat else None,
        run_id=run.id if run else None,
        run_status=run.status if run else None,
    )


def mode_view(ctx: ApiContext, session: Session, chain_id: int) -> ModeOut:
    """The mode ceiling of a chain, where it comes from, and the mode in force."""
    controls = api_repo.get_controls(session, chain_id)
    ceiling, source = _ceiling(ctx, controls)
    return ModeOut(
        chain_id=chain_id,
        mode=ceiling,
        source=source,
        configured=ctx.configured_mode,
        effective_mode=effective_mode(session, chain_id)[0],
        updated_at=controls.updated_at if controls else None,
        updated_by=controls.updated_by if controls else None,
    )


def limits_view(ctx: ApiContext, session: Session, chain_id: int) -> LimitsOut:
    """The limits in force on a chain and where they come from."""
    controls = api_repo.get_controls(session, chain_id)
    limits: Limits | None = None
    source = None
    if controls is not None and controls.limits is not None:
        limits, source = controls.limits, "api"
        if ctx.configured_limits is not None:
            limits = controls.limits_or(ctx.configured_limits)
    elif ctx.configured_limits is not None:
        limits, source = ctx.configured_limits, "configured"
    return LimitsOut(
        chain_id=chain_id,
        source=source,
        max_input={k: str(v) for k, v in sorted(limits.max_input.items())} if limits else None,
        daily_gas_cap_wei=wei(limits.daily_gas_cap_wei) if limits else None,
        daily_loss_cap_wei=wei(limits.daily_loss_cap_wei) if limits else None,
        max_consecutive_failures=limits.max_consecutive_failures if limits else None,
        updated_at=controls.updated_at if controls else None,
        updated_by=controls.updated_by if controls else None,
    )


def _ceiling(ctx: ApiContext, controls: api_repo.Controls | None) -> tuple[Mode | None, Any]:
    """The ceiling in force: the operators' one where it is lower than the configured mode."""
    operator = controls.mode_ceiling if controls is not None else None
    configured = ctx.configured_mode
    lower = configured is None or mode_ceiling(configured, operator or configured) == operator
    if operator is not None and lower:
        return operator, "api"
    if configured is not None:
        return configured, "configured"
    return None, None
