"""Risk limits, breaches, UTC day rollover, and stage promotion and demotion from histories."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from arbx.domain.limits import (
    Counted,
    Decision,
    Limits,
    RiskState,
    check_trade,
    count_outcome,
    new_state,
    record_outcome,
    roll_day,
    undo_outcome,
    utc_day,
)
from arbx.domain.profit import Opportunity
from arbx.domain.routes import Route
from arbx.domain.stages import (
    BundleEvidence,
    DemotionRule,
    Observations,
    PromotionRule,
    Schedule,
    Stage,
    StageHistory,
    default_schedule,
    effective_mode,
    evaluate_stage,
    ratio_bps,
    stage_limits,
)
from arbx.risk.settings import RiskSettings

WETH = "0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2"
USDC = "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48"
POOL_A = "0x0000000000000000000000000000000000000A01"
POOL_B = "0x0000000000000000000000000000000000000B02"
T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
ETH = 10**18
LIMITS = Limits(
    max_input={WETH: 2 * ETH},
    daily_gas_cap_wei=10**16,
    daily_loss_cap_wei=5 * 10**16,
    max_consecutive_failures=3,
)


def opportunity(amount_in: int = ETH, gas_cost: int = 10**15, base: str = WETH) -> Opportunity:
    """A two-pool cycle from ``base`` with the given input and gas cost."""
    other = USDC if base == WETH else WETH
    route = Route(pools=(POOL_A, POOL_B), zero_for_one=(True, False), tokens=(base, other, base))
    return Opportunity(
        route=route,
        amount_in=amount_in,
        amounts=(123, amount_in + 10**16),
        gross_profit=10**16,
        gas_units=180_000,
        gas_cost=gas_cost,
        builder_payment=0,
        net_profit=10**16 - gas_cost,
    )


def live(**changes: object) -> RiskState:
    """A limited-mode state on T0's day."""
    return replace(new_state(T0, "limited"), **changes)  # type: ignore[arg-type]


# --- check_trade ------------------------------------------------------------------------------


def test_a_trade_within_every_limit_is_allowed() -> None:
    assert check_trade(opportunity(), live(), LIMITS) == Decision(True, "")
    assert check_trade(opportunity(amount_in=2 * ETH), live(), LIMITS).allowed  # at the cap


def test_a_trade_over_its_cap_is_refused_not_clamped() -> None:
    decision = check_trade(opportunity(amount_in=2 * ETH + 1), live(), LIMITS)
    assert not decision.allowed
    assert "over the cap" in decision.reason
    assert str(2 * ETH) in decision.reason


def test_a_base_token_without_a_cap_is_refused_and_the_wildcard_covers_it() -> None:
    usdc_trade = opportunity(amount_in=10**6, base=USDC)
    refused = check_trade(usdc_trade, live(), LIMITS)
    assert not refused.allowed
    assert "no input cap" in refused.reason
    wildcard = replace(LIMITS, max_input={WETH: ETH, "*": 10**7})
    assert check_trade(usdc_trade, live(), wildcard).allowed
    # An address in another case is the same token; its own cap wins over the wildcard.
    assert not check_trade(opportunity(amount_in=ETH + 1), live(), wildcard).allowed
    lower = replace(LIMITS, max_input={WETH.lower(): ETH})
    assert check_trade(opportunity(amount_in=ETH), live(), lower).allowed


def test_shadow_mode_and_the_kill_switch_refuse_everything() -> None:
    shadow = check_trade(opportunity(), new_state(T0), LIMITS)
    assert not shadow.allowed
    assert "shadow" in shadow.reason
    killed = check_trade(opportunity(), live(kill_switch=True, reason="operator"), LIMITS)
    assert not killed.allowed
    assert killed.reason == "kill switch set: operator"


def test_daily_caps_refuse_a_trade_whose_gas_would_pass_them() -> None:
    gas = 10**15
    at_edge = live(gas_spent_wei=LIMITS.daily_gas_cap_wei - gas)
    assert check_trade(opportunity(gas_cost=gas), at_edge, LIMITS).allowed
    over = check_trade(opportunity(gas_cost=gas + 1), at_edge, LIMITS)
    assert not over.allowed
    assert "daily cap" in over.reason
    # An explicit wei figure overrides the opportunity's gas cost in the base token.
    assert not check_trade(opportunity(gas_cost=0), at_edge, LIMITS, gas_cost_wei=gas + 1).allowed
    losing = live(realized_pnl_wei=-(LIMITS.daily_loss_cap_wei - gas))
    assert check_trade(opportunity(gas_cost=gas), losing, LIMITS).allowed
    refused = check_trade(opportunity(gas_cost=gas + 1), losing, LIMITS)
    assert not refused.allowed
    assert refused.reason.startswith("loss today")


def test_consecutive_failures_refuse_at_the_limit() -> None:
    assert check_trade(opportunity(), live(consecutive_failures=2), LIMITS).allowed
    refused = check_trade(opportunity(), live(consecutive_failures=3), LIMITS)
    assert not refused.allowed
    assert "consecutive failures" in refused.reason


# --- record_outcome and breaches --------------------------------------------------------------


def test_gas_and_profit_accumulate_without_a_breach() -> None:
    state, breach = record_outcome(live(), "included", 10**15, 3 * 10**15, LIMITS, at=T0)
    state, breach2 = record_outcome(state, "included", 2 * 10**15, -(10**15), LIMITS, at=T0)
    assert breach is breach2 is None
    assert (state.gas_spent_wei, state.realized_pnl_wei, state.realized_loss_wei) == (
        3 * 10**15,
        2 * 10**15,
        0,
    )
    assert state.mode == "limited"
    assert not state.kill_switch


def test_the_daily_gas_breach_drops_to_shadow_with_its_reason() -> None:
    state, breach = record_outcome(live(), "included", LIMITS.daily_gas_cap_wei, 0, LIMITS, at=T0)
    assert breach is None  # reaching the cap is allowed, passing it is not
    state, breach = record_outcome(state, "reverted", 1, 0, LIMITS, at=T0)
    assert breach is not None
    assert breach.startswith("daily gas cap breached")
    assert (state.mode, state.kill_switch, state.reason) == ("shadow", True, breach)
    assert not check_trade(opportunity(), state, LIMITS).allowed


def test_the_daily_loss_breach_counts_net_realized_profit() -> None:
    state, breach = record_outcome(live(), "included", 0, 4 * 10**16, LIMITS, at=T0)
    state, breach = record_outcome(state, "included", 0, -(9 * 10**16), LIMITS, at=T0)
    assert breach is None  # 4e16 - 9e16 = -5e16: at the cap, not past it
    state, breach = record_outcome(state, "included", 0, -1, LIMITS, at=T0)
    assert breach is not None
    assert "daily loss cap breached" in breach
    assert state.mode == "shadow"


def test_failures_count_reverts_and_losses_and_only_a_profit_resets_them() -> None:
    state = live()
    state, _ = record_outcome(state, "reverted", 0, 0, LIMITS, at=T0)
    state, _ = record_outcome(state, "sim_failed", 0, 0, LIMITS, at=T0)
    assert state.consecutive_failures == 2
    for neutral in ("not_included", "state_moved"):
        state, _ = record_outcome(state, neutral, 0, 0, LIMITS, at=T0)
    assert state.consecutive_failures == 2
    state, _ = record_outcome(state, "included", 0, 1, LIMITS, at=T0)
    assert state.consecutive_failures == 0
    state, _ = record_outcome(state, "included", 0, -1, LIMITS, at=T0)
    state, _ = record_outcome(state, "reverted", 0, 0, LIMITS, at=T0)
    assert state.consecutive_failures == 2
    state, breach = record_outcome(state, "reverted", 0, 0, LIMITS, at=T0)
    assert breach == "3 consecutive failures in this run (limit 3)"
    assert (state.mode, state.kill_switch) == ("shadow", True)


def test_record_outcome_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="unknown outcome"):
        record_outcome(live(), "landed", 0, 0, LIMITS, at=T0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="gas cost"):
        record_outcome(live(), "included", -1, 0, LIMITS, at=T0)
    with pytest.raises(ValueError, match="naive"):
        record_outcome(live(), "included", 0, 0, LIMITS, at=datetime(2025, 3, 1))


# --- a reorg takes a settled bundle out: undo_outcome ---------------------------------------


def test_a_reorged_out_bundle_is_taken_back_and_counted_again_when_included_again() -> None:
    state, _ = record_outcome(live(), "included", 10**15, 2 * 10**15, LIMITS, at=T0)
    before = state
    state, breach, counted = count_outcome(state, "included", 3 * 10**15, 5 * 10**15, LIMITS, at=T0)
    assert breach is None
    assert counted == Counted("included", 3 * 10**15, 5 * 10**15, T0.date(), 0)
    state, breach = undo_outcome(state, counted, LIMITS, at=T0)
    assert breach is None
    assert (state.gas_spent_wei, state.realized_pnl_wei) == (
        before.gas_spent_wei,
        before.realized_pnl_wei,
    )
    # the new branch includes it elsewhere, for other gas and profit: counted as settled there
    state, _, again = count_outcome(state, "included", 4 * 10**15, 10**15, LIMITS, at=T0)
    assert (state.gas_spent_wei, state.realized_pnl_wei) == (5 * 10**15, 3 * 10**15)
    assert again.gas_cost == 4 * 10**15


def test_undoing_a_failure_takes_it_back_and_undoing_a_reset_restores_the_count() -> None:
    state, _, reverted = count_outcome(
        live(consecutive_failures=1), "reverted", 7, 0, LIMITS, at=T0
    )
    assert state.consecutive_failures == 2
    state, _ = undo_outcome(state, reverted, LIMITS, at=T0)
    assert (state.consecutive_failures, state.gas_spent_wei) == (1, 0)
    state, _, loss = count_outcome(state, "included", 0, -5, LIMITS, at=T0)  # a loss: a failure
    assert state.consecutive_failures == 2
    state, _ = undo_outcome(state, loss, LIMITS, at=T0)
    assert (state.consecutive_failures, state.realized_pnl_wei) == (1, 0)
    state, _, profit = count_outcome(state, "included", 0, 9, LIMITS, at=T0)
    assert state.consecutive_failures == 0  # the profit reset the count ...
    state, breach = undo_outcome(state, profit, LIMITS, at=T0)
    assert state.consecutive_failures == 1  # ... which no longer holds
    assert breach is None
    state, _, neutral = count_outcome(state, "not_included", 0, 0, LIMITS, at=T0)
    assert undo_outcome(state, neutral, LIMITS, at=T0)[0] == state


def test_taking_back_a_profit_can_breach_the_loss_cap() -> None:
    state, _ = record_outcome(live(), "included", 0, -(8 * 10**16), LIMITS, at=T0)
    state, breach, profit = count_outcome(state, "included", 0, 4 * 10**16, LIMITS, at=T0)
    assert breach is None  # a net loss of 4e16, under the 5e16 cap
    state, breach = undo_outcome(state, profit, LIMITS, at=T0)
    assert breach is not None
    assert "daily loss cap breached" in breach
    assert (state.mode, state.kill_switch, state.realized_pnl_wei) == (
        "shadow",
        True,
        -(8 * 10**16),
    )


def test_what_was_counted_on_a_day_that_rolled_over_leaves_todays_counters_alone() -> None:
    state, _, counted = count_outcome(live(), "included", 10**15, 10**15, LIMITS, at=T0)
    tomorrow = T0 + timedelta(days=1)
    state, _ = record_outcome(state, "included", 2 * 10**15, 3 * 10**15, LIMITS, at=tomorrow)
    state, breach = undo_outcome(state, counted, LIMITS, at=tomorrow)
    assert breach is None
    assert (state.gas_spent_wei, state.realized_pnl_wei) == (2 * 10**15, 3 * 10**15)


# --- UTC days ---------------------------------------------------------------------------------


def test_daily_counters_reset_at_utc_midnight_not_local_midnight() -> None:
    spent = live(gas_spent_wei=LIMITS.daily_gas_cap_wei, realized_pnl_wei=-(10**16))
    late_local = datetime(2025, 3, 1, 23, 30, tzinfo=timezone(timedelta(hours=-2)))
    assert utc_day(late_local) == date(2025, 3, 2)
    assert not check_trade(opportunity(), spent, LIMITS).allowed
    assert check_trade(opportunity(), spent, LIMITS, at=late_local).allowed
    rolled = roll_day(spent, late_local)
    assert (rolled.day, rolled.gas_spent_wei, rolled.realized_pnl_wei) == (date(2025, 3, 2), 0, 0)
    # Same UTC day (even if another local day): nothing resets; never rolls backwards.
    early_local = datetime(2025, 3, 2, 1, 0, tzinfo=timezone(timedelta(hours=2)))
    assert roll_day(spent, early_local) is spent
    assert roll_day(rolled, T0) is rolled


def test_a_breach_outlives_the_day_and_failures_are_per_run() -> None:
    state, breach = record_outcome(live(consecutive_failures=2), "reverted", 0, 0, LIMITS, at=T0)
    assert breach is not None
    next_day = roll_day(state, T0 + timedelta(days=1))
    assert (next_day.mode, next_day.kill_switch, next_day.consecutive_failures) == (
        "shadow",
        True,
        3,
    )
    # A day's loss is booked on the day the bundle settles.
    state, _ = record_outcome(
        live(realized_pnl_wei=-(4 * 10**16)),
        "included",
        0,
        -(2 * 10**16),
        LIMITS,
        at=T0 + timedelta(days=1),
    )
    assert state.realized_pnl_wei == -(2 * 10**16)
    assert state.mode == "limited"


# --- stages -----------------------------------------------------------------------------------


def bundles(
    n: int, expected: int, realized: int, start: datetime, status: str = "included"
) -> list[BundleEvidence]:
    """``n`` settled bundles a minute apart from ``start``."""
    return [
        BundleEvidence(start + timedelta(minutes=i), status, expected, realized) for i in range(n)
    ]


SCHEDULE = default_schedule()
ENTERED = T0 - timedelta(days=3)
NOW = T0
# What a stage observed that passes the default gates: a day of blocks, parity, fast detection.
SEEN = Observations(blocks=7_200, parity_checks=100, latency_p99_ms=120.0, latency_samples=6_000)


def at(stage: int, **changes: object) -> StageHistory:
    """A history at ``stage`` since ENTERED whose observations pass the default gates."""
    return replace(StageHistory(stage=stage, entered_at=ENTERED, observed=SEEN), **changes)  # type: ignore[arg-type]


def test_schedules_start_in_shadow_and_never_go_down_in_mode() -> None:
    assert [s.mode for s in SCHEDULE.stages] == ["shadow", "limited", "limited", "scaled"]
    with pytest.raises(ValueError, match="starts with a shadow"):
        Schedule((Stage("limited"),))
    with pytest.raises(ValueError, match="must not go down"):
        Schedule((Stage("shadow"), Stage("scaled"), Stage("limited")))
    with pytest.raises(ValueError, match="only stage 0"):
        Schedule((Stage("shadow"), Stage("shadow")))


def test_effective_mode_is_the_lowest_of_ceiling_stage_and_switch() -> None:
    scaled = SCHEDULE.stages[3]
    assert effective_mode("scaled", scaled) == "scaled"
    assert effective_mode("limited", scaled) == "limited"
    assert effective_mode("scaled", SCHEDULE.stages[1]) == "limited"
    assert effective_mode("scaled", scaled, kill_switch=True) == "shadow"


def test_stage_limits_take_the_smaller_cap() -> None:
    stage = SCHEDULE.stages[2]  # 1 of any base token
    capped = stage_limits(replace(LIMITS, max_input={WETH: ETH // 2, USDC: 10**20}), stage)
    assert capped.input_cap(WETH) == ETH // 2
    assert capped.input_cap(USDC) == ETH  # the stage's wildcard is the smaller
    assert capped.input_cap(POOL_A) == ETH  # only the stage caps this one
    assert stage_limits(LIMITS, SCHEDULE.stages[0]).input_cap(USDC) is None
    assert capped.daily_gas_cap_wei == LIMITS.daily_gas_cap_wei


def test_shadow_stage_is_promoted_only_when_the_configured_mode_allows() -> None:
    history = at(0)
    up = evaluate_stage(history, SCHEDULE, NOW, ceiling="limited")
    assert (up.action, up.from_stage, up.to_stage) == ("promote", 0, 1)
    stay = evaluate_stage(history, SCHEDULE, NOW, ceiling="shadow")
    assert (stay.action, stay.to_stage) == ("stay", 0)
    assert "configured mode shadow" in stay.reason


def test_promotion_needs_enough_included_bundles_at_a_good_ratio() -> None:
    good = bundles(19, 100, 90, ENTERED)
    history = at(1, bundles=good)
    few = evaluate_stage(history, SCHEDULE, NOW)
    assert few.action == "stay"
    assert few.reason == "the next gate needs: bundles included >= 20 (now 19)"
    # Bundles that were not included, or came before the stage, are no evidence.
    extra = [
        *bundles(5, 100, 0, ENTERED, status="not_included"),
        *bundles(5, 100, 100, ENTERED - timedelta(days=1)),
    ]
    assert evaluate_stage(replace(history, bundles=[*extra, *good]), SCHEDULE, NOW).action == "stay"
    enough = replace(history, bundles=bundles(20, 100, 90, ENTERED))
    up = evaluate_stage(enough, SCHEDULE, NOW)
    assert (up.action, up.to_stage) == ("promote", 2)
    assert {k: up.evidence[k] for k in ("included", "ratio_bps", "gate")} == {
        "included": 20,
        "ratio_bps": 9000,
        "gate": {"from_stage": 1, "to_stage": 2},
    }
    assert (up.evidence["expected_net_profit_wei"], up.evidence["realized_profit_wei"]) == (
        "2000",
        "1800",
    )
    assert [(c["name"], c["measured"], c["passed"]) for c in up.evidence["conditions"]] == [
        ("blocks observed", "7200", True),
        ("parity checks", "100", True),
        ("parity failures", "0", True),
        ("detection latency p99", "120.0 ms over 6000 blocks", True),
        ("arbx alerts", "not checked", True),
        ("bundles included", "20", True),
        ("realized/expected", "9000 bps", True),
        ("caps breached", "0", True),
    ]
    poor = replace(history, bundles=bundles(20, 100, 79, ENTERED))
    stay = evaluate_stage(poor, SCHEDULE, NOW)
    assert stay.action == "stay"
    assert "realized/expected >= 8000 bps (now 7900 bps)" in stay.reason


def test_promotion_waits_for_quiet_hours_after_a_breach_and_respects_the_ceiling() -> None:
    evidence = bundles(30, 100, 100, ENTERED)
    breach = NOW - timedelta(hours=10)
    # The breach was before entering this stage (it caused the demotion here): no new demotion,
    # but no promotion within 24 quiet hours either.
    history = at(1, entered_at=NOW - timedelta(hours=9), breaches=[breach])
    history = replace(history, bundles=bundles(30, 100, 100, NOW - timedelta(hours=8)))
    stay = evaluate_stage(history, SCHEDULE, NOW)
    assert stay.action == "stay"
    assert "caps breached 0 in the last 24 hours (now 1 (last at" in stay.reason
    later = evaluate_stage(history, SCHEDULE, NOW + timedelta(hours=15))
    assert later.action == "promote"
    at_two = at(2, bundles=evidence)
    capped = evaluate_stage(at_two, SCHEDULE, NOW, ceiling="limited")
    assert capped.action == "stay"
    assert "does not allow stage 3 (scaled)" in capped.reason
    top = evaluate_stage(replace(at_two, stage=3), SCHEDULE, NOW)
    assert (top.action, top.reason) == ("stay", "at the last stage")


def test_a_breach_in_the_stage_demotes_one_stage_or_to_shadow() -> None:
    history = at(3, bundles=bundles(30, 100, 100, ENTERED), breaches=[NOW])
    down = evaluate_stage(history, SCHEDULE, NOW)
    assert (down.action, down.to_stage) == ("demote", 2)
    assert "limit breached" in down.reason
    assert down.evidence == {"breaches": [NOW.isoformat()]}
    to_shadow = replace(SCHEDULE, demotion=DemotionRule(on_breach="shadow"))
    assert evaluate_stage(history, to_shadow, NOW).to_stage == 0
    in_shadow = evaluate_stage(replace(history, stage=0), SCHEDULE, NOW)
    assert (in_shadow.action, in_shadow.to_stage) == ("stay", 0)
    # A breach in the future of ``now`` (clock skew) is not counted.
    future = replace(history, breaches=[NOW + timedelta(minutes=1)])
    assert evaluate_stage(future, SCHEDULE, NOW).action == "stay"


def test_realized_below_the_floor_over_the_window_demotes() -> None:
    schedule = replace(
        SCHEDULE,
        promotion=PromotionRule(min_included=100),
        demotion=DemotionRule(window=10, floor_ratio_bps=5_000),
    )
    good_then_bad = [*bundles(20, 100, 100, ENTERED), *bundles(10, 100, 49, T0 - timedelta(days=1))]
    history = at(2, bundles=good_then_bad)
    down = evaluate_stage(history, schedule, NOW)
    assert (down.action, down.to_stage) == ("demote", 1)
    assert "4900 bps" in down.reason
    assert down.evidence["included"] == 10
    at_floor = replace(history, bundles=bundles(10, 100, 50, ENTERED))
    assert evaluate_stage(at_floor, schedule, NOW).action == "stay"
    not_full = replace(history, bundles=bundles(9, 100, -100, ENTERED))
    assert evaluate_stage(not_full, schedule, NOW).action == "stay"
    gone = evaluate_stage(replace(history, stage=7), schedule, NOW)
    assert (gone.action, gone.to_stage) == ("demote", 3)


def test_ratio_in_basis_points() -> None:
    assert ratio_bps(9, 10) == 9000
    assert ratio_bps(-1, 10) == -1000
    assert ratio_bps(5, 0) is None


# --- settings ---------------------------------------------------------------------------------


def test_risk_settings_defaults_and_validation() -> None:
    settings = RiskSettings()
    assert settings.schedule() == default_schedule()
    assert settings.limits() == Limits()
    custom = RiskSettings(
        max_input={WETH.lower(): ETH, "*": 10},
        stages=[{"mode": "shadow"}, {"mode": "scaled", "max_input": {"*": 5}}],
        demote_on_breach="shadow",
    )
    assert custom.limits().max_input == {WETH: ETH, "*": 10}
    assert [s.mode for s in custom.schedule().stages] == ["shadow", "scaled"]
    assert custom.schedule().demotion.on_breach == "shadow"
    with pytest.raises(ValidationError, match="neither a 20-byte hex address"):
        RiskSettings(max_input={"WETH": 1})
    with pytest.raises(ValidationError, match="starts with a shadow"):
        RiskSettings(stages=[{"mode": "limited"}])
    with pytest.raises(ValidationError, match=">= 0"):
        RiskSettings(max_input={"*": -1})
