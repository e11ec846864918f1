"""Strict decoding of pool logs: well-formed ones become events, anything else is refused."""

from __future__ import annotations

import pytest

from arbx.chain.pool_events import BURN, MINT, SWAP, SYNC, decode_event
from arbx.chain.rpc import Log
from arbx.domain.events import V2Sync, V3Liquidity, V3Swap


def word(value: int) -> bytes:
    return (value % (1 << 256)).to_bytes(32, "big")


def log(topics: list[bytes], data: bytes) -> Log:
    return Log("0x" + "11" * 20, tuple(topics), data, 5, b"\x01" * 32, b"\x02" * 32, 0, 3, False)


OWNER = b"\x00" * 12 + b"\x33" * 20


def test_sync() -> None:
    assert decode_event(log([SYNC], word(10) + word(20))) == V2Sync(10, 20)


def test_swap_with_negative_tick() -> None:
    data = word(-5) + word(7) + word(2**96) + word(10**18) + word(-887272)
    assert decode_event(log([SWAP, OWNER, OWNER], data)) == V3Swap(2**96, 10**18, -887272)


def test_mint_and_burn() -> None:
    mint = log([MINT, OWNER, word(-60), word(120)], OWNER + word(500) + word(1) + word(2))
    burn = log([BURN, OWNER, word(-60), word(120)], word(200) + word(1) + word(2))
    assert decode_event(mint) == V3Liquidity(-60, 120, 500)
    assert decode_event(burn) == V3Liquidity(-60, 120, -200)


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (log([], b""), "without topics"),
        (log([SYNC], word(1)), "malformed Sync"),
        (log([SYNC], word(2**112) + word(1)), "reserve0"),
        (log([SYNC, OWNER], word(1) + word(1)), "malformed Sync"),
        (log([SWAP, OWNER, OWNER], word(0) * 2 + word(2**96) + word(1) + word(900_000)), "tick"),
        (log([SWAP, OWNER, OWNER], word(0) * 5), "zero price"),
        (log([MINT, OWNER, word(120), word(-60)], OWNER + word(1) * 3), "range is empty"),
        (log([BURN, OWNER, word(0), word(60)], word(2**128) + word(0) * 2), "amount"),
        (log([b"\x99" * 32], b""), "not a pool event"),
    ],
)
def test_malformed_logs_are_refused(bad: Log, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        decode_event(bad)
