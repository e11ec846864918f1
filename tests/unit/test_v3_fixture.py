"""The V3 swap against 80 on-chain Quoter results, real WBTC/WETH 0.3% pool at block 24,407,242.

The fixture (tests/fixtures/mainnet/, see its README) holds the pool's full state and what the
Quoter returned with no price limit, i.e. with the default limit (MIN_SQRT_RATIO + 1 or
MAX_SQRT_RATIO - 1).
"""

import json
from pathlib import Path
from typing import Any

import pytest

from arbx.domain.amm.tick_math import MAX_SQRT_RATIO, MIN_SQRT_RATIO, get_tick_at_sqrt_ratio
from arbx.domain.amm.v3 import swap

FIXTURE = Path(__file__).parents[1] / "fixtures" / "mainnet" / "v3_wbtc_weth_24407242.json"
DATA: dict[str, Any] = json.loads(FIXTURE.read_text())
POOL: dict[str, Any] = DATA["pool"]
TICKS = tuple(sorted(int(tick) for tick in POOL["ticks"]))
LIQUIDITY_NET = {int(tick): int(info["liquidity_net"]) for tick, info in POOL["ticks"].items()}
SYMBOLS = {POOL["token0"]["address"]: "WBTC", POOL["token1"]["address"]: "WETH"}


def pool_swap(zero_for_one: bool, amount_specified: int) -> Any:
    return swap(
        int(POOL["sqrt_price_x96"]),
        int(POOL["tick"]),
        int(POOL["liquidity"]),
        int(POOL["fee"]),
        int(POOL["tick_spacing"]),
        TICKS,
        LIQUIDITY_NET,
        zero_for_one,
        amount_specified,
    )


def quote_id(quote: dict[str, Any]) -> str:
    return f"{quote['kind']}-{SYMBOLS[quote['token_in']]}-{quote['amount']}"


def test_fixture_is_what_the_tests_expect() -> None:
    assert len(DATA["quotes"]) == 80
    assert sum(quote["hits_price_limit"] for quote in DATA["quotes"]) == 11
    assert len(TICKS) == 458
    assert get_tick_at_sqrt_ratio(int(POOL["sqrt_price_x96"])) == int(POOL["tick"])


@pytest.mark.parametrize("quote", DATA["quotes"], ids=quote_id)
def test_quoter_result(quote: dict[str, Any]) -> None:
    zero_for_one = quote["token_in"] == POOL["token0"]["address"]
    amount = int(quote["amount"])
    exact_in = quote["kind"] == "exact_in"
    result = pool_swap(zero_for_one, amount if exact_in else -amount)

    if exact_in:
        assert result.amount_out == int(quote["quoter_result"])
    else:
        assert result.amount_in == int(quote["quoter_result"])
    assert result.partial == quote["hits_price_limit"]
    if result.partial:
        limit = MIN_SQRT_RATIO + 1 if zero_for_one else MAX_SQRT_RATIO - 1
        assert result.sqrt_price_x96 == limit
        assert (result.amount_in if exact_in else result.amount_out) < amount
    else:
        assert (result.amount_in if exact_in else result.amount_out) == amount
    assert result.amount_in >= 0
    assert result.amount_out >= 0
