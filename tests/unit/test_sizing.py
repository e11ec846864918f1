"""Optimal sizing: the chosen input must be the best integer input, found by brute force."""

from __future__ import annotations

import random

import pytest

from arbx.domain.pools import Hop, Token, V2Pool
from arbx.domain.sizing import optimize, simulate

TOKENS = [Token(f"0x{i:040x}") for i in range(1, 6)]


def pair(i: int, a: Token, b: Token, ra: int, rb: int, fee_bps: int = 30) -> tuple[V2Pool, bool]:
    """A V2 pool on (a, b) with reserves given in that order, and the a->b direction."""
    if int(a.address, 16) < int(b.address, 16):
        return V2Pool(f"0x{0xAA00 + i:040x}", a, b, ra, rb, fee_bps), True
    return V2Pool(f"0x{0xAA00 + i:040x}", b, a, rb, ra, fee_bps), False


def cycle(reserves: list[tuple[int, int]], fees: list[int]) -> list[Hop]:
    """Hops base -> t1 -> ... -> base over fresh pools with the given (in, out) reserves."""
    n = len(reserves)
    path = [TOKENS[0], *TOKENS[1:n], TOKENS[0]]
    hops = []
    for i, ((r_in, r_out), fee) in enumerate(zip(reserves, fees, strict=True)):
        pool, zfo = pair(i, path[i], path[i + 1], r_in, r_out, fee)
        hops.append(Hop(pool, zfo))
    return hops


def brute_best(hops: list[Hop], upto: int) -> int:
    best = 0
    for x in range(1, upto + 1):
        sized = simulate(hops, x)
        if sized is not None and sized.profit > best:
            best = sized.profit
    return best


@pytest.mark.parametrize("seed", range(40))
def test_v2_cycle_matches_brute_force(seed: int) -> None:
    # Small reserves keep brute force cheap; mixed magnitudes make some intermediate token
    # coarse (a staircase profit curve); mixed fees cover the forks.
    rnd = random.Random(seed)
    n = rnd.randint(2, 3)
    reserves = []
    for _ in range(n):
        r_in = rnd.randint(2_000, 60_000)
        r_out = rnd.choice([rnd.randint(20, 400), rnd.randint(2_000, 90_000)])
        reserves.append((r_in, r_out))
    fees = [rnd.choice([0, 5, 25, 30, 100]) for _ in range(n)]
    hops = cycle(reserves, fees)
    sized = optimize(hops)
    best = brute_best(hops, 20_000)
    if best == 0:
        assert sized is None
    else:
        assert sized is not None
        assert sized.profit == best
        assert simulate(hops, sized.amount_in) == sized


def test_cap_limits_the_input() -> None:
    hops = cycle([(10**21, 2 * 10**21), (10**21, 10**21)], [30, 30])
    free = optimize(hops)
    assert free is not None
    capped = optimize(hops, max_input=free.amount_in // 10)
    assert capped is not None
    assert capped.amount_in <= free.amount_in // 10
    assert 0 < capped.profit < free.profit


def test_no_profit_when_prices_agree() -> None:
    hops = cycle([(10**21, 10**21), (10**21, 10**21)], [30, 30])
    assert optimize(hops) is None


@pytest.mark.parametrize("seed", range(5))
def test_coarse_intermediate_snaps_to_step_edge(seed: int) -> None:
    # WETH (18 decimals) -> an 8-decimal token -> WETH, 1% apart: the profit curve is a
    # staircase with steps of ~10^10 wei; the answer must be the least input for its step.
    rnd = random.Random(seed)
    r_btc = rnd.randint(10**10, 10**12)
    r_eth = r_btc * 15 * 10**10
    hops = cycle([(r_eth, r_btc), (r_btc, r_eth * 101 // 100)], [30, 30])
    sized = optimize(hops)
    assert sized is not None
    one_less = simulate(hops, sized.amount_in - 1)
    assert one_less is not None
    assert one_less.amounts[0] < sized.amounts[0]  # the left edge of its step
    for dx in (-(10**10), -1, 1, 10**10, 3 * 10**10):
        other = simulate(hops, sized.amount_in + dx)
        assert other is None or other.profit <= sized.profit
