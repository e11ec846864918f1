"""The Uniswap V3 pool's swap loop (v3-core 1.0.1, ``UniswapV3Pool.swap``), exact and fast.

The state is a plain snapshot: price, tick, in-range liquidity, and the initialized ticks as a
sorted tuple with their ``liquidityNet`` in a mapping. The bitmap walk of
``TickBitmap.nextInitializedTickWithinOneWord`` is emulated with ``bisect``: each step ends at the
next initialized tick *or at the edge of the current 256-tick word of the bitmap*, even when no tick
is initialized there, because the pool does so and a step boundary changes the rounding.

``swap`` inlines ``SwapMath.computeSwapStep`` and the ``SqrtPriceMath`` functions it calls (see
those modules for the readable ports) so that a step allocates nothing. The inlined arithmetic uses
two exact identities: ``ceil(ceil(x / b) / a) == ceil(x / (a * b))`` (and the same for floor), and
``mulDiv(x, y, 2**96) == (x * y) >> 96`` for non-negative operands. The reverts that cannot happen
for valid pool states (uint160/uint256 overflows inside a step) are not re-checked there; the
differential tests compare this loop with one built from the readable ports.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import NamedTuple

from arbx.domain.amm.tick_math import (
    MAX_SQRT_RATIO,
    MAX_TICK,
    MIN_SQRT_RATIO,
    MIN_TICK,
    get_sqrt_ratio_at_tick,
    get_tick_at_sqrt_ratio_fast,
)
from arbx.domain.errors import MathError

_UINT128_LIMIT = 1 << 128
_UINT256_LIMIT = 1 << 256
_FEE_DENOMINATOR = 1_000_000

_NO_TICK_BELOW = -(1 << 30)  # sentinels beyond any tick or word edge
_NO_TICK_ABOVE = 1 << 30

# Step targets repeat (initialized ticks and word edges), so their prices are memoised; a dict
# lookup is cheaper than an lru_cache call. Cleared when full: it only ever holds derived values.
_SQRT_RATIO_CACHE: dict[int, int] = {}
_SQRT_RATIO_CACHE_SIZE = 1 << 16


def _sqrt_ratio_miss(tick: int) -> int:
    if len(_SQRT_RATIO_CACHE) >= _SQRT_RATIO_CACHE_SIZE:
        _SQRT_RATIO_CACHE.clear()
    ratio = _SQRT_RATIO_CACHE[tick] = get_sqrt_ratio_at_tick(tick)
    return ratio


class V3SwapResult(NamedTuple):
    """The outcome of one ``UniswapV3Pool.swap``: amounts as absolute values, and the new state.

    A NamedTuple rather than a frozen dataclass: sizing builds dozens per route, and a frozen
    dataclass's ``__init__`` costs four times as much.
    """

    amount_in: int  # tokens actually taken from the swapper, fee included (>= 0)
    amount_out: int  # tokens paid out (>= 0)
    sqrt_price_x96: int  # pool state after the swap
    tick: int
    liquidity: int
    partial: bool  # True when the price limit stopped the swap before amount_specified was used up
    ticks_crossed: int  # initialized ticks crossed


def next_initialized_tick_within_one_word(
    ticks: Sequence[int], tick: int, tick_spacing: int, lte: bool
) -> tuple[int, bool]:
    """TickBitmap.nextInitializedTickWithinOneWord over a sorted tuple of initialized ticks."""
    compressed = tick // tick_spacing  # rounds toward -inf, as the Solidity's correction does
    if lte:
        word_edge = (compressed & ~0xFF) * tick_spacing
        i = bisect_right(ticks, tick) - 1
        if i >= 0 and ticks[i] >= word_edge:
            return ticks[i], True
        return word_edge, False
    word_edge = ((compressed + 1) | 0xFF) * tick_spacing
    i = bisect_right(ticks, tick)
    if i < len(ticks) and ticks[i] <= word_edge:
        return ticks[i], True
    return word_edge, False


def marginal_virtual_reserves(
    sqrt_price_x96: int, liquidity: int, zero_for_one: bool
) -> tuple[int, int]:
    """Not a port: this range's virtual reserves (L*2^96/sqrtP, L*sqrtP/2^96) as (in, out)."""
    if sqrt_price_x96 <= 0:
        raise MathError("sqrt price must be positive")
    reserve0 = (liquidity << 96) // sqrt_price_x96
    reserve1 = (liquidity * sqrt_price_x96) >> 96
    return (reserve0, reserve1) if zero_for_one else (reserve1, reserve0)


def swap(
    sqrt_price_x96: int,
    tick: int,
    liquidity: int,
    fee: int,
    tick_spacing: int,
    ticks: Sequence[int],
    liquidity_net: Mapping[int, int],
    zero_for_one: bool,
    amount_specified: int,
    sqrt_price_limit_x96: int | None = None,
    ladders: dict[tuple[bool, bool], Ladder] | None = None,
) -> V3SwapResult:
    """UniswapV3Pool.swap: exact input if amount_specified > 0, exact output if < 0.

    The state is the pool's as it reports it (``slot0`` price and tick, ``liquidity``). ``ticks``
    are all initialized ticks, ascending, each a multiple of ``tick_spacing``, and every one of them
    is a key of ``liquidity_net``. ``sqrt_price_limit_x96=None`` is the Quoter's default (no limit).
    Raises ``MathError`` with the pool's revert string where the pool reverts ("AS", "SPL", "LS",
    "LA"). The result holds no reference to the inputs.

    ``ladders``: the full steps already walked from this very state (see ``Ladder``), kept by the
    caller for as long as the state lives; used only without a price limit. The answer is the same.
    """
    if amount_specified == 0:
        raise MathError("AS")
    if not 0 <= fee < _FEE_DENOMINATOR or tick_spacing <= 0:
        raise MathError("invalid fee or tick spacing")
    if sqrt_price_limit_x96 is None:
        limit = MIN_SQRT_RATIO + 1 if zero_for_one else MAX_SQRT_RATIO - 1
    else:
        limit = sqrt_price_limit_x96
    if zero_for_one:
        if not (MIN_SQRT_RATIO < limit < sqrt_price_x96):
            raise MathError("SPL")
    elif not (sqrt_price_x96 < limit < MAX_SQRT_RATIO):
        raise MathError("SPL")
    if amount_specified >= _UINT256_LIMIT >> 1 or amount_specified < -(_UINT256_LIMIT >> 1):
        raise MathError("amount_specified out of int256 range")

    exact_input = amount_specified > 0
    state = (sqrt_price_x96, tick, liquidity, fee, tick_spacing, ticks, liquidity_net)
    if ladders is not None and sqrt_price_limit_x96 is None:
        ladder = ladders.get((zero_for_one, exact_input))
        if ladder is None:
            ladder = ladders[(zero_for_one, exact_input)] = Ladder(zero_for_one, exact_input)
        remaining, calculated, price, tick, liquidity, crossed = ladder.swap(
            state, amount_specified, limit
        )
    else:
        remaining, calculated, price, tick, liquidity, crossed = _LOOPS[zero_for_one, exact_input](
            *state, amount_specified, limit
        )
    # (amount0, amount1) of the pool; the specified side is amount_specified - remaining.
    return V3SwapResult(
        amount_in=amount_specified - remaining if exact_input else calculated,
        amount_out=-calculated if exact_input else remaining - amount_specified,
        sqrt_price_x96=price,
        tick=tick,
        liquidity=liquidity,
        partial=remaining != 0,
        ticks_crossed=crossed,
    )


def unlimited(
    sqrt_price_x96: int,
    tick: int,
    liquidity: int,
    fee: int,
    tick_spacing: int,
    ticks: Sequence[int],
    liquidity_net: Mapping[int, int],
    zero_for_one: bool,
    exact_input: bool,
    ladders: dict[tuple[bool, bool], Ladder] | None,
) -> Unlimited | None:
    """What ``swap`` without a price limit runs, in one direction and kind of amount, for any
    amount: ``(run, state, limit)``, where ``run`` is the ladder's ``swap`` (the literal loop
    without ``ladders``); None where ``swap`` reverts whatever the amount. Sizing calls it
    directly, for every amount it tries on a route.

    For an amount ``x`` of that kind (> 0 exact input, < 0 exact output) within int256,
    ``swap(..., x, None, ladders)`` is ``run(state, x, limit)`` put into a ``V3SwapResult``:
    the same checks, done once.
    """
    if not 0 <= fee < _FEE_DENOMINATOR or tick_spacing <= 0:
        return None
    if zero_for_one:
        limit = MIN_SQRT_RATIO + 1
        if not limit < sqrt_price_x96:
            return None
    else:
        limit = MAX_SQRT_RATIO - 1
        if not sqrt_price_x96 < limit:
            return None
    state = (sqrt_price_x96, tick, liquidity, fee, tick_spacing, ticks, liquidity_net)
    if ladders is None:
        return partial(_literal, _LOOPS[zero_for_one, exact_input]), state, limit
    ladder = ladders.get((zero_for_one, exact_input))
    if ladder is None:
        ladder = ladders[(zero_for_one, exact_input)] = Ladder(zero_for_one, exact_input)
    return ladder.swap, state, limit


def _literal(loop: Callable[..., _Loop], state: _State, amount: int, limit: int) -> _Loop:
    """The literal loop from ``state`` (``unlimited`` without ladders)."""
    return loop(*state, amount, limit)


_LADDER_STEPS = 4096  # full steps a ladder keeps; a swap past them runs the loop from the last
_HUGE = (1 << 255) - 1  # an amount no step can use up: each ladder step runs to its target

_State = tuple[int, int, int, int, int, Sequence[int], Mapping[int, int]]
# see ``unlimited``: a swap (``Ladder.swap``, or the literal loop) with its state and limit
Unlimited = tuple[Callable[[_State, int, int], "_Loop"], _State, int]


class Ladder:
    """The full steps of swaps from one pool state, in one direction and kind of amount.

    The swap loop's steps do not depend on the amount: each goes from the price to the next
    initialized tick or word edge, and is taken whole when what remains of the amount covers
    it, its fee included (exact input: ``floor(r * (1e6 - fee) / 1e6) >= amountIn`` holds exactly
    when ``r >= amountIn + ceil(amountIn * fee / (1e6 - fee))``, the step's cost; exact output:
    when the step's output is at most what remains). So a swap of ``x`` takes every step whose
    cumulative cost (or output) is at most ``x``, stops where the cumulative reaches ``x``
    exactly (the loop ends when nothing remains), and otherwise finishes in the next step, from
    the state the last whole step left: the loop resumed there (its bookkeeping, the next tick and
    word edge, is derived from the tick alone) does what the uninterrupted loop does. Steps are
    walked once, as far as an amount needs them, each by the literal loop run to that step's
    target as its price limit; a swap then costs a bisection and one step, not a walk over every
    tick it crosses. A ladder closes where the loop's own shortcut or a revert would end a walk
    (no liquidity and no tick left, the last tick, ``_LADDER_STEPS``); past it the loop runs from
    the last step.
    """

    __slots__ = ("exact_input", "loop", "open", "states", "totals", "zero_for_one")

    def __init__(self, zero_for_one: bool, exact_input: bool) -> None:
        self.zero_for_one = zero_for_one
        self.exact_input = exact_input
        self.loop = _LOOPS[zero_for_one, exact_input]
        self.totals = [0]  # cost (exact input) or output (exact output) of the first k steps
        # after the first k steps: amount calculated, price, tick, liquidity, ticks crossed
        self.states: list[tuple[int, int, int, int, int]] = []
        self.open = True

    def swap(self, state: _State, amount_specified: int, limit: int) -> _Loop:
        """The loop's answer for ``amount_specified`` from ``state`` with the price ``limit``."""
        states = self.states
        if not states:
            states.append((0, state[0], state[1], state[2], 0))
        exact_input = self.exact_input
        wanted = amount_specified if exact_input else -amount_specified
        totals = self.totals
        if totals[-1] < wanted:
            while self.open and totals[-1] < wanted:
                self._extend(state)
        k = bisect_left(totals, wanted)
        if k < len(totals) and totals[k] == wanted:
            calculated, price, tick, liquidity, crossed = states[k]
            return 0, calculated, price, tick, liquidity, crossed
        k -= 1
        calculated, price, tick, liquidity, crossed = states[k]
        rest = wanted - totals[k]
        if exact_input and k + 1 < len(totals):
            # the input ends inside the next whole step: the loop's one computeSwapStep there,
            # toward that step's end, which it does not reach (the loop's bookkeeping skipped)
            partial = _partial_exact_in(
                self.zero_for_one, price, tick, liquidity, state[3], rest, states[k + 1][1]
            )
            if partial is not None:
                price, tick, more = partial
                return 0, calculated + more, price, tick, liquidity, crossed
        remaining, more, price, tick, liquidity, more_crossed = self.loop(
            price,
            tick,
            liquidity,
            state[3],
            state[4],
            state[5],
            state[6],
            rest if exact_input else -rest,
            limit,
        )
        return remaining, calculated + more, price, tick, liquidity, crossed + more_crossed

    def _extend(self, state: _State) -> None:
        """Walk one more whole step, or close the ladder."""
        calculated, price, tick, liquidity, crossed = self.states[-1]
        spacing, ticks = state[4], state[5]
        down = self.zero_for_one
        beyond = bisect_right(ticks, tick)  # initialized ticks at or below the tick
        if len(self.totals) > _LADDER_STEPS or (
            liquidity == 0 and (beyond == 0 if down else beyond == len(ticks))
        ):
            self.open = False
            return
        target, _ = next_initialized_tick_within_one_word(ticks, tick, spacing, down)
        if (target <= MIN_TICK) if down else (target >= MAX_TICK):
            self.open = False
            return
        target_price = get_sqrt_ratio_at_tick(target)
        if target_price == price:  # a state on an initialized tick's price: the loop decides
            self.open = False
            return
        huge = _HUGE if self.exact_input else -_HUGE
        try:
            remaining, more, price, tick, liquidity, more_crossed = _LOOPS[down, self.exact_input](
                price, tick, liquidity, *state[3:], huge, target_price
            )
        except MathError:  # the step reverts: a swap that far reverts in the loop itself
            self.open = False
            return
        used = huge - remaining if self.exact_input else remaining - huge
        self.totals.append(self.totals[-1] + used)
        self.states.append((calculated + more, price, tick, liquidity, crossed + more_crossed))


def _partial_exact_in(
    zero_for_one: bool, start: int, tick: int, liquidity: int, fee: int, amount: int, target: int
) -> tuple[int, int, int] | None:
    """The swap loop's step from ``start`` toward ``target`` for the exact input ``amount``,
    when it ends before ``target`` (the loop's last step: the fee takes what is left):
    ``(price, tick, amount calculated)``, the loop's own arithmetic; None when the step would
    reach ``target`` (the loop decides then)."""
    fee_complement = _FEE_DENOMINATOR - fee
    less_fee = amount * fee_complement // 1_000_000
    if zero_for_one:
        minus_numerator1 = -(liquidity << 96)
        amount_in = -((minus_numerator1 * (start - target)) // (target * start))
        if less_fee >= amount_in:
            return None
        price = start
        if less_fee:  # getNextSqrtPriceFromAmount0RoundingUp(add=true), both of its formulas
            product = less_fee * start
            if product < _UINT256_LIMIT and product - minus_numerator1 < _UINT256_LIMIT:
                price = -((minus_numerator1 * start) // (product - minus_numerator1))
            else:
                price = -(minus_numerator1 // (-minus_numerator1 // start + less_fee))
        calculated = -((liquidity * (start - price)) >> 96)  # floor(amount1 delta)
    else:
        amount_in = (liquidity * (target - start) + ((1 << 96) - 1)) >> 96
        if less_fee >= amount_in or liquidity == 0:
            return None
        price = start + (less_fee << 96) // liquidity  # getNextSqrtPriceFromAmount1RoundingDown
        calculated = -(((liquidity << 96) * (price - start)) // (price * start))
    if price == target:
        return None
    if price != start:
        tick = get_tick_at_sqrt_ratio_fast(price)
    return price, tick, calculated


def _tick_at_limit_below(limit: int, spacing: int) -> int:
    """The tick where a downward swap with no liquidity left ends at the price ``limit``.

    With no liquidity, each remaining step moves the price to the next word edge below, or to
    the limit, and changes no amount; the last step reaches the limit. The tick is the limit's,
    unless the limit is exactly a word edge's price: a step that reaches its target ends one
    tick below it (``tick = tickNext - 1``).
    """
    tick = get_tick_at_sqrt_ratio_fast(limit)
    on_word_edge = ((tick // spacing) & -256) * spacing == tick and tick > MIN_TICK
    if on_word_edge and get_sqrt_ratio_at_tick(tick) == limit:
        return tick - 1
    return tick


# The four loops below are UniswapV3Pool.swap's while-loop specialised for one direction and one
# kind of amount, with TickBitmap.nextInitializedTickWithinOneWord and SwapMath.computeSwapStep
# inlined. They return
# (amountSpecifiedRemaining, amountCalculated, sqrtPriceX96, tick, liquidity, ticks crossed).
#
# ``index``/``next_tick`` track the nearest initialized tick in the swap's direction. Once no
# liquidity and no initialized tick are left in that direction, every further step only moves
# the price to the next word edge (thousands of steps for a 1-tick spacing), so the loop jumps
# to the end those steps reach: the price at the limit, no amount changed. A step that
# does not reach its target ends the loop (the amount is used up or the limit is reached), so the
# tick only ever moves by reaching a step target, and the index moves only when a tick is crossed.

_Loop = tuple[int, int, int, int, int, int]


def _swap_zero_for_one_exact_in(
    price: int,
    tick: int,
    liquidity: int,
    fee: int,
    spacing: int,
    ticks: Sequence[int],
    liquidity_net: Mapping[int, int],
    remaining: int,
    limit: int,
) -> _Loop:
    fee_complement = _FEE_DENOMINATOR - fee
    fee_round_up = fee_complement - 1
    cache = _SQRT_RATIO_CACHE
    calculated = 0
    crossed = 0
    index = bisect_right(ticks, tick) - 1
    next_tick = ticks[index] if index >= 0 else _NO_TICK_BELOW
    word_edge = ((tick // spacing) & -256) * spacing
    minus_numerator1 = -(liquidity << 96)
    while remaining != 0 and price != limit:
        # nextInitializedTickWithinOneWord(lte=true): this tick or below, within its word
        if tick < word_edge:
            word_edge = ((tick // spacing) & -256) * spacing
        if next_tick >= word_edge:
            tick_next = next_tick
            initialized = True
        else:
            if liquidity == 0 and index < 0:  # nothing left below: the price drifts to the limit
                end = _tick_at_limit_below(limit, spacing)
                return remaining, calculated, limit, end, 0, crossed
            tick_next = word_edge if word_edge > MIN_TICK else MIN_TICK
            initialized = False
        try:
            price_next = cache[tick_next]
        except KeyError:
            price_next = _sqrt_ratio_miss(tick_next)
        target = limit if price_next < limit else price_next

        # computeSwapStep(exact input, zeroForOne)
        start = price
        less_fee = remaining * fee_complement // 1_000_000
        diff = start - target
        amount_in = -((minus_numerator1 * diff) // (target * start))  # ceil(amount0 delta)
        if less_fee >= amount_in:
            price = target
            remaining -= amount_in + (amount_in * fee + fee_round_up) // fee_complement
        else:
            # getNextSqrtPriceFromAmount0RoundingUp(add=true), with both of its formulas
            if less_fee:
                product = less_fee * start
                if product < _UINT256_LIMIT and product - minus_numerator1 < _UINT256_LIMIT:
                    price = -((minus_numerator1 * start) // (product - minus_numerator1))
                else:
                    price = -(minus_numerator1 // (-minus_numerator1 // start + less_fee))
            diff = start - price
            remaining = 0  # the fee takes the rest of the input
        calculated -= (liquidity * diff) >> 96  # floor(amount1 delta)

        if price == price_next:
            if initialized:
                liquidity -= liquidity_net[tick_next]
                if not 0 <= liquidity < _UINT128_LIMIT:
                    raise MathError("LS" if liquidity < 0 else "LA")
                minus_numerator1 = -(liquidity << 96)
                crossed += 1
                index -= 1
                next_tick = ticks[index] if index >= 0 else _NO_TICK_BELOW
            tick = tick_next - 1
        elif price != start:
            tick = get_tick_at_sqrt_ratio_fast(price)
    return remaining, calculated, price, tick, liquidity, crossed


def _swap_zero_for_one_exact_out(
    price: int,
    tick: int,
    liquidity: int,
    fee: int,
    spacing: int,
    ticks: Sequence[int],
    liquidity_net: Mapping[int, int],
    remaining: int,
    limit: int,
) -> _Loop:
    fee_complement = _FEE_DENOMINATOR - fee
    fee_round_up = fee_complement - 1
    cache = _SQRT_RATIO_CACHE
    calculated = 0
    crossed = 0
    index = bisect_right(ticks, tick) - 1
    next_tick = ticks[index] if index >= 0 else _NO_TICK_BELOW
    word_edge = ((tick // spacing) & -256) * spacing
    minus_numerator1 = -(liquidity << 96)
    while remaining != 0 and price != limit:
        if tick < word_edge:
            word_edge = ((tick // spacing) & -256) * spacing
        if next_tick >= word_edge:
            tick_next = next_tick
            initialized = True
        else:
            if liquidity == 0 and index < 0:  # nothing left below: the price drifts to the limit
                end = _tick_at_limit_below(limit, spacing)
                return remaining, calculated, limit, end, 0, crossed
            tick_next = word_edge if word_edge > MIN_TICK else MIN_TICK
            initialized = False
        try:
            price_next = cache[tick_next]
        except KeyError:
            price_next = _sqrt_ratio_miss(tick_next)
        target = limit if price_next < limit else price_next

        # computeSwapStep(exact output, zeroForOne)
        start = price
        diff = start - target
        amount_out = (liquidity * diff) >> 96  # floor(amount1 delta)
        if amount_out <= -remaining:
            price = target
        else:
            # getNextSqrtPriceFromAmount1RoundingDown(add=false); liquidity > 0 here
            price = start + (remaining << 96) // liquidity  # start - ceil(wanted * 2**96 / L)
            diff = start - price
            amount_out = (liquidity * diff) >> 96
            amount_out = min(amount_out, -remaining)
        amount_in = -((minus_numerator1 * diff) // (price * start))  # ceil(amount0 delta)
        remaining += amount_out
        calculated += amount_in + (amount_in * fee + fee_round_up) // fee_complement

        if price == price_next:
            if initialized:
                liquidity -= liquidity_net[tick_next]
                if not 0 <= liquidity < _UINT128_LIMIT:
                    raise MathError("LS" if liquidity < 0 else "LA")
                minus_numerator1 = -(liquidity << 96)
                crossed += 1
                index -= 1
                next_tick = ticks[index] if index >= 0 else _NO_TICK_BELOW
            tick = tick_next - 1
        elif price != start:
            tick = get_tick_at_sqrt_ratio_fast(price)
    return remaining, calculated, price, tick, liquidity, crossed


def _swap_one_for_zero_exact_in(
    price: int,
    tick: int,
    liquidity: int,
    fee: int,
    spacing: int,
    ticks: Sequence[int],
    liquidity_net: Mapping[int, int],
    remaining: int,
    limit: int,
) -> _Loop:
    fee_complement = _FEE_DENOMINATOR - fee
    fee_round_up = fee_complement - 1
    cache = _SQRT_RATIO_CACHE
    count = len(ticks)
    calculated = 0
    crossed = 0
    index = bisect_right(ticks, tick)
    next_tick = ticks[index] if index < count else _NO_TICK_ABOVE
    word_edge = ((tick // spacing + 1) | 0xFF) * spacing
    numerator1 = liquidity << 96
    while remaining != 0 and price != limit:
        # nextInitializedTickWithinOneWord(lte=false): above this tick, within the next one's word
        if tick >= word_edge:
            word_edge = ((tick // spacing + 1) | 0xFF) * spacing
        if next_tick <= word_edge:
            tick_next = next_tick
            initialized = True
        else:
            if liquidity == 0 and index >= count:  # nothing left above: the price drifts there
                return remaining, calculated, limit, get_tick_at_sqrt_ratio_fast(limit), 0, crossed
            tick_next = word_edge if word_edge < MAX_TICK else MAX_TICK
            initialized = False
        try:
            price_next = cache[tick_next]
        except KeyError:
            price_next = _sqrt_ratio_miss(tick_next)
        target = limit if price_next > limit else price_next

        # computeSwapStep(exact input, oneForZero)
        start = price
        less_fee = remaining * fee_complement // 1_000_000
        diff = target - start
        amount_in = (liquidity * diff + ((1 << 96) - 1)) >> 96  # ceil(amount1 delta)
        if less_fee >= amount_in:
            price = target
            remaining -= amount_in + (amount_in * fee + fee_round_up) // fee_complement
        else:
            # getNextSqrtPriceFromAmount1RoundingDown(add=true); liquidity > 0 here
            price = start + (less_fee << 96) // liquidity
            diff = price - start
            remaining = 0  # the fee takes the rest of the input
        calculated -= (numerator1 * diff) // (price * start)  # floor(amount0 delta)

        if price == price_next:
            if initialized:
                liquidity += liquidity_net[tick_next]
                if not 0 <= liquidity < _UINT128_LIMIT:
                    raise MathError("LS" if liquidity < 0 else "LA")
                numerator1 = liquidity << 96
                crossed += 1
                index += 1
                next_tick = ticks[index] if index < count else _NO_TICK_ABOVE
            tick = tick_next
        elif price != start:
            tick = get_tick_at_sqrt_ratio_fast(price)
    return remaining, calculated, price, tick, liquidity, crossed


def _swap_one_for_zero_exact_out(
    price: int,
    tick: int,
    liquidity: int,
    fee: int,
    spacing: int,
    ticks: Sequence[int],
    liquidity_net: Mapping[int, int],
    remaining: int,
    limit: int,
) -> _Loop:
    fee_complement = _FEE_DENOMINATOR - fee
    fee_round_up = fee_complement - 1
    cache = _SQRT_RATIO_CACHE
    count = len(ticks)
    calculated = 0
    crossed = 0
    index = bisect_right(ticks, tick)
    next_tick = ticks[index] if index < count else _NO_TICK_ABOVE
    word_edge = ((tick // spacing + 1) | 0xFF) * spacing
    numerator1 = liquidity << 96
    while remaining != 0 and price != limit:
        if tick >= word_edge:
            word_edge = ((tick // spacing + 1) | 0xFF) * spacing
        if next_tick <= word_edge:
            tick_next = next_tick
            initialized = True
        else:
            if liquidity == 0 and index >= count:  # nothing left above: the price drifts there
                return remaining, calculated, limit, get_tick_at_sqrt_ratio_fast(limit), 0, crossed
            tick_next = word_edge if word_edge < MAX_TICK else MAX_TICK
            initialized = False
        try:
            price_next = cache[tick_next]
        except KeyError:
            price_next = _sqrt_ratio_miss(tick_next)
        target = limit if price_next > limit else price_next

        # computeSwapStep(exact output, oneForZero)
        start = price
        diff = target - start
        amount_out = (numerator1 * diff) // (target * start)  # floor(amount0 delta)
        if amount_out <= -remaining:
            price = target
        else:
            # getNextSqrtPriceFromAmount0RoundingUp(add=false); the product cannot overflow here
            price = -((-numerator1 * start) // (numerator1 + remaining * start))
            diff = price - start
            amount_out = (numerator1 * diff) // (price * start)
            amount_out = min(amount_out, -remaining)
        amount_in = (liquidity * diff + ((1 << 96) - 1)) >> 96  # ceil(amount1 delta)
        remaining += amount_out
        calculated += amount_in + (amount_in * fee + fee_round_up) // fee_complement

        if price == price_next:
            if initialized:
                liquidity += liquidity_net[tick_next]
                if not 0 <= liquidity < _UINT128_LIMIT:
                    raise MathError("LS" if liquidity < 0 else "LA")
                numerator1 = liquidity << 96
                crossed += 1
                index += 1
                next_tick = ticks[index] if index < count else _NO_TICK_ABOVE
            tick = tick_next
        elif price != start:
            tick = get_tick_at_sqrt_ratio_fast(price)
    return remaining, calculated, price, tick, liquidity, crossed


_LOOPS = {
    (True, True): _swap_zero_for_one_exact_in,
    (True, False): _swap_zero_for_one_exact_out,
    (False, True): _swap_one_for_zero_exact_in,
    (False, False): _swap_one_for_zero_exact_out,
}
