"""The capital stage of a key as the operators see it: ``arbx stage status`` and the API.

Combines the risk state and stage history (``risk_repo``), what the engines observed at the stage,
and the operators' mode ceiling (``api_repo``) into ``arbx.domain.stages.stage_status``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from arbx.domain.errors import InputError
from arbx.domain.modes import Mode, mode_ceiling
from arbx.domain.stages import Alerts, Schedule, StageHistory, stage_status
from arbx.store import risk_repo as rrepo
from arbx.store.api_repo import get_controls


def key_stage_status(
    session: Session,
    chain_id: int,
    key_address: str | None,
    schedule: Schedule,
    configured: Mode,
    now: datetime,
    alerts: Alerts | None = None,
    changes: int = 10,
) -> dict[str, Any]:
    """``stage_status`` of a key on a chain (the only key with a risk state when None), with the
    operators' mode ceiling in force, and the newest ``changes`` stage changes with their evidence;
    JSON-ready. InputError when the key cannot be told."""
    if key_address is None:
        keys = [s.key_address for s in rrepo.list_risk_states(session, chain_id)]
        if len(keys) > 1:
            raise InputError(
                f"{len(keys)} keys have a stage on chain {chain_id}: name one with --key "
                f"(API: ?key=) ({', '.join(keys[:5])}{', ...' if len(keys) > 5 else ''})"
            )
        key_address = keys[0] if keys else None
    controls = get_controls(session, chain_id)
    ceiling = mode_ceiling(configured, controls.mode_ceiling if controls else None)
    state = rrepo.get_risk_state(session, chain_id, key_address) if key_address else None
    if state is None:  # no live engine ever started with this key: shadow, counting nothing yet
        history = StageHistory(
            stage=0,
            entered_at=now,
            observed=rrepo.stage_observations(session, chain_id, now, alerts),
        )
        note = (
            f"no live engine has started on chain {chain_id} with "
            + (f"key {key_address.lower()}" if key_address else "any key")
            + ": the shadow stage's gate counts from its first start"
        )
    else:
        gate = schedule.gate(min(max(state.stage, 0), len(schedule.stages) - 1))
        loaded = rrepo.load_stage_history(
            session, chain_id, state.key_address, now, gate.quiet_hours, alerts
        )
        assert loaded is not None
        history, note = loaded, None
    status = stage_status(history, schedule, now, ceiling=ceiling)
    return {
        "chain_id": chain_id,
        "key": key_address.lower() if key_address else None,
        **status,
        "entered_at": status["entered_at"] if state is not None else None,
        "note": note,
        "history": [
            {
                "at": c.at.isoformat(),
                "kind": c.kind,
                "from_stage": c.from_stage,
                "to_stage": c.to_stage,
                "reason": c.reason,
                "evidence": c.evidence,
            }
            for c in (
                rrepo.promotions(session, chain_id, state.key_address, changes) if state else []
            )
        ],
    }
