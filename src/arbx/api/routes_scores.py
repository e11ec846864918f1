"""``GET /api/v1/scores`` (any valid token): self-scoring of a run's opportunities.

The same figures as ``arbx report``'s self-scoring lines (``arbx.store.score_repo.summary``):
how many opportunities ended in each outcome over the blocks after them, the capture rate, the
profit others took and who took it, what the capturable opportunities we did not take were
expected to pay (a loose upper bound), and in shadow mode what going live would have won: the
routes of the trades a live engine would have sent that passed simulation on their head's state.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response

from arbx.api import views
from arbx.api.auth import Viewer
from arbx.api.context import ApiContext, context
from arbx.api.params import READ_ERRORS, RunFilter
from arbx.api.schemas import ScoresOut, TakerOut
from arbx.store import repo, score_repo

router = APIRouter(prefix="/api/v1", responses=READ_ERRORS)
Ctx = Annotated[ApiContext, Depends(context)]
TAKERS = 20  # takers returned, most profit first


@router.get(
    "/scores",
    response_model=ScoresOut,
    summary="Self-scoring of opportunities",
)
async def get_scores(ctx: Ctx, _: Viewer, run_id: RunFilter = None) -> Response:
    """The run's scores (the newest run unless ``run_id``); zeros before any run."""
    return await views.shared_json(ctx, ("scores", run_id), lambda: _scores(ctx, run_id))


def _scores(ctx: ApiContext, run_id: int | None) -> ScoresOut:
    with ctx.reader() as session:
        run = run_id if run_id is not None else repo.latest_run_id(session)
        summary = score_repo.summary(session, run if run is not None else 0)
    return ScoresOut(
        run_id=run,
        scored=summary["scored"],
        outcomes=summary["outcomes"],
        capture_rate=summary["capture_rate"],
        capturable_outcomes=summary["capturable_outcomes"],
        capturable_capture_rate=summary["capturable_capture_rate"],
        taken_by_others_profit_wei=str(summary["taken_by_others_profit_wei"]),
        taken_by_others_expected_net_profit_wei=str(
            summary["taken_by_others_expected_net_profit_wei"]
        ),
        missed_capturable_net_profit_wei=str(summary["missed_capturable_net_profit_wei"]),
        simulations=summary["simulations"],
        going_live_net_profit_wei=str(summary["going_live_net_profit_wei"]),
        going_live_trades=summary["going_live_trades"],
        takers=[
            TakerOut(
                taker=t["taker"], opportunities=t["opportunities"], profit_wei=str(t["profit_wei"])
            )
            for t in summary["takers"][:TAKERS]
        ],
    )
