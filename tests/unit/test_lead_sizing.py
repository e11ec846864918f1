"""The trade first: a block's best routes by estimate are sized before the others, and what the
block records once the rest are sized is exactly what sizing them all at once gives (ADR 0039)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from bench import mainnet_universe as mu

from arbx.chain.sync import ChainSync
from arbx.chain.window import Playback, read_window
from arbx.cli.replay import shipped_window
from arbx.domain.arbitrage import (
    LEAD_MARGIN,
    Rankings,
    detect_touched,
    evaluate_touched,
    live_touched,
)
from arbx.domain.capture import routes_to_send
from arbx.domain.journal import PoolBook
from arbx.domain.profit import Costs, Opportunity
from arbx.domain.routes import RouteIndex, connector_tokens, find_cycles
from arbx.engine.pipeline import BlockResult, Lead, Pipeline
from arbx.engine.replay import block_decisions, digest
from arbx.strategies.cyclic import CyclicArbitrage, limits_from_record

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
WINDOW = shipped_window()  # the 40-block devnet window the package ships
EXPECTED = FIXTURES / "replay" / "expected.txt"


def _chosen(opportunities: list[Opportunity], routes: int) -> list[tuple[str, ...]]:
    """The pools of the trade the live executor builds from ``opportunities`` (every extra
    route allowed)."""
    if not opportunities:
        return []
    pools = [(o.route.pools, o.net_profit) for o in opportunities]
    return [
        opportunities[i].route.pools
        for i in routes_to_send(pools, limit=routes, extra=lambda _: True)
    ]


@pytest.mark.parametrize("routes", [1, 2, 8])
def test_the_lead_is_the_best_estimates_sized_and_all_of_them_follow_unchanged(
    routes: int,
) -> None:
    universe = mu.generate(160, seed=4)
    pools = universe.pools
    index = RouteIndex(
        find_cycles(pools, [mu.WETH], max_hops=4, connectors=connector_tokens(pools, 3))
    )
    book = PoolBook(pools, mu.FIRST_BLOCK, mu.block_hash(mu.FIRST_BLOCK))
    costs = Costs(base_fee_wei=10**9)
    rankings = Rankings()
    leads = 0
    for number, events in enumerate(mu.blocks(universe, 8, seed=4), start=mu.FIRST_BLOCK + 1):
        changed = book.apply_block(number, mu.block_hash(number), mu.block_hash(number - 1), events)
        detection = detect_touched(index, changed, book.pools, costs, None, 16, rankings)
        lead = detection.best(routes)
        sized = detection.sized
        everything = detection.all()
        # all of them, after the lead, as sizing all at once gives them
        assert everything == evaluate_touched(index, changed, book.pools, costs, None, 16)
        assert detection.sized == len(detection) <= 16
        # the lead: the routes sized are the best ``sized`` by estimate (of the 16 kept), and
        # it holds each of them that pays, ranked as all of them are
        live = live_touched(index, changed, book.pools)
        kept = sorted(live, key=lambda item: item[0], reverse=True)[:16]
        first = {route for _, route in kept[:sized]}
        assert lead == [o for o in everything if o.route in first]
        # sized best estimate first until ``routes`` pool-disjoint ones pay, and LEAD_MARGIN more
        paying = {o.route for o in everything}
        expected, disjoint, margin = 0, 0, LEAD_MARGIN
        used: set[str] = set()
        for _, route in kept:
            if disjoint >= routes:
                if margin == 0:
                    break
                margin -= 1
            expected += 1
            if route in paying and disjoint < routes and used.isdisjoint(route.pools):
                used.update(route.pools)
                disjoint += 1
        assert sized == expected
        leads += sized < len(detection)
    if routes < 8:
        assert leads > 0  # some blocks left routes to size after the lead
    else:  # through the hub pools, fewer than 8 pool-disjoint routes pay: all of them sized
        assert leads == 0


def test_with_a_binding_input_cap_the_lead_ranks_routes_by_their_profit_at_the_cap() -> None:
    """A route whose optimum is past the cap makes at most its profit at the cap: ranked by its
    uncapped estimate, the best trade was past the first five sized in 3 of these 8 blocks."""
    universe = mu.generate(160, seed=5)
    pools = universe.pools
    index = RouteIndex(
        find_cycles(pools, [mu.WETH], max_hops=4, connectors=connector_tokens(pools, 3))
    )
    book = PoolBook(pools, mu.FIRST_BLOCK, mu.block_hash(mu.FIRST_BLOCK))
    costs, caps = Costs(base_fee_wei=10**9), {mu.WETH: 10**17}
    rankings = Rankings()
    trades = 0
    for number, events in enumerate(mu.blocks(universe, 8, seed=5), start=mu.FIRST_BLOCK + 1):
        changed = book.apply_block(number, mu.block_hash(number), mu.block_hash(number - 1), events)
        detection = detect_touched(index, changed, book.pools, costs, caps, 16, rankings)
        lead = detection.best(1)
        assert detection.sized < len(detection)
        everything = detection.all()
        assert everything == evaluate_touched(index, changed, book.pools, costs, caps, 16)
        assert all(o.amount_in <= 10**17 for o in everything)
        assert _chosen(lead, 1) == _chosen(everything, 1)
        trades += bool(everything)
    assert trades == 8


def test_replayed_with_an_executor_that_takes_the_lead_the_decisions_stay_the_same() -> None:
    """The shipped window through the pipeline with an executor that trades on the lead: each
    block's trade is the one all of its routes give, and the block's decisions (all of them)
    give the committed digest."""
    window = read_window(WINDOW)
    limits = limits_from_record(window.settings)
    book = window.book()
    playback = Playback(window)

    class TakesTheLead:
        def __init__(self) -> None:
            self.blocks: list[dict[str, Any]] = []
            self.lead: dict[int, list[tuple[str, ...]]] = {}
            self.full: dict[int, list[tuple[str, ...]]] = {}
            self.latencies: list[tuple[float, float]] = []
            self._lead_ms = 0.0

        async def on_lead(self, lead: Lead) -> None:
            self.lead[lead.head.number] = _chosen(lead.best(1), 1)
            self._lead_ms = lead.latency_ms

        async def on_block(self, block: BlockResult) -> None:
            self.blocks.append(block_decisions(block))
            self.full[block.head.number] = _chosen(block.opportunities, 1)
            self.latencies.append((self._lead_ms, block.latency_ms))

    executor = TakesTheLead()
    pipeline = Pipeline(
        playback.heads(), ChainSync(playback, book), CyclicArbitrage(book, limits), executor
    )

    async def run() -> None:
        async for head in playback.heads():
            await pipeline.process(head)

    asyncio.run(run())
    assert executor.lead.keys() == executor.full.keys() == {s.head.number for s in window.steps}
    assert sum(1 for chosen in executor.full.values() if chosen) >= 30
    assert executor.lead == executor.full
    found = sum(len(b["opportunities"]) for b in executor.blocks)
    assert [
        f"{len(executor.blocks)} blocks, {found} opportunities",
        f"decisions digest: {digest(executor.blocks)}",
    ] == EXPECTED.read_text().splitlines()
    # a block's detection time counts its sizing, the lead's included, past the lead's own
    assert all(0 < lead_ms <= total_ms for lead_ms, total_ms in executor.latencies)
