"""Repositories for execution: bundles and their transactions, the bundle numbers ``arbx report``
adds, and the bundle evidence that risk limits and stages read (``arbx.store.risk_repo`` has the
risk state, stage history, kill switch and audit log).

Same habits as ``arbx.store.repo``: plain functions over a ``Session``, none of them commits,
amounts in and out as exact ``int``. Sums of amounts are exact on both databases. A bundle's
``signer`` (the key address) is stored in lower case.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, TypedDict, cast

from sqlalchemy import (
    ColumnElement,
    Integer,
    String,
    Table,
    case,
    delete,
    func,
    insert,
    select,
    type_coerce,
)
from sqlalchemy import cast as sql_cast
from sqlalchemy.orm import InstrumentedAttribute, Session

from arbx.domain.errors import InputError
from arbx.domain.limits import OUTCOMES
from arbx.domain.stages import BundleEvidence
from arbx.store.models import (
    BundleRouteRow,
    BundleRow,
    Run,
    TransactionRow,
)

BUNDLE_STATUSES: tuple[str, ...] = ("sent", *OUTCOMES)
_BUNDLES = cast(Table, BundleRow.__table__)
_TRANSACTIONS = cast(Table, TransactionRow.__table__)
_BUNDLE_ROUTES = cast(Table, BundleRouteRow.__table__)
_DIGITS = 78
_SLICES = [(1, 6), *((7 + 9 * i, 9) for i in range(8))]


@dataclass(frozen=True, slots=True)
class TxRecord:
    """A signed transaction of a bundle, as stored in ``transactions``."""

    hash: str
    nonce: int
    from_address: str
    to_address: str | None
    gas_limit: int
    max_fee: int
    priority_fee: int
    status: str = "pending"
    gas_used: int | None = None
    effective_gas_price: int | None = None


class BundleSummary(TypedDict):
    """A run's bundles by outcome; profits summed over the included ones alone."""

    sent: int
    pending: int
    included: int
    not_included: int
    reverted: int
    state_moved: int
    sim_failed: int
    included_expected_net_profit_wei: int
    included_realized_profit_wei: int


# --- bundles and transactions -----------------------------------------------------------------


def record_bundle(
    session: Session,
    run_id: int,
    *,
    target_block: int,
    builders: Sequence[str],
    tx_hashes: Sequence[str],
    expected_net_profit: int,
    sent_at: datetime | None = None,
    opportunity_id: int | None = None,
    signer: str | None = None,
    replacement_uuid: str | None = None,
    bundle_hash: str | None = None,
    routes: Sequence[tuple[str, int]] | None = None,
) -> int:
    """Record a bundle just sent (status 'sent'). -> its id.

    ``routes``: the routes its transaction carries, in order, each an opportunity's route key
    and its expected net profit (how self-scoring matches them to opportunities).

    Core ``INSERT``s rather than the ORM's unit of work: the live executor writes this row (its
    intent) between a signature and the send, and the ORM's flush cost about twice the CPU (0.52
    against 0.27 ms a bundle with its transaction, SQLite).
    """
    values = {
        "run_id": run_id,
        "opportunity_id": opportunity_id,
        "signer": signer.lower() if signer else None,
        "builders_json": list(builders),
        "target_block": target_block,
        "replacement_uuid": replacement_uuid,
        "bundle_hash": bundle_hash,
        "status": "sent",
        "tx_hashes_json": list(tx_hashes),
        "expected_net_profit": expected_net_profit,
        "sent_at": sent_at or datetime.now(UTC),
    }
    statement = insert(_BUNDLES).returning(_BUNDLES.c.id)
    bundle_id = int(session.execute(statement, values).scalar_one())
    rows = [
        {"bundle_id": bundle_id, "position": position, "route_key": key, "net_profit": net}
        for position, (key, net) in enumerate(routes or ())
    ]
    if rows:
        session.execute(insert(_BUNDLE_ROUTES), rows)
    return bundle_id


def set_bundle_builders(session: Session, bundle_id: int, builders: Sequence[str]) -> None:
    """The builders that acknowledged a bundle recorded before it left."""
    row = session.get(BundleRow, bundle_id)
    if row is None:
        raise InputError(f"no bundle {bundle_id}")
    row.builders_json = list(builders)
    session.flush()


def drop_bundle(session: Session, bundle_id: int) -> None:
    """Forget a bundle recorded before it left that never left (late, refused), with its
    transactions."""
    session.execute(delete(TransactionRow).where(TransactionRow.bundle_id == bundle_id))
    session.execute(delete(BundleRouteRow).where(BundleRouteRow.bundle_id == bundle_id))
    session.execute(delete(BundleRow).where(BundleRow.id == bundle_id))


def update_bundle_outcome(
    session: Session,
    bundle_id: int,
    status: str,
    *,
    included_block: int | None = None,
    included_block_hash: str | None = None,
    gas_used: int | None = None,
    gas_cost: int | None = None,
    realized_profit: int | None = None,
    settled_at: datetime | None = None,
) -> None:
    """Settle a bundle: its outcome class and, when it landed, block, gas and realized profit.

    'pending' (the inclusion tracker's name for an open bundle) is stored as 'sent'; a bundle a
    reorg reopens goes back to 'sent' and loses its settlement time.
    """
    status = "sent" if status == "pending" else str(status)
    if status not in BUNDLE_STATUSES:
        raise InputError(f"unknown bundle status {status!r}; one of {', '.join(BUNDLE_STATUSES)}")
    row = session.get(BundleRow, bundle_id)
    if row is None:
        raise InputError(f"no bundle {bundle_id}")
    row.status = status
    row.included_block = included_block
    row.included_block_hash = included_block_hash
    row.gas_used = gas_used
    row.gas_cost = gas_cost
    row.realized_profit = realized_profit
    row.settled_at = None if status == "sent" else (settled_at or datetime.now(UTC))
    session.flush()


def record_tx(session: Session, bundle_id: int, tx: TxRecord) -> int:
    """Record one transaction of a bundle. -> its row id (a Core insert, as ``record_bundle``)."""
    statement = insert(_TRANSACTIONS).returning(_TRANSACTIONS.c.id)
    return int(session.execute(statement, {"bundle_id": bundle_id, **asdict(tx)}).scalar_one())


def update_tx(
    session: Session,
    bundle_id: int,
    tx_hash: str,
    status: str,
    *,
    gas_used: int | None = None,
    effective_gas_price: int | None = None,
) -> None:
    """Record a transaction's receipt (or that it was dropped)."""
    row = session.execute(
        select(TransactionRow).where(
            TransactionRow.bundle_id == bundle_id, TransactionRow.hash == tx_hash
        )
    ).scalar_one_or_none()
    if row is None:
        raise InputError(f"no transaction {tx_hash} in bundle {bundle_id}")
    row.status = status
    row.gas_used = gas_used
    row.effective_gas_price = effective_gas_price
    session.flush()


def list_bundles(session: Session, run_id: int) -> list[BundleRow]:
    """A run's bundles in id order."""
    return list(session.scalars(select(BundleRow).where(BundleRow.run_id == run_id).order_by("id")))


def bundle_summary(session: Session, run_id: int) -> BundleSummary:
    """How a run's bundles ended; ``sent`` counts them all, ``pending`` the unsettled ones."""
    counts = dict.fromkeys(BUNDLE_STATUSES, 0)
    for status, n in session.execute(
        select(BundleRow.status, func.count()).where(BundleRow.run_id == run_id).group_by("status")
    ):
        counts[status] = counts.get(status, 0) + int(n)
    included = (BundleRow.run_id == run_id, BundleRow.status == "included")
    return BundleSummary(
        sent=sum(counts.values()),
        pending=counts["sent"],
        included=counts["included"],
        not_included=counts["not_included"],
        reverted=counts["reverted"],
        state_moved=counts["state_moved"],
        sim_failed=counts["sim_failed"],
        included_expected_net_profit_wei=exact_sum(
            session, BundleRow.expected_net_profit, *included
        ),
        included_realized_profit_wei=exact_sum(session, BundleRow.realized_profit, *included),
    )


def report_fields(session: Session, run_id: int) -> dict[str, Any]:
    """What ``arbx report`` adds: ``bundles`` and the included bundles' expected and realized."""
    summary = bundle_summary(session, run_id)
    return {
        "bundles": summary,
        "included_expected_net_profit_wei": summary["included_expected_net_profit_wei"],
        "included_realized_profit_wei": summary["included_realized_profit_wei"],
    }


def report_lines(fields: Mapping[str, Any]) -> list[str]:
    """The text report's lines for ``report_fields``: realized PnL next to expected."""
    b = fields["bundles"]
    return [
        f"  bundles                {b['sent']} sent, {b['included']} included, "
        f"{b['not_included']} not included, {b['reverted']} reverted, "
        f"{b['state_moved']} state moved, {b['sim_failed']} sim failed, {b['pending']} pending",
        f"  included: expected     {fields['included_expected_net_profit_wei']} wei",
        f"  included: realized     {fields['included_realized_profit_wei']} wei",
    ]


def daily_totals(
    session: Session, chain_id: int, signer: str, day_start: datetime
) -> tuple[int, int]:
    """(gas spent, net realized profit) in wei of a key's bundles settled since ``day_start``."""
    where = (
        BundleRow.signer == signer.lower(),
        BundleRow.settled_at >= day_start,
        BundleRow.run_id.in_(select(Run.id).where(Run.chain_id == chain_id)),
    )
    return (
        exact_sum(session, BundleRow.gas_cost, *where),
        exact_sum(session, BundleRow.realized_profit, *where),
    )


def stage_evidence(
    session: Session, chain_id: int, signer: str, since: datetime
) -> list[BundleEvidence]:
    """A key's settled bundles sent since ``since`` (stage entry), oldest first."""
    rows = session.execute(
        select(
            BundleRow.sent_at,
            BundleRow.status,
            BundleRow.expected_net_profit,
            BundleRow.realized_profit,
        )
        .where(
            BundleRow.signer == signer.lower(),
            BundleRow.sent_at >= since,
            BundleRow.status != "sent",
            BundleRow.run_id.in_(select(Run.id).where(Run.chain_id == chain_id)),
        )
        .order_by(BundleRow.sent_at, BundleRow.id)
    )
    return [BundleEvidence(*row) for row in rows]


# --- helpers ----------------------------------------------------------------------------------


def exact_sum(
    session: Session, column: InstrumentedAttribute[Any], *where: ColumnElement[bool]
) -> int:
    """The exact sum of an amount column (UInt256 / Int256) over rows; 0 when there are none."""
    if session.get_bind().dialect.name == "postgresql":
        total = session.execute(select(func.sum(column)).where(*where)).scalar_one()
        return 0 if total is None else int(total)
    # SQLite: sortable text; sum 9-digit slices as 64-bit integers and carry in Python.
    raw = type_coerce(column, String)
    negative = func.substr(raw, 1, 1) == "-"
    digits = case((negative, func.substr(raw, 2)), else_=raw)
    slices = [
        func.sum(sql_cast(func.substr(digits, start, length), Integer)) for start, length in _SLICES
    ]
    negatives, *sums = session.execute(
        select(func.sum(case((negative, 1), else_=0)), *slices).where(*where)
    ).one()
    total = 0
    for (_, length), part in zip(_SLICES, sums, strict=True):
        scale: int = 10**length
        total = total * scale + int(part or 0)
    offset: int = 10**_DIGITS
    return total - int(negatives or 0) * offset


@dataclass(frozen=True, slots=True)
class LandedRow:
    """A key's bundle recorded as landed (included or reverted) in a block, as stored."""

    bundle_id: int
    run_id: int
    status: str
    tx_hashes: tuple[str, ...]
    included_block: int
    included_block_hash: str
    gas_cost: int | None
    realized_profit: int | None
    settled_at: datetime | None


def landed_newest_first(
    session: Session,
    chain_id: int,
    signer: str,
    *,
    below: tuple[int, int] | None = None,
    limit: int = 64,
) -> list[LandedRow]:
    """Up to ``limit`` of a key's bundles recorded as included or reverted on ``chain_id``,
    newest block first (then newest row), strictly below ``below`` (block, row id) if given."""
    query = (
        select(BundleRow)
        .where(
            BundleRow.signer == signer.lower(),
            BundleRow.status.in_(("included", "reverted")),
            BundleRow.included_block.is_not(None),
            BundleRow.run_id.in_(select(Run.id).where(Run.chain_id == chain_id)),
        )
        .order_by(BundleRow.included_block.desc(), BundleRow.id.desc())
        .limit(limit)
    )
    if below is not None:
        block, bundle_id = below
        query = query.where(
            (BundleRow.included_block < block)
            | ((BundleRow.included_block == block) & (BundleRow.id < bundle_id))
        )
    return [
        LandedRow(
            row.id,
            row.run_id,
            row.status,
            tuple(str(h).lower() for h in row.tx_hashes_json),
            int(row.included_block or 0),
            str(row.included_block_hash or "").lower(),
            row.gas_cost,
            row.realized_profit,
            row.settled_at,
        )
        for row in session.scalars(query)
    ]
