"""Follow the chain block by block and keep the pool book equal to it, through reorgs.

For each new head: walk back from it, fetching headers by number, until a parent hash matches a
block we hold (a plain next block needs no fetch); rewind the book to that ancestor; then apply
the new branch, each block's pool logs fetched by block hash (EIP-234), so that a log can never
be taken from a block other than the one we apply. Logs that cannot be decoded are counted and
their pools reported as suspect, to be reloaded from the chain.

Headers and logs come from a ``ChainSource``: the node (``RpcSource``) in a run, a recorded
window (``arbx.chain.window``) in a replay; what is done with them is the same code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from arbx.chain.heads import Head, decode_head
from arbx.chain.pool_events import ALL_TOPICS, to_logged
from arbx.chain.rpc import Log, RpcClient, decode_logs, to_data, to_quantity
from arbx.domain.errors import StaleStateError
from arbx.domain.events import LoggedEvent
from arbx.domain.journal import PoolBook

MAX_BRANCH_RETRIES = 3


hex_hash = to_data  # a block hash as the book keys it: "0x" and lower-case hex


@dataclass(slots=True)
class SyncUpdate:
    """What one new head did to the book."""

    head: int
    changed: set[str] = field(default_factory=set)
    blocks_applied: int = 0
    reorg_depth: int = 0
    suspects: set[str] = field(default_factory=set)
    logs: int = 0


@dataclass(slots=True)
class SyncStats:
    """Counters for metrics and the report."""

    blocks: int = 0
    logs: int = 0
    reorgs: int = 0
    deepest_reorg: int = 0
    malformed_logs: int = 0
    duplicate_heads: int = 0


class ChainSource(Protocol):
    """Where the sync reads the headers and logs it needs."""

    async def header(self, number: int) -> Head:
        """The header of block ``number`` (StaleStateError when there is none)."""
        ...

    async def logs(self, blocks: list[Head]) -> list[list[Log]]:
        """Each block's pool logs, in the order of ``blocks``."""
        ...


class RpcSource:
    """Headers by number and pool logs by block hash, from the node."""

    def __init__(self, client: RpcClient) -> None:
        self.client = client

    async def header(self, number: int) -> Head:
        """``eth_getBlockByNumber``; StaleStateError when the node has no such block or answers
        another one."""
        raw = await self.client.call("eth_getBlockByNumber", [to_quantity(number), False])
        if raw is None:
            raise StaleStateError(f"the node has no block {number}")
        try:
            return decode_head(raw)
        except (KeyError, TypeError, ValueError) as exc:
            raise StaleStateError(f"malformed header for block {number}: {exc}") from None

    async def logs(self, blocks: list[Head]) -> list[list[Log]]:
        """``eth_getLogs`` by block hash, batched (an RpcError, such as "unknown block", is the
        caller's to judge)."""
        topics = [[to_data(t) for t in ALL_TOPICS]]
        requests = [
            ("eth_getLogs", [{"blockHash": hex_hash(b.hash), "topics": topics}]) for b in blocks
        ]
        if len(requests) == 1:
            return [await self.client.call(*requests[0], decode=decode_logs)]
        return await self.client.batch(requests, decode=decode_logs)


class ChainSync:
    """Keeps a PoolBook at the chain's head, one ``advance(head)`` at a time."""

    def __init__(self, source: RpcClient | ChainSource, book: PoolBook) -> None:
        self.source: ChainSource = RpcSource(source) if isinstance(source, RpcClient) else source
        self.book = book
        self.stats = SyncStats()

    async def advance(self, head: Head) -> SyncUpdate:
        """Bring the book to ``head``: fill gaps, undo a reorged branch, apply the new one."""
        if self.book.hash_at(head.number) == hex_hash(head.hash):
            self.stats.duplicate_heads += 1
            return SyncUpdate(head=self.book.head_number)
        for _ in range(MAX_BRANCH_RETRIES):
            branch = await self._branch(head)
            if branch is not None:
                break
        else:
            raise StaleStateError(f"the chain kept changing under block {head.number}")
        ancestor = branch[0].number - 1
        # every read before the book moves: a failure leaves it as it was, so that the retry
        # still sees the reorg and reports the pools the rewind changed
        logs = await self._logs(branch)
        update = SyncUpdate(head=head.number)
        if ancestor < self.book.head_number:
            update.reorg_depth = self.book.head_number - ancestor
            update.changed |= self.book.rewind(ancestor)
            self.stats.reorgs += 1
            self.stats.deepest_reorg = max(self.stats.deepest_reorg, update.reorg_depth)
        for block, raw_logs in zip(branch, logs, strict=True):
            events = self._events(raw_logs, update)
            update.changed |= self.book.apply_block(
                block.number, hex_hash(block.hash), hex_hash(block.parent_hash), events
            )
            update.blocks_applied += 1
        self.stats.blocks += update.blocks_applied
        return update

    async def block_at(self, number: int) -> Head | None:
        """The chain's block at ``number`` as the node has it now; None when it has none (or
        none it answers properly)."""
        try:
            return await self._header(number)
        except StaleStateError:
            return None

    async def _branch(self, head: Head) -> list[Head] | None:
        """Blocks from just above our common ancestor up to ``head``, oldest first.

        None if the fetched headers do not link up (the chain moved while we read it).
        """
        branch = [head]
        while True:
            low = branch[-1]
            parent_number = low.number - 1
            if parent_number <= self.book.head_number:
                ours = self.book.hash_at(parent_number)
                if ours is None:
                    raise StaleStateError(
                        f"reorg below block {parent_number}, deeper than the journal "
                        f"({self.book.depth} blocks)"
                    )
                if ours == hex_hash(low.parent_hash):
                    break
            if parent_number < 0:
                raise StaleStateError("no common ancestor with the chain")
            parent = await self._header(parent_number)
            if parent.hash != low.parent_hash:
                return None
            branch.append(parent)
        branch.reverse()
        return branch

    async def _header(self, number: int) -> Head:
        header = await self.source.header(number)
        if header.number != number:
            raise StaleStateError(f"asked for block {number}, the node answered {header.number}")
        return header

    async def _logs(self, blocks: list[Head]) -> list[list[Log]]:
        """Each block's pool logs, by block hash; StaleStateError when the source answers logs
        of another block."""
        answers = await self.source.logs(blocks)
        if len(answers) != len(blocks):
            raise StaleStateError(f"logs of {len(answers)} blocks answered for {len(blocks)}")
        for block, logs in zip(blocks, answers, strict=True):
            for log in logs:
                if log.block_hash != block.hash or log.block_number != block.number:
                    raise StaleStateError(
                        f"logs asked for block {block.number} ({hex_hash(block.hash)[:10]}) "
                        f"name block {log.block_number} ({hex_hash(log.block_hash)[:10]})"
                    )
        return answers

    def _events(self, logs: list[Log], update: SyncUpdate) -> list[LoggedEvent]:
        events: list[LoggedEvent] = []
        for log in logs:
            address = self.book.tracks(log.address)
            if address is None or log.removed:
                continue
            update.logs += 1
            self.stats.logs += 1
            try:
                events.append(to_logged(log, address))
            except ValueError:
                self.stats.malformed_logs += 1
                update.suspects.add(address)
        return events
