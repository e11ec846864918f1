"""Releases in the store: per-block results of every engine, the signer lock's epochs and the
signatures made under them, and the handover requests. Plain functions over a session or a
connection; none commits."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, func, insert, select, update
from sqlalchemy.orm import Session

from arbx.domain.releases import BlockRecord, Epoch, RouteFound, Signature
from arbx.store.models import (
    BlockResultRow,
    ReleaseHandoverRow,
    ReleaseReplayRow,
    SignatureRow,
    SignerEpochRow,
)

ROUTES_KEPT = 64  # routes kept per block result, best first: enough to compare two engines
OPEN_STATES = ("requested", "released")  # a handover not yet done, expired or failed


@dataclass(frozen=True, slots=True)
class BlockResultRecord:
    """One engine's result of one block, as written."""

    chain_id: int
    run_id: int
    release: str
    role: str
    block_number: int
    block_hash: str
    routes: Sequence[tuple[str, int, int]]  # route key, amount in, expected net profit
    latency_ms: float
    errors: int
    recorded_at: datetime


def record_block_result(session: Session, r: BlockResultRecord) -> None:
    """Store one block's result (routes cut to ``ROUTES_KEPT``, best first)."""
    best = sorted(r.routes, key=lambda x: x[2], reverse=True)
    session.add(
        BlockResultRow(
            chain_id=r.chain_id,
            run_id=r.run_id,
            release=r.release,
            role=r.role,
            block_number=r.block_number,
            block_hash=r.block_hash,
            opportunities=len(r.routes),
            expected_net_profit=sum(x[2] for x in r.routes),
            routes_json=[[k, str(a), str(p)] for k, a, p in best[:ROUTES_KEPT]],
            latency_ms=r.latency_ms,
            parity_checked=None,
            parity_failures=0,
            errors=r.errors,
            recorded_at=r.recorded_at,
        )
    )


def record_parity(session: Session, run_id: int, block_number: int, failures: int) -> None:
    """Mark a block of a run as checked against the chain, with its failures."""
    session.execute(
        update(BlockResultRow)
        .where(BlockResultRow.run_id == run_id, BlockResultRow.block_number == block_number)
        .values(parity_checked=True, parity_failures=failures)
    )


def add_block_errors(session: Session, run_id: int, block_number: int, errors: int) -> None:
    """Add errors seen after a block was recorded (a failed parity read) to that block."""
    session.execute(
        update(BlockResultRow)
        .where(BlockResultRow.run_id == run_id, BlockResultRow.block_number == block_number)
        .values(errors=BlockResultRow.errors + errors)
    )


def block_records(
    session: Session, release: str, chain_id: int | None = None, *, since_block: int = 0
) -> list[BlockRecord]:
    """Every block result of a release (on a chain), as compared."""
    query = select(BlockResultRow).where(
        BlockResultRow.release == release, BlockResultRow.block_number >= since_block
    )
    if chain_id is not None:
        query = query.where(BlockResultRow.chain_id == chain_id)
    records = []
    for row in session.scalars(query.order_by(BlockResultRow.id)):
        routes = tuple(
            RouteFound(str(k), int(a), int(p)) for k, a, p in (row.routes_json or [])[:ROUTES_KEPT]
        )
        records.append(
            BlockRecord(
                row.block_number,
                row.block_hash,
                routes,
                row.latency_ms,
                row.parity_failures,
                row.errors,
                row.run_id,
            )
        )
    return records


@dataclass(frozen=True, slots=True)
class ReleaseSeen:
    """A release's engines as their block results show them."""

    release: str
    chain_id: int
    role: str  # of its latest block result
    blocks: int
    last_block: int
    last_at: datetime


def releases_seen(session: Session) -> list[ReleaseSeen]:
    """Every release with block results: its latest role, block count and latest block."""
    latest = (
        select(func.max(BlockResultRow.id).label("id"), func.count().label("n"))
        .group_by(BlockResultRow.release, BlockResultRow.chain_id)
        .subquery()
    )
    rows = session.execute(
        select(BlockResultRow, latest.c.n)
        .join(latest, BlockResultRow.id == latest.c.id)
        .order_by(BlockResultRow.id)
    ).all()
    return [
        ReleaseSeen(r.release, r.chain_id, r.role, int(n), r.block_number, r.recorded_at)
        for r, n in rows
    ]


# --- the signer lock's epochs and signatures ----------------------------------------------


def open_epoch(
    conn: Connection,
    key: str,
    epoch: int,
    holder: str,
    *,
    release: str | None,
    chain_id: int | None,
    at: datetime,
) -> None:
    """Record that ``holder`` took ``key`` under ``epoch`` at ``at``; earlier epochs still open
    end there (their holder lost the key without releasing it)."""
    conn.execute(
        update(SignerEpochRow)
        .where(
            SignerEpochRow.key_address == key,
            SignerEpochRow.epoch < epoch,
            SignerEpochRow.released_at.is_(None),
        )
        .values(released_at=at, end_kind="taken_over")
    )
    conn.execute(
        insert(SignerEpochRow).values(
            key_address=key,
            epoch=epoch,
            holder_id=holder,
            release=release,
            chain_id=chain_id,
            acquired_at=at,
        )
    )


def close_epoch(conn: Connection, key: str, epoch: int, holder: str, at: datetime) -> None:
    """Record that ``holder`` released ``key``'s ``epoch`` at ``at`` (unless it ended before)."""
    conn.execute(
        update(SignerEpochRow)
        .where(
            SignerEpochRow.key_address == key,
            SignerEpochRow.epoch == epoch,
            SignerEpochRow.holder_id == holder,
            SignerEpochRow.released_at.is_(None),
        )
        .values(released_at=at, end_kind="released")
    )


def add_signatures(conn: Connection, rows: Sequence[Signature]) -> None:
    """Record signatures made under an epoch."""
    if rows:
        conn.execute(
            insert(SignatureRow),
            [
                {
                    "key_address": s.key,
                    "epoch": s.epoch,
                    "holder_id": s.holder,
                    "tx_hash": s.tx_hash,
                    "signed_at": s.signed_at,
                }
                for s in rows
            ],
        )


def epochs(session: Session, key: str | None = None) -> list[Epoch]:
    """The epochs history (of one key), oldest first."""
    query = select(SignerEpochRow).order_by(SignerEpochRow.key_address, SignerEpochRow.epoch)
    if key is not None:
        query = query.where(SignerEpochRow.key_address == key.lower())
    return [
        Epoch(r.key_address, r.epoch, r.holder_id, r.release, r.acquired_at, r.released_at)
        for r in session.scalars(query)
    ]


def signatures(session: Session, key: str | None = None) -> list[Signature]:
    """Every signature recorded (for one key)."""
    query = select(SignatureRow).order_by(SignatureRow.id)
    if key is not None:
        query = query.where(SignatureRow.key_address == key.lower())
    return [
        Signature(r.key_address, r.epoch, r.holder_id, r.tx_hash, r.signed_at)
        for r in session.scalars(query)
    ]


def last_epoch(session: Session, chain_id: int) -> SignerEpochRow | None:
    """The newest epoch taken on a chain."""
    return session.scalars(
        select(SignerEpochRow)
        .where(SignerEpochRow.chain_id == chain_id)
        .order_by(SignerEpochRow.id.desc())
        .limit(1)
    ).first()


# --- handover requests ----------------------------------------------------------------------


def request_handover(
    session: Session, chain_id: int, to_release: str, *, by: str, at: datetime
) -> int:
    """Ask for the signer lock of a chain to move to ``to_release``; earlier open requests of
    that chain expire. -> the request's id."""
    session.execute(
        update(ReleaseHandoverRow)
        .where(ReleaseHandoverRow.chain_id == chain_id, ReleaseHandoverRow.state == "requested")
        .values(state="expired", reason="superseded by a later request")
    )
    row = ReleaseHandoverRow(
        chain_id=chain_id,
        to_release=to_release,
        state="requested",
        requested_at=at,
        requested_by=by,
    )
    session.add(row)
    session.flush()
    return row.id


def open_handover(session: Session | Connection, chain_id: int) -> ReleaseHandoverRow | None:
    """The newest handover of a chain still requested or released, if any."""
    query = (
        select(ReleaseHandoverRow)
        .where(ReleaseHandoverRow.chain_id == chain_id, ReleaseHandoverRow.state.in_(OPEN_STATES))
        .order_by(ReleaseHandoverRow.id.desc())
        .limit(1)
    )
    if isinstance(session, Session):
        return session.scalars(query).first()
    row = session.execute(query).first()
    return row[0] if row is not None else None


def get_handover(session: Session, handover_id: int) -> ReleaseHandoverRow | None:
    """A handover request by id."""
    return session.get(ReleaseHandoverRow, handover_id)


def handovers(session: Session, limit: int = 20) -> list[ReleaseHandoverRow]:
    """The latest handover requests, newest first."""
    return list(
        session.scalars(
            select(ReleaseHandoverRow).order_by(ReleaseHandoverRow.id.desc()).limit(limit)
        )
    )


def mark_released(
    session: Session,
    handover_id: int,
    *,
    key: str | None,
    from_release: str,
    from_holder: str,
    from_epoch: int | None,
    at: datetime,
) -> bool:
    """The old holder let the key go (only from 'requested'). -> whether it was marked."""
    result = session.execute(
        update(ReleaseHandoverRow)
        .where(ReleaseHandoverRow.id == handover_id, ReleaseHandoverRow.state == "requested")
        .values(
            state="released",
            key_address=key,
            from_release=from_release,
            from_holder=from_holder,
            from_epoch=from_epoch,
            released_at=at,
        )
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def mark_taken(
    session: Session, handover_id: int, *, key: str, holder: str, epoch: int, at: datetime
) -> bool:
    """The new release holds the key (from 'requested' or 'released'). -> whether marked."""
    result = session.execute(
        update(ReleaseHandoverRow)
        .where(ReleaseHandoverRow.id == handover_id, ReleaseHandoverRow.state.in_(OPEN_STATES))
        .values(state="done", key_address=key, to_holder=holder, to_epoch=epoch, taken_at=at)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def mark_ended(
    session: Session, handover_id: int, state: str, reason: str, *, only_requested: bool = False
) -> bool:
    """End an open request as 'expired' or 'failed' with why. -> whether it was open."""
    states = ("requested",) if only_requested else OPEN_STATES
    result = session.execute(
        update(ReleaseHandoverRow)
        .where(ReleaseHandoverRow.id == handover_id, ReleaseHandoverRow.state.in_(states))
        .values(state=state, reason=reason[:1024])
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


# --- what a release decided on a recorded window ---------------------------------------------


def release_replay(session: Session, release: str, window_digest: str) -> ReleaseReplayRow | None:
    """What ``release`` recorded it decided on the window whose file has ``window_digest``."""
    return session.execute(
        select(ReleaseReplayRow).where(
            ReleaseReplayRow.release == release, ReleaseReplayRow.window_digest == window_digest
        )
    ).scalar_one_or_none()


def add_release_replay(
    session: Session,
    *,
    release: str,
    window_digest: str,
    digest: str,
    blocks: int,
    opportunities: int,
    decisions_gz: bytes,
    at: datetime,
) -> bool:
    """Record a release's decisions on a window, unless it has them already (the first record
    stays: a release's code decides the same every time). -> whether added."""
    if release_replay(session, release, window_digest) is not None:
        return False
    session.add(
        ReleaseReplayRow(
            release=release,
            window_digest=window_digest,
            digest=digest,
            blocks=blocks,
            opportunities=opportunities,
            decisions_gz=decisions_gz,
            recorded_at=at,
        )
    )
    return True


__all__ = [
    "ROUTES_KEPT",
    "BlockResultRecord",
    "ReleaseSeen",
    "add_block_errors",
    "add_release_replay",
    "add_signatures",
    "block_records",
    "close_epoch",
    "epochs",
    "get_handover",
    "handovers",
    "last_epoch",
    "mark_ended",
    "mark_released",
    "mark_taken",
    "open_epoch",
    "open_handover",
    "record_block_result",
    "record_parity",
    "release_replay",
    "releases_seen",
    "request_handover",
    "signatures",
]
