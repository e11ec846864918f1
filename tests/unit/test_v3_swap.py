"""Uniswap V3 TickBitmap emulation and the swap loop, against a literal port of the pool.

The swap loop in ``arbx.domain.amm.v3`` inlines the libraries for speed; here it is compared
with a literal port of ``UniswapV3Pool.swap`` built from the readable library ports and a real
``TickBitmap`` (words of 256 bits), on random pools. Known TickBitmap values come from the
v3-core test suite (TickBitmap.spec).
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from arbx.domain.amm.liquidity_math import add_delta
from arbx.domain.amm.sqrt_price_math import (
    get_amount1_delta,
)
from arbx.domain.amm.swap_math import compute_swap_step
from arbx.domain.amm.tick_math import (
    MAX_SQRT_RATIO,
    MAX_TICK,
    MIN_SQRT_RATIO,
    MIN_TICK,
    get_sqrt_ratio_at_tick,
    get_tick_at_sqrt_ratio,
)
from arbx.domain.amm.v3 import (
    Ladder,
    V3SwapResult,
    marginal_virtual_reserves,
    next_initialized_tick_within_one_word,
    swap,
    unlimited,
)
from arbx.domain.errors import MathError
from tests.unit.v3_strategies import CASES, encode_price_sqrt

# ------------------------------------------------------------------------------------- TickBitmap


@dataclass
class Bitmap:
    """A literal TickBitmap: mapping(int16 => uint256) with the Solidity's bit search."""

    words: dict[int, int] = field(default_factory=dict)

    def flip(self, tick: int, spacing: int) -> None:
        assert tick % spacing == 0
        compressed = tick // spacing
        self.words[compressed >> 8] = self.words.get(compressed >> 8, 0) ^ (1 << (compressed & 255))

    def next_within_one_word(self, tick: int, spacing: int, lte: bool) -> tuple[int, bool]:
        compressed = int(tick / spacing)  # Solidity division truncates toward zero ...
        if tick < 0 and tick % spacing != 0:
            compressed -= 1  # ... and the pool rounds toward negative infinity
        if lte:
            word_pos, bit_pos = compressed >> 8, compressed & 255
            masked = self.words.get(word_pos, 0) & ((1 << bit_pos) - 1 + (1 << bit_pos))
            if masked:
                return (compressed - (bit_pos - (masked.bit_length() - 1))) * spacing, True
            return (compressed - bit_pos) * spacing, False
        word_pos, bit_pos = (compressed + 1) >> 8, (compressed + 1) & 255
        masked = self.words.get(word_pos, 0) & ~((1 << bit_pos) - 1)
        if masked:
            lsb = (masked & -masked).bit_length() - 1
            return (compressed + 1 + (lsb - bit_pos)) * spacing, True
        return (compressed + 1 + (255 - bit_pos)) * spacing, False


def test_next_initialized_tick_v3_core_cases() -> None:
    ticks = (-200, -55, -4, 70, 78, 84, 139, 240, 535)
    search = next_initialized_tick_within_one_word
    # lte = false
    assert search(ticks, 78, 1, False) == (84, True)
    assert search(ticks, -55, 1, False) == (-4, True)
    assert search(ticks, 77, 1, False) == (78, True)
    assert search(ticks, -56, 1, False) == (-55, True)
    assert search(ticks, 255, 1, False) == (511, False)
    assert search(ticks, -257, 1, False) == (-200, True)
    assert search(ticks, 508, 1, False) == (511, False)
    assert search(ticks, 511, 1, False) == (535, True)
    assert search(ticks, 1000, 1, False) == (1023, False)
    # lte = true
    assert search(ticks, 78, 1, True) == (78, True)
    assert search(ticks, 79, 1, True) == (78, True)
    assert search(ticks, 258, 1, True) == (256, False)
    assert search(ticks, 256, 1, True) == (256, False)
    assert search(ticks, 72, 1, True) == (70, True)
    assert search(ticks, -257, 1, True) == (-512, False)
    assert search(ticks, 1023, 1, True) == (768, False)
    assert search(ticks, 900, 1, True) == (768, False)
    assert search(ticks, -201, 1, True) == (-256, False)  # rounds toward -inf into its own word


@settings(max_examples=CASES)
@given(
    st.sampled_from([1, 10, 60, 200]),
    st.lists(st.integers(min_value=-3000, max_value=3000), max_size=30),
    st.integers(min_value=-800_000, max_value=800_000),
    st.booleans(),
)
def test_next_initialized_tick_matches_a_real_bitmap(
    spacing: int, compressed: list[int], tick: int, lte: bool
) -> None:
    ticks = tuple(sorted({c * spacing for c in compressed}))
    bitmap = Bitmap()
    for t in ticks:
        bitmap.flip(t, spacing)
    near = [tick]
    if ticks:
        near += [ticks[len(ticks) // 2] + d for d in (-spacing, -1, 0, 1, spacing)]
    for start in near:
        expected = bitmap.next_within_one_word(start, spacing, lte)
        assert next_initialized_tick_within_one_word(ticks, start, spacing, lte) == expected


# ----------------------------------------------------------------------- UniswapV3Pool.swap oracle


def reference_swap(
    sqrt_price_x96: int,
    tick: int,
    liquidity: int,
    fee: int,
    spacing: int,
    ticks: tuple[int, ...],
    liquidity_net: dict[int, int],
    zero_for_one: bool,
    amount_specified: int,
    limit: int,
) -> V3SwapResult:
    """UniswapV3Pool.swap, statement by statement, on the readable library ports."""
    if amount_specified == 0:
        raise MathError("AS")
    if zero_for_one:
        if not (MIN_SQRT_RATIO < limit < sqrt_price_x96):
            raise MathError("SPL")
    elif not (sqrt_price_x96 < limit < MAX_SQRT_RATIO):
        raise MathError("SPL")
    bitmap = Bitmap()
    for t in ticks:
        bitmap.flip(t, spacing)
    exact_input = amount_specified > 0
    remaining, calculated = amount_specified, 0
    price, crossed = sqrt_price_x96, 0
    while remaining != 0 and price != limit:
        start = price
        tick_next, initialized = bitmap.next_within_one_word(tick, spacing, zero_for_one)
        tick_next = min(max(tick_next, MIN_TICK), MAX_TICK)
        price_next = get_sqrt_ratio_at_tick(tick_next)
        passes_limit = price_next < limit if zero_for_one else price_next > limit
        price, amount_in, amount_out, fee_amount = compute_swap_step(
            price, limit if passes_limit else price_next, liquidity, remaining, fee
        )
        if exact_input:
            remaining -= amount_in + fee_amount
            calculated -= amount_out
        else:
            remaining += amount_out
            calculated += amount_in + fee_amount
        if price == price_next:
            if initialized:
                net = liquidity_net[tick_next]
                liquidity = add_delta(liquidity, -net if zero_for_one else net)
                crossed += 1
            tick = tick_next - 1 if zero_for_one else tick_next
        elif price != start:
            tick = get_tick_at_sqrt_ratio(price)
    if zero_for_one == exact_input:
        amount0, amount1 = amount_specified - remaining, calculated
    else:
        amount0, amount1 = calculated, amount_specified - remaining
    amount_in, amount_out = (amount0, -amount1) if zero_for_one else (amount1, -amount0)
    return V3SwapResult(amount_in, amount_out, price, tick, liquidity, remaining != 0, crossed)


@dataclass(frozen=True)
class Pool:
    sqrt_price_x96: int
    tick: int
    liquidity: int
    fee: int
    spacing: int
    ticks: tuple[int, ...]
    liquidity_net: dict[int, int]


@st.composite
def pools(draw: st.DrawFn) -> Pool:
    """Random pools built from positions, so ticks, nets and in-range liquidity are consistent."""
    spacing = draw(st.sampled_from([1, 10, 60, 200]))
    fee = draw(st.sampled_from([0, 100, 500, 3000, 10000, 999_999]))
    usable_low, usable_high = -(-MIN_TICK // spacing), MAX_TICK // spacing
    center = draw(st.integers(min_value=usable_low, max_value=usable_high))
    width = draw(st.sampled_from([3, 30, 300, 3000, 10**6]))
    positions = draw(
        st.lists(
            st.tuples(
                st.integers(min_value=center - width, max_value=center + width),
                st.integers(min_value=1, max_value=width),
                st.integers(
                    min_value=1, max_value=(1 << draw(st.sampled_from([20, 64, 100, 120])))
                ),
            ),
            min_size=1,
            max_size=12,
        )
    )
    nets: dict[int, int] = {}
    spans = []
    for lower_c, span, amount in positions:
        lower = max(lower_c, usable_low) * spacing
        upper = min(lower_c + span, usable_high) * spacing
        if lower >= upper:
            continue
        nets[lower] = nets.get(lower, 0) + amount
        nets[upper] = nets.get(upper, 0) - amount
        spans.append((lower, upper, amount))
    choice = draw(st.integers(min_value=0, max_value=3))
    on_ticks = [tick for tick in sorted(nets) if tick < MAX_TICK]
    if on_ticks and choice == 0:
        price = get_sqrt_ratio_at_tick(draw(st.sampled_from(on_ticks)))  # exactly on a tick
    elif spans and choice == 1:
        lower, upper, _ = draw(st.sampled_from(spans))  # inside a position
        low, high = get_sqrt_ratio_at_tick(lower), get_sqrt_ratio_at_tick(upper)
        price = draw(st.integers(min_value=low, max_value=min(high, MAX_SQRT_RATIO) - 1))
    else:
        low = get_sqrt_ratio_at_tick(max((center - width) * spacing, MIN_TICK))
        high = get_sqrt_ratio_at_tick(min((center + width) * spacing, MAX_TICK))
        price = draw(st.integers(min_value=low, max_value=min(high, MAX_SQRT_RATIO - 1)))
    tick = get_tick_at_sqrt_ratio(price)
    liquidity = sum(amount for lower, upper, amount in spans if lower <= tick < upper)
    return Pool(price, tick, liquidity, fee, spacing, tuple(sorted(nets)), nets)


@st.composite
def swaps(draw: st.DrawFn) -> tuple[Pool, bool, int, int]:
    pool = draw(pools())
    zero_for_one = draw(st.booleans())
    if zero_for_one:
        assume(pool.sqrt_price_x96 > MIN_SQRT_RATIO + 1)
    else:
        assume(pool.sqrt_price_x96 < MAX_SQRT_RATIO - 1)
    bits = draw(st.integers(min_value=0, max_value=254))
    amount = draw(st.integers(min_value=1, max_value=(1 << bits)))
    if draw(st.booleans()):
        amount = -amount
    if draw(st.booleans()):
        limit = MIN_SQRT_RATIO + 1 if zero_for_one else MAX_SQRT_RATIO - 1
    elif zero_for_one:
        limit = draw(st.integers(min_value=MIN_SQRT_RATIO + 1, max_value=pool.sqrt_price_x96 - 1))
    else:
        limit = draw(st.integers(min_value=pool.sqrt_price_x96 + 1, max_value=MAX_SQRT_RATIO - 1))
    return pool, zero_for_one, amount, limit


def pool_state(pool: Pool) -> tuple[int, int, int, int, int, tuple[int, ...], dict[int, int]]:
    """The pool's state as ``swap`` takes it, before the direction and the amount."""
    return (
        pool.sqrt_price_x96,
        pool.tick,
        pool.liquidity,
        pool.fee,
        pool.spacing,
        pool.ticks,
        pool.liquidity_net,
    )


def outcome(call: Callable[[], V3SwapResult]) -> V3SwapResult | str:
    try:
        return call()
    except MathError as error:
        return f"MathError({error})"


@settings(max_examples=CASES * 4, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(swaps())
def test_swap_matches_the_literal_pool_loop(case: tuple[Pool, bool, int, int]) -> None:
    pool, zero_for_one, amount, limit = case
    args = (*pool_state(pool), zero_for_one, amount)
    expected = outcome(lambda: reference_swap(*args, limit))
    assert outcome(lambda: swap(*args, limit)) == expected
    default = MIN_SQRT_RATIO + 1 if zero_for_one else MAX_SQRT_RATIO - 1
    if limit == default:
        assert outcome(lambda: swap(*args)) == expected


def test_swap_takes_the_overflow_formula_of_amount0_rounding_up() -> None:
    price = 1119993362160522785491239997019831968944277975385
    liquidity = 286229679506728122853260506219318532350
    less_fee = 570945660649611387869980407156
    amount = -(-less_fee * 1_000_000 // 997_000)
    assert amount * 997_000 // 1_000_000 == less_fee
    tick = get_tick_at_sqrt_ratio(price)
    # a huge spacing puts the first word edge at tick 0, far beyond where this input stops
    result = swap(price, tick, liquidity, 3000, 8192, (), {}, True, amount)
    assert result.sqrt_price_x96 == 39719106609477760230611903852770721999
    assert not result.partial
    assert result.amount_in == amount
    assert result.amount_out == get_amount1_delta(result.sqrt_price_x96, price, liquidity, False)
    assert result == reference_swap(
        price, tick, liquidity, 3000, 8192, (), {}, True, amount, MIN_SQRT_RATIO + 1
    )


def test_swap_steps_stop_at_word_edges() -> None:
    # No initialized tick at all: the pool still ends a step at every 256-tick word edge, and
    # that rounding is visible in the amounts; a single step to the same price gives another.
    spacing, liquidity, fee = 1, 10**18, 3000
    price = get_sqrt_ratio_at_tick(10_000)
    result = swap(price, 10_000, liquidity, fee, spacing, (), {}, True, 10**17)
    assert result.tick < 10_000 - 256 * 3  # crossed several word edges
    one_step = compute_swap_step(price, result.sqrt_price_x96, liquidity, 10**17, fee)
    assert one_step[0] == result.sqrt_price_x96
    assert (result.amount_in, result.amount_out) != (one_step[1] + one_step[3], one_step[2])
    assert result == reference_swap(
        price, 10_000, liquidity, fee, spacing, (), {}, True, 10**17, MIN_SQRT_RATIO + 1
    )


def test_swap_reverts_like_the_pool() -> None:
    price = get_sqrt_ratio_at_tick(0)
    state = (price, 0, 10**18, 3000, 60, (-60, 60), {-60: 10**18, 60: -(10**18)})
    with pytest.raises(MathError, match=r"^AS$"):
        swap(*state, True, 0)
    with pytest.raises(MathError, match=r"^SPL$"):
        swap(*state, True, 10, price)  # limit must be below the price
    with pytest.raises(MathError, match=r"^SPL$"):
        swap(*state, True, 10, MIN_SQRT_RATIO)
    with pytest.raises(MathError, match=r"^SPL$"):
        swap(*state, False, 10, price)
    with pytest.raises(MathError, match=r"^SPL$"):
        swap(*state, False, 10, MAX_SQRT_RATIO)
    with pytest.raises(MathError, match=r"^LS$"):  # a net that would make liquidity negative
        swap(price, 0, 10**18, 3000, 60, (-60,), {-60: 2 * 10**18}, True, 10**30)


def test_swap_on_a_tick_crosses_it_first() -> None:
    price = get_sqrt_ratio_at_tick(60)
    nets = {0: 5 * 10**18, 60: -(5 * 10**18), 120: 10**18}
    result = swap(price, 60, 0, 3000, 60, (0, 60, 120), nets, True, 1000)
    assert result.ticks_crossed == 1  # 60 is crossed before any input is taken
    assert result.liquidity == 5 * 10**18
    assert 59 >= result.tick >= 0
    assert result.amount_in == 1000
    assert result.amount_out > 0


def test_swap_with_a_price_limit_is_partial() -> None:
    price = get_sqrt_ratio_at_tick(0)
    limit = get_sqrt_ratio_at_tick(-30)
    state = (price, 0, 10**18, 3000, 60, (-60, 60), {-60: 10**18, 60: -(10**18)})
    result = swap(*state, True, 10**20, limit)
    assert result.partial
    assert result.sqrt_price_x96 == limit
    assert result.tick == -30
    assert 0 < result.amount_in < 10**20
    # exact output stopped by the same limit takes and pays exactly the same
    out = swap(*state, True, -(10**20), limit)
    assert out.partial
    assert (out.amount_in, out.amount_out, out.sqrt_price_x96) == (
        result.amount_in,
        result.amount_out,
        result.sqrt_price_x96,
    )
    # without the limit, the same input is used up in full and moves the price a little further
    # (the fee becomes the remainder instead of being rounded up): never less output
    exact = swap(*state, True, result.amount_in)
    assert not exact.partial
    assert exact.amount_in == result.amount_in
    assert exact.sqrt_price_x96 <= result.sqrt_price_x96
    assert exact.amount_out >= result.amount_out


def test_marginal_virtual_reserves() -> None:
    price = encode_price_sqrt(4, 1)  # price 4: token1 reserve is four times token0's
    reserve_in, reserve_out = marginal_virtual_reserves(price, 10**18, True)
    assert reserve_in == (10**18 << 96) // price
    assert reserve_out == 10**18 * price >> 96
    assert abs(reserve_out - 4 * reserve_in) <= 4
    assert marginal_virtual_reserves(price, 10**18, False) == (reserve_out, reserve_in)
    # a small swap trades at the constant-product rate of those reserves
    small = 10**9
    result = swap(price, get_tick_at_sqrt_ratio(price), 10**18, 3000, 60, (), {}, True, small)
    constant_product = small * 997 * reserve_out // (reserve_in * 1000 + small * 997)
    assert abs(result.amount_out - constant_product) <= 2
    with pytest.raises(MathError):
        marginal_virtual_reserves(0, 1, True)


def test_swap_keeps_no_state_between_calls() -> None:
    state = (
        get_sqrt_ratio_at_tick(0),
        0,
        10**18,
        3000,
        60,
        (-60, 60),
        {-60: 10**18, 60: -(10**18)},
    )
    first = swap(*state, True, 10**16)
    assert swap(*state, False, 10**16) != first
    assert swap(*state, True, 10**16) == first


@settings(max_examples=CASES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from([1, 10, 60, 200]),
    st.booleans(),
    st.booleans(),
    st.integers(min_value=-800_000, max_value=800_000),
    st.integers(min_value=0, max_value=3),
    st.data(),
)
def test_swap_past_the_last_tick_drifts_to_the_limit_like_the_pool(
    spacing: int,
    zero_for_one: bool,
    exact_input: bool,
    centre: int,
    limit_kind: int,
    data: st.DataObject,
) -> None:
    # One position around the price; the swap uses it up and the price runs on, with no
    # liquidity, to the limit: the pool steps through every word edge on the way, we jump.
    lower = (centre // spacing - 2) * spacing
    upper = (centre // spacing + 2) * spacing
    nets = {lower: 10**18, upper: -(10**18)}
    price = get_sqrt_ratio_at_tick(centre)
    tick = get_tick_at_sqrt_ratio(price)
    word = 256 * spacing
    if zero_for_one:
        edge = (lower // word - data.draw(st.integers(min_value=1, max_value=200))) * word
        edges = [
            MIN_SQRT_RATIO + 1,
            get_sqrt_ratio_at_tick(max(edge, MIN_TICK + 1)),  # exactly on a word edge
            get_sqrt_ratio_at_tick(max(edge, MIN_TICK + 1)) + 1,
            get_sqrt_ratio_at_tick(max(edge - 7, MIN_TICK + 1)),  # past the edge, off it
        ]
    else:
        edge = (upper // word + data.draw(st.integers(min_value=1, max_value=200))) * word
        edges = [
            MAX_SQRT_RATIO - 1,
            get_sqrt_ratio_at_tick(min(edge, MAX_TICK - 1)),
            get_sqrt_ratio_at_tick(min(edge, MAX_TICK - 1)) - 1,
            get_sqrt_ratio_at_tick(min(edge + 7, MAX_TICK - 1)),
        ]
    limit = edges[limit_kind]
    amount = 2**200 if exact_input else -(2**200)  # more than the position holds
    args = (price, tick, 10**18, 3000, spacing, (lower, upper), nets, zero_for_one, amount)
    got = outcome(lambda: swap(*args, limit))
    assert got == outcome(lambda: reference_swap(*args, limit))
    assert isinstance(got, V3SwapResult)
    assert got.partial
    assert got.sqrt_price_x96 == limit
    assert got.liquidity == 0


@settings(max_examples=CASES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    pools(),
    st.booleans(),
    st.lists(
        st.tuples(st.booleans(), st.integers(min_value=0, max_value=254), st.integers(0, 2**64)),
        min_size=1,
        max_size=12,
    ),
)
def test_swaps_through_a_ladder_match_the_loop(
    pool: Pool, zero_for_one: bool, amounts: list[tuple[bool, int, int]]
) -> None:
    # One ladder per state, shared by swaps of every size in any order, both kinds of amount;
    # the amounts that end exactly on a whole step (and one unit either side) are the edges.
    if zero_for_one:
        assume(pool.sqrt_price_x96 > MIN_SQRT_RATIO + 1)
    else:
        assume(pool.sqrt_price_x96 < MAX_SQRT_RATIO - 1)
    state = pool_state(pool)
    ladders: dict[tuple[bool, bool], Ladder] = {}
    wanted = [(exact_in, max(1, (1 << bits) - low)) for exact_in, bits, low in amounts]
    checked = 0
    while wanted and checked < 60:
        exact_in, amount = wanted.pop(0)
        specified = amount if exact_in else -amount
        expected = outcome(partial(swap, *state, zero_for_one, specified))
        assert outcome(partial(swap, *state, zero_for_one, specified, None, ladders)) == expected
        checked += 1
        ladder = ladders.get((zero_for_one, exact_in))
        if ladder is not None and checked < 12:
            for total in ladder.totals[1:4]:
                wanted += [(exact_in, t) for t in (total - 1, total, total + 1) if t > 0]


def test_a_ladder_walks_each_step_once() -> None:
    # Spacing 1 and no initialized tick: a large swap takes a step per 256-tick word. Later
    # swaps from the same state reuse those steps and give what the loop gives.
    price, liquidity, fee = get_sqrt_ratio_at_tick(10_000), 10**18, 3000
    no_ticks: dict[int, int] = {}
    state = (price, 10_000, liquidity, fee, 1, (), no_ticks)
    ladders: dict[tuple[bool, bool], Ladder] = {}
    big = swap(*state, True, 10**17, None, ladders)
    assert big == swap(*state, True, 10**17)
    ladder = ladders[(True, True)]
    steps = len(ladder.totals)
    assert steps > 3
    assert ladder.totals == sorted(ladder.totals)
    for amount in (1, 10**15, ladder.totals[2], ladder.totals[2] + 1, 10**17 - 1):
        assert swap(*state, True, amount, None, ladders) == swap(*state, True, amount)
    assert len(ladder.totals) == steps  # no step walked twice


@settings(max_examples=CASES * 2, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pools(), st.booleans(), st.booleans(), st.booleans(), st.integers(0, 255), st.integers(0, 9))
def test_unlimited_runs_what_swap_without_a_limit_runs(
    pool: Pool, zero_for_one: bool, exact_in: bool, laddered: bool, bits: int, low: int
) -> None:
    # What sizing calls directly: the same answer as swap, and None exactly where swap reverts
    # for every amount (a price at the extreme, a bad fee); amounts past int256 stay the caller's.
    amount = max(1, (1 << bits) - low)
    assume(amount < 1 << 255)
    specified = amount if exact_in else -amount
    ladders: dict[tuple[bool, bool], Ladder] | None = {} if laddered else None
    expected = outcome(partial(swap, *pool_state(pool), zero_for_one, specified))
    prepared = unlimited(*pool_state(pool), zero_for_one, exact_in, ladders)
    if prepared is None:
        assert expected == "MathError(SPL)"
        return
    run, state, limit = prepared
    if isinstance(expected, str):  # the loop reverts inside a step
        with pytest.raises(MathError, match=expected.removeprefix("MathError(")[:-1]):
            run(state, specified, limit)
        return
    remaining, calculated, price, tick, liquidity, crossed = run(state, specified, limit)
    assert expected.partial == (remaining != 0)
    assert (expected.sqrt_price_x96, expected.tick, expected.liquidity) == (price, tick, liquidity)
    assert expected.ticks_crossed == crossed
    if exact_in:
        assert (expected.amount_in, expected.amount_out) == (amount - remaining, -calculated)
    else:
        assert (expected.amount_in, expected.amount_out) == (calculated, remaining + amount)
    assert laddered == bool(ladders)  # a ladder was kept where one was given
