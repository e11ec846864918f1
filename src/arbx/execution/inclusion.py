"""Which of our bundles landed, decided from canonical blocks only, reorgs undone, settled late.

``BundleTracker`` remembers each bundle sent (our transaction hashes, its target blocks, the
builders) and is told every canonical block in order (``on_block``), replacement blocks of a
reorg included. A bundle is:

    pending        sent, its window still open
    included       every one of our transaction hashes is in one canonical block (hash recorded)
    reverted       included, but one of our transactions failed (receipt status 0), whether or
                   not the builder was told it may revert: we paid for it
    not_included   the window passed without it, or only part of it landed (its nonce is spent)
    state_moved    the caller found (simulating at the next block) that it no longer pays; it
                   stays so unless it is included anyway

A competitor's bundle that starts with the same transaction is not ours: only our own hashes
count. A block at a number already seen with another hash (or whose parent is not the block we
recorded) is a reorg: bundles included at or above it go back to pending (or not_included if
their window has passed) and are decided again by the new blocks. An outcome is ``settled`` (final
for PnL) once ``confirmations`` canonical blocks have followed the block that decided it.

The new branch may hold a bundle taken out by a reorg in a block the tracker is never told: an
earlier one (the node put its transaction in a replacement block below its target) or one inside
a gap of heads. With ``locate`` (a transaction's receipt on the node's canonical chain), such a
bundle is looked for by its transactions' receipts at every block until it is decided again, and
before its window's end decides it not included: found, it is included (or reverted) in the
block the receipts name.
"""

from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final

from arbx.chain.heads import Head
from arbx.chain.receipts import receipt
from arbx.chain.rpc import RpcClient, hex_hash
from arbx.domain.errors import ArbxError

ReceiptStatus = Callable[[bytes, bytes], Awaitable[int | None]]
"""(tx hash, block hash) -> the receipt status (1 or 0), or None if there is none in that block."""

Location = tuple[int, bytes, int]
"""Where the node's canonical chain has a transaction: block number, block hash, receipt status."""

Locate = Callable[[bytes], Awaitable[Location | None]]
"""tx hash -> its ``Location`` from its receipt, or None if the node has no receipt for it."""

DEFAULT_CONFIRMATIONS: Final = 2
_HISTORY: Final = 512  # canonical block hashes remembered, to recognise reorgs


class Outcome(StrEnum):
    """What became of a bundle."""

    PENDING = "pending"
    INCLUDED = "included"
    NOT_INCLUDED = "not_included"
    REVERTED = "reverted"
    STATE_MOVED = "state_moved"


@dataclass(slots=True)
class TrackedBundle:
    """One bundle we sent and what is known of it."""

    key: str
    tx_hashes: tuple[bytes, ...]
    first_block: int
    last_block: int
    builders: tuple[str, ...] = ()
    outcome: Outcome = Outcome.PENDING
    block_number: int | None = None  # where it was included
    block_hash: bytes | None = None
    decided_at: int | None = None  # the block number that decided the outcome
    settled: bool = False
    receipts_known: bool = True
    state_moved: bool = False
    reorged: bool = False  # a reorg took it out of its block: looked for by its receipts
    reason: str = ""


@dataclass(frozen=True, slots=True)
class OutcomeChange:
    """A bundle's outcome changed (or became settled) at canonical block ``at``."""

    key: str
    outcome: Outcome
    previous: Outcome
    at: int
    block_hash: bytes | None
    settled: bool
    reason: str


@dataclass(slots=True)
class TrackerStats:
    """Counters for metrics."""

    tracked: int = 0
    blocks: int = 0
    reorgs: int = 0
    uncovered: int = 0  # bundles taken out of a block by a reorg
    deep_reorgs: int = 0  # ... after they had settled
    partial: int = 0
    receipt_errors: int = 0
    relocated: int = 0  # bundles a reorg took out found by their receipts in another block
    by_outcome: dict[str, int] = field(default_factory=dict)


class BundleTracker:
    """Outcomes of sent bundles, decided block by block; see the module docstring."""

    def __init__(
        self,
        *,
        confirmations: int = DEFAULT_CONFIRMATIONS,
        receipt_status: ReceiptStatus | None = None,
        locate: Locate | None = None,
    ) -> None:
        if confirmations < 0:
            raise ValueError(f"confirmations {confirmations}")
        self.confirmations = confirmations
        self.stats = TrackerStats()
        self._receipt_status = receipt_status
        self._locate = locate
        self._bundles: dict[str, TrackedBundle] = {}
        self._canonical: dict[int, bytes] = {}
        self.head: int | None = None

    def __len__(self) -> int:
        return len(self._bundles)

    def get(self, key: str) -> TrackedBundle | None:
        """The bundle tracked under ``key``, if any."""
        return self._bundles.get(key)

    def holds(self, tx_hash: bytes) -> bool:
        """Whether a bundle tracked here has transaction ``tx_hash``."""
        return any(tx_hash in b.tx_hashes for b in self._bundles.values())

    def track(
        self,
        key: str,
        tx_hashes: Sequence[bytes],
        first_block: int,
        last_block: int,
        builders: Iterable[str] = (),
    ) -> TrackedBundle:
        """Start following a bundle sent for blocks ``first_block``..``last_block``."""
        if not tx_hashes or last_block < first_block:
            raise ValueError(f"bundle {key}: no transactions or an empty window")
        if key in self._bundles:
            raise ValueError(f"bundle {key} is already tracked")
        bundle = TrackedBundle(
            key,
            tuple(bytes(h) for h in tx_hashes),
            first_block,
            last_block,
            tuple(builders),
        )
        self._bundles[key] = bundle
        self.stats.tracked += 1
        return bundle

    def mark_state_moved(self, key: str, reason: str = "") -> OutcomeChange | None:
        """The caller's simulation says the bundle no longer pays; a change if it was pending."""
        bundle = self._bundles[key]
        bundle.state_moved = True
        if bundle.outcome is not Outcome.PENDING:
            return None
        at = self.head or 0
        return self._set(bundle, Outcome.STATE_MOVED, at, reason or "state moved", None)

    def pop_settled(self, keep: int = 0) -> list[TrackedBundle]:
        """Forget the settled bundles decided more than ``keep`` blocks below the head, and
        return them (kept ones are still undone by a reorg that reaches their block)."""
        head = self.head or 0
        done = [
            b for b in self._bundles.values()
            if b.settled and (b.decided_at or 0) + keep <= head
        ]  # fmt: skip
        for bundle in done:
            del self._bundles[bundle.key]
        return done

    def landed(self) -> list[TrackedBundle]:
        """The bundles decided by a block (included or reverted), settled or not."""
        return [
            b
            for b in self._bundles.values()
            if b.outcome in (Outcome.INCLUDED, Outcome.REVERTED) and b.block_number is not None
        ]

    async def reorged_out(self, key: str, at: int) -> list[OutcomeChange]:
        """``key``'s block is no longer canonical (found by the caller: a reorg whose fork point
        the blocks told in order did not show): reopen it as ``_reorg`` does; then, if its
        receipts put it in another block (``locate``), decide it there; else, its window passed
        at head ``at``, decide it not included."""
        bundle = self._bundles[key]
        if bundle.outcome not in (Outcome.INCLUDED, Outcome.REVERTED):
            return []
        reopened = self._reopen(bundle, at)
        relocated = await self._relocate(bundle, at)
        changes = [reopened, *relocated]
        if at >= bundle.last_block and reopened.outcome is Outcome.PENDING and not relocated:
            reason = "reorged out after its target blocks"
            changes.append(self._set(bundle, Outcome.NOT_INCLUDED, at, reason, at))
        return changes

    def joins(self, number: int, parent_hash: bytes | None) -> bool:
        """Whether block ``number`` with ``parent_hash`` extends the block told at ``number - 1``
        (not after a gap of heads the tracker was never told, across which a reorg leaves no
        trace here)."""
        known = self._canonical.get(number - 1)
        return known is not None and known == parent_hash

    # -- blocks -----------------------------------------------------------------------------

    async def on_block(
        self,
        number: int,
        tx_hashes: Iterable[bytes],
        block_hash: bytes,
        parent_hash: bytes | None = None,
    ) -> list[OutcomeChange]:
        """Take canonical block ``number`` (its tx hashes, in any order); the outcome changes."""
        if self._canonical.get(number) == block_hash:
            return []  # seen already
        changes: list[OutcomeChange] = []
        known_parent = self._canonical.get(number - 1)
        if any(n >= number for n in self._canonical):
            changes += self._reorg(number)
        elif parent_hash is not None and known_parent not in (None, parent_hash):
            changes += self._reorg(number - 1)  # the parent was replaced without our seeing it
        self._canonical[number] = block_hash
        self._canonical.pop(number - _HISTORY, None)
        self.head = number
        self.stats.blocks += 1
        in_block = {bytes(h) for h in tx_hashes}
        for bundle in list(self._bundles.values()):
            if bundle.settled:
                continue
            if bundle.outcome in (Outcome.INCLUDED, Outcome.REVERTED):
                if not bundle.receipts_known:
                    changes += await self._judge_receipts(bundle, number)
                continue
            changes += await self._look_for(bundle, number, block_hash, in_block)
            if bundle.reorged and bundle.block_number is None:  # not in this block: elsewhere?
                changes += await self._relocate(bundle, number)
        for bundle in list(self._bundles.values()):  # inclusion was looked for first
            if number < bundle.last_block:
                continue
            if bundle.outcome is Outcome.PENDING and self._window_unseen(bundle):
                changes += await self._relocate(bundle, number, "in a gap of heads")
            if bundle.outcome is Outcome.PENDING:
                reason = "target blocks passed"
                changes.append(self._set(bundle, Outcome.NOT_INCLUDED, number, reason, number))
            elif bundle.outcome is Outcome.STATE_MOVED and bundle.decided_at is None:
                bundle.decided_at = number
        for bundle in self._bundles.values():
            decided = bundle.decided_at
            if (
                not bundle.settled
                and bundle.outcome is not Outcome.PENDING
                and decided is not None
                and number >= decided + self.confirmations
                and bundle.receipts_known
            ):
                bundle.settled = True
                changes.append(
                    OutcomeChange(
                        bundle.key,
                        bundle.outcome,
                        bundle.outcome,
                        number,
                        bundle.block_hash,
                        True,
                        bundle.reason,
                    )
                )
        return changes

    async def _look_for(
        self, bundle: TrackedBundle, number: int, block_hash: bytes, in_block: set[bytes]
    ) -> list[OutcomeChange]:
        """Decide ``bundle`` by this block's transactions, if any of ours is in it."""
        present = [h in in_block for h in bundle.tx_hashes]
        if all(present):
            previous = bundle.outcome
            bundle.block_number, bundle.block_hash = number, block_hash
            return await self._judge_receipts(bundle, number, previous)
        if any(present) and bundle.outcome is not Outcome.NOT_INCLUDED:
            self.stats.partial += 1
            reason = f"partially included: {sum(present)} of {len(present)} in block {number}"
            return [self._set(bundle, Outcome.NOT_INCLUDED, number, reason, number)]
        return []

    def _window_unseen(self, bundle: TrackedBundle) -> bool:
        """Whether a block of ``bundle``'s window was never told (the engine skipped heads: a
        catch-up after an outage, a re-bootstrap), so it may have landed unseen."""
        return any(
            n not in self._canonical for n in range(bundle.first_block, bundle.last_block + 1)
        )

    async def _relocate(
        self, bundle: TrackedBundle, at: int, why: str = "after a reorg"
    ) -> list[OutcomeChange]:
        """Decide a bundle by its receipts (``locate``), if they put every one of its
        transactions in one block of the node's chain; nothing if not (yet). For one a reorg
        took out, or one whose window holds blocks the tracker was never told (``why``)."""
        if self._locate is None:
            return []
        found: list[Location] = []
        for tx in bundle.tx_hashes:
            try:
                where = await self._locate(tx)
            except ArbxError:
                self.stats.receipt_errors += 1
                return []
            if where is None:
                return []
            found.append(where)
        if len({(n, h) for n, h, _ in found}) != 1:
            return []  # spread over blocks: a partial inclusion the blocks will tell
        number, block_hash, _ = found[0]
        failed = [
            tx for tx, (_, _, status) in zip(bundle.tx_hashes, found, strict=True) if not status
        ]
        bundle.block_number, bundle.block_hash = number, block_hash
        bundle.receipts_known, bundle.reorged = True, False
        self.stats.relocated += 1
        outcome = Outcome.REVERTED if failed else Outcome.INCLUDED
        reason = f"included in block {number} (found by its receipts {why})"
        if failed:
            reason = f"reverted in block {number}: 0x{failed[0].hex()} (found {why})"
        return [self._set(bundle, outcome, at, reason, number)]

    async def _judge_receipts(
        self, bundle: TrackedBundle, number: int, previous: Outcome | None = None
    ) -> list[OutcomeChange]:
        """Included or reverted by our receipts (``previous``: a fresh inclusion, not a re-read)."""
        failed: list[bytes] = []
        known = True
        if self._receipt_status is not None:
            for tx in bundle.tx_hashes:
                try:
                    status = await self._receipt_status(tx, bundle.block_hash or b"")
                except ArbxError:
                    self.stats.receipt_errors += 1
                    status = None
                if status is None:
                    known = False
                elif status == 0:
                    failed.append(tx)
        bundle.receipts_known = known
        outcome = Outcome.REVERTED if failed else Outcome.INCLUDED
        reason = f"included in block {bundle.block_number}"
        if failed:
            reason = f"reverted in block {bundle.block_number}: 0x{failed[0].hex()}"
        elif not known:
            reason += " (receipt status not known yet)"
        if previous is None and outcome is bundle.outcome:
            return []
        return [self._set(bundle, outcome, number, reason, bundle.block_number)]

    def _reorg(self, first_replaced: int) -> list[OutcomeChange]:
        """Blocks from ``first_replaced`` up are no longer canonical: undo what they decided."""
        self.stats.reorgs += 1
        for n in [n for n in self._canonical if n >= first_replaced]:
            del self._canonical[n]
        changes: list[OutcomeChange] = []
        for bundle in self._bundles.values():
            decided = bundle.decided_at
            if decided is None or decided < first_replaced:
                continue
            changes.append(self._reopen(bundle, first_replaced))
        return changes

    def _reopen(self, bundle: TrackedBundle, at: int) -> OutcomeChange:
        """``bundle``'s deciding block was replaced: pending (or state moved) again."""
        if bundle.settled:
            self.stats.deep_reorgs += 1
        if bundle.outcome in (Outcome.INCLUDED, Outcome.REVERTED):
            self.stats.uncovered += 1
        reopened = Outcome.STATE_MOVED if bundle.state_moved else Outcome.PENDING
        bundle.block_number = bundle.block_hash = None
        bundle.receipts_known = True
        bundle.settled = False
        bundle.reorged = True
        return self._set(bundle, reopened, at, "reorged out", None)

    def _set(
        self, bundle: TrackedBundle, outcome: Outcome, at: int, reason: str, decided_at: int | None
    ) -> OutcomeChange:
        previous = bundle.outcome
        bundle.outcome = outcome
        bundle.reason = reason
        bundle.decided_at = decided_at
        if outcome is not Outcome.PENDING:
            key = str(outcome)
            self.stats.by_outcome[key] = self.stats.by_outcome.get(key, 0) + 1
        return OutcomeChange(
            bundle.key, outcome, previous, at, bundle.block_hash, bundle.settled, reason
        )


# -- helpers over a node ------------------------------------------------------------------------


def receipt_status_via(client: RpcClient) -> ReceiptStatus:
    """A ``ReceiptStatus`` reading ``eth_getTransactionReceipt`` through ``client``."""

    async def status(tx: bytes, block_hash: bytes) -> int | None:
        found = await receipt(client, tx)
        if found is None or found.block_hash != block_hash:
            return None
        return int(found.succeeded)

    return status


def _tx_hashes(raw: Any) -> tuple[bytes, ...] | None:
    if raw is None:
        return None
    txs = raw["transactions"]
    if type(txs) is not list:
        raise TypeError("transactions is not a list")
    return tuple(hex_hash(tx if isinstance(tx, str) else tx["hash"]) for tx in txs)


def location_via(client: RpcClient) -> Locate:
    """A ``Locate`` reading ``eth_getTransactionReceipt`` through ``client``."""

    async def locate(tx: bytes) -> Location | None:
        found = await receipt(client, tx)
        if found is None:
            return None
        return found.block_number, found.block_hash, int(found.succeeded)

    return locate


async def block_tx_hashes(client: RpcClient, block_hash: bytes) -> tuple[bytes, ...] | None:
    """The transaction hashes of the block ``block_hash``, or None if the node does not have it."""
    return await client.call(
        "eth_getBlockByHash", ["0x" + block_hash.hex(), False], decode=_tx_hashes
    )


async def track_head(tracker: BundleTracker, client: RpcClient, head: Head) -> list[OutcomeChange]:
    """Feed one new head (from ``arbx.chain.heads``) to ``tracker``, reading its transactions."""
    txs = await block_tx_hashes(client, head.hash)
    if txs is None:  # reorged away between the head and now: the next head will say more
        return []
    return await tracker.on_block(head.number, txs, head.hash, head.parent_hash)
