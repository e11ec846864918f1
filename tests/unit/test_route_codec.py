"""Calldata for the executor contract: layout, round trip, and the checks before encoding."""

from __future__ import annotations

import pytest
from eth_abi.abi import decode
from eth_utils.crypto import keccak

from arbx.domain.errors import InputError
from arbx.domain.pools import Pool, Token, V2Pool, V3Pool
from arbx.domain.profit import builder_payment, builder_share_for, kept_profit
from arbx.domain.routes import Route
from arbx.domain.sizing import Sized
from arbx.execution.route_codec import (
    EXECUTE_SELECTOR,
    KIND_V2,
    KIND_V3,
    ExecuteCall,
    decode_execute,
    encode_execute,
    execute_call,
)

WETH = Token("0x" + "11" * 20)
USDC = Token("0x" + "22" * 20)
V2_ADDRESS = "0x" + "aa" * 20
V3_ADDRESS = "0x" + "bb" * 20
FULL = 887220


def pools() -> dict[str, Pool]:
    v2 = V2Pool(V2_ADDRESS, WETH, USDC, 10**21, 3 * 10**24)
    v3 = V3Pool(
        address=V3_ADDRESS,
        token0=WETH,
        token1=USDC,
        fee=3000,
        tick_spacing=60,
        sqrt_price_x96=1 << 96,
        tick=0,
        liquidity=10**20,
        ticks=(-FULL, FULL),
        liquidity_net={-FULL: 10**20, FULL: -(10**20)},
        liquidity_gross={-FULL: 10**20, FULL: 10**20},
    )
    return {V2_ADDRESS: v2, V3_ADDRESS: v3}


ROUTE = Route((V2_ADDRESS, V3_ADDRESS), (True, False), (WETH.address, USDC.address, WETH.address))
SIZED = Sized(10**18, (2_990 * 10**6, 10**18 + 12_345), (0, 0))


def test_layout_is_the_abi_encoding_of_the_signature() -> None:
    data = encode_execute(ROUTE, pools(), SIZED, WETH.address, 5, 2_000)
    signature = "execute(address,uint256,uint256,uint256,(address,address,uint8,bool,uint256)[])"
    assert data[:4] == EXECUTE_SELECTOR == keccak(text=signature)[:4]
    base, amount_in, min_profit, bps, hops = decode(
        ["address", "uint256", "uint256", "uint256", "(address,address,uint8,bool,uint256)[]"],
        data[4:],
    )
    assert (base, amount_in, min_profit, bps) == (WETH.address.lower(), 10**18, 5, 2_000)
    assert hops == (
        (V2_ADDRESS.lower(), WETH.address.lower(), KIND_V2, True, 2_990 * 10**6),
        (V3_ADDRESS.lower(), USDC.address.lower(), KIND_V3, False, 0),  # V3: the pool decides
    )


def test_round_trip() -> None:
    call = execute_call(ROUTE, pools(), SIZED, WETH.address, 0, 0)
    assert decode_execute(call.encode()) == call
    assert isinstance(call, ExecuteCall)
    with pytest.raises(InputError):
        decode_execute(b"\x00" * 4 + call.encode()[4:])


@pytest.mark.parametrize(
    ("route", "sized", "base", "min_profit", "bps", "message"),
    [
        (ROUTE, SIZED, USDC.address, 0, 0, "base token"),
        (ROUTE, SIZED, WETH.address, 0, 10_001, "builder share"),
        (ROUTE, SIZED, WETH.address, -1, 0, "min profit"),
        (ROUTE, Sized(0, SIZED.amounts, (0, 0)), WETH.address, 0, 0, "amount in"),
        (ROUTE, Sized(1, (5,), (0,)), WETH.address, 0, 0, "sized amounts"),
        (ROUTE, Sized(1, (0, 5), (0, 0)), WETH.address, 0, 0, "hop 0 gives 0"),
        (
            Route((V2_ADDRESS, V3_ADDRESS), (False, True), ROUTE.tokens),
            SIZED,
            WETH.address,
            0,
            0,
            "does not take",
        ),
        (
            Route(("0x" + "cc" * 20, V3_ADDRESS), ROUTE.zero_for_one, ROUTE.tokens),
            SIZED,
            WETH.address,
            0,
            0,
            "no state",
        ),
        (
            Route((V2_ADDRESS,), (True,), (WETH.address, WETH.address)),
            Sized(1, (2,), (0,)),
            WETH.address,
            0,
            0,
            "two hops",
        ),
    ],
)
def test_inconsistent_arguments_are_refused(
    route: Route, sized: Sized, base: str, min_profit: int, bps: int, message: str
) -> None:
    with pytest.raises(InputError, match=message):
        encode_execute(route, pools(), sized, base, min_profit, bps)


def test_builder_payment_and_what_is_kept() -> None:
    assert builder_payment(10_001, 2_500) == 2_500  # rounded down, as the contract does
    assert kept_profit(10_001, 2_500) == 7_501
    assert builder_payment(-5, 2_500) == 0
    assert kept_profit(100, 0) == 100


def test_builder_share_for_a_payment_never_pays_more() -> None:
    assert builder_share_for(2_500, 10_000) == 2_500
    assert builder_share_for(2_499, 10_001) == 2_498
    assert builder_payment(10_001, builder_share_for(2_499, 10_001)) <= 2_499
    assert builder_share_for(50, 10) == 10_000
    assert builder_share_for(5, 0) == 0
