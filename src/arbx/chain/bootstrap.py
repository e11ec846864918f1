"""Load pool states from the chain at one block, in a few calls through the PoolLens.

V2: ``getReserves()``. V3: ``slot0()``, ``liquidity()``, every ``tickBitmap`` word of the pool's
whole tick range and ``ticks(i)`` for each initialized tick found (the lens does those reads
inside the EVM). Every read is pinned to the same block, so the states are consistent with each
other and with that block's hash.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from arbx.chain.lens import (
    MAX_WORDS_PER_JOB,
    V2_RESERVES,
    V3_HEAD,
    V3_TICKS,
    BlockRef,
    Job,
    run_jobs,
)
from arbx.chain.rpc import RpcClient
from arbx.domain.pools import Pool, Token, V2Pool, V3Pool

MIN_TICK, MAX_TICK = -887272, 887272
CHUNK = 250  # pools per round trip: progress is reported between chunks


@dataclass(frozen=True, slots=True)
class PoolMeta:
    """What discovery knows about a pool before its state is read."""

    address: str
    family: str  # "uniswap_v2" or "uniswap_v3"
    token0: Token
    token1: Token
    fee: int  # bps for V2, hundredths of a bip for V3
    tick_spacing: int = 0
    chain_id: int = 1
    venue: str = ""


class BootstrapError(ValueError):
    """A read failed or answered something a pool cannot hold."""


def word_range(tick_spacing: int) -> range:
    """Every tickBitmap word position a pool with this spacing can use."""
    return range((MIN_TICK // tick_spacing) >> 8, ((MAX_TICK // tick_spacing) >> 8) + 1)


async def load_pools(
    client: RpcClient,
    metas: Sequence[PoolMeta],
    block: int,
    progress: Callable[[int], None] | None = None,
    block_hash: str | None = None,
) -> list[Pool]:
    """The state of every pool at ``block``, read through the PoolLens in a few calls.

    With ``block_hash`` the reads are pinned to that exact block (EIP-1898), so a reorg
    between the choice of the block and the reads cannot mix two branches.
    """
    pools: list[Pool] = []
    for start in range(0, len(metas), CHUNK):
        chunk = metas[start : start + CHUNK]
        pools.extend(await _load_chunk(client, chunk, block, block_hash))
        if progress is not None:
            progress(len(chunk))
    return pools


async def _load_chunk(
    client: RpcClient, metas: Sequence[PoolMeta], block: int, block_hash: str | None
) -> list[Pool]:
    jobs: list[Job] = []
    for meta in metas:
        if meta.family == "uniswap_v2":
            jobs.append(Job(meta.address, V2_RESERVES))
            continue
        jobs.append(Job(meta.address, V3_HEAD))
        words = word_range(meta.tick_spacing)
        for start in range(words.start, words.stop, MAX_WORDS_PER_JOB):
            stop = min(words.stop, start + MAX_WORDS_PER_JOB) - 1
            jobs.append(Job(meta.address, V3_TICKS, meta.tick_spacing, start, stop))
    try:
        at: BlockRef = {"blockHash": block_hash} if block_hash is not None else block
        parts = iter(await run_jobs(client, jobs, at))
    except ValueError as exc:
        raise BootstrapError(f"pool lens answer at block {block}: {exc}") from None
    pools: list[Pool] = []
    for meta in metas:
        if meta.family == "uniswap_v2":
            reserve0, reserve1 = next(parts)
            pools.append(
                V2Pool(
                    address=meta.address,
                    token0=meta.token0,
                    token1=meta.token1,
                    reserve0=reserve0,
                    reserve1=reserve1,
                    fee_bps=meta.fee,
                    chain_id=meta.chain_id,
                    block=block,
                )
            )
        else:
            pools.append(_v3(meta, next(parts), parts, block))
    return pools


def _v3(meta: PoolMeta, head: list[int], parts: Iterator[list[int]], block: int) -> V3Pool:
    sqrt_price, tick, liquidity = head
    if not MIN_TICK <= tick <= MAX_TICK or sqrt_price <= 0 or liquidity < 0:
        raise BootstrapError(f"pool {meta.address}: slot0/liquidity out of range")
    net: dict[int, int] = {}
    gross: dict[int, int] = {}
    words = word_range(meta.tick_spacing)
    for _ in range(0, len(words), MAX_WORDS_PER_JOB):
        found = next(parts)
        for i in range(found[0]):
            t, n, g = found[1 + 3 * i : 4 + 3 * i]
            net[t], gross[t] = n, g
    return V3Pool(
        address=meta.address,
        token0=meta.token0,
        token1=meta.token1,
        fee=meta.fee,
        tick_spacing=meta.tick_spacing,
        sqrt_price_x96=sqrt_price,
        tick=tick,
        liquidity=liquidity,
        ticks=tuple(sorted(net)),
        liquidity_net=net,
        liquidity_gross=gross,
        chain_id=meta.chain_id,
        block=block,
    )
