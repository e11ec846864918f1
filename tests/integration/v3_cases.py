"""Random Uniswap V3 pools on the real contracts, read back from the chain, and random swaps.

Used by ``test_v3_differential``. Pools get a start price near where tokens of their decimals would
trade (sometimes at the extremes, sometimes exactly on a tick) and 10-40 NonfungiblePositionManager
positions: full range, wide, narrow, in, above and below the price, and now and then two that meet
at a tick whose liquidityNet nets to zero. Swaps go both ways, exact input and output, from 1 wei to
far beyond the pool, with no limit, a random limit, a limit on an initialized tick's price (+-1),
or the exact amount that reaches such a price (+-1 wei), and now and then an invalid limit.
"""

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass

from eth_typing import ChecksumAddress

from arbx.devnet.artifacts import load_artifact
from arbx.devnet.chain import DevChain
from arbx.devnet.deploy import (
    UniswapDeployment,
    V3Pool,
    V3Position,
    create_v3_pool,
    decrease_v3_liquidity,
    deploy_test_tokens,
    mint_v3_positions,
)
from arbx.domain.amm.tick_math import (
    MAX_SQRT_RATIO,
    MAX_TICK,
    MIN_SQRT_RATIO,
    MIN_TICK,
    get_sqrt_ratio_at_tick,
    get_tick_at_sqrt_ratio,
)
from arbx.domain.amm.v3 import V3SwapResult, swap
from arbx.domain.errors import MathError

FEES = (100, 500, 3000, 10000)
PAIR_DECIMALS = ((6, 18), (8, 18), (6, 8))
Q96 = 1 << 96


@dataclass(frozen=True)
class PoolState:
    """A pool as read back from the chain, with the positions minted into it."""

    pool: V3Pool
    sqrt_price_x96: int
    tick: int
    liquidity: int
    ticks: tuple[int, ...]
    liquidity_net: dict[int, int]
    positions: tuple[V3Position, ...]


@dataclass(frozen=True)
class SwapCase:
    """One swap on one pool state."""

    state: PoolState
    zero_for_one: bool
    amount_specified: int
    sqrt_price_limit_x96: int | None

    @property
    def exact_input(self) -> bool:
        """True for exact input, False for exact output."""
        return self.amount_specified > 0

    def ours(self) -> V3SwapResult | MathError:
        """Our swap on the read-back state, or the error it raises."""
        s = self.state
        try:
            return swap(
                s.sqrt_price_x96,
                s.tick,
                s.liquidity,
                s.pool.fee,
                s.pool.tick_spacing,
                s.ticks,
                s.liquidity_net,
                self.zero_for_one,
                self.amount_specified,
                self.sqrt_price_limit_x96,
            )
        except MathError as error:
            return error

    def __str__(self) -> str:
        s = self.state
        return (
            f"swap(sqrt_price_x96={s.sqrt_price_x96}, tick={s.tick}, liquidity={s.liquidity}, "
            f"fee={s.pool.fee}, tick_spacing={s.pool.tick_spacing}, ticks={s.ticks}, "
            f"liquidity_net={s.liquidity_net}, zero_for_one={self.zero_for_one}, "
            f"amount_specified={self.amount_specified}, "
            f"sqrt_price_limit_x96={self.sqrt_price_limit_x96}) on {s.pool.address}"
        )


# --- random pools --------------------------------------------------------------------------------


def align_down(tick: int, spacing: int) -> int:
    """The greatest multiple of ``spacing`` at or below ``tick``."""
    return tick // spacing * spacing


def usable_range(spacing: int) -> tuple[int, int]:
    """The lowest and highest ticks a position may use with this spacing."""
    return -(MAX_TICK // spacing) * spacing, MAX_TICK // spacing * spacing


def random_start_price(rng: random.Random, decimals0: int, decimals1: int) -> int:
    """A sqrt price near where such tokens trade, sometimes extreme, sometimes exactly on a tick."""
    center = round((decimals1 - decimals0) * math.log(10) / math.log(1.0001))
    roll = rng.random()
    if roll < 0.05:
        tick = MIN_TICK + rng.randint(0, 3000)
    elif roll < 0.10:
        tick = MAX_TICK - rng.randint(1, 3000)
    else:
        tick = center + rng.randint(-60_000, 60_000)
    low, high = get_sqrt_ratio_at_tick(tick), get_sqrt_ratio_at_tick(tick + 1)
    return low if rng.random() < 0.15 else rng.randrange(low, high)


def random_range(rng: random.Random, tick: int, spacing: int) -> tuple[int, int]:
    """A position range: full, wide or narrow, around, above or below ``tick``."""
    lowest, highest = usable_range(spacing)
    roll = rng.random()
    if roll < 0.08:
        return lowest, highest
    if roll < 0.45:  # wide, roughly around the price
        width = spacing * 2 ** rng.randint(3, 12) * rng.randint(1, 3)
        lower = align_down(tick - rng.randint(0, width), spacing)
    else:  # narrow, at or near the price
        width = spacing * rng.randint(1, 10)
        lower = align_down(tick + rng.choice((-1, 1)) * spacing * 2 ** rng.randint(0, 7), spacing)
        if rng.random() < 0.3:
            lower = align_down(tick, spacing) - rng.randint(0, 2) * spacing
    lower = min(max(lower, lowest), highest - spacing)
    return lower, min(lower + width, highest)


def amounts_for_liquidity(sqrt_p: int, lower: int, upper: int, liquidity: int) -> tuple[int, int]:
    """Token amounts (rounded up) that ``liquidity`` needs at this price."""
    sqrt_a, sqrt_b = get_sqrt_ratio_at_tick(lower), get_sqrt_ratio_at_tick(upper)
    price = min(max(sqrt_p, sqrt_a), sqrt_b)
    amount0 = -(-liquidity * Q96 * (sqrt_b - price) // (price * sqrt_b))
    amount1 = -(-liquidity * (price - sqrt_a) // Q96)
    return amount0, amount1


def npm_liquidity(sqrt_p: int, lower: int, upper: int, amount0: int, amount1: int) -> int | None:
    """LiquidityAmounts.getLiquidityForAmounts as NPM runs it; None where its toUint128 reverts."""
    sqrt_a, sqrt_b = get_sqrt_ratio_at_tick(lower), get_sqrt_ratio_at_tick(upper)

    def for_amount0(a: int, b: int) -> int:
        return amount0 * (a * b // Q96) // (b - a)

    def for_amount1(a: int, b: int) -> int:
        return amount1 * Q96 // (b - a)

    if sqrt_p <= sqrt_a:
        candidates = [for_amount0(sqrt_a, sqrt_b)]
    elif sqrt_p < sqrt_b:
        candidates = [for_amount0(sqrt_p, sqrt_b), for_amount1(sqrt_a, sqrt_p)]
    else:
        candidates = [for_amount1(sqrt_a, sqrt_b)]
    return None if max(candidates) >= 1 << 128 else min(candidates)


def random_position(rng: random.Random, sqrt_p: int, spacing: int) -> tuple[int, int, int, int]:
    """(lower, upper, amount0, amount1) for which NPM mints a random liquidity of 2**20..2**80."""
    tick = get_tick_at_sqrt_ratio(sqrt_p)
    while True:
        lower, upper = random_range(rng, tick, spacing)
        liquidity = 2 ** rng.randint(20, 80) + rng.randint(0, 2**20)
        amount0, amount1 = amounts_for_liquidity(sqrt_p, lower, upper, liquidity)
        if npm_liquidity(sqrt_p, lower, upper, amount0, amount1):  # else one wei is too much
            return lower, upper, amount0, amount1


def zero_net_pair(
    rng: random.Random, sqrt_p: int, spacing: int, ranges: list[tuple[int, int, int, int]]
) -> list[tuple[int, int, int, int]]:
    """Two ranges meeting at a tick no other range uses (or none if NPM would refuse them)."""
    used = {t for r in ranges for t in r[:2]}
    lowest, highest = usable_range(spacing)
    middle = align_down(get_tick_at_sqrt_ratio(sqrt_p), spacing) + spacing * rng.randint(-3, 3)
    while middle in used or not lowest < middle < highest:
        middle = middle + spacing if middle < highest else lowest + spacing
    width = spacing * rng.randint(1, 4)
    pair = []
    for lower, upper in (
        (max(middle - width, lowest), middle),
        (middle, min(middle + width, highest)),
    ):
        amounts = amounts_for_liquidity(sqrt_p, lower, upper, 2**60)
        if not npm_liquidity(sqrt_p, lower, upper, *amounts):
            return []
        pair.append((lower, upper, *amounts))
    return pair


def build_pool(
    chain: DevChain,
    uniswap: UniswapDeployment,
    rng: random.Random,
    pair: tuple[tuple[ChecksumAddress, int], tuple[ChecksumAddress, int]],
    fee: int,
) -> tuple[V3Pool, list[V3Position]]:
    """A pool at a random price with 10-40 random positions (and maybe a zero-net tick)."""
    (token_a, dec_a), (token_b, dec_b) = pair
    a_first = token_a.lower() < token_b.lower()
    dec0, dec1 = (dec_a, dec_b) if a_first else (dec_b, dec_a)
    sqrt_p = random_start_price(rng, dec0, dec1)
    pool = create_v3_pool(chain, uniswap, (token_a, token_b), fee, sqrt_p)
    ranges = [random_position(rng, sqrt_p, pool.tick_spacing) for _ in range(rng.randint(10, 40))]
    pair_at = zero_net_pair(rng, sqrt_p, pool.tick_spacing, ranges) if rng.random() < 0.5 else []
    positions = mint_v3_positions(chain, uniswap, pool, ranges + pair_at)
    if pair_at:  # equalise the two: their shared tick then has liquidityNet == 0
        left, right = positions[-2:]
        if left.liquidity != right.liquidity:
            big, small = (left, right) if left.liquidity > right.liquidity else (right, left)
            shrunk = decrease_v3_liquidity(chain, uniswap, big, big.liquidity - small.liquidity)
            positions = [shrunk if p.token_id == big.token_id else p for p in positions]
    return pool, positions


def read_state(chain: DevChain, pool: V3Pool, positions: list[V3Position]) -> PoolState:
    """Slot0, liquidity and every position boundary's tick info, read from the pool."""
    contract = chain.contract(load_artifact("UniswapV3Pool"), pool.address)
    boundaries = sorted({t for p in positions for t in (p.tick_lower, p.tick_upper)})
    answers = chain.call_all(
        [contract.functions.slot0(), contract.functions.liquidity()]
        + [contract.functions.ticks(t) for t in boundaries]
    )
    slot0, liquidity, infos = answers[0], answers[1], answers[2:]
    initialized = [t for t, info in zip(boundaries, infos, strict=True) if info[7]]
    return PoolState(
        pool=pool,
        sqrt_price_x96=slot0[0],
        tick=slot0[1],
        liquidity=liquidity,
        ticks=tuple(initialized),
        liquidity_net={t: info[1] for t, info in zip(boundaries, infos, strict=True) if info[7]},
        positions=tuple(positions),
    )


def pool_pairs(
    chain: DevChain, uniswap: UniswapDeployment, tokens: dict[int, ChecksumAddress], count: int
) -> Iterator[tuple[tuple[tuple[ChecksumAddress, int], tuple[ChecksumAddress, int]], int]]:
    """``count`` distinct (token pair, fee) combinations, deploying more tokens when needed."""
    by_decimals = dict(tokens)
    made = 0
    while True:
        for dec_a, dec_b in PAIR_DECIMALS:
            for fee in FEES:
                if made == count:
                    return
                yield ((by_decimals[dec_a], dec_a), (by_decimals[dec_b], dec_b)), fee
                made += 1
        fresh = deploy_test_tokens(chain, tuple(by_decimals), spenders=uniswap.spenders())
        by_decimals = dict(zip(by_decimals, fresh, strict=True))


# --- random swaps --------------------------------------------------------------------------------


def random_limit(rng: random.Random, state: PoolState, zero_for_one: bool) -> int | None:
    """None (the quoter's default), a valid limit at some distance, now and then an invalid one."""
    roll = rng.random()
    price = state.sqrt_price_x96
    if roll < 0.45:
        return None
    if roll < 0.96:
        distance = 2 ** rng.randint(0, 19) + rng.randint(0, 100)
        target = state.tick - distance if zero_for_one else state.tick + distance + 1
        target = min(max(target, MIN_TICK), MAX_TICK)
        limit = get_sqrt_ratio_at_tick(target)
        if rng.random() < 0.6 and target < MAX_TICK:
            limit = rng.randrange(limit, get_sqrt_ratio_at_tick(target + 1))
        return clamp_limit(limit, price, zero_for_one)
    # invalid: on the wrong side, at the price, or at the hard bound itself
    if zero_for_one:
        return rng.choice((price, price + 1, MIN_SQRT_RATIO))
    return rng.choice((price, price - 1, MAX_SQRT_RATIO))


def clamp_limit(limit: int, price: int, zero_for_one: bool) -> int:
    """Move ``limit`` onto the valid side of ``price``, inside the hard bounds."""
    if zero_for_one:
        return min(max(limit, MIN_SQRT_RATIO + 1), price - 1)
    return max(min(limit, MAX_SQRT_RATIO - 1), price + 1)


def random_swap(rng: random.Random, state: PoolState) -> SwapCase:
    """A direction, an exact input or output of 1 wei to far beyond the pool, and a limit."""
    zero_for_one = rng.random() < 0.5
    sign = 1 if rng.random() < 0.5 else -1
    if rng.random() < 0.3:
        near = swap_to_a_tick(rng, state, zero_for_one, sign)
        if near is not None:
            return near
    depth = max(sum(p.amount0 for p in state.positions), sum(p.amount1 for p in state.positions))
    if rng.random() < 0.1:
        amount = rng.randint(1, 100)
    else:
        amount = rng.randint(1, 2 ** rng.randint(1, depth.bit_length() + 6))
    return SwapCase(state, zero_for_one, sign * amount, random_limit(rng, state, zero_for_one))


def swap_to_a_tick(
    rng: random.Random, state: PoolState, zero_for_one: bool, sign: int
) -> SwapCase | None:
    """A swap that ends on, or one wei around, one of the next few initialized ticks.

    Either an unbounded amount stopped by a limit at that tick's price (+-1), or, without a limit,
    the exact amount our own swap says reaches that price (+-1 wei): the rounding edges.
    """
    if zero_for_one:
        ahead = [t for t in reversed(state.ticks) if t <= state.tick]
    else:
        ahead = [t for t in state.ticks if t > state.tick]
    if not ahead:
        return None
    target = ahead[min(len(ahead) - 1, rng.randint(0, 5))]
    limit = get_sqrt_ratio_at_tick(target) + rng.choice((-1, 0, 0, 1))
    limit = clamp_limit(limit, state.sqrt_price_x96, zero_for_one)
    bounded = SwapCase(state, zero_for_one, sign * 2 ** rng.randint(100, 200), limit)
    reached = bounded.ours()
    if rng.random() < 0.5 or isinstance(reached, MathError):
        return bounded
    amount = reached.amount_in if sign > 0 else reached.amount_out
    amount = max(1, amount + rng.choice((-1, 0, 0, 1)))
    return SwapCase(state, zero_for_one, sign * amount, None)
