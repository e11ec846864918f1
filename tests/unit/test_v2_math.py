"""Uniswap V2 math against UniswapV2Library's formulas and the pair's K check."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from arbx.domain.amm.v2 import fee_fraction, get_amount_in, get_amount_out, min_amount_in
from arbx.domain.errors import MathError

R112 = st.integers(1_000, 2**112 - 1)
FEES = st.sampled_from([0, 5, 25, 30, 100, 300])


def k_accepts(x: int, y: int, r_in: int, r_out: int, fee_bps: int) -> bool:
    """UniswapV2Pair.swap's K check after sending x in and taking y out."""
    gamma, den = fee_fraction(fee_bps)
    if not 0 < y < r_out:
        return False
    bal_in, bal_out = r_in + x, r_out - y
    adjusted_in = bal_in * den - x * (den - gamma)
    return adjusted_in * bal_out * den >= r_in * r_out * den * den


def test_known_value() -> None:
    # 1 WETH into a 100 WETH / 200,000 USDC pair
    assert get_amount_out(10**18, 100 * 10**18, 200_000 * 10**6) == 1974316068
    assert get_amount_in(1974316068, 100 * 10**18, 200_000 * 10**6) <= 10**18


def test_uniswap_fee_is_997_over_1000() -> None:
    assert fee_fraction(30) == (997, 1000)
    assert fee_fraction(25) == (9975, 10_000)


@given(st.integers(1, 2**100), R112, R112, FEES)
def test_amount_out_is_the_most_the_pair_gives(x: int, r_in: int, r_out: int, fee: int) -> None:
    y = get_amount_out(x, r_in, r_out, fee)
    if y > 0:
        assert k_accepts(x, y, r_in, r_out, fee)
    assert not k_accepts(x, y + 1, r_in, r_out, fee)


@given(st.integers(1, 2**100), R112, R112, FEES)
def test_min_amount_in_is_least(y_seed: int, r_in: int, r_out: int, fee: int) -> None:
    y = 1 + y_seed % (r_out - 1)
    x = min_amount_in(y, r_in, r_out, fee)
    assert x > 0
    assert k_accepts(x, y, r_in, r_out, fee)
    assert not k_accepts(x - 1, y, r_in, r_out, fee)
    assert get_amount_out(x, r_in, r_out, fee) >= y
    router = get_amount_in(y, r_in, r_out, fee)
    assert router in (x, x + 1)


@pytest.mark.parametrize(
    "call",
    [
        lambda: get_amount_out(0, 10, 10),
        lambda: get_amount_out(1, 0, 10),
        lambda: get_amount_in(10, 10, 10),
        lambda: get_amount_in(0, 10, 10),
        lambda: get_amount_out(2**250, 2**100, 2**100),
    ],
)
def test_reverts(call: object) -> None:
    with pytest.raises(MathError):
        call()  # type: ignore[operator]
