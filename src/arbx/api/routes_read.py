"""Read-only endpoints (any valid token): status, who am I, opportunities, bundles, pools, audit.

Lists are keyset pages, newest first: ``before_id`` (alias ``after_id``) is the id to go below,
and each page says the cursor of the next one (``next_before_id``, also as ``next_after_id``).
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Response

from arbx.api import views
from arbx.api.auth import Viewer
from arbx.api.context import ApiContext, context
from arbx.api.params import (
    INT63_MAX,
    READ_ERRORS,
    TEXT,
    AfterId,
    BeforeId,
    Limit,
    MinNetProfit,
    RunFilter,
    cursor,
    signed_wei,
)
from arbx.api.schemas import (
    AuditPage,
    BundleDetail,
    BundlePage,
    OpportunityPage,
    PoolPage,
    StatusOut,
    WhoAmIOut,
)
from arbx.store import browse_repo
from arbx.store.models import BundleRow

router = APIRouter(prefix="/api/v1", responses=READ_ERRORS)
Ctx = Annotated[ApiContext, Depends(context)]
BundleStatus = Literal["sent", "included", "not_included", "reverted", "state_moved", "sim_failed"]


@router.get("/status", response_model=StatusOut, summary="Engine status")
async def get_status(ctx: Ctx, _: Viewer) -> Response:
    """Mode, stage, kill switch, chain head, sync lag and engine heartbeat."""

    def build() -> StatusOut:
        with ctx.reader() as session:
            return views.status(ctx, session, ctx.clock())

    return await views.shared_json(ctx, ("status",), build)


@router.get("/whoami", response_model=WhoAmIOut, summary="The caller's token")
def whoami(principal: Viewer) -> WhoAmIOut:
    """The name and role of the token the request came with."""
    return WhoAmIOut(name=principal.name, role=principal.role)


@router.get("/opportunities", response_model=OpportunityPage, summary="Opportunities, paged")
async def list_opportunities(
    ctx: Ctx,
    _: Viewer,
    run_id: RunFilter = None,
    before_id: BeforeId = None,
    after_id: AfterId = None,
    limit: Limit = 50,
    block: Annotated[int | None, Query(ge=0, le=INT63_MAX, description="block number")] = None,
    route: Annotated[
        str | None,
        Query(min_length=1, max_length=1024, pattern=TEXT, description="route key, exactly"),
    ] = None,
    min_net_profit: MinNetProfit = None,
) -> Response:
    """Opportunities newest first, filtered by run, block, route and least net profit."""
    below = cursor(before_id, after_id)
    least = signed_wei("min_net_profit", min_net_profit)

    def build() -> OpportunityPage:
        with ctx.reader() as session:
            page = browse_repo.opportunities(
                session,
                run_id=run_id,
                after_id=below,
                limit=limit,
                block=block,
                route=route,
                min_net_profit=least,
            )
            items = [views.opportunity(row) for row in page.items]
        nxt = page.next_cursor if isinstance(page.next_cursor, int) else None
        return OpportunityPage(items=items, next_before_id=nxt, next_after_id=nxt)

    key = ("opportunities", run_id, below, limit, block, route, least)
    return await views.shared_json(ctx, key, build)


@router.get("/bundles", response_model=BundlePage, summary="Bundles, paged")
async def list_bundles(
    ctx: Ctx,
    _: Viewer,
    run_id: RunFilter = None,
    before_id: BeforeId = None,
    after_id: AfterId = None,
    limit: Limit = 50,
    status: Annotated[BundleStatus | None, Query(description="only bundles in this state")] = None,
) -> Response:
    """Bundles newest first, filtered by run and status."""
    below = cursor(before_id, after_id)

    def build() -> BundlePage:
        with ctx.reader() as session:
            page = browse_repo.bundles(
                session, run_id=run_id, after_id=below, limit=limit, status=status
            )
            items = [views.bundle(row) for row in page.items]
        nxt = page.next_cursor if isinstance(page.next_cursor, int) else None
        return BundlePage(items=items, next_before_id=nxt, next_after_id=nxt)

    return await views.shared_json(ctx, ("bundles", run_id, below, limit, status), build)


@router.get("/bundles/{bundle_id}", response_model=BundleDetail, summary="One bundle")
async def get_bundle(
    ctx: Ctx, _: Viewer, bundle_id: Annotated[int, Path(ge=1, le=INT63_MAX)]
) -> Response:
    """A bundle and its transactions; 404 when there is no such bundle."""

    def build() -> BundleDetail:
        with ctx.reader() as session:
            row = session.get(BundleRow, bundle_id)
            if row is None:
                raise HTTPException(404, f"no bundle {bundle_id}")
            txs = [views.transaction(t) for t in browse_repo.transactions(session, bundle_id)]
            return BundleDetail(**views.bundle_fields(row), transactions=txs)

    return await views.shared_json(ctx, ("bundle", bundle_id), build)


@router.get("/pools", response_model=PoolPage, summary="Pools, paged")
async def list_pools(
    ctx: Ctx,
    _: Viewer,
    family: Annotated[
        Literal["uniswap_v2", "uniswap_v3"] | None, Query(description="only this pool family")
    ] = None,
    after: Annotated[
        str | None,
        Query(pattern=r"^0x[0-9a-fA-F]{40}$", description="cursor: the previous page's next_after"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500, description="rows per page, 1..500")] = 100,
) -> Response:
    """The pools of the API's chain in address order."""

    def build() -> PoolPage:
        with ctx.reader() as session:
            chain = ctx.chain(session)
            page = browse_repo.pools(session, chain, family=family, after=after, limit=limit)
            items = [views.pool(p) for p in page.items]
        nxt = page.next_cursor if isinstance(page.next_cursor, str) else None
        return PoolPage(items=items, next_after=nxt)

    return await views.shared_json(ctx, ("pools", family, after, limit), build)


@router.get("/audit", response_model=AuditPage, summary="Audit log, paged")
async def list_audit(
    ctx: Ctx,
    _: Viewer,
    before_id: BeforeId = None,
    after_id: AfterId = None,
    limit: Limit = 50,
) -> Response:
    """Who changed what (mode, limits, kill switch, stages), newest first."""
    below = cursor(before_id, after_id)

    def build() -> AuditPage:
        with ctx.reader() as session:
            page = browse_repo.audit_entries(session, after_id=below, limit=limit)
            items = [views.audit(row) for row in page.items]
        nxt = page.next_cursor if isinstance(page.next_cursor, int) else None
        return AuditPage(items=items, next_before_id=nxt, next_after_id=nxt)

    return await views.shared_json(ctx, ("audit", below, limit), build)
