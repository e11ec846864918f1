"""Several routes per block end to end on the embedded devnet with competitors: the live engine
sends each block's best pool-disjoint routes in one ``executeMany`` transaction through the local
builder, with the builder's share per route; the transactions land with several routes each,
their routes share no pool, and every route keeps within the stage's cap per trade even when
the strategy sizes past it (the risk gate leaves those routes out, the others go). Self-scoring
then judges each route of a landed transaction on its own: every route its swaps ran is ours."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import func, select

from arbx.chain.rpc import RpcClient
from arbx.chain.swaps import SwapReader
from arbx.cli.run import DEVNET_RISK
from arbx.config import BiddingSettings
from arbx.devnet.commands import EmbeddedDevnet
from arbx.execution.route_codec import (
    EXECUTE_MANY_SELECTOR,
    MAX_ROUTES,
    decode_execute,
    decode_execute_many,
)
from arbx.executors.scoring import Scorer
from arbx.risk.settings import StageSettings
from arbx.store import execution_repo, repo
from arbx.store.models import BundleRouteRow, BundleRow, OpportunityRow, OpportunityScoreRow
from arbx.strategies.cyclic import CyclicArbitrage
from tests.e2e.test_live_run import _Live, _run_until

pytestmark = pytest.mark.e2e

CAP = 2 * 10**18  # the stage's cap per trade; the strategy sizes up to five times that
WINDOW = 3  # self-scoring's window (blocks after an opportunity's own)


@pytest.fixture(scope="module")
def devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[EmbeddedDevnet, Path]]:
    folder = tmp_path_factory.mktemp("batch")
    key_file = folder / "devnet-searcher.key"
    with EmbeddedDevnet.start(
        seed=3, pace=0.05, searcher_key_file=key_file, competitors=2
    ) as running:
        yield running, key_file


@pytest_asyncio.fixture
async def client(devnet: tuple[EmbeddedDevnet, Path]) -> AsyncIterator[RpcClient]:
    async with RpcClient([devnet[0].url], timeout=10.0) as rpc:
        yield rpc


@pytest.mark.asyncio
async def test_disjoint_routes_land_together_within_the_caps(
    client: RpcClient, devnet: tuple[EmbeddedDevnet, Path], tmp_path: Path
) -> None:
    live = _Live(*devnet, tmp_path / "batch.db")
    stages = [
        StageSettings(mode="shadow", max_input={}, name="shadow"),
        StageSettings(mode="limited", max_input={"*": CAP}, name="limited 2"),
        StageSettings(mode="scaled", max_input={"*": CAP}, name="scaled 2"),
    ]
    execution = live.settings.execution.model_copy(
        update={
            "routes_per_block": MAX_ROUTES,
            "extra_routes": "all",
            "bidding": BiddingSettings(enabled=True),
        }
    )
    live.settings = live.settings.model_copy(
        update={"risk": DEVNET_RISK.model_copy(update={"stages": stages}), "execution": execution}
    )
    pipeline, executor, (risk, relay), run_id = await live.build(client)
    strategy = pipeline.strategy
    assert isinstance(strategy, CyclicArbitrage)
    strategy.caps = lambda: dict.fromkeys(live.spec.base_tokens, 5 * CAP)
    stop = asyncio.Event()

    async def until_several_landed() -> None:
        while executor.stats.outcomes.get("included", 0) < 12:
            await asyncio.sleep(0.05)
        stop.set()

    await _run_until(pipeline, (executor, risk, relay), stop, until_several_landed(), timeout=240)

    with live.sessions.begin() as session:
        bundles = [
            b for b in execution_repo.list_bundles(session, run_id) if b.status == "included"
        ]
        over_cap = session.scalar(
            select(func.count())
            .select_from(OpportunityRow)
            .where(OpportunityRow.run_id == run_id, OpportunityRow.amount_in > CAP)
        )
    assert over_cap, "no opportunity was sized past the stage's cap: the gate was not tried"
    sizes = []
    for bundle in bundles:
        (tx_hash,) = bundle.tx_hashes_json
        tx = await client.call("eth_getTransactionByHash", [tx_hash])
        receipt = await client.call("eth_getTransactionReceipt", [tx_hash])
        assert int(receipt["status"], 16) == 1
        data = bytes.fromhex(tx["input"][2:])
        calls = (
            decode_execute_many(data)
            if data[:4] == EXECUTE_MANY_SELECTOR
            else (decode_execute(data),)
        )
        pools = [hop.pool.lower() for call in calls for hop in call.hops]
        assert len(pools) == len(set(pools)), "two routes of one transaction share a pool"
        assert all(call.amount_in <= CAP for call in calls)
        sizes.append(len(calls))
    assert max(sizes) >= 2, sizes  # several routes landed in one transaction
    assert max(sizes) <= MAX_ROUTES
    assert sum(b.realized_profit or 0 for b in bundles) > 0
    await _each_route_that_ran_is_scored_ours(client, live, executor, run_id, bundles)


async def _each_route_that_ran_is_scored_ours(
    client: RpcClient, live: _Live, executor: Any, run_id: int, bundles: list[BundleRow]
) -> None:
    """Score the run, then look at every route of every landed transaction of several routes:
    the routes whose pools its swaps touched are ``captured_us``, matched by the routes the
    bundle's row lists (route key and expected net profit, ADR 0031). The scoring waits for
    the chain to pass the last window: an opportunity of block B is scored once the head is at
    B + ``WINDOW``, and the run stops right after its last bundle lands."""
    last_window = max(b.target_block for b in bundles) - 1 + WINDOW
    head = int(await client.call("eth_blockNumber", []), 16)
    while head < last_window:  # the devnet's market mines on
        await asyncio.sleep(0.05)
        head = int(await client.call("eth_blockNumber", []), 16)
    scorer = Scorer(live.sessions, client, executor.pools, run_id, 31337, window=WINDOW)
    while await scorer.score_to(head):
        pass
    reader = SwapReader(client, executor.pools)
    ran = 0
    with live.sessions() as session:
        for bundle in bundles:
            carried = session.execute(
                select(BundleRouteRow.route_key, BundleRouteRow.net_profit)
                .where(BundleRouteRow.bundle_id == bundle.id)
                .order_by(BundleRouteRow.position)
            ).all()
            assert carried, f"bundle {bundle.id} lists no route"
            if len(carried) < 2 or bundle.included_block is None:
                continue
            (tx_hash,) = bundle.tx_hashes_json
            read = await reader.read(bundle.included_block, bundle.included_block)
            swapped = {
                s.pool.lower()
                for tx in read.get(bundle.included_block, [])
                if tx.tx_hash.lower() == tx_hash.lower()
                for s in tx.swaps
            }
            for key, net in carried:
                if not {p.lower() for p in repo.route_key_pools(key)} & swapped:
                    continue  # skipped inside the transaction
                outcomes = session.scalars(
                    select(OpportunityScoreRow.outcome)
                    .join(OpportunityRow, OpportunityRow.id == OpportunityScoreRow.opportunity_id)
                    .where(
                        OpportunityRow.run_id == run_id,
                        OpportunityRow.route_key == key,
                        OpportunityRow.net_profit == int(net),
                        OpportunityRow.block_number < bundle.target_block,
                        OpportunityRow.block_number >= bundle.target_block - WINDOW,
                    )
                ).all()
                assert outcomes == ["captured_us"], (key, outcomes)
                ran += 1
    assert ran >= 2  # routes of several-route transactions, each judged ours
