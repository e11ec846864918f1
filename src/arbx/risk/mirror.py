"""The input caps the engine holding a key trades under now, read from what that engine stored:
what a standby sizes with, so that its per-block results compare like for like with the active
engine's (``arbx release compare``) while the stage's caps bind.

The active engine's live executor sizes with its stage's caps (lowered by the operators'
limits) while it trades, and with the strategy's own caps while its mode is shadow; a standby
holds no key and no risk controller, so it reads the same from the store: the key's stored mode
and stage, and the chain's engine controls.
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy.orm import Session

from arbx.domain.limits import Limits
from arbx.domain.stages import Schedule, stage_limits
from arbx.store import api_repo
from arbx.store import risk_repo as rrepo


def key_caps(
    session: Session,
    key_address: str,
    *,
    chain_id: int,
    limits: Limits,
    schedule: Schedule,
    bases: tuple[str, ...],
) -> Mapping[str, int] | None:
    """The caps per base token of the engine holding ``key_address``: None while its stored mode
    is shadow (or nothing is stored: the strategy's own caps), else its stage's caps under the
    operators' limits (none looser than ``limits``, the configured ones)."""
    stored = rrepo.get_risk_state(session, chain_id, key_address)
    if stored is None or stored.mode == "shadow":
        return None
    controls = api_repo.get_controls(session, chain_id)
    in_force = controls.limits_or(limits) if controls is not None else limits
    stage = schedule.stages[max(0, min(stored.stage, len(schedule.stages) - 1))]
    capped = stage_limits(in_force, stage)
    caps: dict[str, int] = {}
    for base in bases:
        cap = capped.input_cap(base)
        if cap is not None:
            caps[base] = cap
    return caps
