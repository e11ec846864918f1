"""Several routes in one transaction (``executeMany``) on anvil with the real Uniswap contracts:
pool-disjoint routes all realize their sized profit and each pays the builder its own share; a
route that reverts (its pool moved by the route before it, or its profit under its minimum) is
skipped and the others still run; a call where none runs reverts; the contract's bounds hold;
and an MEV inspector reading the transaction's swaps names every route as our arbitrage.
"""

import asyncio
from collections.abc import Iterator, Sequence

import pytest

from arbx.chain.rpc import RpcClient
from arbx.chain.swaps import SwapReader
from arbx.domain.pools import Pool
from arbx.domain.profit import builder_payment, kept_profit
from arbx.domain.scoring import find_arbitrages
from arbx.domain.sizing import Sized, optimize
from arbx.execution.route_codec import MAX_ROUTES, encode_execute, encode_execute_many
from tests.integration.executor_world import (
    Market,
    make_route,
    read_pools,
    revert_of,
    running_market,
    send,
)
from tests.integration.test_executor import balances, coinbase_gain

pytestmark = pytest.mark.integration

V2_V2 = ("v2_b", "v2_a")
V3_V3 = ("v3_a", "v3_b")  # shares no pool with V2_V2
OVERLAPS = ("v2_b", "v3_b")  # shares v2_b with V2_V2 and v3_b with V3_V3


@pytest.fixture(scope="module")
def market() -> Iterator[Market]:
    """Own anvil: Uniswap, the executor (owner: the first account), the priced pools."""
    with running_market() as built:
        yield built


@pytest.fixture
def fresh(market: Market) -> Iterator[Market]:
    """The market, restored after the test."""
    snapshot = market.chain.snapshot()
    yield market
    market.chain.revert(snapshot)


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
