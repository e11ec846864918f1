"""Pool events and how each one changes a pool's state (pure: old state in, new state out).

The events carry what the contracts emit: V2 ``Sync`` (the new reserves); V3 ``Swap`` (the price,
tick and in-range liquidity after the swap) and ``Mint`` / ``Burn`` (liquidity added to or taken
from a tick range). Applying them in (block, log index) order keeps a pool equal to the chain.
"""

from __future__ import annotations

from bisect import insort
from dataclasses import dataclass, replace

from arbx.domain.errors import InputError
from arbx.domain.pools import Pool, V2Pool, V3Pool


@dataclass(frozen=True, slots=True)
class V2Sync:
    """UniswapV2Pair ``Sync(uint112 reserve0, uint112 reserve1)``."""

    reserve0: int
    reserve1: int


@dataclass(frozen=True, slots=True)
class V3Swap:
    """UniswapV3Pool ``Swap``: the pool's price, in-range liquidity and tick after the swap."""

    sqrt_price_x96: int
    liquidity: int
    tick: int


@dataclass(frozen=True, slots=True)
class V3Liquidity:
    """UniswapV3Pool ``Mint`` (positive ``amount``) or ``Burn`` (negative) on a tick range."""

    tick_lower: int
    tick_upper: int
    amount: int


PoolEvent = V2Sync | V3Swap | V3Liquidity


@dataclass(frozen=True, slots=True)
class LoggedEvent:
    """An event at its place on chain: block, log index, the pool that emitted it."""

    block_number: int
    block_hash: str
    log_index: int
    address: str
    event: PoolEvent


def apply(pool: Pool, event: PoolEvent, block: int | None = None) -> Pool:
    """The pool's state after ``event``; InputError if the event does not fit the pool."""
    if isinstance(event, V2Sync):
        if not isinstance(pool, V2Pool):
            raise InputError(f"Sync event for V3 pool {pool.address}")
        return replace(pool, reserve0=event.reserve0, reserve1=event.reserve1, block=block)
    if not isinstance(pool, V3Pool):
        raise InputError(f"V3 event for V2 pool {pool.address}")
    if isinstance(event, V3Swap):
        return replace(
            pool,
            sqrt_price_x96=event.sqrt_price_x96,
            liquidity=event.liquidity,
            tick=event.tick,
            block=block,
        )
    return _modify_position(pool, event, block)


def _modify_position(pool: V3Pool, event: V3Liquidity, block: int | None) -> V3Pool:
    """UniswapV3Pool._modifyPosition's effect on ticks and in-range liquidity."""
    if event.amount == 0:
        return replace(pool, block=block)
    lower, upper, delta = event.tick_lower, event.tick_upper, event.amount
    net = dict(pool.liquidity_net)
    gross = dict(pool.liquidity_gross)
    ticks = list(pool.ticks)
    for tick, signed in ((lower, delta), (upper, -delta)):
        before = gross.get(tick, 0)
        after = before + delta
        if after < 0:
            raise InputError(f"pool {pool.address}: burn below zero liquidity at tick {tick}")
        if after == 0:
            gross.pop(tick, None)
            net.pop(tick, None)
            ticks.remove(tick)
        else:
            gross[tick] = after
            net[tick] = net.get(tick, 0) + signed
            if before == 0:
                insort(ticks, tick)
    liquidity = pool.liquidity
    if lower <= pool.tick < upper:
        liquidity += delta
    return replace(
        pool,
        ticks=tuple(ticks),
        liquidity_net=net,
        liquidity_gross=gross,
        liquidity=liquidity,
        block=block,
    )
