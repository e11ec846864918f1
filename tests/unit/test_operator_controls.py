"""Operators lower risk, never raise it: the mode ceiling and limits they set, against the
configured ones, both when they are set (refused) and when the engine reads them (tightened)."""

from __future__ import annotations

import pytest

from arbx.domain.limits import Limits, configured_bound, limits_refusal, tightened
from arbx.domain.modes import MODES, Mode, mode_ceiling, mode_refusal
from arbx.domain.stages import default_schedule, stage_limits

WETH = "0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2"
USDC = "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48"
CONFIGURED = Limits(
    max_input={WETH: 10**18},
    daily_gas_cap_wei=5 * 10**16,
    daily_loss_cap_wei=10**17,
    max_consecutive_failures=5,
)


@pytest.mark.parametrize("configured", MODES)
@pytest.mark.parametrize("operator", [*MODES, None])
def test_the_ceiling_in_force_is_never_above_the_configured_mode(
    configured: Mode, operator: Mode | None
) -> None:
    ceiling = mode_ceiling(configured, operator)
    assert MODES.index(ceiling) <= MODES.index(configured)
    if operator is not None:
        assert MODES.index(ceiling) <= MODES.index(operator)
    refused = operator is not None and MODES.index(operator) > MODES.index(configured)
    assert (mode_refusal(configured, operator or configured) is not None) is refused


def test_limited_cannot_become_scaled() -> None:
    assert mode_ceiling("limited", "scaled") == "limited"
    assert mode_ceiling("scaled", "limited") == "limited"
    why = mode_refusal("limited", "scaled")
    assert why is not None
    assert "above the configured mode limited" in why


def test_limits_above_the_configured_ones_are_refused_one_by_one() -> None:
    assert limits_refusal(CONFIGURED, CONFIGURED) is None
    lower = Limits({WETH: 1}, 1, 1, 1)
    assert limits_refusal(lower, CONFIGURED) is None
    cases = {
        "input cap 1000000000000000001": Limits({WETH: 10**18 + 1}, 1, 1, 1),
        "daily_gas_cap_wei": Limits({WETH: 1}, 5 * 10**16 + 1, 1, 1),
        "daily_loss_cap_wei": Limits({WETH: 1}, 1, 10**17 + 1, 1),
        "max_consecutive_failures 6": Limits({WETH: 1}, 1, 1, 6),
        # A cap for a token the settings leave closed would open it; '*' reaches WETH too.
        "the settings allow no trade": Limits({USDC: 1}, 1, 1, 1),
        "for any base token ('*')": Limits({"*": 1}, 1, 1, 1),
    }
    for expected, limits in cases.items():
        why = limits_refusal(limits, CONFIGURED)
        assert why is not None
        assert expected in why, why


def test_the_bound_takes_input_caps_the_settings_lack_from_the_highest_stage() -> None:
    stages = [s.max_input for s in default_schedule().stages]
    bound = configured_bound(Limits(max_input={WETH: 10**17}), stages)
    assert bound.input_cap(WETH) == 10**17  # the settings' own cap wins
    assert bound.input_cap(USDC) == 10**19  # else the highest stage's ('*' at scaled 10)
    assert limits_refusal(Limits({USDC: 10**19}), bound) is None
    why = limits_refusal(Limits({USDC: 10**19 + 1}), bound)
    assert why is not None
    assert "above the configured 10000000000000000000" in why


def test_stored_controls_never_loosen_the_settings_at_run_time() -> None:
    operator = Limits(
        max_input={"*": 5 * 10**18, USDC: 7},
        daily_gas_cap_wei=10**30,
        daily_loss_cap_wei=1,
        max_consecutive_failures=99,
    )
    merged = tightened(operator, CONFIGURED)
    assert merged.input_cap(WETH) == 10**18  # the operators' '*' cannot pass the WETH cap
    assert merged.input_cap(USDC) == 7  # no configured cap: the stage's still applies below
    assert merged.daily_gas_cap_wei == 5 * 10**16
    assert merged.daily_loss_cap_wei == 1
    assert merged.max_consecutive_failures == 5
    assert tightened(None, CONFIGURED) == CONFIGURED
    closed = tightened(Limits(max_input={USDC: 7}), CONFIGURED)
    assert closed.input_cap(WETH) is None  # left out by the operators: closed
    stage = default_schedule().stages[1]
    assert stage_limits(merged, stage).input_cap(USDC) == 7
    assert stage_limits(tightened(Limits({"*": 10**30}), Limits()), stage).input_cap(USDC) == 10**17
