"""Risk: modes, capital limits, stages, the kill switch and the one-signer-per-key lock.

``limits`` and ``stages`` are pure (no IO); ``killswitch`` and ``signer_lock`` talk to the
database; ``controller`` puts them together for the engine; ``commands`` adds ``arbx kill``,
``arbx unkill`` and ``arbx risk``; ``settings`` is the ``[risk]`` settings section.
"""

from arbx.risk.limits import (
    Decision,
    Limits,
    Mode,
    Outcome,
    RiskState,
    check_trade,
    new_state,
    record_outcome,
    roll_day,
)
from arbx.risk.stages import (
    Schedule,
    Stage,
    StageDecision,
    StageHistory,
    default_schedule,
    effective_mode,
    evaluate_stage,
    stage_limits,
)

__all__ = [
    "Decision",
    "Limits",
    "Mode",
    "Outcome",
    "RiskState",
    "Schedule",
    "Stage",
    "StageDecision",
    "StageHistory",
    "check_trade",
    "default_schedule",
    "effective_mode",
    "evaluate_stage",
    "new_state",
    "record_outcome",
    "roll_day",
    "stage_limits",
]
