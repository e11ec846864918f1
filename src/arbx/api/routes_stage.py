"""``GET /api/v1/stage`` (any valid token): the capital stage and what its next gate needs.

The same document as ``arbx stage status --json``: the key's stage, the next one, each condition of
the gate between them (measured, required, pass/fail), the decision an evaluation would take now,
and the newest stage changes with their evidence. The firing arbx alerts come from the API's
cached Prometheus answer (at most one query per few seconds, whatever the traffic).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from arbx.api.auth import Viewer
from arbx.api.context import ApiContext, context
from arbx.api.params import READ_ERRORS
from arbx.api.schemas import StageStatusOut
from arbx.store import stage_repo

router = APIRouter(prefix="/api/v1", responses=READ_ERRORS)
Ctx = Annotated[ApiContext, Depends(context)]
HISTORY = 10  # stage changes returned


@router.get(
    "/stage",
    response_model=StageStatusOut,
    summary="Capital stage and next gate",
)
def get_stage(
    ctx: Ctx,
    _: Viewer,
    key: Annotated[
        str | None,
        Query(
            min_length=42,
            max_length=42,
            pattern=r"^0x[0-9a-fA-F]{40}$",
            description="signing key address (default: the only key with a stage on the chain)",
        ),
    ] = None,
) -> StageStatusOut:
    """The key's stage on the API's chain; 409 before any chain is known, 400 with several keys
    and no ``key``."""
    alerts = ctx.alerts()  # before the read transaction: it may wait for Prometheus
    with ctx.reader() as session:
        chain = ctx.require_chain(session)
        status = stage_repo.key_stage_status(
            session,
            chain,
            key,
            ctx.schedule,
            ctx.configured_mode or "shadow",
            ctx.clock(),
            alerts,
            HISTORY,
        )
    return StageStatusOut.model_validate(status)
