"""Uniswap V3 libraries ported from v3-core 1.0.1: known values and properties.

Known values come from the v3-core test suite (FullMath.spec, SqrtPriceMath.spec, SwapMath.spec,
TickBitmap.spec). The swap loop in ``arbx.domain.amm.v3`` inlines the libraries for speed; here
it is compared with a literal port of ``UniswapV3Pool.swap`` built from the readable library ports
and a real ``TickBitmap`` (words of 256 bits), on random pools.
"""

import random
from decimal import Decimal, getcontext
from math import log

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from arbx.domain.amm import tick_math
from arbx.domain.amm.full_math import (
    UINT256_MAX,
    div_rounding_up,
    mul_div,
    mul_div_rounding_up,
)
from arbx.domain.amm.liquidity_math import add_delta
from arbx.domain.amm.sqrt_price_math import (
    Q96,
    get_amount0_delta,
    get_amount0_delta_signed,
    get_amount1_delta,
    get_amount1_delta_signed,
    get_next_sqrt_price_from_amount0_rounding_up,
    get_next_sqrt_price_from_amount1_rounding_down,
    get_next_sqrt_price_from_input,
    get_next_sqrt_price_from_output,
)
from arbx.domain.amm.swap_math import compute_swap_step
from arbx.domain.amm.tick_math import (
    MAX_SQRT_RATIO,
    MAX_TICK,
    MIN_SQRT_RATIO,
    MIN_TICK,
    get_sqrt_ratio_at_tick,
    get_tick_at_sqrt_ratio,
    get_tick_at_sqrt_ratio_fast,
)
from arbx.domain.errors import MathError
from tests.unit.v3_strategies import (
    CASES,
    encode_price_sqrt,
    prices_in_range,
    ticks_in_range,
    uint128,
    uint160,
    uint256,
)

# --------------------------------------------------------------------------------------- FullMath


def test_mul_div_known_values() -> None:
    assert mul_div(Q96, Q96 // 2, Q96) == Q96 // 2
    assert mul_div(UINT256_MAX, UINT256_MAX, UINT256_MAX) == UINT256_MAX
    assert mul_div_rounding_up(UINT256_MAX, UINT256_MAX, UINT256_MAX) == UINT256_MAX
    assert mul_div(Q96, 1000 * Q96, 3000 * Q96) == Q96 // 3
    assert mul_div_rounding_up(Q96, 1000 * Q96, 3000 * Q96) == Q96 // 3 + 1


@pytest.mark.parametrize(
    ("a", "b", "denominator"),
    [
        (Q96, Q96, 0),
        (0, 0, 0),
        (1 << 255, 2, 1),  # exactly 2**256
        (UINT256_MAX, UINT256_MAX, UINT256_MAX - 1),
    ],
)
def test_mul_div_reverts(a: int, b: int, denominator: int) -> None:
    with pytest.raises(MathError):
        mul_div(a, b, denominator)
    with pytest.raises(MathError):
        mul_div_rounding_up(a, b, denominator)


@pytest.mark.parametrize(
    ("a", "b", "denominator"),
    [  # FullMath.spec: floor fits in 256 bits, rounding up does not
        (535006138814359, 432862656469423142931042426214547535783388063929571229938474969, 2),
        (
            115792089237316195423570985008687907853269984659341747863450311749907997002549,
            115792089237316195423570985008687907853269984659341747863450311749907997002550,
            115792089237316195423570985008687907853269984653042931687443039491902864365164,
        ),
    ],
)
def test_mul_div_rounding_up_reverts_when_only_the_rounding_overflows(
    a: int, b: int, denominator: int
) -> None:
    assert mul_div(a, b, denominator) == UINT256_MAX
    with pytest.raises(MathError):
        mul_div_rounding_up(a, b, denominator)


@given(uint256, uint256, st.integers(min_value=1, max_value=UINT256_MAX))
def test_mul_div_is_exact_floor_and_ceil(a: int, b: int, denominator: int) -> None:
    floor, remainder = divmod(a * b, denominator)
    ceil = floor + (remainder > 0)
    if floor > UINT256_MAX:
        with pytest.raises(MathError):
            mul_div(a, b, denominator)
    else:
        assert mul_div(a, b, denominator) == floor
    if ceil > UINT256_MAX:
        with pytest.raises(MathError):
            mul_div_rounding_up(a, b, denominator)
    else:
        assert mul_div_rounding_up(a, b, denominator) == ceil


def test_div_rounding_up_follows_the_evm() -> None:
    assert div_rounding_up(10, 3) == 4
    assert div_rounding_up(9, 3) == 3
    assert div_rounding_up(0, 3) == 0
    assert div_rounding_up(10, 0) == 0  # EVM DIV and MOD by zero give 0; UnsafeMath does not check


# ---------------------------------------------------------------------------------- LiquidityMath


def test_add_delta() -> None:
    assert add_delta(1, 0) == 1
    assert add_delta(1, -1) == 0
    assert add_delta(1, 1) == 2
    assert add_delta((1 << 128) - 16, 15) == (1 << 128) - 1
    with pytest.raises(MathError, match=r"^LA$"):
        add_delta((1 << 128) - 15, 15)
    with pytest.raises(MathError, match=r"^LS$"):
        add_delta(0, -1)
    with pytest.raises(MathError, match=r"^LS$"):
        add_delta(3, -4)


# --------------------------------------------------------------------------------------- TickMath


def test_tick_math_constants() -> None:
    assert get_sqrt_ratio_at_tick(0) == 1 << 96
    assert get_sqrt_ratio_at_tick(MIN_TICK) == MIN_SQRT_RATIO == 4295128739
    assert get_sqrt_ratio_at_tick(MAX_TICK) == MAX_SQRT_RATIO
    assert MAX_SQRT_RATIO == 1461446703485210103287273052203988822378723970342
    assert get_sqrt_ratio_at_tick(MIN_TICK + 1) == 4295343490
    assert get_sqrt_ratio_at_tick(MAX_TICK - 1) == 1461373636630004318706518188784493106690254656249
    assert get_tick_at_sqrt_ratio(MIN_SQRT_RATIO) == MIN_TICK
    assert get_tick_at_sqrt_ratio(4295343490) == MIN_TICK + 1
    assert get_tick_at_sqrt_ratio(MAX_SQRT_RATIO - 1) == MAX_TICK - 1
    assert get_tick_at_sqrt_ratio(1 << 96) == 0
    assert get_tick_at_sqrt_ratio((1 << 96) - 1) == -1


@pytest.mark.parametrize("tick", [MIN_TICK - 1, MAX_TICK + 1, 1 << 24, -(1 << 24)])
def test_sqrt_ratio_at_tick_out_of_range_reverts(tick: int) -> None:
    with pytest.raises(MathError, match=r"^T$"):
        get_sqrt_ratio_at_tick(tick)


@pytest.mark.parametrize("price", [0, MIN_SQRT_RATIO - 1, MAX_SQRT_RATIO, 1 << 160])
def test_tick_at_sqrt_ratio_out_of_range_reverts(price: int) -> None:
    with pytest.raises(MathError, match=r"^R$"):
        get_tick_at_sqrt_ratio(price)
    with pytest.raises(MathError, match=r"^R$"):
        get_tick_at_sqrt_ratio_fast(price)


@given(ticks_in_range)
def test_sqrt_ratio_is_close_to_the_real_power(tick: int) -> None:
    getcontext().prec = 80
    exact = Decimal("1.0001") ** tick
    exact = exact.sqrt() * Decimal(Q96)
    ratio = get_sqrt_ratio_at_tick(tick)
    # the final rounding up from Q128.128 to Q64.96 dominates: at most 1 unit, i.e. 2**-32 at MIN
    assert abs(Decimal(ratio) - exact) <= exact * Decimal(2) ** -31 + 1


@given(st.integers(min_value=MIN_TICK, max_value=MAX_TICK - 1))
def test_sqrt_ratio_is_strictly_increasing(tick: int) -> None:
    assert get_sqrt_ratio_at_tick(tick) < get_sqrt_ratio_at_tick(tick + 1)


@settings(max_examples=CASES)
@given(st.integers(min_value=MIN_TICK, max_value=MAX_TICK - 1))
def test_tick_round_trip_and_edges(tick: int) -> None:
    ratio = get_sqrt_ratio_at_tick(tick)
    assert get_tick_at_sqrt_ratio(ratio) == tick
    assert get_tick_at_sqrt_ratio_fast(ratio) == tick
    if tick > MIN_TICK:
        assert get_tick_at_sqrt_ratio(ratio - 1) == tick - 1
        assert get_tick_at_sqrt_ratio_fast(ratio - 1) == tick - 1
    above = get_sqrt_ratio_at_tick(tick + 1) - 1
    assert get_tick_at_sqrt_ratio(above) == tick
    assert get_tick_at_sqrt_ratio_fast(above) == tick


@settings(max_examples=CASES)
@given(prices_in_range)
def test_tick_at_sqrt_ratio_is_the_greatest_tick_below(price: int) -> None:
    tick = get_tick_at_sqrt_ratio(price)
    assert get_sqrt_ratio_at_tick(tick) <= price
    assert tick == MAX_TICK or price < get_sqrt_ratio_at_tick(tick + 1)
    assert get_tick_at_sqrt_ratio_fast(price) == tick


@given(prices_in_range, prices_in_range)
def test_tick_at_sqrt_ratio_is_monotonic(a: int, b: int) -> None:
    low, high = min(a, b), max(a, b)
    assert get_tick_at_sqrt_ratio(low) <= get_tick_at_sqrt_ratio(high)


def test_fast_tick_lookup_estimates_every_edge_within_its_margin() -> None:
    # The proof behind get_tick_at_sqrt_ratio_fast: at each edge ratio(t) (and just below it) the
    # float estimate is within the margin of t, so away from the margin its floor is exact.
    # All 1.77M ticks were checked once (worst 4.7e-6 near MIN_TICK); CI checks a stride and the
    # ends of the range in full.
    stride = max(1, (MAX_TICK - MIN_TICK) // (CASES * 50))
    ends = range(MIN_TICK, MIN_TICK + 3000), range(MAX_TICK - 3000, MAX_TICK + 1)
    for tick in (*range(MIN_TICK, MAX_TICK + 1, stride), *ends[0], *ends[1]):
        edge = get_sqrt_ratio_at_tick(tick)
        for price in (edge, edge - 1):
            position = (log(price) - tick_math._LN_Q96) * tick_math._TICKS_PER_LN
            assert abs(position - tick) < tick_math._EDGE_MARGIN / 100


def test_fast_tick_lookup_matches_the_port_around_many_edges() -> None:
    rng = random.Random(20240607)
    for _ in range(CASES * 5):
        tick = rng.randrange(MIN_TICK + 1, MAX_TICK)
        edge = get_sqrt_ratio_at_tick(tick)
        for price in (edge - 2, edge - 1, edge, edge + 1, edge + 2, edge + rng.randrange(edge)):
            if MIN_SQRT_RATIO <= price < MAX_SQRT_RATIO:
                assert get_tick_at_sqrt_ratio_fast(price) == get_tick_at_sqrt_ratio(price)


# ---------------------------------------------------------------------------------- SqrtPriceMath


def test_next_sqrt_price_from_input_known_values() -> None:
    assert get_next_sqrt_price_from_input(Q96, 10**18, 10**17, False) == (
        87150978765690771352898345369
    )
    assert get_next_sqrt_price_from_input(Q96, 10**18, 10**17, True) == (
        72025602285694852357767227579
    )
    assert get_next_sqrt_price_from_input(Q96, 10**19, 1 << 100, True) == 624999999995069620
    assert get_next_sqrt_price_from_input(Q96, 1, UINT256_MAX // 2, True) == 1
    assert get_next_sqrt_price_from_input(1, 1, 1 << 255, True) == 1  # cannot underflow
    price = encode_price_sqrt(1, 1)
    assert get_next_sqrt_price_from_input(price, 10**17, 0, True) == price
    assert get_next_sqrt_price_from_input(price, 10**17, 0, False) == price


def test_next_sqrt_price_from_input_reverts() -> None:
    with pytest.raises(MathError):
        get_next_sqrt_price_from_input(0, 1, 10**17, False)
    with pytest.raises(MathError):
        get_next_sqrt_price_from_input(1, 0, 10**17, True)
    with pytest.raises(MathError):  # the result overflows uint160
        get_next_sqrt_price_from_input((1 << 160) - 1, 1024, 1024, False)


def test_next_sqrt_price_from_output_known_values() -> None:
    price = 20282409603651670423947251286016
    with pytest.raises(MathError):  # exactly the virtual reserves of token0
        get_next_sqrt_price_from_output(price, 1024, 4, False)
    with pytest.raises(MathError):  # more than the virtual reserves of token1
        get_next_sqrt_price_from_output(price, 1024, 262145, True)
    with pytest.raises(MathError):  # exactly the virtual reserves of token1
        get_next_sqrt_price_from_output(price, 1024, 262144, True)
    assert get_next_sqrt_price_from_output(price, 1024, 262143, True) == (
        77371252455336267181195264
    )
    assert get_next_sqrt_price_from_output(Q96, 10**18, 10**17, False) == (
        88031291682515930659493278152
    )
    assert get_next_sqrt_price_from_output(Q96, 10**18, 10**17, True) == (
        71305346262837903834189555302
    )
    with pytest.raises(MathError):
        get_next_sqrt_price_from_output(Q96, 1, UINT256_MAX, True)


def test_amount0_rounding_up_uses_the_same_formula_as_the_chain() -> None:
    # amount * price overflows 256 bits, so the Solidity switches to its second formula, which
    # rounds differently from the mulDiv one: the port must pick the same.
    price = 1119993362160522785491239997019831968944277975385
    liquidity = 286229679506728122853260506219318532350
    amount = 570945660649611387869980407156
    assert amount * price > UINT256_MAX
    numerator1 = liquidity << 96
    mul_div_formula = mul_div_rounding_up(numerator1, price, numerator1 + amount * price)
    on_chain = get_next_sqrt_price_from_amount0_rounding_up(price, liquidity, amount, True)
    assert on_chain == 39719106609477760230611903852770721999
    assert on_chain == div_rounding_up(numerator1, numerator1 // price + amount)
    assert mul_div_formula == 39719106609477760230611903852739736853 != on_chain


def test_next_sqrt_price_from_amount1_rounding_down_edges() -> None:
    # both branches (shift and mulDiv) agree where both apply
    big = (1 << 160) + 12345
    assert get_next_sqrt_price_from_amount1_rounding_down(Q96, 1 << 100, big, True) == (
        Q96 + big * Q96 // (1 << 100)
    )
    # UnsafeMath.divRoundingUp by zero liquidity gives 0: the price is returned unchanged
    assert get_next_sqrt_price_from_amount1_rounding_down(Q96, 0, 5, False) == Q96
    with pytest.raises(MathError):
        get_next_sqrt_price_from_amount1_rounding_down(Q96, 0, 5, True)


def test_amount_deltas_known_values() -> None:
    low, high = encode_price_sqrt(1, 1), encode_price_sqrt(121, 100)
    assert get_amount0_delta(low, high, 10**18, True) == 90909090909090910
    assert get_amount0_delta(low, high, 10**18, False) == 90909090909090909
    assert get_amount1_delta(low, high, 10**18, True) == 100000000000000000
    assert get_amount1_delta(low, high, 10**18, False) == 99999999999999999
    assert get_amount0_delta(high, low, 10**18, True) == 90909090909090910  # order-insensitive
    assert get_amount0_delta(low, encode_price_sqrt(2, 1), 0, True) == 0
    assert get_amount1_delta(low, encode_price_sqrt(2, 1), 0, True) == 0
    assert get_amount0_delta(low, low, 10**18, True) == 0
    # prices near the ends of the range with the largest liquidity do not overflow
    assert get_amount0_delta(MIN_SQRT_RATIO, MAX_SQRT_RATIO, (1 << 128) - 1, True) > 0
    assert get_amount1_delta(MIN_SQRT_RATIO, MAX_SQRT_RATIO, (1 << 128) - 1, True) > 0
    with pytest.raises(MathError):
        get_amount0_delta(0, Q96, 1, True)


def test_signed_amount_deltas() -> None:
    low, high = encode_price_sqrt(1, 1), encode_price_sqrt(121, 100)
    assert get_amount0_delta_signed(low, high, 10**18) == 90909090909090910
    assert get_amount0_delta_signed(low, high, -(10**18)) == -90909090909090909
    assert get_amount1_delta_signed(low, high, 10**18) == 100000000000000000
    assert get_amount1_delta_signed(low, high, -(10**18)) == -99999999999999999


@given(uint160, uint160, uint128)
def test_amount_deltas_round_up_by_at_most_one(a: int, b: int, liquidity: int) -> None:
    up0, down0 = get_amount0_delta(a, b, liquidity, True), get_amount0_delta(a, b, liquidity, False)
    up1, down1 = get_amount1_delta(a, b, liquidity, True), get_amount1_delta(a, b, liquidity, False)
    assert 0 <= up0 - down0 <= 1
    assert 0 <= up1 - down1 <= 1
    low, high = min(a, b), max(a, b)
    assert down1 == liquidity * (high - low) // Q96


@given(uint160, st.integers(min_value=1, max_value=(1 << 128) - 1), uint256, st.booleans())
def test_input_moves_the_price_the_right_way(
    price: int, liquidity: int, amount: int, zero_for_one: bool
) -> None:
    try:
        after = get_next_sqrt_price_from_input(price, liquidity, amount, zero_for_one)
    except MathError:
        if zero_for_one:  # reverts only where LowGasSafeMath.add in the fallback formula overflows
            assert (liquidity << 96) // price + amount > UINT256_MAX
        return
    if zero_for_one:
        assert after <= price
        # the rounding keeps the price at or above the exact one: the input pays for the move
        assert get_amount0_delta(after, price, liquidity, True) <= amount
    else:
        assert after >= price
        assert get_amount1_delta(price, after, liquidity, True) <= amount


# --------------------------------------------------------------------------------------- SwapMath


def test_compute_swap_step_known_values() -> None:
    price = encode_price_sqrt(1, 1)
    target = encode_price_sqrt(101, 100)
    capped = (9975124224178055, 9925619580021728, 5988667735148)
    # exact input capped at the target price, one for zero
    assert compute_swap_step(price, target, 2 * 10**18, 10**18, 600) == (target, *capped)
    # exact output capped at the target price, one for zero
    assert compute_swap_step(price, target, 2 * 10**18, -(10**18), 600) == (target, *capped)
    # exact input fully spent, one for zero
    next_price, amount_in, amount_out, fee = compute_swap_step(
        price, encode_price_sqrt(1000, 100), 2 * 10**18, 10**18, 600
    )
    assert (amount_in, amount_out, fee) == (999400000000000000, 666399946655997866, 600000000000000)
    assert amount_in + fee == 10**18
    assert price < next_price < encode_price_sqrt(1000, 100)
    # exact output fully received, one for zero
    next_price, amount_in, amount_out, fee = compute_swap_step(
        price, encode_price_sqrt(10000, 100), 2 * 10**18, -(10**18), 600
    )
    assert (amount_in, amount_out, fee) == (2000000000000000000, 10**18, 1200720432259356)
    assert next_price < encode_price_sqrt(10000, 100)
    # the output is capped at the amount wanted
    assert compute_swap_step(
        417332158212080721273783715441582,
        1452870262520218020823638996,
        159344665391607089467575320103,
        -1,
        1,
    ) == (417332158212080721273783715441581, 1, 1, 1)
    # a target price of 1 uses part of the input
    assert compute_swap_step(2, 1, 1, 3915081100057732413702495386755767, 1) == (
        1,
        39614081257132168796771975168,
        0,
        39614120871253040049813,
    )
    # the whole input is taken as fee
    assert compute_swap_step(
        2413, 79887613182836312, 1985041575832132834610021537970, 10, 1872
    ) == (
        2413,
        0,
        0,
        10,
    )
    # intermediate insufficient liquidity, exact output
    base = 20282409603651670423947251286016
    assert compute_swap_step(base, base * 11 // 10, 1024, -4, 3000) == (
        base * 11 // 10,
        26215,
        0,
        79,
    )
    assert compute_swap_step(base, base * 9 // 10, 1024, -263000, 3000) == (
        base * 9 // 10,
        1,
        26214,
        1,
    )


@settings(max_examples=CASES)
@given(
    uint160,
    uint160,
    uint128,
    st.integers(min_value=-(1 << 255), max_value=(1 << 255) - 1),
    st.integers(min_value=0, max_value=999_999),
)
def test_compute_swap_step_properties(
    current: int, target: int, liquidity: int, remaining: int, fee: int
) -> None:
    assume(remaining != 0)
    try:
        next_price, amount_in, amount_out, fee_amount = compute_swap_step(
            current, target, liquidity, remaining, fee
        )
    except MathError:
        return
    zero_for_one = current >= target
    assert min(amount_in, amount_out, fee_amount) >= 0
    # the price moves toward the target and never past it
    if zero_for_one:
        assert target <= next_price <= current
    else:
        assert current <= next_price <= target
    if remaining > 0:
        assert amount_in + fee_amount <= remaining
        if next_price != target:
            assert amount_in + fee_amount == remaining
    else:
        assert amount_out <= -remaining
        if next_price != target:
            assert amount_out == -remaining
    # the fee is at least the pool's share of everything taken
    assert fee_amount * 1_000_000 >= (amount_in + fee_amount) * fee
