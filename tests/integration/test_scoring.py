"""Self-scoring on a devnet with competitors: the swaps are read from the chain, the opportunity
a competitor took is named with its sender and profit, and the scores are stored and summed.

The devnet trades 40 market blocks with two competitors; opportunities are then recorded as a
run of ours would have found them (one on the pools of an included competitor arbitrage, the
block before it; one on pools nobody touched) and scored by the run's :class:`Scorer`.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from eth_utils.address import to_checksum_address
from sqlalchemy.orm import Session, sessionmaker

from arbx.chain.rpc import RpcClient
from arbx.chain.swaps import MAX_RANGE
from arbx.devnet.chain import DevChain
from arbx.devnet.commands import EmbeddedDevnet
from arbx.devnet.competitors import SentBundle
from arbx.devnet.market import MarketSimulator
from arbx.domain.pools import Pool, Token, V2Pool
from arbx.domain.profit import Opportunity
from arbx.domain.routes import Route
from arbx.executors.scoring import Scorer
from arbx.store import repo, score_repo
from tests.integration.competition import landed, traded

pytestmark = pytest.mark.integration


def _opportunity(pools: tuple[str, ...], tokens: tuple[str, ...], net: int) -> Opportunity:
    route = Route(pools, tuple(True for _ in pools), tokens)
    amounts = (*tuple(10**18 + i for i in range(1, len(pools))), 10**18 + net)
    return Opportunity(route, 10**18, amounts, net, 200_000, 0, 0, net)


def _record_two(
    factory: sessionmaker[Session], devnet: EmbeddedDevnet, taken: SentBundle, at: int
) -> tuple[int, dict[str, Pool]]:
    """A shadow run's two opportunities of block ``at - 1``: one on the pools of the rival
    arbitrage ``taken`` mined in block ``at`` (net 5), one on pools nobody touched (net 7);
    the run's id and the devnet's V2 pools as the scorer knows them."""
    deployment = devnet.deployment
    weth = deployment.weth
    with factory.begin() as session:
        repo.upsert_chain(session, deployment.chain_id, "devnet")
        run_id = repo.start_run(session, deployment.chain_id, mode="shadow")
        number = at - 1
        header = repo.BlockHeader(
            deployment.chain_id, number, f"0x{number:064x}", f"0x{number - 1:064x}", 0
        )
        repo.record_block(session, header, datetime.now(UTC), run_id=run_id)
        found = [
            _opportunity(taken.route, (weth,) * (len(taken.route) + 1), 5),
            _opportunity(("0x" + "ab" * 20, "0x" + "cd" * 20), (weth,) * 3, 7),
        ]
        repo.add_opportunities(session, run_id, header, found, datetime.now(UTC), 1.0)
    pools: dict[str, Pool] = {
        to_checksum_address(p.address): V2Pool(
            to_checksum_address(p.address), Token(p.token0), Token(p.token1), 1, 1
        )
        for p in deployment.pools
        if p.kind == "uniswap_v2"
    }
    return run_id, pools


def _first_taken(market: MarketSimulator, chain: DevChain) -> tuple[SentBundle, int]:
    """The first rival bundle whose arbitrage succeeded, and its block."""
    assert market.competitors is not None
    mined = [
        (bundle, int(receipt["blockNumber"], 16))
        for bundle, receipt in landed(chain, market.competitors.sent)
        if int(receipt["status"], 16) == 1
    ]
    assert mined
    return mined[0]


def test_the_scorer_names_the_competitor_that_took_an_opportunity(
    factory: sessionmaker[Session],
) -> None:
    with traded(1, 2, 40) as (devnet, market, chain):
        taken, at = _first_taken(market, chain)
        head = int(chain.rpc("eth_blockNumber"), 16)
        deployment = devnet.deployment
        weth = deployment.weth
        run_id, pools = _record_two(factory, devnet, taken, at)

        receipt = chain.rpc("eth_getTransactionReceipt", taken.arbitrage_tx)
        base_fee = int(chain.rpc("eth_getBlockByNumber", hex(at), False)["baseFeePerGas"], 16)
        gas_used = int(receipt["gasUsed"], 16)
        assert taken.builder_payment > 0
        paid_per_gas = (
            int(receipt["effectiveGasPrice"], 16) - base_fee + taken.builder_payment // gas_used
        )

        async def score() -> int:
            async with RpcClient([devnet.url], timeout=10) as client:
                scorer = Scorer(
                    factory, client, pools, run_id, deployment.chain_id, window=3, weth=weth
                )
                done = await scorer.score_to(at + 2)
                assert await scorer.score_to(head) == 0  # nothing scored twice
                # the rival is seen on the taken route's pools, for the bids (ADR 0033), with
                # what it paid the coinbase per gas: its priority fee and its builder share
                assert scorer.competition.sightings(taken.route, at, 1) == 1
                assert scorer.competition.sightings(("0x" + "ab" * 20,), at, 100) == 0
                assert scorer.competition.highest_payment(taken.route, at, 1) == paid_per_gas
                return done

        assert asyncio.run(score()) == 2
        with factory() as session:
            summary = score_repo.summary(session, run_id)
    assert summary["outcomes"]["captured_other"] == 1
    assert summary["outcomes"]["still_open"] == 1
    assert summary["capture_rate"] == 0
    (taker,) = summary["takers"]
    assert taker["taker"].lower() == taken.competitor.lower()
    assert taker["profit_wei"] == taken.gross_profit
    assert summary["taken_by_others_profit_wei"] == taken.gross_profit
    assert summary["taken_by_others_expected_net_profit_wei"] == 5
    lines = "\n".join(score_repo.report_lines(summary, shadow=True))
    assert "capture rate         0.0% of the capturable that were real (0.0% of all" in lines
    assert summary["capturable_outcomes"]["captured_other"] == 1
    assert taker["taker"] in lines
    # nothing simulated (no shadow simulation ran here): going live rests on simulations only,
    # the unsimulated bound counts both capturable ones (pool-disjoint)
    assert summary["simulations"] == {"simulated_ok": 0, "simulated_revert": 0, "unsimulated": 0}
    assert "going live           0 wei in 0 routes that passed simulation" in lines
    assert "every capturable   at most 12 wei" in lines


def test_a_scorer_far_behind_reads_its_oldest_windows_first(
    factory: sessionmaker[Session],
) -> None:
    """A scorer that fell behind by more than one read of swaps (``MAX_RANGE`` blocks, after
    failing for a while) scores its oldest opportunities from their own windows, one read at a
    time, instead of reading only the latest blocks and calling the rival's capture open."""
    with traded(1, 2, 40) as (devnet, market, chain):
        taken, at = _first_taken(market, chain)
        run_id, pools = _record_two(factory, devnet, taken, at)
        chain.rpc("anvil_mine", hex(MAX_RANGE + 20))
        head = int(chain.rpc("eth_blockNumber"), 16)
        assert head - at > MAX_RANGE

        async def score() -> list[int]:
            async with RpcClient([devnet.url], timeout=10) as client:
                scorer = Scorer(factory, client, pools, run_id, devnet.deployment.chain_id)
                counts = [await scorer.score_to(head)]
                while counts[-1]:
                    counts.append(await scorer.score_to(head))
                return counts

        assert asyncio.run(score()) == [2, 0]
        with factory() as session:
            summary = score_repo.summary(session, run_id)
    assert {k: n for k, n in summary["outcomes"].items() if n} == {
        "captured_other": 1,
        "still_open": 1,
    }
    (taker,) = summary["takers"]
    assert taker["taker"].lower() == taken.competitor.lower()
