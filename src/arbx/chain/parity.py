"""State parity: compare the pool book with the chain at the book's head block."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from arbx.chain.bootstrap import PoolMeta, load_pools
from arbx.chain.rpc import RpcClient
from arbx.domain.journal import PoolBook
from arbx.domain.pools import state_difference


@dataclass(slots=True)
class ParityResult:
    """How many pools were compared at which block, and the ones that differ."""

    block: int
    checked: int
    differences: dict[str, str] = field(default_factory=dict)

    @property
    def failures(self) -> int:
        """Pools whose state differs from the chain's."""
        return len(self.differences)


async def check_parity(
    client: RpcClient, book: PoolBook, metas: Sequence[PoolMeta]
) -> ParityResult:
    """Every pool of ``metas`` in the book against the chain at the book's head."""
    block = book.head_number
    ours = {m.address: book.pools[m.address] for m in metas if m.address in book.pools}
    chain = await load_pools(client, [m for m in metas if m.address in ours], block)
    result = ParityResult(block=block, checked=len(chain))
    for pool in chain:
        difference = state_difference(ours[pool.address], pool)
        if difference is not None:
            result.differences[pool.address] = difference
    return result
