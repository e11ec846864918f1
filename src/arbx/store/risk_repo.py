"""Repositories for risk: the risk state of each key, the stage history, the kill switch and the
audit log.

Same habits as ``arbx.store.repo``: plain functions over a ``Session``; none of them commits. Key
addresses are stored in lower case. The API writes the audit log through ``audit`` too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, bindparam, func, select
from sqlalchemy.orm import Session

from arbx.domain.errors import InputError
from arbx.domain.modes import MODES
from arbx.domain.stages import Alerts, Observations, StageHistory
from arbx.store.execution_repo import stage_evidence
from arbx.store.models import (
    AuditLog,
    Block,
    KillSwitchRow,
    OpportunityRow,
    ParityCheck,
    RiskStateRow,
    Run,
    StageHistoryRow,
)
from arbx.store.repo import percentile, upsert_row

STAGE_KINDS = ("promotion", "demotion", "breach", "manual")
LATENCY_SAMPLES = 10_000  # the gate's detection latency p99 is over the newest blocks, at most
ALL_CHAINS = 0  # the kill switch row that stops every chain


@dataclass(frozen=True, slots=True)
class StoredRiskState:
    """The persisted risk state of a key on a chain."""

    chain_id: int
    key_address: str
    mode: str
    stage: int
    stage_entered_at: datetime
    reason: str | None
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class KillSwitchState:
    """Whether sending is stopped on a chain, by whom and why."""

    chain_id: int
    engaged: bool
    reason: str | None = None
    actor: str | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class StageChange:
    """One row of the stage history."""

    id: int
    at: datetime
    from_stage: int
    to_stage: int
    kind: str
    reason: str
    evidence: Any


# --- risk state and stage history -------------------------------------------------------------


def get_risk_state(session: Session, chain_id: int, key_address: str) -> StoredRiskState | None:
    """The stored risk state of a key on a chain, or None when there is none yet."""
    row = session.get(RiskStateRow, (chain_id, key_address.lower()))
    if row is None:
        return None
    return StoredRiskState(
        chain_id=row.chain_id,
        key_address=row.key_address,
        mode=row.mode,
        stage=row.stage,
        stage_entered_at=row.stage_entered_at,
        reason=row.reason,
        updated_at=row.updated_at,
    )


def set_risk_state(
    session: Session,
    chain_id: int,
    key_address: str,
    *,
    mode: str,
    stage: int,
    stage_entered_at: datetime,
    reason: str | None,
    at: datetime | None = None,
) -> None:
    """Insert or replace the risk state of a key on a chain."""
    if mode not in MODES:
        raise InputError(f"unknown mode {mode!r}; one of {', '.join(MODES)}")
    row = {
        "chain_id": chain_id,
        "key_address": key_address.lower(),
        "mode": mode,
        "stage": stage,
        "stage_entered_at": stage_entered_at,
        "reason": reason,
        "updated_at": at or datetime.now(UTC),
    }
    upsert_row(session, RiskStateRow, row, ["chain_id", "key_address"])


def append_stage_history(
    session: Session,
    chain_id: int,
    key_address: str,
    *,
    from_stage: int,
    to_stage: int,
    kind: str,
    reason: str,
    evidence: Any = None,
    at: datetime | None = None,
) -> int:
    """Record a stage change or a breach (``kind`` in STAGE_KINDS). -> its id."""
    if kind not in STAGE_KINDS:
        raise InputError(f"unknown stage history kind {kind!r}; one of {', '.join(STAGE_KINDS)}")
    row = StageHistoryRow(
        chain_id=chain_id,
        key_address=key_address.lower(),
        at=at or datetime.now(UTC),
        from_stage=from_stage,
        to_stage=to_stage,
        kind=kind,
        reason=reason,
        evidence_json=evidence,
    )
    session.add(row)
    session.flush()
    return row.id


def list_stage_history(
    session: Session, chain_id: int, key_address: str, since: datetime | None = None
) -> list[StageChange]:
    """A key's stage history on a chain, oldest first (from ``since`` when given)."""
    stmt = select(StageHistoryRow).where(
        StageHistoryRow.chain_id == chain_id, StageHistoryRow.key_address == key_address.lower()
    )
    if since is not None:
        stmt = stmt.where(StageHistoryRow.at >= since)
    return [
        StageChange(r.id, r.at, r.from_stage, r.to_stage, r.kind, r.reason, r.evidence_json)
        for r in session.scalars(stmt.order_by(StageHistoryRow.at, StageHistoryRow.id))
    ]


def stage_observations(
    session: Session, chain_id: int, since: datetime | None, alerts: Alerts | None = None
) -> Observations:
    """What every engine on the chain observed since ``since`` (stage entry; None: ever).

    Blocks: canonical blocks seen. Parity: checks that compared at least one pool, and their
    failures. Detection latency: per block with opportunities, the time to its first one (as
    ``arbx report`` measures it), p99 over the newest ``LATENCY_SAMPLES`` such blocks.
    """
    runs = select(Run.id).where(Run.chain_id == chain_id)
    blocks = (
        select(func.count())
        .select_from(Block)
        .where(Block.chain_id == chain_id, Block.reorged.is_(False))
    )
    checks = select(func.count(), func.coalesce(func.sum(ParityCheck.failures), 0)).where(
        ParityCheck.run_id.in_(runs), ParityCheck.pools_checked > 0
    )
    first = (
        select(func.min(OpportunityRow.latency_ms).label("ms"))
        .where(OpportunityRow.chain_id == chain_id)
        .group_by(OpportunityRow.block_hash)
        .order_by(func.max(OpportunityRow.id).desc())
        .limit(LATENCY_SAMPLES)
    )
    if since is not None:
        blocks = blocks.where(Block.seen_at >= since)
        checks = checks.where(ParityCheck.at >= since)
        first = first.where(OpportunityRow.detected_at >= since)
    n_checks, failures = session.execute(checks).one()
    latencies = sorted(float(ms) for ms in session.scalars(first))
    return Observations(
        blocks=int(session.execute(blocks).scalar_one()),
        parity_checks=int(n_checks),
        parity_failures=int(failures),
        latency_p99_ms=percentile(latencies, 99),
        latency_samples=len(latencies),
        alerts=alerts or Alerts(),
    )


def load_stage_history(
    session: Session,
    chain_id: int,
    key_address: str,
    now: datetime,
    quiet_hours: float,
    alerts: Alerts | None = None,
) -> StageHistory | None:
    """What ``evaluate_stage`` needs, from the store; None when the key has no risk state."""
    state = get_risk_state(session, chain_id, key_address)
    if state is None:
        return None
    since = min(state.stage_entered_at, now - timedelta(hours=quiet_hours))
    breaches = [
        c.at
        for c in list_stage_history(session, chain_id, key_address, since)
        if c.kind == "breach"
    ]
    return StageHistory(
        stage=state.stage,
        entered_at=state.stage_entered_at,
        bundles=stage_evidence(session, chain_id, key_address, state.stage_entered_at),
        breaches=breaches,
        observed=stage_observations(session, chain_id, state.stage_entered_at, alerts),
    )


def promotions(
    session: Session, chain_id: int, key_address: str, limit: int = 50
) -> list[StageChange]:
    """A key's newest stage changes (promotions, demotions, manual), newest first, evidence
    included: what a report shows behind each promotion."""
    rows = session.scalars(
        select(StageHistoryRow)
        .where(
            StageHistoryRow.chain_id == chain_id,
            StageHistoryRow.key_address == key_address.lower(),
            StageHistoryRow.kind != "breach",
        )
        .order_by(StageHistoryRow.at.desc(), StageHistoryRow.id.desc())
        .limit(limit)
    )
    return [
        StageChange(r.id, r.at, r.from_stage, r.to_stage, r.kind, r.reason, r.evidence_json)
        for r in rows
    ]


# --- kill switch and audit --------------------------------------------------------------------


def get_kill_switch(session: Session, chain_id: int) -> KillSwitchState:
    """The switch for a chain: engaged if its own row or the all-chains row is engaged."""
    rows = session.scalars(
        select(KillSwitchRow).where(KillSwitchRow.chain_id.in_({chain_id, ALL_CHAINS}))
    ).all()
    return kill_switch_of(rows, chain_id)


def read_kill_switch(conn: Connection, chain_id: int) -> KillSwitchState:
    """``get_kill_switch`` on a bare connection (no session): the cheapest read there is (the
    statement is built once; the fence before sending runs it for every bundle)."""
    rows = conn.execute(_KILL_SWITCH_READ, {"own": chain_id, "all": ALL_CHAINS}).all()
    return kill_switch_of(rows, chain_id)


_KILL_SWITCH_TABLE = KillSwitchRow.__table__
_KILL_SWITCH_READ = select(_KILL_SWITCH_TABLE).where(
    _KILL_SWITCH_TABLE.c.chain_id.in_([bindparam("own"), bindparam("all")])
)


def kill_switch_of(rows: Sequence[Any], chain_id: int) -> KillSwitchState:
    """The switch for a chain from its rows (own and all-chains; ORM objects or plain rows)."""
    engaged = sorted((r for r in rows if r.engaged), key=lambda r: r.chain_id != chain_id)
    if engaged:
        r = engaged[0]
        return KillSwitchState(r.chain_id, True, r.reason, r.actor, r.updated_at)
    own = next((r for r in rows if r.chain_id == chain_id), None)
    if own is None:
        return KillSwitchState(chain_id, False)
    return KillSwitchState(own.chain_id, False, own.reason, own.actor, own.updated_at)


def set_kill_switch(
    session: Session,
    chain_id: int,
    engaged: bool,
    *,
    reason: str | None,
    actor: str,
    at: datetime | None = None,
) -> None:
    """Engage or release the switch of a chain (``ALL_CHAINS``: the one for every chain)."""
    row = {
        "chain_id": chain_id,
        "engaged": engaged,
        "reason": reason,
        "actor": actor,
        "updated_at": at or datetime.now(UTC),
    }
    upsert_row(session, KillSwitchRow, row, ["chain_id"])


def audit(
    session: Session,
    actor: str,
    action: str,
    before: Any,
    after: Any,
    at: datetime | None = None,
) -> int:
    """Append to the audit log. -> its id."""
    row = AuditLog(
        at=at or datetime.now(UTC),
        actor=actor,
        action=action,
        before_json=before,
        after_json=after,
    )
    session.add(row)
    session.flush()
    return row.id


def list_risk_states(session: Session, chain_id: int) -> list[StoredRiskState]:
    """Every key's risk state on a chain."""
    rows = session.scalars(
        select(RiskStateRow.key_address).where(RiskStateRow.chain_id == chain_id)
    ).all()
    return [s for key in sorted(rows) if (s := get_risk_state(session, chain_id, key)) is not None]


def list_audit(session: Session, limit: int = 100) -> list[AuditLog]:
    """The newest audit entries, newest first."""
    return list(session.scalars(select(AuditLog).order_by(AuditLog.id.desc()).limit(limit)))


# --- helpers ----------------------------------------------------------------------------------
