"""Load pool states from the chain at one block, in batches through multicall.

V2: ``getReserves()``. V3: ``slot0()``, ``liquidity()``, every ``tickBitmap`` word of the pool's
whole tick range, then ``ticks(i)`` for each initialized tick found. Every read is pinned to the
same block, so the states are consistent with each other and with that block's hash.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from eth_abi.abi import decode, encode

from arbx.chain.multicall import Call, Result, multicall, selector
from arbx.chain.rpc import RpcClient
from arbx.domain.pools import Pool, Token, V2Pool, V3Pool

GET_RESERVES = selector("getReserves()")
SLOT0 = selector("slot0()")
LIQUIDITY = selector("liquidity()")
TICK_BITMAP = selector("tickBitmap(int16)")
TICKS = selector("ticks(int24)")
MIN_TICK, MAX_TICK = -887272, 887272


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
    multicall_address: str,
    metas: Sequence[PoolMeta],
    block: int,
    progress: Callable[[int], None] | None = None,
) -> list[Pool]:
    """The state of every pool at ``block``; BootstrapError names the first pool that failed."""
    first: list[Call] = []
    for meta in metas:
        if meta.family == "uniswap_v2":
            first.append(Call(meta.address, GET_RESERVES))
        else:
            first += [Call(meta.address, SLOT0), Call(meta.address, LIQUIDITY)]
            first += [
                Call(meta.address, TICK_BITMAP + encode(["int16"], [w]))
                for w in word_range(meta.tick_spacing)
            ]
    results = await multicall(client, multicall_address, first, block)
    pools: list[Pool | None] = []
    wanted: list[tuple[int, int]] = []  # (index in pools, tick)
    ticks: list[Call] = []
    at = 0
    for meta in metas:
        if meta.family == "uniswap_v2":
            reserves = _decoded(results[at], ["uint112", "uint112", "uint32"], meta, "getReserves")
            at += 1
            pools.append(
                V2Pool(
                    address=meta.address,
                    token0=meta.token0,
                    token1=meta.token1,
                    reserve0=reserves[0],
                    reserve1=reserves[1],
                    fee_bps=meta.fee,
                    chain_id=meta.chain_id,
                    block=block,
                )
            )
        else:
            words = word_range(meta.tick_spacing)
            index = len(pools)
            pools.append(None)  # filled in once its ticks are read
            for pos, result in zip(words, results[at + 2 : at + 2 + len(words)], strict=True):
                (bitmap,) = _decoded(result, ["uint256"], meta, "tickBitmap")
                while bitmap:
                    low = bitmap & -bitmap
                    tick = ((pos << 8) + low.bit_length() - 1) * meta.tick_spacing
                    wanted.append((index, tick))
                    ticks.append(Call(meta.address, TICKS + encode(["int24"], [tick])))
                    bitmap ^= low
            at += 2 + len(words)
        if progress is not None:
            progress(1)
    tick_results = await multicall(client, multicall_address, ticks, block)
    per_pool: dict[int, list[tuple[int, int, int]]] = {}
    for (index, tick), result in zip(wanted, tick_results, strict=True):
        gross, net = _decoded(result, ["uint128", "int128"], metas[index], "ticks", prefix=True)
        per_pool.setdefault(index, []).append((tick, gross, net))
    out: list[Pool] = []
    at = 0
    for index, (meta, pool) in enumerate(zip(metas, pools, strict=True)):  # in file order
        if pool is not None:
            out.append(pool)
            at += 1
            continue
        slot0 = _decoded(results[at], ["uint160", "int24"], meta, "slot0", prefix=True)
        (liquidity,) = _decoded(results[at + 1], ["uint128"], meta, "liquidity")
        at += 2 + len(word_range(meta.tick_spacing))
        rows = sorted(per_pool.get(index, []))
        out.append(
            V3Pool(
                address=meta.address,
                token0=meta.token0,
                token1=meta.token1,
                fee=meta.fee,
                tick_spacing=meta.tick_spacing,
                sqrt_price_x96=slot0[0],
                tick=slot0[1],
                liquidity=liquidity,
                ticks=tuple(t for t, _, _ in rows),
                liquidity_net={t: n for t, _, n in rows},
                liquidity_gross={t: g for t, g, _ in rows},
                chain_id=meta.chain_id,
                block=block,
            )
        )
    return out


def _decoded(
    result: Result, types: list[str], meta: PoolMeta, what: str, prefix: bool = False
) -> tuple[int, ...]:
    """ABI-decode one multicall result (only its leading words with ``prefix``)."""
    data = result.data
    if prefix:
        data = data[: 32 * len(types)]
    if not result.success or len(data) < 32 * len(types):
        raise BootstrapError(f"{what} failed on pool {meta.address}")
    try:
        return tuple(decode(types, data))
    except Exception as exc:
        raise BootstrapError(f"{what} on pool {meta.address}: {exc}") from None
