"""State parity: compare the pool book with the chain at the book's head block."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

from arbx.chain.bootstrap import PoolMeta, load_pools
from arbx.chain.rpc import RpcClient, RpcError
from arbx.domain.journal import PoolBook
from arbx.domain.pools import state_difference

SETTLE_TIMEOUT = 60.0  # how long to wait for a block after the one checked
SETTLE_POLL = 0.05


@dataclass(slots=True)
class ParityResult:
    """How many pools were compared at which block, and the ones that differ."""

    block: int
    checked: int
    differences: dict[str, str] = field(default_factory=dict)
    skipped: bool = False  # the block was no longer canonical when it was read

    @property
    def failures(self) -> int:
        """Pools whose state differs from the chain's."""
        return len(self.differences)


async def check_parity(
    client: RpcClient,
    book: PoolBook,
    metas: Sequence[PoolMeta],
    settle_timeout: float = SETTLE_TIMEOUT,
) -> ParityResult:
    """Every pool of ``metas`` in the book against the chain at the book's head.

    The book's states are copied before the first ``await``, so the caller may go on syncing
    while this runs (as a task). The chain is read only once a later block exists: a node may
    serve a call at its latest block from state that the block being mined is already
    changing (seen on anvil while a builder mines), while an older block's state is fixed.
    """
    block, block_hash = book.head_number, book.head_hash
    ours = {m.address: book.pools[m.address] for m in metas if m.address in book.pools}
    wanted = [m for m in metas if m.address in ours]
    deadline = asyncio.get_running_loop().time() + settle_timeout
    while await client.block_number() <= block:
        if asyncio.get_running_loop().time() > deadline:
            return ParityResult(block=block, checked=0, skipped=True)
        await asyncio.sleep(SETTLE_POLL)
    try:
        chain = await load_pools(client, wanted, block, block_hash=block_hash)
    except RpcError:  # our head was reorged away meanwhile: nothing to compare at that block
        return ParityResult(block=block, checked=0, skipped=True)
    canonical = await client.call("eth_getBlockByNumber", [hex(block), False])
    if not isinstance(canonical, dict) or canonical.get("hash") != block_hash:
        return ParityResult(block=block, checked=0, skipped=True)
    result = ParityResult(block=block, checked=len(chain))
    for pool in chain:
        difference = state_difference(ours[pool.address], pool)
        if difference is not None:
            result.differences[pool.address] = difference
    return result
