"""Repair the pool book from the chain: reload the pools in doubt, or every pool at a new head.

``reload`` reads some pools at the book's own head, pinned by its hash, so the repaired states
belong to the block the rest of the book is at. ``rebootstrap`` reads every pool at the parent of
the chain's latest block (settled: a node may serve its latest block's calls from state the next
block is already changing) and restarts the book there (its undo journal is forgotten); heads at
or below that block are then behind the book and are skipped by the caller.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from arbx.chain.bootstrap import PoolMeta, load_pools
from arbx.chain.heads import decode_head
from arbx.chain.rpc import RpcClient
from arbx.chain.sync import hex_hash
from arbx.domain.journal import PoolBook


class BookResync:
    """Reloads pools of ``book`` (known to discovery as ``metas``) from the chain."""

    def __init__(self, client: RpcClient, book: PoolBook, metas: Sequence[PoolMeta]) -> None:
        self.client = client
        self.book = book
        self.metas = metas

    async def reload(self, pools: Iterable[str]) -> set[str]:
        """Read ``pools`` at the book's head (by hash); the ones whose state changed."""
        wanted = set(pools)
        metas = [m for m in self.metas if m.address in wanted]
        if not metas:
            return set()
        fresh = await load_pools(
            self.client, metas, self.book.head_number, block_hash=self.book.head_hash
        )
        return self.book.replace(fresh)

    async def rebootstrap(self) -> tuple[int, set[str]]:
        """Read every pool at the parent of the chain's latest block and restart the book there.

        Returns that block's number and the pools whose state changed.
        """
        number, block_hash = await settled_block(self.client)
        fresh = await load_pools(self.client, self.metas, number, block_hash=block_hash)
        return number, self.book.reset(fresh, number, block_hash)


async def settled_block(client: RpcClient) -> tuple[int, str]:
    """The number and hash of the parent of the chain's latest block (the block itself at 0).

    A chain always has a latest block: an endpoint that answers none (null), or a malformed one,
    has failed, and the client asks the next one (``TransientError`` when none answers one).
    """
    head = await client.call("eth_getBlockByNumber", ["latest", False], decode=decode_head)
    if head.number == 0:
        return 0, hex_hash(head.hash)
    return head.number - 1, hex_hash(head.parent_hash)
