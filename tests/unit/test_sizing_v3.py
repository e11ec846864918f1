"""Sizing routes through V3 pools: the Newton search must land on the optimum across ticks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from arbx.domain.poolfile import parse_document
from arbx.domain.pools import Hop, V2Pool, V3Pool
from arbx.domain.sizing import optimize, simulate

FIXTURE = Path(__file__).parents[1] / "fixtures" / "mainnet" / "v3_wbtc_weth_24407242.json"
V3 = parse_document(json.loads(FIXTURE.read_text()))[0]
assert isinstance(V3, V3Pool)
PRICE = V3.sqrt_price_x96**2  # WETH per WBTC, in Q192


def v2_copy(premium_bps: int, depth: int) -> V2Pool:
    """A V2 WBTC/WETH pair at the V3 price plus ``premium_bps`` for WETH, ``depth`` WBTC deep."""
    reserve_weth = depth * PRICE // 2**192 * (10_000 + premium_bps) // 10_000
    return V2Pool("0x" + "ab" * 20, V3.token0, V3.token1, depth, reserve_weth)


def assert_local_optimum(hops: list[Hop], x: int, profit: int) -> None:
    for step in (1, 7, 10**3, 10**6, 10**9, 10**12, 10**15, 10**17, 10**18, 10**19):
        for y in (x - step, x + step):
            other = simulate(hops, y)
            assert other is None or other.profit <= profit, f"{y} beats {x}"


@pytest.mark.parametrize("premium_bps", [70, 150, 400, 1500])
@pytest.mark.parametrize("depth", [10**8, 10**10, 10**12])
def test_v2_then_v3(premium_bps: int, depth: int) -> None:
    # buy WBTC cheap on V3 with WETH... here V2 pays more WETH per WBTC: WETH -> V3 -> V2 -> WETH
    v2 = v2_copy(premium_bps, depth)
    hops = [Hop(V3, False), Hop(v2, True)]
    sized = optimize(hops)
    assert sized is not None
    assert sized == simulate(hops, sized.amount_in)
    assert_local_optimum(hops, sized.amount_in, sized.profit)


def test_crosses_ticks_at_the_optimum() -> None:
    hops = [Hop(V3, False), Hop(v2_copy(1500, 10**12), True)]
    sized = optimize(hops)
    assert sized is not None
    assert sized.ticks_crossed[0] >= 5


def test_reverse_direction_is_unprofitable() -> None:
    hops = [Hop(v2_copy(150, 10**10), False), Hop(V3, True)]
    assert optimize(hops) is None


def test_cap_binds_on_v3_route() -> None:
    hops = [Hop(V3, False), Hop(v2_copy(400, 10**12), True)]
    free = optimize(hops)
    assert free is not None
    capped = optimize(hops, max_input=free.amount_in // 3)
    assert capped is not None
    assert capped.amount_in <= free.amount_in // 3
    assert capped.profit < free.profit
