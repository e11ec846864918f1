"""Changing endpoints (operator tokens): mode ceiling, limits, kill switch. Each change is in the
audit log (actor ``api:<token name>``, before, after, reason) and wakes the live stream.

Operators lower risk, never raise it: a mode ceiling above the configured mode, or a limit above
the configured one (input caps: the settings' caps, else the highest stage's), is refused with
409 and one line, and the refusal is audited too. The engine applies the same rule when it reads
the controls back, so a stored control never loosens the settings.

The engine reads the mode ceiling and the limits from ``engine_controls`` at every block
(``arbx.store.api_repo.get_controls``); the kill switch is the one ``arbx kill`` sets.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends, HTTPException

from arbx.api import views
from arbx.api.auth import Operator, Viewer
from arbx.api.context import ApiContext, context
from arbx.api.params import WRITE_ERRORS
from arbx.api.schemas import KillIn, KillSwitchOut, LimitsIn, LimitsOut, ModeIn, ModeOut, UnkillIn
from arbx.domain.limits import Limits, configured_bound
from arbx.risk.killswitch import kill, unkill
from arbx.store import api_repo
from arbx.store.risk_repo import ALL_CHAINS

router = APIRouter(prefix="/api/v1", responses=WRITE_ERRORS)
Ctx = Annotated[ApiContext, Depends(context)]


@router.get("/mode", response_model=ModeOut, summary="Mode ceiling")
def get_mode(ctx: Ctx, _: Viewer) -> ModeOut:
    """The mode ceiling in force (set by operators, else configured) and the mode traded in."""
    with ctx.reader() as session:
        return views.mode_view(ctx, session, ctx.require_chain(session))


@router.put("/mode", response_model=ModeOut, summary="Set the mode ceiling")
def put_mode(ctx: Ctx, principal: Operator, body: ModeIn) -> ModeOut:
    """Set the highest mode the engine may trade in (null: back to the configured one)."""
    with ctx.sessions.begin() as session:
        chain = ctx.require_chain(session)
        why = api_repo.refusal(
            session,
            chain,
            actor=principal.actor,
            mode_ceiling=body.mode,
            configured_mode=ctx.configured_mode,
            reason=body.reason,
            at=ctx.clock(),
        )
        if why is None:
            api_repo.set_controls(
                session,
                chain,
                actor=principal.actor,
                mode_ceiling=body.mode,
                reason=body.reason,
                at=ctx.clock(),
                configured_mode=ctx.configured_mode,
            )
            api_repo.notify_event(session, "status", {"chain_id": chain})
            return views.mode_view(ctx, session, chain)
    raise HTTPException(409, why)


@router.get("/limits", response_model=LimitsOut, summary="Limits")
def get_limits(ctx: Ctx, _: Viewer) -> LimitsOut:
    """The limits in force: set by operators, else configured."""
    with ctx.reader() as session:
        return views.limits_view(ctx, session, ctx.require_chain(session))


@router.put("/limits", response_model=LimitsOut, summary="Set the limits")
def put_limits(ctx: Ctx, principal: Operator, body: LimitsIn) -> LimitsOut:
    """Replace the limits: input caps per base token, daily gas and loss caps, failures."""
    limits = api_repo.parse_limits(
        body.max_input,
        body.daily_gas_cap_wei,
        body.daily_loss_cap_wei,
        body.max_consecutive_failures,
    )
    bound = _bound(ctx)
    with ctx.sessions.begin() as session:
        chain = ctx.require_chain(session)
        why = api_repo.refusal(
            session,
            chain,
            actor=principal.actor,
            limits=limits,
            configured_limits=bound,
            reason=body.reason,
            at=ctx.clock(),
        )
        if why is None:
            api_repo.set_controls(
                session,
                chain,
                actor=principal.actor,
                limits=limits,
                reason=body.reason,
                at=ctx.clock(),
                configured_limits=bound,
            )
            api_repo.notify_event(session, "status", {"chain_id": chain})
            return views.limits_view(ctx, session, chain)
    raise HTTPException(409, why)


@router.delete("/limits", response_model=LimitsOut, summary="Back to the configured limits")
def delete_limits(ctx: Ctx, principal: Operator) -> LimitsOut:
    """Drop the operators' limits: the configured ones apply again."""
    with ctx.sessions.begin() as session:
        chain = ctx.require_chain(session)
        api_repo.set_controls(session, chain, actor=principal.actor, limits=None, at=ctx.clock())
        api_repo.notify_event(session, "status", {"chain_id": chain})
        return views.limits_view(ctx, session, chain)


@router.post("/kill", response_model=KillSwitchOut, summary="Engage the kill switch")
def post_kill(ctx: Ctx, principal: Operator, body: KillIn) -> KillSwitchOut:
    """Stop all sending on the API's chain (or every chain): live engines drop to shadow."""
    chain = _scope(ctx, body.all_chains)
    state = kill(ctx.sessions, chain, body.reason, principal.actor, at=ctx.clock())
    _wake(ctx, chain)
    return views.kill_switch(state)


@router.post("/unkill", response_model=KillSwitchOut, summary="Release the kill switch")
def post_unkill(
    ctx: Ctx, principal: Operator, body: Annotated[UnkillIn | None, Body()] = None
) -> KillSwitchOut:
    """Release the switch (the state returned still shows an all-chains switch if engaged)."""
    body = body or UnkillIn()
    chain = _scope(ctx, body.all_chains)
    state = unkill(ctx.sessions, chain, principal.actor, body.reason, at=ctx.clock())
    _wake(ctx, chain)
    return views.kill_switch(state)


def _bound(ctx: ApiContext) -> Limits | None:
    """The loosest limits the settings allow (None: the API was started without them)."""
    if ctx.configured_limits is None:
        return None
    return configured_bound(ctx.configured_limits, (s.max_input for s in ctx.schedule.stages))


def _scope(ctx: ApiContext, all_chains: bool) -> int:
    if all_chains:
        return ALL_CHAINS
    with ctx.reader() as session:
        return ctx.require_chain(session)


def _wake(ctx: ApiContext, chain: int) -> None:
    with ctx.sessions.begin() as session:
        api_repo.notify_event(session, "status", {"chain_id": chain})
