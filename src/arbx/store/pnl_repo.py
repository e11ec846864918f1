"""Profit and loss: bundles' expected against realized profit by day, route or builder, and the
opportunities' expected profit per day: the sum of all found (overlapping routes each counted)
and the capturable part (per block, the best pool-disjoint set: ``arbx.domain.capture``).

On PostgreSQL the numbers come from ``pnl_bundle_daily`` and ``pnl_opportunity_daily``, which
triggers keep up to date (migration 0003): a summary reads a few hundred rows however many
opportunities there are. On SQLite (embedded, small) they are summed from the base tables.

Conventions. A bundle counts on the UTC day it was sent. Expected profit is summed over the
included bundles only (the ones that can realize it); realized profit and gas over every bundle
(a reverted inclusion realizes a loss). A bundle without an opportunity has route ``-``; a bundle
sent to several builders counts under each of them (the relay does not say which one built the
block), so builder rows may add up to more than the totals. All amounts are exact ``int``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Final

from sqlalchemy import ColumnElement, Integer, String, case, func, select, type_coerce
from sqlalchemy import cast as sql_cast
from sqlalchemy.orm import Session

from arbx.domain.errors import InputError
from arbx.store.models import (
    BundleRow,
    OpportunityRow,
    PnlBundleDaily,
    PnlOpportunityDaily,
    Run,
)

GROUPS: Final = ("day", "route", "builder")
NO_LABEL: Final = "-"
_DIGITS = 78
_SLICES = [(1, 6), *((7 + 9 * i, 9) for i in range(8))]


@dataclass(slots=True)
class PnlRow:
    """Bundles of one day, route or builder: counts and exact sums in wei."""

    key: str
    bundles: int = 0
    included: int = 0
    expected_net_profit: int = 0
    realized_profit: int = 0
    gas_cost: int = 0

    def add(self, included: bool, expected: int, realized: int | None, gas: int | None) -> None:
        """Count one bundle in."""
        self.bundles += 1
        if included:
            self.included += 1
            self.expected_net_profit += expected
        self.realized_profit += realized or 0
        self.gas_cost += gas or 0


@dataclass(frozen=True, slots=True)
class OpportunityDay:
    """Opportunities found on one UTC day and their expected net profit."""

    day: str
    opportunities: int
    expected_net_profit: int  # the sum of all found (overlapping routes each counted)
    capturable_opportunities: int = 0  # in their block's best pool-disjoint set
    capturable_net_profit: int = 0


@dataclass(frozen=True, slots=True)
class PnlReport:
    """What the PnL endpoint returns."""

    group_by: str
    rows: list[PnlRow]
    totals: PnlRow
    opportunity_days: list[OpportunityDay] = field(default_factory=list)

    @property
    def opportunities(self) -> int:
        """Opportunities over the period."""
        return sum(d.opportunities for d in self.opportunity_days)

    @property
    def opportunity_expected(self) -> int:
        """Their expected net profit, in wei (the sum of all found: routes overlap)."""
        return sum(d.expected_net_profit for d in self.opportunity_days)

    @property
    def capturable_opportunities(self) -> int:
        """Opportunities in their block's best pool-disjoint set."""
        return sum(d.capturable_opportunities for d in self.opportunity_days)

    @property
    def capturable_expected(self) -> int:
        """Their expected net profit, in wei: what could have been captured."""
        return sum(d.capturable_net_profit for d in self.opportunity_days)


def pnl(
    session: Session,
    group_by: str,
    *,
    run_id: int | None = None,
    chain_id: int | None = None,
    since: date | None = None,
    until: date | None = None,
    limit: int = 100,
) -> PnlReport:
    """PnL of one run (or every run of ``chain_id``, or every run) between two UTC days.

    ``limit`` keeps the newest days, or the routes and builders with the most realized profit.
    """
    if group_by not in GROUPS:
        raise InputError(f"group_by must be one of {', '.join(GROUPS)}, got {group_by!r}")
    if since is not None and until is not None and since > until:
        raise InputError(f"since ({since}) is after until ({until})")
    if session.get_bind().dialect.name == "postgresql":
        return _pnl_aggregates(session, group_by, run_id, chain_id, since, until, limit)
    return _pnl_scan(session, group_by, run_id, chain_id, since, until, limit)


def rebuild_pnl(session: Session) -> None:
    """Recompute the PostgreSQL aggregates from the base tables (after a load without triggers)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(func.arbx_pnl_rebuild()))


# --- PostgreSQL: the aggregates ---------------------------------------------------------------


def _pnl_aggregates(
    session: Session,
    group_by: str,
    run_id: int | None,
    chain_id: int | None,
    since: date | None,
    until: date | None,
    limit: int,
) -> PnlReport:
    b = PnlBundleDaily
    where = _scope(b.run_id, b.day, run_id, chain_id, since, until)
    sums = (
        func.sum(b.bundles),
        func.sum(b.included),
        func.sum(b.expected_net_profit),
        func.sum(b.realized_profit),
        func.sum(b.gas_cost),
    )
    key = b.day if group_by == "day" else b.label
    dim = "all" if group_by == "day" else group_by
    stmt = select(key, *sums).where(b.dim == dim, *where).group_by(key).having(sums[0] != 0)
    if group_by == "day":
        stmt = stmt.order_by(b.day.desc())
    else:
        stmt = stmt.order_by(sums[3].desc(), b.label)
    rows = [_row(k, *v) for k, *v in session.execute(stmt.limit(limit))]
    if group_by == "day":
        rows.reverse()
    total = session.execute(select(*sums).where(b.dim == "all", *where)).one()
    o = PnlOpportunityDaily
    days = session.execute(
        select(
            o.day,
            func.sum(o.opportunities),
            func.sum(o.expected_net_profit),
            func.sum(o.capturable_opportunities),
            func.sum(o.capturable_net_profit),
        )
        .where(*_scope(o.run_id, o.day, run_id, chain_id, since, until))
        .group_by(o.day)
        .having(func.sum(o.opportunities) != 0)
        .order_by(o.day.desc())
        .limit(limit)
    ).all()
    return PnlReport(
        group_by=group_by,
        rows=rows,
        totals=_row("total", *total),
        opportunity_days=[
            OpportunityDay(d, int(n), int(v), int(cn or 0), int(cv or 0))
            for d, n, v, cn, cv in reversed(days)
        ],
    )


def _scope(
    run_col: Any,
    day_col: Any,
    run_id: int | None,
    chain_id: int | None,
    since: date | None,
    until: date | None,
) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = []
    if run_id is not None:
        where.append(run_col == run_id)
    elif chain_id is not None:
        where.append(run_col.in_(select(Run.id).where(Run.chain_id == chain_id)))
    if since is not None:
        where.append(day_col >= since.isoformat())
    if until is not None:
        where.append(day_col <= until.isoformat())
    return where


def _row(key: str, *values: Any) -> PnlRow:
    return PnlRow(key, *(int(v or 0) for v in values))


# --- SQLite: sums over the base tables --------------------------------------------------------


def _pnl_scan(
    session: Session,
    group_by: str,
    run_id: int | None,
    chain_id: int | None,
    since: date | None,
    until: date | None,
    limit: int,
) -> PnlReport:
    where = _time_scope(BundleRow.run_id, BundleRow.sent_at, run_id, chain_id, since, until)
    rows = session.execute(
        select(
            BundleRow.sent_at,
            BundleRow.status,
            BundleRow.expected_net_profit,
            BundleRow.realized_profit,
            BundleRow.gas_cost,
            BundleRow.builders_json,
            OpportunityRow.route_key,
        )
        .outerjoin(OpportunityRow, OpportunityRow.id == BundleRow.opportunity_id)
        .where(*where)
    )
    groups: dict[str, PnlRow] = {}
    totals = PnlRow("total")
    for sent_at, status, expected, realized, gas, builders, route in rows:
        included = status == "included"
        totals.add(included, expected, realized, gas)
        if group_by == "day":
            keys: Iterable[str] = [sent_at.astimezone(UTC).date().isoformat()]
        elif group_by == "route":
            keys = [route or NO_LABEL]
        else:
            keys = builder_labels(builders)
        for key in keys:
            groups.setdefault(key, PnlRow(key)).add(included, expected, realized, gas)
    if group_by == "day":
        ordered = sorted(groups.values(), key=lambda r: r.key)[-limit:]
    else:
        ordered = sorted(groups.values(), key=lambda r: (-r.realized_profit, r.key))[:limit]
    days = _opportunity_days_scan(session, run_id, chain_id, since, until, limit)
    return PnlReport(group_by, ordered, totals, days)


def _opportunity_days_scan(
    session: Session,
    run_id: int | None,
    chain_id: int | None,
    since: date | None,
    until: date | None,
    limit: int,
) -> list[OpportunityDay]:
    where = _time_scope(
        OpportunityRow.run_id, OpportunityRow.detected_at, run_id, chain_id, since, until
    )
    day = func.substr(type_coerce(OpportunityRow.detected_at, String), 1, 10)
    raw = type_coerce(OpportunityRow.net_profit, String)
    negative = func.substr(raw, 1, 1) == "-"
    digits = case((negative, func.substr(raw, 2)), else_=raw)
    slices = [
        func.sum(sql_cast(func.substr(digits, start, length), Integer)) for start, length in _SLICES
    ]
    rows = session.execute(
        select(day, func.count(), func.sum(case((negative, 1), else_=0)), *slices)
        .where(*where)
        .group_by(day)
        .order_by(day.desc())
        .limit(limit)
    ).all()
    capturable: dict[str, tuple[int, int]] = {}  # few rows: a block's best set is small
    for label, profit in session.execute(
        select(day, OpportunityRow.net_profit).where(*where, OpportunityRow.capturable.is_(True))
    ):
        n, v = capturable.get(str(label), (0, 0))
        capturable[str(label)] = (n + 1, v + profit)
    out: list[OpportunityDay] = []
    for label, count, negatives, *parts in reversed(rows):
        total = 0
        for (_, length), part in zip(_SLICES, parts, strict=True):
            scale: int = 10**length
            total = total * scale + int(part or 0)
        offset: int = 10**_DIGITS
        n, v = capturable.get(str(label), (0, 0))
        out.append(
            OpportunityDay(str(label), int(count), total - int(negatives or 0) * offset, n, v)
        )
    return out


def _time_scope(
    run_col: Any,
    at_col: Any,
    run_id: int | None,
    chain_id: int | None,
    since: date | None,
    until: date | None,
) -> list[ColumnElement[bool]]:
    where = _scope(run_col, None, run_id, chain_id, None, None)
    if since is not None:
        where.append(at_col >= datetime.combine(since, time(0), tzinfo=UTC))
    if until is not None and until < date.max:
        where.append(at_col < datetime.combine(until + timedelta(days=1), time(0), tzinfo=UTC))
    return where


def builder_labels(builders: Any) -> list[str]:
    """A bundle's builder labels as PostgreSQL's ``arbx_bundle_builders`` computes them."""
    if not isinstance(builders, list) or not builders:
        return [NO_LABEL]
    labels = {
        (NO_LABEL if b is None else b if isinstance(b, str) else json.dumps(b))[:1024]
        for b in builders
    }
    return sorted(labels)
