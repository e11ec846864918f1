"""``executeMany`` calldata: the ``execute`` calls it carries, within the contract's bounds."""

from __future__ import annotations

import pytest
from eth_utils.address import to_checksum_address

from arbx.domain.errors import InputError
from arbx.execution.route_codec import (
    EXECUTE_MANY_SELECTOR,
    MAX_ROUTES,
    ExecuteCall,
    ExecutorHop,
    decode_execute_many,
    encode_execute_many,
)

WETH = "0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2"
TOKEN = "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48"
POOL = to_checksum_address("0x0000000000000000000000000000000000000a01")


def call(amount_in: int, share: int) -> ExecuteCall:
    hops = (ExecutorHop(POOL, WETH, 0, True, 5), ExecutorHop(POOL, TOKEN, 1, False, 0))
    return ExecuteCall(WETH, amount_in, 7, share, hops)


def test_round_trip_keeps_each_route_and_its_share() -> None:
    calls = [call(10**18, 0), call(2 * 10**18, 2_500)]
    data = encode_execute_many([c.encode() for c in calls])
    assert data[:4] == EXECUTE_MANY_SELECTOR
    assert decode_execute_many(data) == tuple(calls)


def test_bounds_are_the_contracts() -> None:
    one = call(1, 0).encode()
    with pytest.raises(InputError, match=r"1\.\.8"):
        encode_execute_many([])
    with pytest.raises(InputError, match=r"1\.\.8"):
        encode_execute_many([one] * (MAX_ROUTES + 1))
    with pytest.raises(InputError, match="only calls of execute"):
        encode_execute_many([one, b"\x00" * 40])
    with pytest.raises(InputError, match="not a call of executeMany"):
        decode_execute_many(one)
    assert len(decode_execute_many(encode_execute_many([one] * MAX_ROUTES))) == MAX_ROUTES
