"""The supervised engine on the devnet behind a node that misbehaves: a head it does not serve and
logs it does not have, answers about another block, and no endpoint at all for 30 s. Each time
the run goes on afterwards, and its pool states equal the chain's at the end."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio

from arbx.chain.book import load_book
from arbx.chain.bootstrap import PoolMeta
from arbx.chain.heads import heads
from arbx.chain.parity import ParityChecker, check_parity
from arbx.chain.resync import BookResync
from arbx.chain.rpc import RpcClient, RpcError
from arbx.chain.sync import ChainSync
from arbx.cli.run import devnet_spec
from arbx.devnet.commands import EmbeddedDevnet
from arbx.domain.journal import PoolBook
from arbx.engine.lifecycle import Caps, EngineRun, RunContext, RunPlan
from arbx.engine.pipeline import BlockResult, Pipeline, RunSummary
from arbx.engine.runner import Supervisor
from arbx.executors.factory import ShadowExecution, build_execution
from arbx.store import make_engine, make_session_factory
from arbx.store.models import Run
from arbx.strategies.cyclic import CyclicArbitrage, StrategyLimits
from tests.e2e.faulty_node import FaultyNode, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio]
AFTER = 15  # blocks the run must do once the node behaves again


class Timeline:
    """Every block the executor is given, with when."""

    def __init__(self) -> None:
        self.blocks: list[tuple[float, int]] = []

    async def on_block(self, block: BlockResult) -> None:
        self.blocks.append((time.monotonic(), block.head.number))

    @property
    def count(self) -> int:
        return len(self.blocks)

    @property
    def last(self) -> int:
        return self.blocks[-1][1] if self.blocks else -1


@dataclass
class Outcome:
    summary: RunSummary
    book: PoolBook
    metas: list[PoolMeta]
    timeline: Timeline
    faults: int
    exhausted: int  # calls that every endpoint failed


@pytest.fixture(scope="module")
def devnet() -> Iterator[EmbeddedDevnet]:
    with EmbeddedDevnet.start(seed=23, pace=0.1) as running:
        yield running


@pytest_asyncio.fixture
async def node(devnet: EmbeddedDevnet) -> AsyncIterator[FaultyNode]:
    proxy = FaultyNode(devnet.url)
    await proxy.start()
    yield proxy
    await proxy.close()


async def supervised_run(
    devnet: EmbeddedDevnet,
    node: FaultyNode,
    faults: Callable[[Timeline], Awaitable[int]],
    others: Sequence[str] = (),
) -> Outcome:
    """The engine through ``node`` (then ``others``) while ``faults`` misbehaves; ``faults``
    returns the chain's head once the node behaves again, and the run stops AFTER blocks past
    it."""
    async with RpcClient([node.url, *others], timeout=2.0) as client:
        loaded = await load_book(client, devnet_spec(devnet.deployment))
        book, metas = loaded.book, loaded.metas
        strategy = CyclicArbitrage(book, StrategyLimits(base_tokens=(devnet.deployment.weth,)))
        timeline = Timeline()
        stream = heads(client, poll_interval=0.02, use_ws=False)
        pipeline = Pipeline(
            stream,
            ChainSync(client, book),
            strategy,
            timeline,
            parity=ParityChecker(client, book, metas),
            resync=BookResync(client, book, metas),
            tip=lambda: stream.tip,
        )
        stop = asyncio.Event()

        async def drive() -> None:
            try:
                head = await faults(timeline)
                await wait_for(lambda: timeline.last >= head + AFTER)
            finally:
                stop.set()

        driver = asyncio.ensure_future(drive())
        summary = await asyncio.wait_for(Supervisor(pipeline).run(stop), timeout=240)
        await driver
    return Outcome(summary, book, metas, timeline, node.faults, client.stats.exhausted)


async def assert_parity(devnet: EmbeddedDevnet, outcome: Outcome) -> None:
    """The book equals the chain at its head, through a node that behaves."""
    async with RpcClient([devnet.url], timeout=10.0) as direct:
        result = await check_parity(direct, outcome.book, outcome.metas)
    assert result.checked == len(outcome.metas) > 30
    assert result.differences == {}
    assert outcome.summary.parity_failures == 0
    assert outcome.summary.parity_checks > 0
    numbers = [n for _, n in outcome.timeline.blocks]
    assert numbers == sorted(set(numbers))  # in order, none twice


async def window(node: FaultyNode, mode: str, seconds: float) -> None:
    node.mode = mode
    await asyncio.sleep(seconds)
    node.mode = "ok"


async def chain_head(devnet: EmbeddedDevnet) -> int:
    async with RpcClient([devnet.url]) as direct:
        return await direct.block_number()


async def test_a_head_not_served_and_missing_logs_are_waited_out(
    devnet: EmbeddedDevnet, node: FaultyNode
) -> None:
    async def faults(timeline: Timeline) -> int:
        await wait_for(lambda: timeline.count >= 5)
        await window(node, "ahead", 1.0)
        await window(node, "no_logs", 3.0)
        return await chain_head(devnet)

    outcome = await supervised_run(devnet, node, faults)
    assert outcome.faults > 0
    assert outcome.summary.stale_faults >= 1  # the logs the node did not have
    assert outcome.summary.stopped_by == "signal"
    await assert_parity(devnet, outcome)


async def test_answers_about_another_block_are_refused(
    devnet: EmbeddedDevnet, node: FaultyNode
) -> None:
    async def faults(timeline: Timeline) -> int:
        await wait_for(lambda: timeline.count >= 5)
        await window(node, "inconsistent", 3.0)
        return await chain_head(devnet)

    outcome = await supervised_run(devnet, node, faults)
    assert outcome.faults > 0
    assert outcome.summary.stale_faults >= 1
    assert outcome.summary.rebootstraps >= 1  # a head naming no real parent is left behind
    await assert_parity(devnet, outcome)


async def test_every_endpoint_gone_for_30_seconds(devnet: EmbeddedDevnet, node: FaultyNode) -> None:
    restored: list[tuple[float, int]] = []

    async def faults(timeline: Timeline) -> int:
        await wait_for(lambda: timeline.count >= 5)
        await node.stop_listening()
        await asyncio.sleep(30.0)
        await node.listen()
        restored.append((time.monotonic(), await chain_head(devnet)))
        return restored[0][1]

    outcome = await supervised_run(devnet, node, faults)
    ((restored_at, head_then),) = restored
    caught_up = next(t for t, n in outcome.timeline.blocks if n >= head_then)
    print(
        f"\ncaught up with block {head_then} {caught_up - restored_at:.2f} s after the node "
        "was back"
    )
    assert outcome.exhausted > 0  # the engine did find no endpoint
    assert outcome.summary.catch_ups >= 1  # ~300 blocks behind: re-bootstrapped, not replayed
    # the run went on past the outage: it processed blocks after the node was back, up to
    # AFTER blocks past its head then (a loaded machine coalesces heads, so not every one of them)
    assert outcome.timeline.last >= head_then + AFTER
    assert sum(1 for t, _ in outcome.timeline.blocks if t >= restored_at) >= 2
    await assert_parity(devnet, outcome)


async def test_a_node_with_no_block_at_any_number_is_left_for_the_other_endpoint(
    devnet: EmbeddedDevnet, node: FaultyNode
) -> None:
    """The first of two endpoints announces its head but answers no block at any number and no
    logs for 8 s. Null is an answer, not a failure: the polled heads starved behind it for ever
    (and heads that came would each be dropped). The engine goes on through the other endpoint
    meanwhile: it processes a block past the chain's head of the window's middle before the
    window ends."""
    window_s = 8.0
    during: list[tuple[int, int, float]] = []  # (chain head mid-window, last processed, worst gap)

    async def faults(timeline: Timeline) -> int:
        await wait_for(lambda: timeline.count >= 5)
        node.mode = "no_blocks"
        started = time.monotonic()
        await asyncio.sleep(window_s / 2)
        middle = await chain_head(devnet)
        await asyncio.sleep(window_s / 2)
        node.mode = "ok"
        times = [started] + [t for t, _ in timeline.blocks if t >= started] + [time.monotonic()]
        worst = max(b - a for a, b in itertools.pairwise(times))
        during.append((middle, timeline.last, worst))
        return await chain_head(devnet)

    outcome = await supervised_run(devnet, node, faults, others=[devnet.url])
    ((middle, last, worst),) = during
    print(f"\nno blocks at the first endpoint for {window_s:.0f} s: worst gap {worst:.2f} s")
    assert outcome.faults > 0
    assert last >= middle, (last, middle)  # it followed the chain through the other endpoint
    assert outcome.exhausted == 0
    await assert_parity(devnet, outcome)


async def test_an_endpoint_the_engine_cannot_use_ends_the_run_with_its_reason_recorded(
    devnet: EmbeddedDevnet, node: FaultyNode, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'run.db'}"
    spec = devnet_spec(devnet.deployment)
    plan = RunPlan(spec, "shadow", url, {"note": "test"}, poll_interval=0.02)

    def strategy(book: PoolBook, caps: Caps) -> CyclicArbitrage:
        return CyclicArbitrage(book, StrategyLimits(base_tokens=spec.base_tokens), caps=caps)

    async def execution(run: RunContext) -> ShadowExecution:
        return await build_execution(
            "shadow", live=None, engine=run.engine, sessions=run.sessions, client=run.client,
            chain_id=run.chain_id, run_id=run.run_id, base_tokens=spec.base_tokens,
            pools=run.book.pools,
        )  # fmt: skip

    async with RpcClient([node.url], timeout=2.0) as client:
        run = EngineRun(plan, client, strategy=strategy, execution=execution)
        started = await run.start()
        node.mode = "no_method"
        try:
            with pytest.raises(RpcError, match="does not exist"):
                await asyncio.wait_for(run.run(asyncio.Event(), max_blocks=50), timeout=60)
        finally:
            record = await run.stop()
    assert record is not None
    assert record.run_id == started.run_id
    with make_session_factory(make_engine(url), readonly=True).begin() as session:
        row = session.get(Run, started.run_id)
        assert row is not None
        assert row.status == "failed"
        assert row.summary_json is not None
        assert row.summary_json["stopped_by"] == "error"
        assert "eth_getLogs does not exist" in row.summary_json["reason"]
        assert row.ended_at is not None
