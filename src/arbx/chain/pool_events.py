"""Decode pool event logs (V2 Sync; V3 Swap, Mint, Burn) into domain events, strictly.

A log that does not have the exact shape its topic promises is rejected with ValueError and
counted by the caller: a hostile or broken node must not corrupt the pool book.
"""

from __future__ import annotations

from eth_utils.crypto import keccak

from arbx.chain.rpc import Log
from arbx.domain.events import LoggedEvent, PoolEvent, V2Sync, V3Liquidity, V3Swap


def _topic(signature: str) -> bytes:
    return bytes(keccak(text=signature))


SYNC = _topic("Sync(uint112,uint112)")
SWAP = _topic("Swap(address,address,int256,int256,uint160,uint128,int24)")
MINT = _topic("Mint(address,address,int24,int24,uint128,uint256,uint256)")
BURN = _topic("Burn(address,int24,int24,uint128,uint256,uint256)")
V2_TOPICS = (SYNC,)
V3_TOPICS = (SWAP, MINT, BURN)
ALL_TOPICS = (*V2_TOPICS, *V3_TOPICS)

_MAX_UINT112 = (1 << 112) - 1
_MAX_UINT128 = (1 << 128) - 1
_MAX_UINT160 = (1 << 160) - 1
_MIN_TICK, _MAX_TICK = -887272, 887272


def _word(data: bytes, i: int) -> int:
    return int.from_bytes(data[32 * i : 32 * i + 32], "big")


def _tick(word: bytes) -> int:
    """A sign-extended int24 ABI word; ValueError unless it is a valid tick."""
    if len(word) != 32:
        raise ValueError("a tick word must be 32 bytes")
    value = int.from_bytes(word, "big", signed=True)
    if not _MIN_TICK <= value <= _MAX_TICK:
        raise ValueError(f"tick {value} out of range")
    return value


def _bounded(value: int, cap: int, what: str) -> int:
    if value > cap:
        raise ValueError(f"{what} {value} exceeds its type")
    return value


def decode_event(log: Log) -> PoolEvent:
    """The domain event of one pool log; ValueError if the log is not a well-formed pool event."""
    if not log.topics:
        raise ValueError("log without topics")
    topic, data = log.topics[0], log.data
    if topic == SYNC:
        if len(log.topics) != 1 or len(data) != 64:
            raise ValueError("malformed Sync")
        return V2Sync(
            _bounded(_word(data, 0), _MAX_UINT112, "reserve0"),
            _bounded(_word(data, 1), _MAX_UINT112, "reserve1"),
        )
    if topic == SWAP:
        if len(log.topics) != 3 or len(data) != 160:
            raise ValueError("malformed Swap")
        sqrt_price = _bounded(_word(data, 2), _MAX_UINT160, "sqrtPriceX96")
        if sqrt_price == 0:
            raise ValueError("Swap with a zero price")
        return V3Swap(
            sqrt_price_x96=sqrt_price,
            liquidity=_bounded(_word(data, 3), _MAX_UINT128, "liquidity"),
            tick=_tick(data[128:160]),
        )
    if topic == MINT:
        if len(log.topics) != 4 or len(data) != 128:
            raise ValueError("malformed Mint")
        amount = _bounded(_word(data, 1), _MAX_UINT128, "amount")
        return _liquidity(log, amount)
    if topic == BURN:
        if len(log.topics) != 4 or len(data) != 96:
            raise ValueError("malformed Burn")
        amount = _bounded(_word(data, 0), _MAX_UINT128, "amount")
        return _liquidity(log, -amount)
    raise ValueError(f"not a pool event topic: 0x{topic.hex()}")


def _liquidity(log: Log, amount: int) -> V3Liquidity:
    lower, upper = _tick(log.topics[2]), _tick(log.topics[3])
    if lower >= upper:
        raise ValueError("tick range is empty")
    return V3Liquidity(lower, upper, amount)


def to_logged(log: Log, address: str) -> LoggedEvent:
    """The log as a LoggedEvent of the pool ``address`` (checksummed, as the book keys it)."""
    return LoggedEvent(
        block_number=log.block_number,
        block_hash="0x" + log.block_hash.hex(),
        log_index=log.log_index,
        address=address,
        event=decode_event(log),
    )
