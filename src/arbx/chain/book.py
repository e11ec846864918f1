"""The pool book at the start of a run: discover the venues' pools, keep the ones worth following,
and load their states at a settled block (the parent of the latest: a node may serve its latest
block's calls from state the next block is already changing).

Kept: every proven pool the filters allow, minus V2 pools with a reserve under ``min_reserve``
(a V3 pool's liquidity is spread over ticks: no single reserve says it is dust).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from arbx.chain.bootstrap import PoolMeta, load_pools
from arbx.chain.discovery import discover, token_metadata, with_metadata
from arbx.chain.resync import settled_block
from arbx.chain.rpc import RpcClient
from arbx.chain.spec import ChainSpec
from arbx.domain.errors import ConfigError
from arbx.domain.journal import PoolBook
from arbx.domain.pools import Pool, V2Pool


@dataclass(slots=True)
class LoadedBook:
    """The book, what discovery knows of its pools, and the tokens' symbols."""

    book: PoolBook
    metas: list[PoolMeta]
    symbols: dict[str, str]


class LoadProgress:
    """Told how loading goes; the default says nothing."""

    def start(self, pools: int, block: int) -> None:
        """Loading ``pools`` pools at ``block`` begins."""

    def advance(self, pools: int) -> None:
        """``pools`` more are loaded."""

    def done(self) -> None:
        """Loading is over."""


def keep_liquid(
    pools: Sequence[Pool], metas: Sequence[PoolMeta], min_reserve: int
) -> tuple[list[Pool], list[PoolMeta]]:
    """The pools (and their metas) worth following: V2 pools need both reserves >= min_reserve."""
    if not min_reserve:
        return list(pools), list(metas)
    kept = [
        p for p in pools if not isinstance(p, V2Pool) or min(p.reserve0, p.reserve1) >= min_reserve
    ]
    addresses = {p.address for p in kept}
    return kept, [m for m in metas if m.address in addresses]


async def load_book(
    client: RpcClient, spec: ChainSpec, progress: LoadProgress | None = None
) -> LoadedBook:
    """Discover the venues' pools up to a settled block and load the ones kept, at that block."""
    report = progress if progress is not None else LoadProgress()
    number, block_hash = await settled_block(client)
    metas = await discover(
        client,
        spec.venues,
        spec.start_block,
        number,
        spec.chain_id,
        spec.allow,
        spec.deny,
        multicall_address=spec.multicall,
    )
    if not metas:
        raise ConfigError("no pools found: check the venues' factories and chain.start_block")
    addresses = sorted({t.address for m in metas for t in (m.token0, m.token1)})
    tokens = await token_metadata(client, spec.multicall, addresses, number)
    metas = with_metadata(metas, tokens)
    report.start(len(metas), number)
    try:
        loaded = await load_pools(client, metas, number, report.advance, block_hash=block_hash)
    finally:
        report.done()
    pools, metas = keep_liquid(loaded, metas, spec.min_reserve)
    symbols = {a: t.symbol for a, t in tokens.items() if t.symbol} | spec.symbols
    return LoadedBook(PoolBook(pools, number, block_hash), metas, symbols)
