"""Capital stages, pure: a schedule of stages and the evidence that moves the engine between them.

Stage 0 is shadow; each later stage is ``limited`` or ``scaled`` with its own input caps, for
example 0.1, 1 and 10 WETH. ``evaluate_stage`` looks at what happened since the current stage
was entered and decides:

- demote when a limit was breached after entering the stage (down one stage, or to shadow if
  the schedule says so), or when realized profit over the last M included bundles fell below a
  floor fraction of the expected profit;
- promote when at least N bundles were included at this stage, realized/expected over them is
  at least a ratio, and no limit was breached in the last K hours. Leaving shadow needs no bundle
  evidence (there cannot be any): only the K quiet hours and a configured mode that allows it;
- otherwise stay.

The configured mode (``settings.mode``) is a ceiling: promotion never reaches a stage whose mode
is above it, and ``effective_mode`` never trades above it, but the stage itself is not lowered,
so evidence survives an operator pausing the engine. Ratios are integer basis points.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Literal

from arbx.domain.limits import ANY_TOKEN, Limits, input_cap
from arbx.domain.modes import Mode, mode_rank

BPS = 10_000
Action = Literal["stay", "promote", "demote"]


@dataclass(frozen=True, slots=True)
class Stage:
    """One step of the schedule: the mode it trades in and its input caps per base token."""

    mode: Mode
    max_input: Mapping[str, int] = field(default_factory=dict)
    name: str = ""


@dataclass(frozen=True, slots=True)
class PromotionRule:
    """Up one stage after ``min_included`` bundles at >= ``min_ratio_bps`` and quiet hours."""

    min_included: int = 20
    min_ratio_bps: int = 8_000
    quiet_hours: float = 24.0


@dataclass(frozen=True, slots=True)
class DemotionRule:
    """Down when the last ``window`` included bundles realize < ``floor_ratio_bps``; on breach."""

    window: int = 20
    floor_ratio_bps: int = 5_000
    on_breach: Literal["one", "shadow"] = "one"


@dataclass(frozen=True, slots=True)
class Schedule:
    """The stages in order (stage 0 is shadow) and the rules that move between them."""

    stages: tuple[Stage, ...]
    promotion: PromotionRule = field(default_factory=PromotionRule)
    demotion: DemotionRule = field(default_factory=DemotionRule)

    def __post_init__(self) -> None:
        if not self.stages or self.stages[0].mode != "shadow":
            raise ValueError("a schedule starts with a shadow stage (stage 0)")
        ranks = [mode_rank(s.mode) for s in self.stages]
        if ranks != sorted(ranks):
            raise ValueError("stage modes must not go down: shadow, then limited, then scaled")
        if any(s.mode == "shadow" for s in self.stages[1:]):
            raise ValueError("only stage 0 may be a shadow stage")


@dataclass(frozen=True, slots=True)
class BundleEvidence:
    """A settled bundle as evidence: when it was sent, how it ended, expected and realized."""

    sent_at: datetime
    status: str
    expected_net_profit: int
    realized_profit: int | None


@dataclass(frozen=True, slots=True)
class StageHistory:
    """The current stage, when it was entered, its bundles and the recent limit breaches."""

    stage: int
    entered_at: datetime
    bundles: Sequence[BundleEvidence] = ()
    breaches: Sequence[datetime] = ()


@dataclass(frozen=True, slots=True)
class StageDecision:
    """What to do with the stage, why, and the numbers behind it (JSON-ready)."""

    action: Action
    from_stage: int
    to_stage: int
    reason: str
    evidence: dict[str, Any] = field(default_factory=dict)


def default_schedule() -> Schedule:
    """Shadow; limited at 0.1 and 1 of any 18-decimal base token; scaled at 10."""
    return Schedule(
        stages=(
            Stage("shadow", {}, "shadow"),
            Stage("limited", {ANY_TOKEN: 10**17}, "limited 0.1"),
            Stage("limited", {ANY_TOKEN: 10**18}, "limited 1"),
            Stage("scaled", {ANY_TOKEN: 10**19}, "scaled 10"),
        )
    )


def effective_mode(ceiling: Mode, stage: Stage, *, kill_switch: bool = False) -> Mode:
    """The mode to run in: shadow when killed, else the lower of the ceiling and the stage's."""
    if kill_switch:
        return "shadow"
    return min(ceiling, stage.mode, key=mode_rank)


def stage_limits(limits: Limits, stage: Stage) -> Limits:
    """``limits`` with each input cap lowered to the stage's cap where that is smaller."""
    keys = {k.lower() for k in limits.max_input} | {k.lower() for k in stage.max_input}
    caps: dict[str, int] = {}
    for key in keys:
        both = (input_cap(limits.max_input, key), input_cap(stage.max_input, key))
        found = [cap for cap in both if cap is not None]
        if found:
            caps[key] = min(found)
    return replace(limits, max_input=caps)


def ratio_bps(realized: int, expected: int) -> int | None:
    """realized / expected in basis points (rounded down); None when nothing was expected."""
    if expected <= 0:
        return None
    return realized * BPS // expected


def evaluate_stage(
    history: StageHistory, schedule: Schedule, now: datetime, *, ceiling: Mode = "scaled"
) -> StageDecision:
    """Promote, demote or stay, from the evidence gathered since the stage was entered."""
    last = len(schedule.stages) - 1
    stage = history.stage
    if not 0 <= stage <= last:
        to = min(max(stage, 0), last)
        return StageDecision("demote", stage, to, f"stage {stage} is not in the schedule")

    breach_here = [b for b in history.breaches if history.entered_at < b <= now]
    if breach_here:
        if stage == 0:
            return StageDecision(
                "stay", 0, 0, "limit breached in shadow stage", _times(breach_here)
            )
        to = 0 if schedule.demotion.on_breach == "shadow" else stage - 1
        return StageDecision(
            "demote",
            stage,
            to,
            f"limit breached at {max(breach_here).isoformat()} in stage {stage}",
            _times(breach_here),
        )

    included = [
        b for b in history.bundles if b.status == "included" and b.sent_at >= history.entered_at
    ]
    window = schedule.demotion.window
    if stage > 0 and window > 0 and len(included) >= window:
        recent = included[-window:]
        evidence = _evidence(recent)
        if not _at_least(recent, schedule.demotion.floor_ratio_bps):
            return StageDecision(
                "demote",
                stage,
                stage - 1,
                f"realized/expected {_ratio_text(evidence)} over the last {window} included "
                f"bundles is below the floor {schedule.demotion.floor_ratio_bps} bps",
                evidence,
            )

    rule = schedule.promotion
    quiet_since = now - timedelta(hours=rule.quiet_hours)
    recent_breaches = [b for b in history.breaches if quiet_since < b <= now]
    evidence = _evidence(included)
    if stage == last:
        return StageDecision("stay", stage, stage, "at the last stage", evidence)
    target = schedule.stages[stage + 1]
    if mode_rank(target.mode) > mode_rank(ceiling):
        return StageDecision(
            "stay",
            stage,
            stage,
            f"configured mode {ceiling} does not allow stage {stage + 1} ({target.mode})",
            evidence,
        )
    if recent_breaches:
        return StageDecision(
            "stay",
            stage,
            stage,
            f"limit breached at {max(recent_breaches).isoformat()}, within the last "
            f"{rule.quiet_hours:g} hours",
            evidence,
        )
    if stage > 0:
        if len(included) < rule.min_included:
            return StageDecision(
                "stay",
                stage,
                stage,
                f"{len(included)} of {rule.min_included} included bundles needed at stage {stage}",
                evidence,
            )
        if not _at_least(included, rule.min_ratio_bps):
            return StageDecision(
                "stay",
                stage,
                stage,
                f"realized/expected {_ratio_text(evidence)} is below {rule.min_ratio_bps} bps",
                evidence,
            )
        why = (
            f"{len(included)} included bundles at stage {stage}, realized/expected "
            f"{_ratio_text(evidence)} >= {rule.min_ratio_bps} bps, no breach in "
            f"{rule.quiet_hours:g} hours"
        )
    else:
        why = f"configured mode {ceiling} allows live trading; no breach in {rule.quiet_hours:g} h"
    return StageDecision("promote", stage, stage + 1, why, evidence)


def _sums(bundles: Sequence[BundleEvidence]) -> tuple[int, int]:
    expected = sum(b.expected_net_profit for b in bundles)
    realized = sum(b.realized_profit or 0 for b in bundles)
    return expected, realized


def _at_least(bundles: Sequence[BundleEvidence], bps: int) -> bool:
    """realized / expected >= bps / 10000 over the bundles, in exact integers."""
    expected, realized = _sums(bundles)
    return realized * BPS >= bps * expected


def _evidence(bundles: Sequence[BundleEvidence]) -> dict[str, Any]:
    expected, realized = _sums(bundles)
    return {
        "included": len(bundles),
        "expected_net_profit_wei": str(expected),
        "realized_profit_wei": str(realized),
        "ratio_bps": ratio_bps(realized, expected),
    }


def _ratio_text(evidence: Mapping[str, Any]) -> str:
    ratio = evidence.get("ratio_bps")
    return "undefined (nothing expected)" if ratio is None else f"{ratio} bps"


def _times(times: Sequence[datetime]) -> dict[str, Any]:
    return {"breaches": [t.isoformat() for t in sorted(times)]}
