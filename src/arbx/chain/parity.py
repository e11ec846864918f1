"""State parity: compare the pool book with the chain at the book's head block."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from arbx.chain.bootstrap import PoolMeta, load_pools
from arbx.chain.rpc import RpcClient, RpcError
from arbx.domain.journal import PoolBook
from arbx.domain.pools import Pool, state_difference

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


@dataclass(frozen=True, slots=True)
class ParitySnapshot:
    """Our states of the checked pools at one block of ours, copied when it was our head."""

    block: int
    block_hash: str
    states: Mapping[str, Pool]


def snapshot(book: PoolBook, metas: Sequence[PoolMeta]) -> ParitySnapshot:
    """The book's head and the states of ``metas``' pools, copied now (states are immutable)."""
    pools = book.pools
    states = {m.address: pools[m.address] for m in metas if m.address in pools}
    return ParitySnapshot(book.head_number, book.head_hash, states)


async def check_parity(
    client: RpcClient,
    book: PoolBook,
    metas: Sequence[PoolMeta],
    settle_timeout: float = SETTLE_TIMEOUT,
) -> ParityResult:
    """Every pool of ``metas`` in the book against the chain at the book's head.

    The book's states are copied before the first ``await``, so the caller may go on syncing
    while this runs (as a task).
    """
    return await check_snapshot(client, snapshot(book, metas), metas, settle_timeout)


async def check_snapshot(
    client: RpcClient,
    ours: ParitySnapshot,
    metas: Sequence[PoolMeta],
    settle_timeout: float = SETTLE_TIMEOUT,
) -> ParityResult:
    """The states of ``ours`` against the chain's at the same block, pinned by its hash.

    The chain is read only once a later block exists (the block is settled): a node may
    serve a call at its latest block from state that the block being mined is already
    changing (seen on anvil while a builder mines), while an older block's state is fixed.
    """
    block, block_hash = ours.block, ours.block_hash
    wanted = [m for m in metas if m.address in ours.states]
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
        difference = state_difference(ours.states[pool.address], pool)
        if difference is not None:
            result.differences[pool.address] = difference
    return result


class ParityChecker:
    """Parity checks of one book: ``snapshot`` copies the book's head states at once, ``check``
    compares a snapshot with the chain (run it in the background)."""

    def __init__(
        self,
        client: RpcClient,
        book: PoolBook,
        metas: Sequence[PoolMeta],
        settle_timeout: float = SETTLE_TIMEOUT,
    ) -> None:
        self.client = client
        self.book = book
        self.metas = metas
        self.settle_timeout = settle_timeout

    def snapshot(self) -> ParitySnapshot:
        """The book's head states, copied now."""
        return snapshot(self.book, self.metas)

    async def check(self, ours: ParitySnapshot) -> ParityResult:
        """``ours`` against the chain at the same block, once that block is settled."""
        return await check_snapshot(self.client, ours, self.metas, self.settle_timeout)
