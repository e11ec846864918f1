"""The pool book: every tracked pool's state at our head, and a journal to undo recent blocks.

``apply_block`` takes one block's pool events in log order and returns the pools they changed;
it keeps, per block, the states those pools had before, for the last ``depth`` blocks. On a
reorg ``rewind`` restores the book to a common ancestor, and the new branch is applied on top.
Pure: no IO; the chain adapter decides which blocks are canonical.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from arbx.domain.errors import InputError, StaleStateError
from arbx.domain.events import LoggedEvent, apply
from arbx.domain.pools import Pool, V3Pool, state_difference

DEFAULT_DEPTH = 64


@dataclass(slots=True)
class _BlockRecord:
    number: int
    hash: str
    parent_hash: str
    undo: dict[str, Pool] = field(default_factory=dict)


class PoolBook:
    """Pool states at the head block, with an undo journal of the last ``depth`` blocks."""

    def __init__(
        self,
        pools: Iterable[Pool],
        head_number: int,
        head_hash: str,
        depth: int = DEFAULT_DEPTH,
    ) -> None:
        self.pools: dict[str, Pool] = {p.address: p for p in pools}
        self.head_number = head_number
        self.head_hash = head_hash
        self.depth = depth
        self._journal: deque[_BlockRecord] = deque(maxlen=depth)
        self._lower: dict[str, str] = {a.lower(): a for a in self.pools}

    def __len__(self) -> int:
        return len(self.pools)

    def hash_at(self, number: int) -> str | None:
        """Our hash for block ``number`` if the journal (or the head) still has it."""
        if number == self.head_number:
            return self.head_hash
        for record in self._journal:
            if record.number == number:
                return record.hash
            if record.number == number + 1:
                return record.parent_hash
        return None

    @property
    def oldest(self) -> int:
        """The lowest block number we can rewind to."""
        return self._journal[0].number - 1 if self._journal else self.head_number

    def tracks(self, address: str) -> str | None:
        """The checksummed address if ``address`` (any case) is a tracked pool, else None."""
        return self._lower.get(address.lower())

    def add_pools(self, pools: Iterable[Pool]) -> None:
        """Start tracking more pools (their states must be at the current head)."""
        for pool in pools:
            self.pools[pool.address] = pool
            self._lower[pool.address.lower()] = pool.address

    def replace(self, pools: Iterable[Pool]) -> set[str]:
        """Put states read from the chain at our head in place; the addresses that changed."""
        fresh = [p for p in pools if self._differs(p)]
        self.add_pools(fresh)
        return {p.address for p in fresh}

    def reset(self, pools: Iterable[Pool], head_number: int, head_hash: str) -> set[str]:
        """Start again from states read at another head, forgetting the journal; the addresses
        whose state changed (pools not in ``pools`` keep theirs)."""
        changed = self.replace(pools)
        self._journal.clear()
        self.head_number, self.head_hash = head_number, head_hash
        return changed

    def _differs(self, pool: Pool) -> bool:
        ours = self.pools.get(pool.address)
        return ours is None or state_difference(ours, pool) is not None

    def apply_block(
        self, number: int, block_hash: str, parent_hash: str, events: Iterable[LoggedEvent]
    ) -> set[str]:
        """Apply one block on top of the head; the addresses of the pools it changed."""
        if number != self.head_number + 1 or parent_hash != self.head_hash:
            raise StaleStateError(
                f"block {number} ({block_hash[:10]}) does not extend our head "
                f"{self.head_number} ({self.head_hash[:10]})"
            )
        record = _BlockRecord(number, block_hash, parent_hash)
        ordered = sorted(events, key=lambda e: e.log_index)
        for logged in ordered:
            address = self.tracks(logged.address)
            if address is None:
                continue
            if logged.block_number != number:
                raise InputError(f"event of block {logged.block_number} applied to {number}")
            before = self.pools[address]
            record.undo.setdefault(address, before)
            self.pools[address] = apply(before, logged.event, number)
            if isinstance(before, V3Pool):  # its swap steps serve no route any more
                before.ladders.clear()
        self._journal.append(record)
        self.head_number, self.head_hash = number, block_hash
        return set(record.undo)

    def rewind(self, number: int) -> set[str]:
        """Undo every block above ``number``; the pools it changed. StaleStateError if too deep."""
        if number >= self.head_number:
            return set()
        if number < self.oldest:
            raise StaleStateError(
                f"cannot rewind to block {number}: the journal reaches back to {self.oldest}"
            )
        changed: set[str] = set()
        while self._journal and self._journal[-1].number > number:
            record = self._journal.pop()
            self.pools.update(record.undo)
            changed.update(record.undo)
            self.head_number, self.head_hash = record.number - 1, record.parent_hash
        return changed

    def snapshot(self) -> Mapping[str, Pool]:
        """A read-only copy of the current states (pools are immutable values)."""
        return dict(self.pools)
