"""The PnL endpoint: bundles' expected against realized profit by day, route or builder, and the
opportunities' expected profit per day (``arbx.store.pnl_repo`` says how each is counted).
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Response

from arbx.api import views
from arbx.api.auth import Viewer
from arbx.api.context import ApiContext, context
from arbx.api.params import READ_ERRORS, RunFilter
from arbx.api.schemas import (
    OpportunityDayOut,
    OpportunityTotalsOut,
    PnlOut,
    PnlRowOut,
    PnlTotalsOut,
)
from arbx.store import pnl_repo

router = APIRouter(prefix="/api/v1", responses=READ_ERRORS)


@router.get("/pnl", response_model=PnlOut, summary="Profit and loss")
async def get_pnl(
    ctx: Annotated[ApiContext, Depends(context)],
    _: Viewer,
    group_by: Annotated[
        Literal["day", "route", "builder"], Query(description="how to group the bundles")
    ] = "day",
    run_id: RunFilter = None,
    since: Annotated[date | None, Query(description="first UTC day, YYYY-MM-DD")] = None,
    until: Annotated[date | None, Query(description="last UTC day (inclusive)")] = None,
    limit: Annotated[
        int,
        Query(ge=1, le=1000, description="newest days, or the routes / builders realizing most"),
    ] = 100,
) -> Response:
    """Expected (included bundles) against realized profit; the API's chain unless run_id."""
    if since is not None and until is not None and since > until:
        raise HTTPException(400, f"since ({since}) is after until ({until})")

    def build() -> PnlOut:
        with ctx.reader() as session:
            chain = None if run_id is not None else ctx.chain(session)
            report = pnl_repo.pnl(
                session,
                group_by,
                run_id=run_id,
                chain_id=chain,
                since=since,
                until=until,
                limit=limit,
            )
        t = report.totals
        return PnlOut(
            group_by=group_by,
            chain_id=chain,
            run_id=run_id,
            since=since.isoformat() if since else None,
            until=until.isoformat() if until else None,
            rows=[
                PnlRowOut(
                    key=r.key,
                    bundles=r.bundles,
                    included=r.included,
                    expected_net_profit_wei=str(r.expected_net_profit),
                    realized_profit_wei=str(r.realized_profit),
                    gas_cost_wei=str(r.gas_cost),
                )
                for r in report.rows
            ],
            totals=PnlTotalsOut(
                bundles=t.bundles,
                included=t.included,
                expected_net_profit_wei=str(t.expected_net_profit),
                realized_profit_wei=str(t.realized_profit),
                gas_cost_wei=str(t.gas_cost),
            ),
            opportunities=OpportunityTotalsOut(
                opportunities=report.opportunities,
                expected_net_profit_wei=str(report.opportunity_expected),
                capturable_opportunities=report.capturable_opportunities,
                capturable_net_profit_wei=str(report.capturable_expected),
                by_day=[
                    OpportunityDayOut(
                        day=d.day,
                        opportunities=d.opportunities,
                        expected_net_profit_wei=str(d.expected_net_profit),
                        capturable_opportunities=d.capturable_opportunities,
                        capturable_net_profit_wei=str(d.capturable_net_profit),
                    )
                    for d in report.opportunity_days
                ],
            ),
        )

    return await views.shared_json(ctx, ("pnl", group_by, run_id, since, until, limit), build)
