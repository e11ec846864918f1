"""Several routes in one transaction (``executeMany``) on anvil with the real Uniswap contracts:
pool-disjoint routes all realize their sized profit and each pays the builder its own share; a
route that reverts (its pool moved by the route before it, or its profit under its minimum) is
skipped and the others still run; a call where none runs reverts; the contract's bounds hold;
an MEV inspector reading the transaction's swaps names every route as our arbitrage; and
self-scoring judges each route of a batch on its own (the one that ran is ours, the one skipped
is not, every route of a batch whose simulation failed was never real).
"""

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from arbx.chain.rpc import RpcClient
from arbx.chain.swaps import SwapReader
from arbx.domain.pools import Pool
from arbx.domain.profit import Opportunity, builder_payment, kept_profit
from arbx.domain.scoring import find_arbitrages
from arbx.domain.sizing import Sized, optimize
from arbx.execution.keys import SignedTx
from arbx.execution.route_codec import MAX_ROUTES, encode_execute, encode_execute_many
from arbx.executors.records import SentBundle, store_outcome, store_sent
from arbx.executors.scoring import Scorer
from arbx.store import execution_repo, repo
from arbx.store.models import BundleRouteRow, OpportunityScoreRow
from tests.integration.executor_world import (
    Market,
    make_route,
    read_pools,
    revert_of,
    send,
)
from tests.integration.test_executor import balances, coinbase_gain

pytestmark = pytest.mark.integration

V2_V2 = ("v2_b", "v2_a")
V3_V3 = ("v3_a", "v3_b")  # shares no pool with V2_V2
OVERLAPS = ("v2_b", "v3_b")  # shares v2_b with V2_V2 and v3_b with V3_V3


def sized(m: Market, names: Sequence[str]) -> Sized:
    """The optimal size of the WETH route through ``names`` on the chain's current states."""
    found = optimize(make_route(m, names, m.weth).hops(read_pools(m, names)))
    assert found is not None, names
    assert found.profit > 0, names
    return found


def execute(m: Market, names: Sequence[str], share: int, *, min_extra: int = 0) -> bytes:
    """``execute`` calldata for the route sized now, keeping its profit after ``share``."""
    route, pools, size = make_route(m, names, m.weth), read_pools(m, names), sized(m, names)
    return encode_execute(route, pools, size, m.weth, kept_profit(size.profit, share) + min_extra,
                          share)  # fmt: skip


def test_disjoint_routes_all_land_each_paying_its_own_share(fresh: Market) -> None:
    m = fresh
    first, second = sized(m, V2_V2), sized(m, V3_V3)
    data = encode_execute_many([execute(m, V2_V2, 0), execute(m, V3_V3, 2_500)])
    before = m.balance(m.weth, m.executor.address)
    m.chain.rpc("evm_increaseTime", 12)

    receipt = send(m.chain, m.owner, m.executor.address, data)

    kept = first.profit + kept_profit(second.profit, 2_500)
    assert m.balance(m.weth, m.executor.address) - before == kept
    assert coinbase_gain(m.chain, receipt) == builder_payment(second.profit, 2_500) > 0
    assert m.balance(m.a, m.executor.address) == 0  # nothing of the middle token stays
    print(f"\n  executeMany V2-V2 + V3-V3: {int(receipt['gasUsed'], 16):,} gas")


def test_a_route_that_reverts_is_skipped_and_the_others_run(fresh: Market) -> None:
    m = fresh
    first, second = sized(m, V2_V2), sized(m, V3_V3)
    # sized on the state before the batch: the first route moves v2_b, so this one fails
    stale = execute(m, OVERLAPS, 0)
    under = execute(m, V3_V3, 0, min_extra=1)  # asks one wei more than it can make
    ok = execute(m, V3_V3, 0)
    before = m.balance(m.weth, m.executor.address)

    receipt = send(
        m.chain, m.owner, m.executor.address,
        encode_execute_many([execute(m, V2_V2, 0), stale, under, ok]),
    )  # fmt: skip

    assert int(receipt["status"], 16) == 1
    assert m.balance(m.weth, m.executor.address) - before == first.profit + second.profit
    assert coinbase_gain(m.chain, receipt) == 0


def test_no_route_running_reverts_and_changes_nothing(fresh: Market) -> None:
    m = fresh
    data = encode_execute_many(
        [execute(m, V2_V2, 1_000, min_extra=1), execute(m, V3_V3, 0, min_extra=1)]
    )
    assert revert_of(m.chain, m.owner, m.executor.address, data) == "NoRouteExecuted()"
    holders = [m.executor.address, *(m.pools[n].address for n in (*V2_V2, *V3_V3))]
    before = balances(m, holders)
    receipt = send(m.chain, m.owner, m.executor.address, data, check=False)
    assert int(receipt["status"], 16) == 0
    assert balances(m, holders) == before


def test_bounds_and_owner_hold(fresh: Market) -> None:
    m, executor = fresh, fresh.executor
    one = execute(m, V2_V2, 0)
    assert executor.functions.MAX_ROUTES().call() == MAX_ROUTES
    withdraw = bytes.fromhex(
        executor.functions.withdraw(m.weth, m.owner, 1)._encode_transaction_data()[2:]
    )
    nine = [one] * (MAX_ROUTES + 1)
    for calls in ([], nine, [one, withdraw]):
        data = executor.functions.executeMany(calls)._encode_transaction_data()
        assert revert_of(m.chain, m.owner, executor.address, bytes.fromhex(data[2:])) == (
            "BadBatch()"
        )
    many = encode_execute_many([one])
    assert revert_of(m.chain, m.stranger, executor.address, many) == "NotOwner()"
    assert revert_of(m.chain, m.stranger, executor.address, one) == "NotOwner()"


def test_an_inspector_names_each_route_of_the_transaction_ours(fresh: Market) -> None:
    m = fresh
    names = (*V2_V2, *V3_V3)
    receipt = send(
        m.chain, m.owner, m.executor.address,
        encode_execute_many([execute(m, V2_V2, 0), execute(m, V3_V3, 0)]),
    )  # fmt: skip
    block = int(receipt["blockNumber"], 16)
    pools: dict[str, Pool] = read_pools(m, names)

    async def swaps() -> list[tuple[str, ...]]:
        async with RpcClient([str(m.chain.provider.endpoint_uri)], timeout=10) as client:
            read = await SwapReader(client, pools).read(block, block)
        (tx,) = read[block]
        assert tx.sender.lower() == m.owner.lower()
        return [a.pools for a in find_arbitrages(tx)]

    found = asyncio.run(swaps())
    wanted = {frozenset(m.pools[n].address.lower() for n in r) for r in (V2_V2, V3_V3)}
    assert {frozenset(p.lower() for p in pools) for pools in found} == wanted


def _found(m: Market, names: Sequence[str], net: int) -> Opportunity:
    """The opportunity of the WETH route through ``names`` sized now, expecting ``net``."""
    size = sized(m, names)
    route = make_route(m, names, m.weth)
    return Opportunity(route, size.amount_in, size.amounts, size.profit, 200_000, 0, 0, net)


def _bundle(m: Market, target: int, tx_hash: str, routes: Sequence[Opportunity]) -> SentBundle:
    """What the live executor records of a bundle carrying ``routes`` in one transaction."""
    signed = SignedTx(b"", bytes.fromhex(tx_hash[2:]), 0, m.owner)
    return SentBundle(
        routes[0], target, ["local"], signed, "ab" * 32, m.owner, m.executor.address, 0,
        expected_net_profit=sum(o.net_profit for o in routes), routes=len(routes),
        carried=tuple(routes),
    )  # fmt: skip


def test_self_scoring_judges_each_route_of_a_batch(
    fresh: Market, factory: sessionmaker[Session]
) -> None:
    m = fresh
    names = (*V2_V2, *V3_V3)
    chain_id = int(m.chain.rpc("eth_chainId"), 16)
    found_at = int(m.chain.rpc("eth_blockNumber"), 16)
    # at the same block: a batch that lands (V2_V2 runs, V3_V3 asks one wei too many and is
    # skipped), and a batch of the same routes (other sizes) whose simulation failed
    ran, skipped = _found(m, V2_V2, 11), _found(m, V3_V3, 12)
    failed = [_found(m, V2_V2, 21), _found(m, V3_V3, 22)]
    legacy = _found(m, V3_V3, 31)  # its bundle's row predates the routes' list (revision 0007)
    never = encode_execute_many(
        [execute(m, V2_V2, 0, min_extra=1), execute(m, V3_V3, 0, min_extra=1)]
    )
    assert revert_of(m.chain, m.owner, m.executor.address, never) == "NoRouteExecuted()"
    receipt = send(
        m.chain, m.owner, m.executor.address,
        encode_execute_many([execute(m, V2_V2, 0), execute(m, V3_V3, 0, min_extra=1)]),
    )  # fmt: skip
    landed_at = int(receipt["blockNumber"], 16)
    for _ in range(3):
        m.chain.rpc("evm_mine")
    with factory.begin() as session:
        repo.upsert_chain(session, chain_id, "anvil")
        run_id = repo.start_run(session, chain_id, mode="limited")
        header = repo.BlockHeader(
            chain_id, found_at, f"0x{found_at:064x}", f"0x{found_at - 1:064x}", 0
        )
        repo.record_block(session, header, datetime.now(UTC), run_id=run_id)
        ids = repo.add_opportunities(
            session, run_id, header, [ran, skipped, *failed, legacy], datetime.now(UTC), 1.0
        )
        old = execution_repo.record_bundle(
            session, run_id, target_block=landed_at, builders=[], tx_hashes=[],
            expected_net_profit=legacy.net_profit,
        )  # fmt: skip
        execution_repo.update_bundle_outcome(session, old, "sim_failed")
    batch = _bundle(m, landed_at, str(receipt["transactionHash"]), [ran, skipped])
    store_sent(factory, run_id, batch)
    batch.written.set()
    store_outcome(factory, batch, "included", {"included_block": landed_at})
    dud = _bundle(m, landed_at, "0x" + "77" * 32, failed)
    store_sent(factory, run_id, dud)
    dud.written.set()
    store_outcome(factory, dud, "sim_failed", {})
    with factory() as session:
        carried = session.execute(
            select(BundleRouteRow.route_key, BundleRouteRow.net_profit).order_by(
                BundleRouteRow.bundle_id, BundleRouteRow.position
            )
        ).all()
    assert [(k, int(n)) for k, n in carried] == [
        (repo.route_key(o.route), o.net_profit) for o in (ran, skipped, *failed)
    ]

    async def score() -> int:
        async with RpcClient([str(m.chain.provider.endpoint_uri)], timeout=10) as client:
            scorer = Scorer(factory, client, read_pools(m, names), run_id, chain_id, window=3)
            return await scorer.score_to(found_at + 3)

    assert asyncio.run(score()) == 5
    with factory() as session:
        scores = {
            s.opportunity_id: s
            for s in session.query(OpportunityScoreRow).filter_by(run_id=run_id).all()
        }
    outcomes = [scores[i].outcome for i in ids]
    assert outcomes == ["captured_us", "still_open", "never_real", "never_real", "never_real"]
    ours = scores[ids[0]]
    assert (ours.decided_block, ours.taker_tx) == (
        landed_at, str(receipt["transactionHash"]).lower(),
    )  # fmt: skip
