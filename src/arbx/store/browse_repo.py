"""Read-side queries of the API: pages of opportunities, bundles, pools and audit entries.

Pages are keyset pages, newest first: a page holds rows with ids below the cursor (``after_id``,
the last id of the previous page), so a deep page costs what the first one does. Each function
fetches one row more than asked to know whether another page follows. Plain functions over a
``Session``, read only.

Index choice. PostgreSQL's planner assumes a run's (or a route's) rows are spread evenly over the
ids, so for ``run_id = 2 ORDER BY id DESC LIMIT 51`` it walks the primary key backwards and skips
every newer run's rows (150 ms at 1M rows). The filter is therefore written as a range,
``run_id BETWEEN 2 AND 2``, ordered by ``(run_id, id)``: that is the composite index's own order,
so the plan is a backward index scan that stops after 51 rows (0.1 ms). (An equality would let the
planner drop ``run_id`` from the ordering and pick the primary key again.) A block filter is
selective enough to sort its few rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from arbx.store.models import (
    AuditLog,
    BundleRow,
    OpportunityRow,
    PoolRow,
    RiskStateRow,
    Run,
    TokenRow,
    TransactionRow,
)

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """Rows of one page and the cursor of the next one (None on the last page)."""

    items: list[T]
    next_cursor: int | str | None


def opportunities(
    session: Session,
    *,
    run_id: int | None = None,
    after_id: int | None = None,
    limit: int = 50,
    block: int | None = None,
    route: str | None = None,
    min_net_profit: int | None = None,
) -> Page[OpportunityRow]:
    """A page of opportunities, newest first, filtered."""
    o = OpportunityRow
    stmt = select(o)
    order: list[Any] = [o.id.desc()]
    if block is not None:
        stmt = stmt.where(o.block_number == block)
        if run_id is not None:
            stmt = stmt.where(o.run_id == run_id)
        if route is not None:
            stmt = stmt.where(o.route_key == route)
    elif route is not None:  # walk ix_opportunities_route_key_id
        stmt = stmt.where(o.route_key.between(route, route))
        order = [o.route_key.desc(), o.id.desc()]
        if run_id is not None:
            stmt = stmt.where(o.run_id == run_id)
    elif run_id is not None:  # walk ix_opportunities_run_id_id
        stmt = stmt.where(o.run_id.between(run_id, run_id))
        order = [o.run_id.desc(), o.id.desc()]
    if min_net_profit is not None:
        stmt = stmt.where(o.net_profit >= min_net_profit)
    if after_id is not None:
        stmt = stmt.where(o.id < after_id)
    return _page(session, stmt.order_by(*order), limit)


def opportunities_by_id(session: Session, ids: Sequence[int]) -> list[OpportunityRow]:
    """The opportunities with these ids, in id order."""
    if not ids:
        return []
    stmt = select(OpportunityRow).where(OpportunityRow.id.in_(list(ids)))
    return list(session.scalars(stmt.order_by(OpportunityRow.id)))


def opportunities_after(session: Session, after_id: int, limit: int) -> list[OpportunityRow]:
    """Opportunities with ids above ``after_id``, oldest first (what a poller has not seen)."""
    stmt = select(OpportunityRow).where(OpportunityRow.id > after_id)
    return list(session.scalars(stmt.order_by(OpportunityRow.id).limit(limit)))


def bundles(
    session: Session,
    *,
    run_id: int | None = None,
    after_id: int | None = None,
    limit: int = 50,
    status: str | None = None,
) -> Page[BundleRow]:
    """A page of bundles, newest first, filtered."""
    stmt = select(BundleRow)
    order: list[Any] = [BundleRow.id.desc()]
    if run_id is not None:  # walk ix_bundles_run_id_id (see the module's docstring)
        stmt = stmt.where(BundleRow.run_id.between(run_id, run_id))
        order = [BundleRow.run_id.desc(), BundleRow.id.desc()]
    if status is not None:
        stmt = stmt.where(BundleRow.status == status)
    if after_id is not None:
        stmt = stmt.where(BundleRow.id < after_id)
    return _page(session, stmt.order_by(*order), limit)


def bundles_by_id(session: Session, ids: Sequence[int]) -> list[BundleRow]:
    """The bundles with these ids, in id order."""
    if not ids:
        return []
    stmt = select(BundleRow).where(BundleRow.id.in_(list(ids)))
    return list(session.scalars(stmt.order_by(BundleRow.id)))


def bundles_after(session: Session, after_id: int, limit: int) -> list[BundleRow]:
    """Bundles with ids above ``after_id``, oldest first."""
    stmt = select(BundleRow).where(BundleRow.id > after_id)
    return list(session.scalars(stmt.order_by(BundleRow.id).limit(limit)))


def open_bundle_ids(session: Session, limit: int = 10_000) -> set[int]:
    """Ids of the bundles still waiting for their outcome (status 'sent'; indexed)."""
    stmt = select(BundleRow.id).where(BundleRow.status == "sent").limit(limit)
    return set(session.scalars(stmt))


def transactions(session: Session, bundle_id: int) -> list[TransactionRow]:
    """A bundle's transactions, in the order they were recorded."""
    stmt = select(TransactionRow).where(TransactionRow.bundle_id == bundle_id)
    return list(session.scalars(stmt.order_by(TransactionRow.id)))


def max_ids(session: Session) -> tuple[int, int]:
    """The newest opportunity id and bundle id (0 when there are none)."""
    opp = session.scalar(select(OpportunityRow.id).order_by(OpportunityRow.id.desc()).limit(1))
    bundle = session.scalar(select(BundleRow.id).order_by(BundleRow.id.desc()).limit(1))
    return opp or 0, bundle or 0


@dataclass(frozen=True, slots=True)
class PoolView:
    """A pool with the symbols of its tokens."""

    pool: PoolRow
    symbol0: str | None
    symbol1: str | None


def pools(
    session: Session,
    chain_id: int | None,
    *,
    family: str | None = None,
    after: str | None = None,
    limit: int = 100,
) -> Page[PoolView]:
    """A page of a chain's pools (every chain's when None) in address order; cursor: address."""
    t0 = TokenRow.__table__.alias("t0")
    t1 = TokenRow.__table__.alias("t1")
    stmt = (
        select(PoolRow, t0.c.symbol, t1.c.symbol)
        .outerjoin(t0, (t0.c.chain_id == PoolRow.chain_id) & (t0.c.address == PoolRow.token0))
        .outerjoin(t1, (t1.c.chain_id == PoolRow.chain_id) & (t1.c.address == PoolRow.token1))
    )
    if chain_id is not None:
        stmt = stmt.where(PoolRow.chain_id == chain_id)
    if family is not None:
        stmt = stmt.where(PoolRow.family == family)
    if after is not None:
        stmt = stmt.where(PoolRow.address > after)
    rows = session.execute(stmt.order_by(PoolRow.address, PoolRow.chain_id).limit(limit + 1))
    items = [PoolView(pool, s0, s1) for pool, s0, s1 in rows]
    more = len(items) > limit
    items = items[:limit]
    return Page(items, items[-1].pool.address if more else None)


def audit_entries(
    session: Session, *, after_id: int | None = None, limit: int = 50
) -> Page[AuditLog]:
    """A page of the audit log, newest first."""
    stmt = select(AuditLog)
    if after_id is not None:
        stmt = stmt.where(AuditLog.id < after_id)
    return _page(session, stmt.order_by(AuditLog.id.desc()), limit)


def latest_risk_state(session: Session, chain_id: int) -> RiskStateRow | None:
    """The most recently updated risk state of any key on the chain."""
    stmt = select(RiskStateRow).where(RiskStateRow.chain_id == chain_id)
    return session.scalar(stmt.order_by(RiskStateRow.updated_at.desc()).limit(1))


def latest_run(session: Session, chain_id: int | None = None) -> Run | None:
    """The newest run (on ``chain_id`` when given)."""
    stmt = select(Run)
    if chain_id is not None:
        stmt = stmt.where(Run.chain_id == chain_id)
    return session.scalar(stmt.order_by(Run.id.desc()).limit(1))


def _page(session: Session, stmt: Select[Any], limit: int) -> Page[Any]:
    items = list(session.scalars(stmt.limit(limit + 1)))
    more = len(items) > limit
    items = items[:limit]
    return Page(items, items[-1].id if more else None)
