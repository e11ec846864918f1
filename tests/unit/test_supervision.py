"""The engine's supervision: each error class gets its action, and the loop lives through them."""

from __future__ import annotations

import asyncio
import hashlib
import random
from collections.abc import AsyncIterator, Iterable

import pytest

from arbx.chain.book import keep_liquid
from arbx.chain.bootstrap import BootstrapError, PoolMeta
from arbx.chain.heads import Head
from arbx.chain.parity import ParityResult, ParitySnapshot
from arbx.chain.pool_events import SYNC
from arbx.chain.rpc import ExecutionRevertedError, Log, RpcError
from arbx.chain.sync import ChainSync, SyncUpdate, hex_hash
from arbx.chain.transport import FailureKind, TransportError
from arbx.domain.errors import ConfigError, InputError, MathError, StaleStateError
from arbx.domain.journal import PoolBook
from arbx.domain.pools import Token, V2Pool
from arbx.domain.profit import Opportunity
from arbx.engine.pipeline import BlockResult, Pipeline, RunSummary
from arbx.engine.runner import MAX_DROPPED, MAX_REPLACED, Supervisor
from arbx.engine.supervision import Action, Backoff, Fault, SupervisionPolicy, classify
from arbx.errors import TransientError

FAST = Backoff(base=0.001, cap=0.004)
loop_test = pytest.mark.asyncio


@pytest.mark.parametrize(
    ("error", "fault"),
    [
        (TransientError("every RPC endpoint failed"), Fault.TRANSIENT),
        (TransportError(FailureKind.TIMEOUT, "slow"), Fault.TRANSIENT),
        (StaleStateError("the node has no block 7"), Fault.STALE),
        (StaleStateError("wrong", pools={"0xp"}), Fault.STALE),
        (RpcError(-32000, "unknown block"), Fault.STALE),
        (ExecutionRevertedError(3, "execution reverted"), Fault.STALE),
        (BootstrapError("lens answered nonsense"), Fault.STALE),
        (ConfigError("chain.multicall is missing"), Fault.FATAL),
        (InputError("bad file"), Fault.FATAL),
        (MathError("overflow"), Fault.FATAL),
        (RuntimeError("a bug"), Fault.FATAL),
    ],
)
def test_each_error_has_its_class(error: Exception, fault: Fault) -> None:
    assert classify(error) is fault


def test_transient_failures_back_off_with_jitter_up_to_the_cap_and_never_stop() -> None:
    policy = SupervisionPolicy(backoff=Backoff(base=0.2, cap=2.0), rng=random.Random(1))
    delays = []
    for attempt in range(40):
        decision = policy.decide(TransientError("down"), attempt)
        assert decision.action is Action.RETRY
        delays.append(decision.delay)
    assert 0.1 <= delays[0] <= 0.2
    assert 0.2 <= delays[1] <= 0.4
    assert all(1.0 <= d <= 2.0 for d in delays[4:])  # capped, jittered down by at most half
    assert len(set(delays[4:])) > 10  # jitter: engines behind one node do not retry in step


def test_stale_state_is_retried_then_rebootstrapped_as_long_as_it_lasts() -> None:
    policy = SupervisionPolicy(backoff=FAST, stale_retries=2)
    error = StaleStateError("the node has no block 9")
    decisions = [policy.decide(error, a) for a in range(6)]
    assert [d.action for d in decisions] == [Action.RETRY] * 2 + [Action.REBOOTSTRAP] * 4
    assert all(d.delay > 0 for d in decisions)
    assert decisions[-1].reason == "the node has no block 9"


def test_an_endpoint_without_a_method_the_engine_needs_is_fatal() -> None:
    assert classify(RpcError(-32601, "the method eth_getLogs does not exist")) is Fault.FATAL


def test_stale_pools_are_reloaded_without_waiting() -> None:
    decision = SupervisionPolicy().decide(StaleStateError("x", pools={"0xa", "0xb"}), 0)
    assert decision.action is Action.RELOAD
    assert decision.pools == {"0xa", "0xb"}
    assert decision.delay == 0


def test_fatal_errors_stop_with_their_message() -> None:
    decision = SupervisionPolicy().decide(ConfigError("no executor contract"), 0)
    assert (decision.action, decision.reason) == (Action.STOP, "no executor contract")
    bug = SupervisionPolicy().decide(KeyError("k"), 0)
    assert bug.action is Action.STOP
    assert bug.reason == "KeyError: 'k'"


# -- the loop ---------------------------------------------------------------------------------


def head(number: int) -> Head:
    return Head(number, number.to_bytes(32, "big"), (number - 1).to_bytes(32, "big"), number)


async def numbered(numbers: Iterable[int]) -> AsyncIterator[Head]:
    for number in numbers:
        yield head(number)


class ScriptedSync:
    """Fails the way ``script`` says for each block number, then advances."""

    def __init__(self, script: dict[int, list[Exception]]) -> None:
        self.script = script
        self.advanced: list[int] = []

    async def advance(self, head: Head) -> SyncUpdate:
        failures = self.script.get(head.number, [])
        if failures:
            raise failures.pop(0)
        self.advanced.append(head.number)
        return SyncUpdate(head=head.number, changed={"0xpool"})

    async def block_at(self, number: int) -> Head | None:
        return head(number)  # the chain never replaces a head here


class NoStrategy:
    def on_block(self, changed: Iterable[str], base_fee_wei: int) -> list[Opportunity]:
        return []


class Keep:
    def __init__(self) -> None:
        self.blocks: list[int] = []

    async def on_block(self, block: BlockResult) -> None:
        self.blocks.append(block.head.number)


class CountingResync:
    def __init__(self, head_after: int) -> None:
        self.head_after = head_after
        self.reloaded: list[set[str]] = []
        self.rebootstrapped = 0

    async def reload(self, pools: Iterable[str]) -> set[str]:
        self.reloaded.append(set(pools))
        return set(pools)

    async def rebootstrap(self) -> tuple[int, set[str]]:
        self.rebootstrapped += 1
        return self.head_after, {"0xall"}


def pipeline(numbers: Iterable[int], sync: ScriptedSync, resync: CountingResync | None) -> Pipeline:
    return Pipeline(numbered(numbers), sync, NoStrategy(), Keep(), resync=resync)


@loop_test
async def test_the_loop_retries_transient_failures_and_goes_on() -> None:
    sync = ScriptedSync({2: [TransientError("down"), TransientError("down")]})
    run = pipeline(range(1, 5), sync, None)
    summary = await Supervisor(run, SupervisionPolicy(backoff=FAST)).run(asyncio.Event())
    assert sync.advanced == [1, 2, 3, 4]  # block 2 was not dropped
    assert (summary.blocks, summary.transient_faults, summary.stopped_by) == (4, 2, "end of heads")


@loop_test
async def test_the_loop_reloads_stale_pools_and_rebootstraps_a_lost_book() -> None:
    missing: list[Exception] = [StaleStateError("the node has no block 3") for _ in range(3)]
    sync = ScriptedSync({2: [StaleStateError("pool", pools={"0xp"})], 3: missing})
    resync = CountingResync(head_after=5)
    run = pipeline(range(1, 8), sync, resync)
    policy = SupervisionPolicy(backoff=FAST, stale_retries=2)
    summary = await Supervisor(run, policy).run(asyncio.Event())
    assert resync.reloaded == [{"0xp"}]
    assert resync.rebootstrapped == 1
    assert sync.advanced == [1, 2, 6, 7]  # 3..5 are covered by the re-bootstrap at 5
    assert (summary.stale_faults, summary.rebootstraps, summary.skipped_heads) == (4, 1, 3)
    assert summary.reloads == 1


@loop_test
async def test_a_fatal_failure_stops_the_loop_and_names_the_reason() -> None:
    sync = ScriptedSync({3: [ConfigError("the RPC serves another chain")]})
    run = pipeline(range(1, 8), sync, None)
    with pytest.raises(ConfigError):
        await Supervisor(run, SupervisionPolicy(backoff=FAST)).run(asyncio.Event())
    assert run.summary.blocks == 2
    assert (run.summary.stopped_by, run.summary.fault) == ("error", "the RPC serves another chain")


@loop_test
async def test_stale_state_without_a_way_to_resync_is_fatal() -> None:
    sync = ScriptedSync({2: [StaleStateError("gone") for _ in range(9)]})
    run = pipeline(range(1, 4), sync, None)
    with pytest.raises(StaleStateError):
        await Supervisor(run, SupervisionPolicy(backoff=FAST, stale_retries=1)).run(asyncio.Event())
    assert run.summary.fault == "gone"


@loop_test
async def test_a_stop_signal_cuts_a_back_off_short() -> None:
    sync = ScriptedSync({1: [TransientError("down")]})
    run = pipeline(range(1, 3), sync, None)
    stop = asyncio.Event()
    asyncio.get_running_loop().call_later(0.05, stop.set)
    slow = SupervisionPolicy(backoff=Backoff(base=60.0, cap=60.0))
    summary = await asyncio.wait_for(Supervisor(run, slow).run(stop), timeout=5)
    assert (summary.blocks, summary.stopped_by) == (0, "signal")


# -- a head the chain replaced after it arrived ------------------------------------------------


def block(number: int, fork: str, parent: Head | None) -> Head:
    digest = hashlib.sha256(f"{fork}{number}".encode()).digest()
    return Head(number, digest, parent.hash if parent is not None else bytes(32), number)


class ForkingChain:
    """A node's headers and logs (a ``ChainSource``): a replaced block is served no more, its
    logs answered as anvil answers them ("unknown block")."""

    def __init__(self, blocks: Iterable[Head], logs: dict[bytes, list[Log]] | None = None) -> None:
        self.canonical = {b.number: b for b in blocks}
        self.by_hash = logs or {}
        self.fail_logs = 0  # the next this many reads of logs time out

    async def header(self, number: int) -> Head:
        if number not in self.canonical:
            raise StaleStateError(f"the node has no block {number}")
        return self.canonical[number]

    async def logs(self, blocks: list[Head]) -> list[list[Log]]:
        if self.fail_logs:
            self.fail_logs -= 1
            raise TransientError("every RPC endpoint failed")
        if any(self.canonical.get(b.number) != b for b in blocks):
            raise RpcError(-32000, "unknown block")
        return [self.by_hash.get(b.hash, []) for b in blocks]


@loop_test
async def test_a_reorg_whose_new_branch_fails_to_read_is_seen_whole_when_tried_again() -> None:
    """The new branch's logs fail to come once (a node timing out) after the walk found the fork:
    the book must not have moved, so that the retry still sees the reorg and reports the pool
    that only the rewind changed (its routes are evaluated again)."""
    pool = V2Pool("0x" + "aa" * 20, Token("0x" + "01" * 20, "A", 18), Token("0x" + "02" * 20), 5, 5)
    a0 = block(0, "a", None)
    a1 = block(1, "a", a0)
    b1 = block(1, "b", a0)
    b2 = block(2, "b", b1)
    sync_log = Log(
        pool.address.lower(), (SYNC,), (7).to_bytes(32, "big") * 2, 1, a1.hash, bytes(32), 0, 0,
        False,
    )  # fmt: skip
    chain = ForkingChain([a0, a1], {a1.hash: [sync_log]})
    book = PoolBook([pool], 0, hex_hash(a0.hash))
    sync = ChainSync(chain, book)
    assert (await sync.advance(a1)).changed == {pool.address}
    chain.canonical.update({1: b1, 2: b2})
    chain.fail_logs = 1
    with pytest.raises(TransientError):
        await sync.advance(b2)
    assert (book.head_number, book.head_hash) == (1, hex_hash(a1.hash))  # untouched
    update = await sync.advance(b2)
    assert (update.reorg_depth, update.changed) == (1, {pool.address})
    assert book.pools[pool.address] == pool  # a1's Sync undone, b1 and b2 change nothing


class KeepHeads:
    def __init__(self) -> None:
        self.heads: list[Head] = []

    async def on_block(self, block: BlockResult) -> None:
        self.heads.append(block.head)


def _fork() -> tuple[Head, ...]:
    """Blocks a0..a3, and b2..b4 forking from a1."""
    a0 = block(0, "a", None)
    a1 = block(1, "a", a0)
    a2 = block(2, "a", a1)
    a3 = block(3, "a", a2)
    b2 = block(2, "b", a1)
    b3 = block(3, "b", b2)
    return (a0, a1, a2, a3, b2, b3, block(4, "b", b3))


FORK = _fork()


async def _supervised(
    heads: AsyncIterator[Head], chain: ForkingChain, book: PoolBook
) -> tuple[KeepHeads, CountingResync, RunSummary]:
    """A pipeline with nothing to find over ``heads``, supervised to their end: the heads it
    processed, its re-bootstraps (the chain at block 4 after one) and its summary."""
    executor, resync = KeepHeads(), CountingResync(head_after=4)
    run = Pipeline(heads, ChainSync(chain, book), NoStrategy(), executor, resync=resync)
    summary = await Supervisor(run, SupervisionPolicy(backoff=FAST)).run(asyncio.Event())
    return executor, resync, summary


@loop_test
async def test_a_head_a_reorg_replaced_before_its_sync_is_followed_by_the_chains_block() -> None:
    """Head 3 arrives, then a reorg replaces blocks 2 and 3 before its logs are read: its work
    can never succeed (the node serves the block no more), so the chain's block 3 is processed
    in its place and the journal unwinds block 2; nothing is re-bootstrapped."""
    a0, a1, a2, a3, b2, b3, b4 = FORK
    chain = ForkingChain([a0, a1, a2, a3])
    book = PoolBook([], 0, hex_hash(a0.hash))

    async def arriving() -> AsyncIterator[Head]:
        yield a1
        yield a2
        chain.canonical.update({2: b2, 3: b3, 4: b4})  # after head 3 was read from the node
        yield a3
        yield b4

    executor, resync, summary = await _supervised(arriving(), chain, book)
    assert resync.rebootstrapped == 0
    assert [h.hash for h in executor.heads] == [a1.hash, a2.hash, b3.hash, b4.hash]
    assert (summary.replaced_heads, summary.reorgs, summary.blocks) == (1, 1, 4)
    assert (book.head_number, book.head_hash) == (4, hex_hash(b4.hash))
    assert book.hash_at(2) == hex_hash(b2.hash)


@loop_test
async def test_a_head_the_chain_has_no_block_for_any_more_is_dropped_not_rebootstrapped() -> None:
    """Anvil's reorg unwinds the chain to the fork, then mines the new blocks one by one: a head
    in hand above the new blocks mined so far has no block at its number for a while. It is
    tried as any stale failure, then dropped where the book would be re-bootstrapped: the next
    head is synced from the book, through the journal."""
    a0, a1, a2, a3, b2, b3, b4 = FORK
    chain = ForkingChain([a0, a1, a2, a3])
    book = PoolBook([], 0, hex_hash(a0.hash))

    async def arriving() -> AsyncIterator[Head]:
        yield a1
        yield a2
        del chain.canonical[3]  # unwound to block 1, b2 mined, b3 not yet
        chain.canonical[2] = b2
        yield a3
        chain.canonical.update({3: b3, 4: b4})
        yield b4

    executor, resync, summary = await _supervised(arriving(), chain, book)
    assert resync.rebootstrapped == 0
    assert [h.hash for h in executor.heads] == [a1.hash, a2.hash, b4.hash]
    assert (summary.dropped_heads, summary.replaced_heads, summary.reorgs) == (1, 0, 1)
    assert summary.stale_faults == 4  # the policy's retries first: a node may lag its head
    assert (book.head_number, book.hash_at(2)) == (4, hex_hash(b2.hash))


class Flapping(ScriptedSync):
    """Block 2 fails as stale at every try, and the chain has another block 2 each time."""

    def __init__(self) -> None:
        super().__init__({2: [StaleStateError("unknown block") for _ in range(99)]})
        self.forks = 0

    async def block_at(self, number: int) -> Head | None:
        if number != 2:
            return head(number)
        self.forks += 1
        return Head(2, self.forks.to_bytes(32, "big"), head(2).parent_hash, 2)


@loop_test
async def test_a_head_replaced_again_and_again_is_left_to_the_policy() -> None:
    sync = Flapping()
    resync = CountingResync(head_after=2)
    run = pipeline(range(1, 5), sync, resync)
    summary = await Supervisor(run, SupervisionPolicy(backoff=FAST)).run(asyncio.Event())
    assert summary.replaced_heads == MAX_REPLACED
    assert resync.rebootstrapped == 1  # then the stale retries, and the re-bootstrap at 2
    assert sync.advanced == [1, 3, 4]


class NoBlocks(ScriptedSync):
    """A node with no block at the numbers in ``missing`` (every number by default): their sync
    fails as stale at every try (their logs: "unknown block") and ``block_at`` answers None."""

    def __init__(self, missing: Iterable[int] | None = None) -> None:
        super().__init__({})
        self.missing = None if missing is None else set(missing)

    def _gone(self, number: int) -> bool:
        return self.missing is None or number in self.missing

    async def advance(self, head: Head) -> SyncUpdate:
        if self._gone(head.number):
            raise StaleStateError("unknown block")
        return await super().advance(head)

    async def block_at(self, number: int) -> Head | None:
        return None if self._gone(number) else head(number)


class AtTheChainsHead(CountingResync):
    """Re-bootstraps at the newest head the stream gave (the chain's head then)."""

    def __init__(self) -> None:
        super().__init__(head_after=-1)
        self.floors: list[int] = []

    async def rebootstrap(self) -> tuple[int, set[str]]:
        self.floors.append(self.head_after)
        return await super().rebootstrap()


@loop_test
async def test_a_node_with_no_block_at_any_number_is_rebootstrapped_after_a_few_drops() -> None:
    """Dropping a head with no block at its number waits out a reorg's mining; a node that
    answers no block at all would have every head dropped for ever. After MAX_DROPPED drops in a
    row the policy's re-bootstrap stands (the book read again at the chain's head, through the
    client's failover), and the count starts again."""
    sync, resync = NoBlocks(), AtTheChainsHead()

    async def arriving() -> AsyncIterator[Head]:
        for number in range(1, 13):
            resync.head_after = number  # the chain's head is the newest head
            yield head(number)

    run = Pipeline(arriving(), sync, NoStrategy(), Keep(), resync=resync)
    summary = await Supervisor(run, SupervisionPolicy(backoff=FAST)).run(asyncio.Event())
    assert MAX_DROPPED == 3
    assert resync.floors == [4, 8, 12]  # each after three heads dropped in a row
    assert (summary.dropped_heads, summary.rebootstraps, summary.skipped_heads) == (9, 3, 3)
    assert (summary.blocks, summary.stopped_by) == (0, "end of heads")


@loop_test
async def test_heads_dropped_between_processed_ones_are_never_rebootstrapped() -> None:
    """The count is of drops in a row: a head processed in between starts it again."""
    sync, resync = NoBlocks(missing={1, 2, 4, 5, 7, 8, 10, 11}), CountingResync(head_after=99)
    run = pipeline(range(1, 13), sync, resync)
    summary = await Supervisor(run, SupervisionPolicy(backoff=FAST)).run(asyncio.Event())
    assert resync.rebootstrapped == 0
    assert sync.advanced == [3, 6, 9, 12]
    assert (summary.dropped_heads, summary.blocks) == (8, 4)


def test_only_v2_pools_with_both_reserves_at_the_minimum_are_kept() -> None:
    t0, t1 = Token("0x" + "01" * 20, "A", 18), Token("0x" + "02" * 20, "B", 18)

    def pair(n: int, r0: int, r1: int) -> V2Pool:
        return V2Pool(f"0x{n:040x}", t0, t1, r0, r1)

    pools = [pair(1, 10, 10), pair(2, 10, 9), pair(3, 9, 10), pair(4, 100, 100)]
    metas = [PoolMeta(p.address, "uniswap_v2", t0, t1, 30) for p in pools]
    kept, kept_metas = keep_liquid(pools, metas, 10)
    assert [p.address for p in kept] == [pools[0].address, pools[3].address]
    assert [m.address for m in kept_metas] == [p.address for p in kept]
    assert keep_liquid(pools, metas, 0) == (pools, metas)


@loop_test
async def test_a_book_far_behind_the_chain_jumps_to_its_head_instead_of_replaying() -> None:
    sync = ScriptedSync({})
    resync = CountingResync(head_after=499)
    run = Pipeline(
        numbered([1, 2, 3, 500, 501]),
        sync,
        NoStrategy(),
        Keep(),
        resync=resync,
        tip=lambda: 501,
    )
    summary = await Supervisor(run, SupervisionPolicy(backoff=FAST)).run(asyncio.Event())
    assert resync.rebootstrapped == 1
    assert sync.advanced == [500, 501]
    assert (summary.catch_ups, summary.skipped_heads, summary.blocks) == (1, 3, 2)


# -- parity in the background -------------------------------------------------------------------


class FakeParity:
    """Checks each settled block after ``release``; block 1's pool 0xbad differs when asked."""

    def __init__(self, sync: ScriptedSync, *, wrong_at: int = -1) -> None:
        self.sync = sync
        self.wrong_at = wrong_at
        self.release = asyncio.Event()
        self.release.set()
        self.checked: list[int] = []

    def snapshot(self) -> ParitySnapshot:
        return ParitySnapshot(self.sync.advanced[-1], "0x", {})

    async def check(self, ours: ParitySnapshot) -> ParityResult:
        await self.release.wait()
        self.checked.append(ours.block)
        result = ParityResult(ours.block, checked=1)
        if ours.block == self.wrong_at:
            result.differences["0xbad"] = "reserves differ"
        return result


@loop_test
async def test_parity_checks_settled_blocks_and_states_what_it_dropped() -> None:
    sync = ScriptedSync({})
    parity = FakeParity(sync)
    parity.release.clear()
    asyncio.get_running_loop().call_later(0.05, parity.release.set)
    run = Pipeline(
        numbered(range(1, 7)), sync, NoStrategy(), Keep(), parity=parity, parity_backlog=2
    )
    summary = await Supervisor(run, SupervisionPolicy(backoff=FAST)).run(asyncio.Event())
    assert parity.checked == [1, 5, 6]  # 1 was running; 2-4 fell out of a backlog of 2
    assert (summary.parity_checks, summary.parity_dropped, summary.blocks) == (3, 3, 6)
    assert summary.parity_coverage == 0.5


@loop_test
async def test_a_pool_parity_finds_wrong_is_reloaded_before_the_next_block() -> None:
    sync = ScriptedSync({})
    resync = CountingResync(head_after=0)
    run = Pipeline(
        numbered(range(1, 6)),
        sync,
        NoStrategy(),
        Keep(),
        parity=FakeParity(sync, wrong_at=1),
        resync=resync,
    )
    summary = await Supervisor(run, SupervisionPolicy(backoff=FAST)).run(asyncio.Event())
    assert resync.reloaded == [{"0xbad"}]
    assert (summary.parity_failures, summary.reloads, summary.parity_checks) == (1, 1, 5)
