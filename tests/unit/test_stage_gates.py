"""The stage gates: each measured condition, per-transition requirements, and the status view."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from arbx.domain.stages import (
    Alerts,
    BundleEvidence,
    Observations,
    PromotionRule,
    StageHistory,
    default_schedule,
    evaluate_stage,
    gate_conditions,
    stage_status,
)
from arbx.risk.settings import RiskSettings

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
ENTERED = NOW - timedelta(days=2)
SMALL = PromotionRule(
    min_blocks=5,
    min_parity_checks=3,
    max_latency_p99_ms=50.0,
    min_included=2,
    min_ratio_bps=8_000,
    quiet_hours=1.0,
)
SCHEDULE = replace(default_schedule(), promotion=SMALL)
SEEN = Observations(blocks=5, parity_checks=3, latency_p99_ms=50.0, latency_samples=5)


def included(n: int, expected: int = 100, realized: int = 100) -> list[BundleEvidence]:
    return [
        BundleEvidence(ENTERED + timedelta(minutes=i), "included", expected, realized)
        for i in range(n)
    ]


def history(stage: int = 1, **changes: object) -> StageHistory:
    base = StageHistory(stage=stage, entered_at=ENTERED, bundles=included(2), observed=SEEN)
    return replace(base, **changes)  # type: ignore[arg-type]


def failing(h: StageHistory, schedule: object = SCHEDULE) -> list[tuple[str, str]]:
    return [(c.name, c.measured) for c in gate_conditions(h, schedule, NOW) if not c.passed]  # type: ignore[arg-type]


def test_a_gate_at_its_exact_requirements_promotes_and_the_evidence_lists_each_condition() -> None:
    up = evaluate_stage(history(), SCHEDULE, NOW)
    assert (up.action, up.to_stage) == ("promote", 2)
    assert up.reason.startswith("every condition of the gate to stage 2 passed: blocks observed 5")
    required = {c["name"]: c["required"] for c in up.evidence["conditions"]}
    assert required == {
        "blocks observed": ">= 5",
        "parity checks": ">= 3",
        "parity failures": "0",
        "detection latency p99": "<= 50 ms",
        "arbx alerts": "none firing (when checked)",
        "bundles included": ">= 2",
        "realized/expected": ">= 8000 bps",
        "caps breached": "0 in the last 1 hours",
    }


@pytest.mark.parametrize(
    ("observed", "fails"),
    [
        (replace(SEEN, blocks=4), ("blocks observed", "4")),
        (replace(SEEN, parity_checks=2), ("parity checks", "2")),
        (replace(SEEN, parity_failures=1), ("parity failures", "1")),
        (replace(SEEN, latency_p99_ms=50.1), ("detection latency p99", "50.1 ms over 5 blocks")),
        (
            replace(SEEN, latency_p99_ms=None, latency_samples=0),
            ("detection latency p99", "no samples"),
        ),
        (
            replace(SEEN, alerts=Alerts(checked=True, firing=("ArbxSyncLag",))),
            ("arbx alerts", "firing: ArbxSyncLag"),
        ),
        (
            replace(SEEN, alerts=Alerts(checked=True, error="Prometheus unreachable: refused")),
            ("arbx alerts", "unknown: Prometheus unreachable: refused"),
        ),
    ],
)
def test_each_observed_condition_alone_keeps_the_gate_shut(
    observed: Observations, fails: tuple[str, str]
) -> None:
    h = history(observed=observed)
    assert failing(h) == [fails]
    stay = evaluate_stage(h, SCHEDULE, NOW)
    assert stay.action == "stay"
    assert stay.reason.startswith(f"the next gate needs: {fails[0]} ")


def test_bundle_conditions_and_quiet_hours() -> None:
    assert failing(history(bundles=included(1))) == [("bundles included", "1")]
    assert failing(history(bundles=included(2, 100, 79))) == [("realized/expected", "7900 bps")]
    # Nothing expected: undefined ratio, which passes only when nothing is asked of it.
    zero = history(bundles=included(2, 0, 0))
    assert failing(zero) == []
    breach = NOW - timedelta(minutes=30)
    # A breach before the stage was entered keeps it shut for the quiet hours only.
    h = history(entered_at=NOW - timedelta(minutes=20), breaches=[breach])
    h = replace(h, bundles=[replace(b, sent_at=NOW - timedelta(minutes=10)) for b in included(2)])
    assert failing(h) == [("caps breached", f"1 (last at {breach.isoformat()})")]
    later = gate_conditions(h, SCHEDULE, NOW + timedelta(minutes=31))
    assert all(c.passed for c in later)


def test_leaving_shadow_asks_no_bundles_and_unchecked_alerts_fail_when_required() -> None:
    shadow = history(stage=0, bundles=[])
    names = [c.name for c in gate_conditions(shadow, SCHEDULE, NOW)]
    assert "bundles included" not in names
    assert "realized/expected" not in names
    assert evaluate_stage(shadow, SCHEDULE, NOW, ceiling="limited").action == "promote"
    strict = replace(SCHEDULE, promotion=replace(SMALL, alerts_required=True))
    assert failing(shadow, strict) == [("arbx alerts", "not checked")]
    no_bound = replace(SCHEDULE, promotion=replace(SMALL, max_latency_p99_ms=None))
    quiet = history(stage=0, observed=replace(SEEN, latency_p99_ms=None, latency_samples=0))
    assert failing(quiet, no_bound) == []


def test_each_transition_has_its_own_gate_from_the_settings() -> None:
    settings = RiskSettings(
        promote_min_blocks=3,
        gates=[
            {"min_blocks": 10, "max_latency_p99_ms": 80},
            {"min_included": 1},
            {"max_latency_p99_ms": 0},
        ],
    )
    schedule = settings.schedule()
    assert schedule.gate(0).min_blocks == 10
    assert schedule.gate(0).max_latency_p99_ms == 80
    assert schedule.gate(1).min_blocks == 3  # left out: the promote_* value
    assert schedule.gate(1).min_included == 1
    assert schedule.gate(2) == replace(schedule.promotion, max_latency_p99_ms=None)  # 0: none
    assert (
        RiskSettings(promote_max_latency_p99_ms=0).schedule().promotion.max_latency_p99_ms is None
    )
    defaults = RiskSettings().schedule().promotion
    assert (defaults.min_blocks, defaults.min_parity_checks, defaults.max_latency_p99_ms) == (
        7_200,
        100,
        500.0,
    )
    with pytest.raises(ValidationError, match="4 gates for 3 stage transitions"):
        RiskSettings(gates=[{}, {}, {}, {}])
    with pytest.raises(ValidationError, match="plain http"):
        RiskSettings(prometheus_url="file:///etc/passwd")
    with pytest.raises(ValidationError, match="extra"):
        RiskSettings(gates=[{"min_blockz": 1}])


def test_the_status_names_the_next_stage_and_what_its_gate_still_needs() -> None:
    h = history(observed=replace(SEEN, blocks=2))
    status = stage_status(h, SCHEDULE, NOW, ceiling="limited")
    assert status["stage"]["index"] == 1
    assert status["next"] == {
        "index": 2,
        "name": "limited 1",
        "mode": "limited",
        "max_input": {"*": str(10**18)},
    }
    assert status["needs"] == ["blocks observed >= 5 (now 2)"]
    assert status["gate_passed"] is False
    assert status["decision"]["action"] == "stay"
    top = stage_status(history(stage=3), SCHEDULE, NOW)
    assert (top["next"], top["conditions"], top["gate_passed"]) == (None, [], False)
    capped = stage_status(history(stage=2), SCHEDULE, NOW, ceiling="limited")
    assert capped["needs"] == ["a configured mode that allows scaled (now limited)"]
    assert all(c["passed"] for c in capped["conditions"])


observations = st.builds(
    Observations,
    blocks=st.integers(0, 20),
    parity_checks=st.integers(0, 10),
    parity_failures=st.integers(0, 2),
    latency_p99_ms=st.none() | st.floats(0, 200, allow_nan=False),
    latency_samples=st.integers(0, 20),
    alerts=st.sampled_from(
        [Alerts(), Alerts(checked=True), Alerts(checked=True, firing=("ArbxApiDown",))]
    ),
)
rules = st.builds(
    PromotionRule,
    min_included=st.integers(0, 5),
    min_ratio_bps=st.integers(0, 12_000),
    quiet_hours=st.floats(0, 48, allow_nan=False),
    min_blocks=st.integers(0, 20),
    min_parity_checks=st.integers(0, 10),
    max_latency_p99_ms=st.none() | st.floats(1, 200, allow_nan=False),
    alerts_required=st.booleans(),
)


@given(
    stage=st.integers(0, 2),
    observed=observations,
    rule=rules,
    n=st.integers(0, 6),
    realized=st.integers(-50, 150),
)
def test_a_stage_is_promoted_exactly_when_every_condition_passes(
    stage: int, observed: Observations, rule: PromotionRule, n: int, realized: int
) -> None:
    schedule = replace(default_schedule(), promotion=rule)
    h = history(stage=stage, observed=observed, bundles=included(n, 100, realized))
    decision = evaluate_stage(h, schedule, NOW)
    conditions = gate_conditions(h, schedule, NOW)
    if decision.action != "demote":  # the demotion window is a separate rule
        assert (decision.action == "promote") == all(c.passed for c in conditions)
    # A stricter gate never opens where the looser one was shut.
    stricter = replace(rule, min_blocks=rule.min_blocks + 1)
    tighter = gate_conditions(h, replace(schedule, promotion=stricter), NOW)
    assert all(c.passed for c in tighter) <= all(c.passed for c in conditions)
