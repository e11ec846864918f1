"""Capital stages, pure: a schedule of stages and the evidence that moves the engine between them.

Stage 0 is shadow; each later stage is ``limited`` or ``scaled`` with its own input caps, for
example 0.1, 1 and 10 WETH. ``evaluate_stage`` looks at what happened since the current stage
was entered and decides:

- demote when a limit was breached after entering the stage (down one stage, or to shadow if
  the schedule says so), or when realized profit over the last M included bundles fell below a
  floor fraction of the expected profit;
- promote when every condition of the gate to the next stage passes (``gate_conditions``): blocks
  observed at the stage, parity checks done with zero failures, detection latency p99 under a
  bound, no arbx alert firing, bundles included and realized/expected over them (not for the
  gate out of shadow: there cannot be any), and no cap breached in the last K hours; and the
  configured mode allows the next stage;
- otherwise stay, saying what the next gate still needs.

Each transition has its own gate (``Schedule.gates[i]`` leaves stage i; ``Schedule.promotion``
for the transitions without one). The evidence of a promotion lists every condition with its
measured value and requirement, so the stage history shows why it happened.

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
    """A gate: what leaving a stage for the next needs, measured since the stage was entered.

    ``min_blocks`` blocks observed; ``min_parity_checks`` parity checks and none failed;
    detection latency p99 at most ``max_latency_p99_ms`` (None: no bound); no arbx alert firing
    (when alerts are not checked: passes unless ``alerts_required``); ``min_included`` bundles
    included at >= ``min_ratio_bps`` realized/expected (not asked when leaving shadow); no cap
    breached in the last ``quiet_hours``.
    """

    min_included: int = 20
    min_ratio_bps: int = 8_000
    quiet_hours: float = 24.0
    min_blocks: int = 7_200
    min_parity_checks: int = 100
    max_latency_p99_ms: float | None = 500.0
    alerts_required: bool = False


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
    gates: tuple[PromotionRule, ...] = ()  # gates[i] leaves stage i; the others: ``promotion``

    def __post_init__(self) -> None:
        if not self.stages or self.stages[0].mode != "shadow":
            raise ValueError("a schedule starts with a shadow stage (stage 0)")
        ranks = [mode_rank(s.mode) for s in self.stages]
        if ranks != sorted(ranks):
            raise ValueError("stage modes must not go down: shadow, then limited, then scaled")
        if any(s.mode == "shadow" for s in self.stages[1:]):
            raise ValueError("only stage 0 may be a shadow stage")
        if len(self.gates) > len(self.stages) - 1:
            raise ValueError(
                f"{len(self.gates)} gates for {len(self.stages) - 1} stage transitions"
            )

    def gate(self, stage: int) -> PromotionRule:
        """The gate that leaves ``stage`` for the next one."""
        return self.gates[stage] if 0 <= stage < len(self.gates) else self.promotion


@dataclass(frozen=True, slots=True)
class BundleEvidence:
    """A settled bundle as evidence: when it was sent, how it ended, expected and realized."""

    sent_at: datetime
    status: str
    expected_net_profit: int
    realized_profit: int | None


@dataclass(frozen=True, slots=True)
class Alerts:
    """The arbx alerts firing now: ``checked`` False when no alert source is configured, and
    ``error`` when the configured one could not be read (then nothing is known)."""

    checked: bool = False
    firing: tuple[str, ...] = ()
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Observations:
    """What the engine saw at the stage: blocks, parity checks, detection latency, alerts."""

    blocks: int = 0
    parity_checks: int = 0
    parity_failures: int = 0
    latency_p99_ms: float | None = None
    latency_samples: int = 0
    alerts: Alerts = field(default_factory=Alerts)


@dataclass(frozen=True, slots=True)
class StageHistory:
    """The current stage, when it was entered, its bundles, the recent limit breaches and what
    was observed at the stage."""

    stage: int
    entered_at: datetime
    bundles: Sequence[BundleEvidence] = ()
    breaches: Sequence[datetime] = ()
    observed: Observations = field(default_factory=Observations)


@dataclass(frozen=True, slots=True)
class Condition:
    """One condition of a gate: its measured value, what it requires, and whether it passes."""

    name: str
    measured: str
    required: str
    passed: bool

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "name": self.name,
            "measured": self.measured,
            "required": self.required,
            "passed": self.passed,
        }


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

    evidence = _evidence(included)
    if stage == last:
        return StageDecision("stay", stage, stage, "at the last stage", evidence)
    target = schedule.stages[stage + 1]
    conditions = gate_conditions(history, schedule, now)
    evidence = {
        **evidence,
        "gate": {"from_stage": stage, "to_stage": stage + 1},
        "conditions": [c.as_dict() for c in conditions],
    }
    if mode_rank(target.mode) > mode_rank(ceiling):
        return StageDecision(
            "stay",
            stage,
            stage,
            f"configured mode {ceiling} does not allow stage {stage + 1} ({target.mode})",
            evidence,
        )
    failed = [c for c in conditions if not c.passed]
    if failed:
        return StageDecision("stay", stage, stage, gate_needs(failed), evidence)
    why = f"every condition of the gate to stage {stage + 1} passed: " + "; ".join(
        f"{c.name} {c.measured}" for c in conditions
    )
    return StageDecision("promote", stage, stage + 1, why, evidence)


def gate_conditions(history: StageHistory, schedule: Schedule, now: datetime) -> list[Condition]:
    """Every condition of the gate out of ``history.stage``, measured (any stage but the last)."""
    rule = schedule.gate(history.stage)
    seen = history.observed
    out = [
        Condition(
            "blocks observed",
            str(seen.blocks),
            f">= {rule.min_blocks}",
            seen.blocks >= rule.min_blocks,
        ),
        Condition(
            "parity checks",
            str(seen.parity_checks),
            f">= {rule.min_parity_checks}",
            seen.parity_checks >= rule.min_parity_checks,
        ),
        Condition("parity failures", str(seen.parity_failures), "0", seen.parity_failures == 0),
        _latency(seen, rule),
        _alerts(seen.alerts, rule),
    ]
    if history.stage > 0:
        included = [
            b for b in history.bundles if b.status == "included" and b.sent_at >= history.entered_at
        ]
        expected, realized = _sums(included)
        ratio = ratio_bps(realized, expected)
        out += [
            Condition(
                "bundles included",
                str(len(included)),
                f">= {rule.min_included}",
                len(included) >= rule.min_included,
            ),
            Condition(
                "realized/expected",
                "undefined (nothing expected)" if ratio is None else f"{ratio} bps",
                f">= {rule.min_ratio_bps} bps",
                realized * BPS >= rule.min_ratio_bps * expected,
            ),
        ]
    since = now - timedelta(hours=rule.quiet_hours)
    breaches = [b for b in history.breaches if since < b <= now]
    out.append(
        Condition(
            "caps breached",
            str(len(breaches)) + (f" (last at {max(breaches).isoformat()})" if breaches else ""),
            f"0 in the last {rule.quiet_hours:g} hours",
            not breaches,
        )
    )
    return out


def gate_needs(failed: Sequence[Condition]) -> str:
    """What the next gate still needs, in one line."""
    return "the next gate needs: " + "; ".join(
        f"{c.name} {c.required} (now {c.measured})" for c in failed
    )


def _latency(seen: Observations, rule: PromotionRule) -> Condition:
    bound = rule.max_latency_p99_ms
    measured = (
        "no samples"
        if seen.latency_p99_ms is None
        else f"{seen.latency_p99_ms:.1f} ms over {seen.latency_samples} blocks"
    )
    if bound is None:
        return Condition("detection latency p99", measured, "no bound", True)
    passed = seen.latency_p99_ms is not None and seen.latency_p99_ms <= bound
    return Condition("detection latency p99", measured, f"<= {bound:g} ms", passed)


def _alerts(alerts: Alerts, rule: PromotionRule) -> Condition:
    required = "none firing" + ("" if rule.alerts_required else " (when checked)")
    if alerts.error is not None:
        return Condition("arbx alerts", f"unknown: {alerts.error}", required, False)
    if not alerts.checked:
        return Condition("arbx alerts", "not checked", required, not rule.alerts_required)
    if alerts.firing:
        return Condition("arbx alerts", "firing: " + ", ".join(alerts.firing), required, False)
    return Condition("arbx alerts", "none firing", required, True)


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


def stage_status(
    history: StageHistory, schedule: Schedule, now: datetime, *, ceiling: Mode = "scaled"
) -> dict[str, Any]:
    """The current stage, the next one, every condition of the gate between them with its
    measured value, requirement and result, what the gate still needs, and the decision an
    evaluation would take now (JSON-ready)."""
    decision = evaluate_stage(history, schedule, now, ceiling=ceiling)
    last = len(schedule.stages) - 1
    stage = min(max(history.stage, 0), last)
    conditions: list[Condition] = []
    if stage < last:
        conditions = gate_conditions(replace(history, stage=stage), schedule, now)
    needs = [f"{c.name} {c.required} (now {c.measured})" for c in conditions if not c.passed]
    if stage < last and mode_rank(schedule.stages[stage + 1].mode) > mode_rank(ceiling):
        needs.append(
            f"a configured mode that allows {schedule.stages[stage + 1].mode} (now {ceiling})"
        )
    return {
        "stage": _describe(schedule, stage),
        "entered_at": history.entered_at.isoformat(),
        "next": _describe(schedule, stage + 1) if stage < last else None,
        "ceiling": ceiling,
        "conditions": [c.as_dict() for c in conditions],
        "gate_passed": stage < last and not needs,
        "needs": needs,
        "decision": {
            "action": decision.action,
            "to_stage": decision.to_stage,
            "reason": decision.reason,
        },
    }


def _describe(schedule: Schedule, index: int) -> dict[str, Any]:
    stage = schedule.stages[index]
    return {
        "index": index,
        "name": stage.name or f"stage {index}",
        "mode": stage.mode,
        "max_input": {k: str(v) for k, v in stage.max_input.items()},
    }
