"""BundleTracker on made-up blocks: inclusion, windows, reverts, state moves, reorgs, settling."""

import pytest

from arbx.errors import TransientError
from arbx.execution.inclusion import BundleTracker, Outcome, TrackedBundle

pytestmark = pytest.mark.asyncio

A1, A2, B1, OTHER = (bytes([n]) * 32 for n in (1, 2, 3, 9))


def block_hash(number: int, branch: str = "a") -> bytes:
    """A made-up block hash, distinct per number and branch."""
    return f"{branch}{number}".encode().ljust(32, b"\0")


class Receipts:
    """Receipt statuses by tx hash (None: not found yet, or raise)."""

    def __init__(self, statuses: dict[bytes, int | None] | None = None) -> None:
        self.statuses = statuses or {}
        self.fail = False
        self.asked: list[tuple[bytes, bytes]] = []

    async def __call__(self, tx: bytes, block: bytes) -> int | None:
        self.asked.append((tx, block))
        if self.fail:
            raise TransientError("node down")
        return self.statuses.get(tx, 1)


def bundle_of(tracker: BundleTracker, key: str) -> TrackedBundle:
    """The tracked bundle ``key`` (it must be there)."""
    bundle = tracker.get(key)
    assert bundle is not None
    return bundle


async def feed(tracker: BundleTracker, start: int, stop: int, txs: dict[int, list[bytes]]) -> None:
    """Blocks start..stop (inclusive) on branch "a", with ``txs`` in the numbered ones."""
    for n in range(start, stop + 1):
        await tracker.on_block(n, txs.get(n, [OTHER]), block_hash(n))


async def test_included_when_all_our_hashes_are_in_one_block_then_settled() -> None:
    tracker = BundleTracker(confirmations=2, receipt_status=Receipts())
    tracker.track("b", [A1, A2], 10, 12, builders=["flashbots"])
    assert await tracker.on_block(10, [OTHER], block_hash(10)) == []
    changes = await tracker.on_block(11, [OTHER, A2, A1], block_hash(11))
    assert [(c.outcome, c.previous, c.settled) for c in changes] == [
        (Outcome.INCLUDED, Outcome.PENDING, False)
    ]
    bundle = bundle_of(tracker, "b")
    assert (bundle.block_number, bundle.block_hash) == (11, block_hash(11))
    assert await tracker.on_block(12, [], block_hash(12)) == []  # 1 confirmation: not yet
    changes = await tracker.on_block(13, [], block_hash(13))
    assert [(c.outcome, c.settled) for c in changes] == [(Outcome.INCLUDED, True)]
    assert [b.key for b in tracker.pop_settled()] == ["b"]
    assert len(tracker) == 0


async def test_not_included_once_the_last_target_block_passes_without_it() -> None:
    tracker = BundleTracker(confirmations=0)
    tracker.track("b", [A1], 10, 11)
    await feed(tracker, 10, 10, {})
    assert bundle_of(tracker, "b").outcome is Outcome.PENDING
    changes = await tracker.on_block(11, [OTHER], block_hash(11))
    assert [(c.outcome, c.settled) for c in changes] == [
        (Outcome.NOT_INCLUDED, False),
        (Outcome.NOT_INCLUDED, True),
    ]


async def test_a_competitors_bundle_with_our_first_tx_is_not_ours() -> None:
    tracker = BundleTracker(confirmations=5)
    tracker.track("b", [A1, A2], 10, 12)
    changes = await tracker.on_block(10, [A1, B1], block_hash(10))
    assert [(c.outcome, c.reason.split(":")[0]) for c in changes] == [
        (Outcome.NOT_INCLUDED, "partially included")
    ]
    assert tracker.stats.partial == 1
    assert await tracker.on_block(11, [A2], block_hash(11)) == []  # told once


async def test_reverted_when_one_of_our_receipts_failed() -> None:
    receipts = Receipts({A2: 0})
    tracker = BundleTracker(confirmations=1, receipt_status=receipts)
    tracker.track("b", [A1, A2], 10, 10)
    tracker.track("fine", [B1], 10, 10)
    changes = await tracker.on_block(10, [A1, B1, A2], block_hash(10))
    assert {c.key: c.outcome for c in changes} == {
        "b": Outcome.REVERTED,
        "fine": Outcome.INCLUDED,
    }
    assert ("0x" + A2.hex()) in bundle_of(tracker, "b").reason
    assert set(receipts.asked) == {(h, block_hash(10)) for h in (A1, A2, B1)}


async def test_unknown_receipts_keep_it_unsettled_until_read() -> None:
    receipts = Receipts()
    receipts.fail = True
    tracker = BundleTracker(confirmations=0, receipt_status=receipts)
    tracker.track("b", [A1], 10, 10)
    changes = await tracker.on_block(10, [A1], block_hash(10))
    assert [(c.outcome, c.settled) for c in changes] == [(Outcome.INCLUDED, False)]
    assert tracker.stats.receipt_errors == 1
    receipts.fail = False
    receipts.statuses[A1] = 0
    changes = await tracker.on_block(11, [], block_hash(11))
    assert [(c.outcome, c.settled) for c in changes] == [
        (Outcome.REVERTED, False),
        (Outcome.REVERTED, True),
    ]


async def test_state_moved_stays_unless_it_lands_anyway() -> None:
    tracker = BundleTracker(confirmations=0)
    tracker.track("moved", [A1], 10, 11)
    tracker.track("landed", [B1], 10, 11)
    await tracker.on_block(9, [], block_hash(9))
    moved = tracker.mark_state_moved("moved", "pays -3 wei at block 10")
    assert moved is not None
    assert moved.outcome is Outcome.STATE_MOVED
    tracker.mark_state_moved("landed")
    changes = await tracker.on_block(10, [B1], block_hash(10))
    assert [(c.key, c.outcome, c.previous) for c in changes if not c.settled] == [
        ("landed", Outcome.INCLUDED, Outcome.STATE_MOVED)
    ]
    assert not bundle_of(tracker, "moved").settled  # the window is still open
    changes = await tracker.on_block(11, [], block_hash(11))
    assert [(c.key, c.outcome, c.settled) for c in changes] == [
        ("moved", Outcome.STATE_MOVED, True)
    ]
    assert tracker.mark_state_moved("landed") is None


async def test_a_reorg_uncovers_an_included_bundle_and_the_new_branch_decides() -> None:
    tracker = BundleTracker(confirmations=2)
    tracker.track("b", [A1], 10, 12)
    await tracker.on_block(10, [A1], block_hash(10))
    assert bundle_of(tracker, "b").outcome is Outcome.INCLUDED
    changes = await tracker.on_block(10, [OTHER], block_hash(10, "b"))
    assert [(c.outcome, c.previous, c.reason) for c in changes] == [
        (Outcome.PENDING, Outcome.INCLUDED, "reorged out")
    ]
    assert tracker.stats.uncovered == 1
    changes = await tracker.on_block(11, [A1], block_hash(11, "b"))
    bundle = bundle_of(tracker, "b")
    assert [c.outcome for c in changes] == [Outcome.INCLUDED]
    assert (bundle.block_number, bundle.block_hash) == (11, block_hash(11, "b"))


async def test_a_replaced_parent_is_a_reorg_even_without_its_block() -> None:
    tracker = BundleTracker(confirmations=3)
    tracker.track("b", [A1], 10, 10)
    await tracker.on_block(10, [A1], block_hash(10))
    changes = await tracker.on_block(11, [], block_hash(11, "b"), parent_hash=block_hash(10, "b"))
    assert [c.outcome for c in changes] == [Outcome.PENDING, Outcome.NOT_INCLUDED]
    assert tracker.stats.reorgs == 1


async def test_a_reorg_after_settling_is_counted_and_reopens() -> None:
    tracker = BundleTracker(confirmations=1)
    tracker.track("b", [A1], 10, 13)
    await feed(tracker, 10, 11, {10: [A1]})
    assert bundle_of(tracker, "b").settled
    await tracker.on_block(10, [], block_hash(10, "b"))
    assert tracker.stats.deep_reorgs == 1
    assert bundle_of(tracker, "b").outcome is Outcome.PENDING


async def test_duplicates_and_bad_tracking_requests() -> None:
    tracker = BundleTracker()
    tracker.track("b", [A1], 10, 10)
    await tracker.on_block(10, [A1], block_hash(10))
    assert await tracker.on_block(10, [A1], block_hash(10)) == []
    assert tracker.stats.blocks == 1
    with pytest.raises(ValueError, match="already"):
        tracker.track("b", [A1], 10, 10)
    with pytest.raises(ValueError, match="empty"):
        tracker.track("c", [], 10, 10)
    with pytest.raises(ValueError, match="empty"):
        tracker.track("d", [A1], 10, 9)


async def test_a_settled_bundle_kept_is_reopened_when_its_block_is_found_reorged_out() -> None:
    tracker = BundleTracker(confirmations=1, receipt_status=Receipts())
    tracker.track("b", [A1], 10, 11)
    await feed(tracker, 10, 12, {10: [A1]})
    assert bundle_of(tracker, "b").settled
    assert tracker.pop_settled(keep=64) == []  # still followed: a reorg may undo it
    assert [b.key for b in tracker.landed()] == ["b"]
    # a reorg the heads did not show (the new branch joined below the parent told): the caller
    # found block 10 replaced; the window has passed, so it is decided not included
    changes = await tracker.reorged_out("b", 13)
    assert [(c.outcome, c.previous) for c in changes] == [
        (Outcome.PENDING, Outcome.INCLUDED),
        (Outcome.NOT_INCLUDED, Outcome.PENDING),
    ]
    assert tracker.landed() == []
    assert tracker.stats.deep_reorgs == 1
    assert await tracker.reorged_out("b", 14) == []  # nothing landed to take out any more
    await feed(tracker, 13, 14, {})
    assert bundle_of(tracker, "b").settled
    assert [b.key for b in tracker.pop_settled(keep=1)] == ["b"]


async def test_a_head_after_a_gap_does_not_join_and_a_reorg_inside_it_leaves_no_trace() -> None:
    tracker = BundleTracker(confirmations=1, receipt_status=Receipts())
    tracker.track("b", [A1], 10, 11)
    await feed(tracker, 10, 12, {10: [A1]})
    assert tracker.joins(13, block_hash(12))
    assert not tracker.joins(13, block_hash(12, "b"))  # its parent replaced: a reorg
    # block 14 of a branch that replaced 10 and up, told with no block 13 before it: its
    # parent is unknown, so the tracker cannot see the reorg (the caller checks landed bundles)
    assert not tracker.joins(14, block_hash(13, "b"))
    await tracker.on_block(14, [], block_hash(14, "b"), parent_hash=block_hash(13, "b"))
    assert tracker.stats.reorgs == 0
    assert bundle_of(tracker, "b").outcome is Outcome.INCLUDED


class Locations:
    """Where the node's chain has each transaction (by its receipt), None while it has none."""

    def __init__(self) -> None:
        self.where: dict[bytes, tuple[int, bytes, int]] = {}
        self.asked: list[bytes] = []

    async def __call__(self, tx: bytes) -> tuple[int, bytes, int] | None:
        self.asked.append(tx)
        return self.where.get(tx)


async def test_a_bundle_reorged_out_and_held_by_the_new_branch_below_its_target_is_included() -> (
    None
):
    chain = Locations()
    tracker = BundleTracker(confirmations=1, receipt_status=Receipts(), locate=chain)
    tracker.track("b", [A1], 10, 10)
    await feed(tracker, 10, 11, {10: [A1]})
    assert bundle_of(tracker, "b").settled
    assert chain.asked == []  # no receipt is looked up before a reorg takes it out
    # the new branch forks below block 10 and holds the transaction in block 9
    chain.where[A1] = (9, block_hash(9, "b"), 1)
    changes = await tracker.reorged_out("b", 12)
    assert [(c.outcome, c.previous) for c in changes] == [
        (Outcome.PENDING, Outcome.INCLUDED),
        (Outcome.INCLUDED, Outcome.PENDING),
    ]
    bundle = bundle_of(tracker, "b")
    assert (bundle.block_number, bundle.block_hash, bundle.decided_at) == (9, block_hash(9, "b"), 9)
    assert "found by its receipts" in bundle.reason
    assert tracker.stats.relocated == 1
    changes = await tracker.on_block(12, [OTHER], block_hash(12, "b"), block_hash(11, "b"))
    assert [(c.outcome, c.settled) for c in changes] == [(Outcome.INCLUDED, True)]


async def test_a_reorg_the_blocks_show_looks_for_the_bundle_by_its_receipts_until_decided() -> None:
    chain = Locations()
    tracker = BundleTracker(confirmations=1, receipt_status=Receipts(), locate=chain)
    tracker.track("b", [A1, A2], 20, 22)
    await feed(tracker, 19, 20, {20: [A1, A2]})
    assert bundle_of(tracker, "b").outcome is Outcome.INCLUDED
    # block 20 replaced: the new branch has not mined it again yet
    changes = await tracker.on_block(20, [OTHER], block_hash(20, "b"), block_hash(19))
    assert [(c.outcome, c.previous) for c in changes] == [(Outcome.PENDING, Outcome.INCLUDED)]
    assert chain.asked == [A1]  # looked for, not found (the first transaction decides)
    # the node then mines it in a block the tracker is not told (a gap), reverted
    chain.where[A1] = chain.where[A2] = (21, block_hash(21, "b"), 0)
    changes = await tracker.on_block(22, [OTHER], block_hash(22, "b"), block_hash(21, "b"))
    assert [(c.outcome, c.previous, c.settled) for c in changes] == [
        (Outcome.REVERTED, Outcome.PENDING, False),
        (Outcome.REVERTED, Outcome.REVERTED, True),  # a block after its own: settled
    ]
    assert bundle_of(tracker, "b").block_number == 21
    # spread over two blocks, it is not taken for included
    c2 = bytes([5]) * 32
    tracker.track("c", [B1, c2], 30, 30)
    await feed(tracker, 23, 30, {30: [B1, c2]})
    assert bundle_of(tracker, "c").outcome is Outcome.INCLUDED
    chain.where[B1], chain.where[c2] = (29, block_hash(29, "c"), 1), (30, block_hash(30, "c"), 1)
    changes = await tracker.reorged_out("c", 31)
    assert [(c.outcome, c.previous) for c in changes] == [
        (Outcome.PENDING, Outcome.INCLUDED),
        (Outcome.NOT_INCLUDED, Outcome.PENDING),
    ]


async def test_a_bundle_that_landed_in_a_gap_of_heads_is_found_by_its_receipts() -> None:
    """The engine skipped heads (it caught up with the chain after an outage by a re-bootstrap)
    and the bundle's target block was one of them: once its window has passed, it is looked for
    by its receipts before it is called not included."""
    chain = Locations()
    tracker = BundleTracker(confirmations=1, receipt_status=Receipts(), locate=chain)
    tracker.track("b", [A1], 10, 10)
    tracker.track("c", [B1], 10, 10)
    await feed(tracker, 8, 9, {})
    chain.where[A1] = (10, block_hash(10), 1)  # "c" is nowhere: it did not land
    changes = await tracker.on_block(40, [OTHER], block_hash(40), block_hash(39))
    landed, missed = bundle_of(tracker, "b"), bundle_of(tracker, "c")
    assert (landed.outcome, landed.block_number, landed.block_hash) == (
        Outcome.INCLUDED,
        10,
        block_hash(10),
    )
    assert "found by its receipts in a gap of heads" in landed.reason
    assert landed.settled  # block 40 is 30 past block 10
    assert missed.outcome is Outcome.NOT_INCLUDED
    assert {(c.key, c.outcome) for c in changes} >= {
        ("b", Outcome.INCLUDED),
        ("c", Outcome.NOT_INCLUDED),
    }
    # every block of a window told: no receipt is looked up for a bundle that missed it
    tracker.track("d", [A2], 41, 41)
    asked = len(chain.asked)
    await feed(tracker, 41, 41, {})
    assert bundle_of(tracker, "d").outcome is Outcome.NOT_INCLUDED
    assert len(chain.asked) == asked
