"""``sync verify``'s work: load the book, follow some new heads, then compare every pool with the
chain. The command line prints the result; nothing here prints.
"""

from __future__ import annotations

from dataclasses import dataclass

from arbx.chain.book import LoadProgress, load_book
from arbx.chain.heads import heads
from arbx.chain.parity import ParityResult, check_parity
from arbx.chain.rpc import RpcClient
from arbx.chain.spec import ChainSpec
from arbx.chain.sync import ChainSync, SyncStats


@dataclass(frozen=True, slots=True)
class Verified:
    """The comparison, after how many followed blocks, and what the sync saw on the way."""

    parity: ParityResult
    blocks: int
    sync: SyncStats


async def follow_and_verify(
    client: RpcClient,
    spec: ChainSpec,
    blocks: int,
    *,
    poll_interval: float,
    progress: LoadProgress | None = None,
) -> Verified:
    """Load the book, follow ``blocks`` new heads, then compare every pool with the chain."""
    loaded = await load_book(client, spec, progress or LoadProgress())
    sync = ChainSync(client, loaded.book)
    seen = 0
    if blocks:
        async for head in heads(client, poll_interval=poll_interval):
            await sync.advance(head)
            seen += 1
            if seen >= blocks:
                break
    parity = await check_parity(client, loaded.book, loaded.metas)
    return Verified(parity, seen, sync.stats)
