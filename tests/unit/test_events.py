"""Applying pool events: the state after must equal what the contracts hold."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TypeVar

import pytest

from arbx.domain.errors import InputError
from arbx.domain.events import V2Sync, V3Liquidity, V3Swap, apply
from arbx.domain.poolfile import parse_document
from arbx.domain.pools import V2Pool, V3Pool

MAINNET = Path(__file__).parents[1] / "fixtures" / "mainnet"
P = TypeVar("P", V2Pool, V3Pool)


def _first_pool(name: str, kind: type[P]) -> P:
    pool = parse_document(json.loads((MAINNET / name).read_text()))[0]
    assert isinstance(pool, kind)
    return pool


V3 = _first_pool("v3_wbtc_weth_24407242.json", V3Pool)
V2 = _first_pool("v2_v3_wbtc_weth_17600000.json", V2Pool)


def test_sync_sets_reserves() -> None:
    after = apply(V2, V2Sync(5, 7), block=9)
    assert isinstance(after, V2Pool)
    assert (after.reserve0, after.reserve1, after.block) == (5, 7, 9)
    assert (V2.reserve0, V2.reserve1) != (5, 7)  # the old state is untouched


def test_swap_event_matches_our_swap() -> None:
    result = V3.swap(True, 10**8)
    after = apply(V3, V3Swap(result.sqrt_price_x96, result.liquidity, result.tick))
    assert isinstance(after, V3Pool)
    back = after.swap(False, result.amount_out).amount_out  # sell the WETH back: fees lost
    assert 0.99 * 10**8 < back < 10**8
    assert (after.sqrt_price_x96, after.tick, after.liquidity) == (
        result.sqrt_price_x96,
        result.tick,
        result.liquidity,
    )


def test_mint_in_range_then_burn_restores_the_pool() -> None:
    lower = (V3.tick // 60 - 5) * 60
    upper = (V3.tick // 60 + 7) * 60
    minted = apply(V3, V3Liquidity(lower, upper, 10**15))
    assert isinstance(minted, V3Pool)
    assert minted.liquidity == V3.liquidity + 10**15
    assert minted.liquidity_net[lower] == V3.liquidity_net.get(lower, 0) + 10**15
    assert minted.liquidity_net[upper] == V3.liquidity_net.get(upper, 0) - 10**15
    assert set(minted.ticks) == set(V3.ticks) | {lower, upper}
    assert list(minted.ticks) == sorted(minted.ticks)
    burned = apply(minted, V3Liquidity(lower, upper, -(10**15)))
    assert isinstance(burned, V3Pool)
    assert burned.ticks == V3.ticks
    assert dict(burned.liquidity_net) == dict(V3.liquidity_net)
    assert dict(burned.liquidity_gross) == dict(V3.liquidity_gross)
    assert burned.liquidity == V3.liquidity


def test_mint_out_of_range_leaves_liquidity() -> None:
    lower = (V3.tick // 60 + 10) * 60
    minted = apply(V3, V3Liquidity(lower, lower + 600, 10**12))
    assert isinstance(minted, V3Pool)
    assert minted.liquidity == V3.liquidity
    # a swap that crosses into the new range now sees more liquidity there
    before = V3.swap(False, 10**22)
    after = minted.swap(False, 10**22)
    assert after.amount_out != before.amount_out


def test_burn_below_zero_and_wrong_family_are_rejected() -> None:
    with pytest.raises(InputError):
        apply(V3, V3Liquidity(-600, 600, -1))
    with pytest.raises(InputError):
        apply(V2, V3Swap(1, 1, 1))
    with pytest.raises(InputError):
        apply(V3, V2Sync(1, 1))
