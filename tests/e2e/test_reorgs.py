"""Shallow reorgs on a real anvil, under the engine's own pipeline in shadow mode: each is unwound
by the pool book's journal (the engine sees a reorg of the depth its book lost), never by a
re-bootstrap, and the book agrees with the chain afterwards.

Every reorg is made with ``anvil_reorg`` while the market is held (no block is built meanwhile,
ADR 0029), either with the engine at rest at the chain's head, or with a head in its hands that
it has not synced yet: what a loaded engine meets, and what made the fault suite's reorgs
re-bootstraps. Anvil serves a replaced block no more (its logs by hash: "unknown block"), so the
head in hand can never be synced; the engine follows the chain's block at its number instead.
The heads are polled (as the fault suite's engine follows them) or come by WebSocket (``arbx
run`` on the embedded devnet).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from arbx.chain.heads import Head
from arbx.chain.parity import ParitySnapshot, check_snapshot, snapshot
from arbx.chain.rpc import RpcClient
from arbx.chain.sync import SyncUpdate
from arbx.cli.run import devnet_spec
from arbx.devnet.commands import EmbeddedDevnet
from arbx.engine.lifecycle import EngineRun, RunContext, RunPlan
from arbx.engine.pipeline import BlockResult
from arbx.executors.factory import ShadowExecution, build_execution
from arbx.strategies.cyclic import CyclicArbitrage, StrategyLimits
from tests.e2e.faulty_node import wait_for

pytestmark = pytest.mark.e2e

DEPTHS = (1, 2, 3, 5, 8, 16)


@pytest.fixture(scope="module")
def devnet() -> Iterator[EmbeddedDevnet]:
    with EmbeddedDevnet.start(seed=29, pace=0.05) as running:
        yield running


@pytest_asyncio.fixture
async def client(devnet: EmbeddedDevnet) -> AsyncIterator[RpcClient]:
    async with RpcClient([devnet.url], timeout=10.0) as rpc:
        yield rpc


class _HeadInHand:
    """The run's sync, which, once armed, keeps the next head it is given until ``go`` is set
    (the engine has the head in its hands, its block not read yet)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.armed = False
        self.caught: Head | None = None
        self.go = asyncio.Event()

    async def advance(self, head: Head) -> SyncUpdate:
        if self.armed:
            self.armed, self.caught = False, head
            await self.go.wait()
        update: SyncUpdate = await self.inner.advance(head)
        return update

    async def block_at(self, number: int) -> Head | None:
        now: Head | None = await self.inner.block_at(number)
        return now


class _Engine:
    """``arbx run --mode shadow`` on the devnet, with every block result kept and the book's
    state at each reorg copied."""

    def __init__(
        self, devnet: EmbeddedDevnet, client: RpcClient, folder: Path, *, ws: bool
    ) -> None:
        spec = devnet_spec(devnet.deployment)
        spec = spec if ws else dataclasses.replace(spec, ws=())
        plan = RunPlan(
            spec=spec, mode="shadow", database_url=f"sqlite:///{folder / 'shadow.db'}",
            settings_record={}, poll_interval=0.05,
        )  # fmt: skip

        def strategy(book: Any, caps: Any) -> CyclicArbitrage:
            return CyclicArbitrage(book, StrategyLimits(base_tokens=spec.base_tokens), caps=caps)

        async def execution(run: RunContext) -> ShadowExecution:
            return await build_execution(
                "shadow", live=None, engine=run.engine, sessions=run.sessions,
                client=run.client, chain_id=run.chain_id, run_id=run.run_id,
                base_tokens=spec.base_tokens, pools=run.book.pools,
            )  # fmt: skip

        self.client = client
        self.run = EngineRun(plan, client, strategy=strategy, execution=execution)
        self.results: list[BlockResult] = []
        self.at_reorgs: list[tuple[int, ParitySnapshot]] = []  # (depth, the book just after)
        self.gate: _HeadInHand | None = None
        self.metas: list[Any] = []

    async def start(self) -> None:
        await self.run.start()
        pipeline, loaded = self.run.pipeline, self.run.loaded
        assert pipeline is not None
        assert loaded is not None
        self.metas = loaded.metas
        self.gate = _HeadInHand(pipeline.sync)
        pipeline.sync = self.gate

        def kept(block: BlockResult) -> None:
            self.results.append(block)
            if block.update.reorg_depth:
                taken = snapshot(loaded.book, loaded.metas)
                self.at_reorgs.append((block.update.reorg_depth, taken))

        pipeline.on_block = kept

    @property
    def book_head(self) -> int:
        assert self.run.loaded is not None
        return self.run.loaded.book.head_number

    def book_hash(self, number: int) -> str | None:
        assert self.run.loaded is not None
        return self.run.loaded.book.hash_at(number)

    @property
    def processed(self) -> int:
        """The newest block processed (-1 before the first)."""
        return max((b.head.number for b in self.results), default=-1)

    @property
    def rebootstraps(self) -> int:
        return self.run.summary.rebootstraps


async def _chain_head(client: RpcClient) -> int:
    return int(await client.call("eth_blockNumber", []), 16)


async def _hash_at(client: RpcClient, number: int) -> str:
    block = await client.call("eth_getBlockByNumber", [hex(number), False])
    return str(block["hash"]).lower()


async def _until_chain_at(client: RpcClient, number: int) -> None:
    while await _chain_head(client) < number:
        await asyncio.sleep(0.02)


async def _reorged(
    devnet: EmbeddedDevnet, engine: _Engine, *, in_hand: bool, seen_depth: int
) -> tuple[int, int]:
    """One ``anvil_reorg`` under the market's hold, deep enough that the engine's book loses
    ``seen_depth`` blocks: at rest (the book at the chain's head) or with a head in the engine's
    hands (caught before its sync, the book one block below it, the head itself replaced).
    The chain's head when it was made, and how many of the book's blocks the chain replaced, by
    their hashes: ``seen_depth``, or one fewer when the lowest block anvil made has the hash of
    the one it replaced (seen once in a loaded run: the new block above it named the old one as
    its parent, so the book rightly lost one block fewer)."""
    market = devnet.simulator
    assert market is not None
    assert engine.gate is not None
    client = engine.client
    if in_hand:
        engine.gate.go.clear()
        engine.gate.caught, engine.gate.armed = None, True
        await wait_for(lambda: engine.gate is not None and engine.gate.caught is not None)
    await asyncio.to_thread(market.hold.acquire)
    try:
        head = await _chain_head(client)
        if in_hand:
            caught = engine.gate.caught
            assert caught is not None
            assert engine.book_head == caught.number - 1
            depth = seen_depth + (head - caught.number) + 1  # the head in hand replaced too
        else:
            await wait_for(lambda: engine.book_head == head)
            depth = seen_depth
        book_head = engine.book_head
        below = range(book_head - depth - 1, book_head + 1)
        ours = {n: h for n in below if (h := engine.book_hash(n)) is not None}
        await client.call("anvil_reorg", [depth, []])
        assert await _chain_head(client) == head
        chain = {n: await _hash_at(client, n) for n in ours}
    finally:
        engine.gate.go.set()
        market.hold.release()
    fork = min((n for n in ours if chain[n] != ours[n]), default=book_head + 1)
    return head, book_head - fork + 1


@pytest.mark.asyncio
@pytest.mark.parametrize("ws", [False, True], ids=["poll", "ws"])
@pytest.mark.parametrize("in_hand", [False, True], ids=["at-rest", "head-in-hand"])
async def test_shallow_reorgs_are_unwound_by_the_journal_not_by_a_rebootstrap(
    devnet: EmbeddedDevnet, client: RpcClient, tmp_path: Path, in_hand: bool, ws: bool
) -> None:
    engine = _Engine(devnet, client, tmp_path, ws=ws)
    await engine.start()
    stop = asyncio.Event()
    running = asyncio.ensure_future(engine.run.run(stop))
    try:
        last = await _chain_head(client)
        lost_any = 0  # reorgs that took blocks from the book
        for depth in DEPTHS:
            # anvil cannot reorg through the blocks an earlier anvil_reorg made
            await _until_chain_at(client, last + depth + 2)
            reorgs_before = len(engine.at_reorgs)
            last, lost = await _reorged(devnet, engine, in_hand=in_hand, seen_depth=depth)
            assert lost in (depth, depth - 1), (lost, depth)  # see _reorged
            lost_any += 1 if lost else 0
            await wait_for(lambda h=last: engine.processed > h or running.done(), timeout=20)
            assert not running.done(), running
            assert engine.rebootstraps == 0, (depth, engine.run.summary)
            assert len(engine.at_reorgs) == reorgs_before + (1 if lost else 0), (depth, lost)
            if not lost:  # the book lost no block: no reorg for it
                continue
            seen, taken = engine.at_reorgs[-1]
            assert seen == lost, (seen, lost, depth)
            checked = await check_snapshot(client, taken, engine.metas)
            assert not checked.skipped, checked
            assert checked.checked > 0, checked
            assert checked.failures == 0, checked.differences
    finally:
        stop.set()
        await asyncio.wait_for(running, timeout=30)
        await engine.run.stop()
    summary = engine.run.summary
    assert summary.rebootstraps == 0, summary
    assert summary.reorgs == lost_any, summary
    assert summary.parity_failures == 0, summary
    if in_hand:  # each head in hand replaced, and followed by the chain's block
        assert summary.replaced_heads >= len(DEPTHS), summary
    else:
        assert summary.replaced_heads == 0, summary
