"""Detection through the token-path bound gives exactly what estimating every touched route
gives: the same opportunities, in the same order, block after block, on mainnet-shaped states
(V2 and V3 pools at every fee tier, pools pushed out of their no-arbitrage band)."""

from __future__ import annotations

import heapq

import pytest
from bench import mainnet_universe as mu

from arbx.domain.arbitrage import (
    Rankings,
    candidates,
    estimate,
    evaluate,
    evaluate_touched,
    live_touched,
)
from arbx.domain.journal import PoolBook
from arbx.domain.pools import V3Pool
from arbx.domain.profit import Costs
from arbx.domain.routes import RouteIndex, connector_tokens, find_cycles


@pytest.mark.parametrize("seed", [1, 2])
def test_bounded_detection_equals_estimating_every_touched_route(seed: int) -> None:
    universe = mu.generate(160, seed=seed)
    pools = universe.pools
    routes = find_cycles(pools, [mu.WETH], max_hops=4, connectors=connector_tokens(pools, 3))
    index = RouteIndex(routes)
    assert len(index.paths) < len(index.routes)  # parallel pools: fewer paths than routes
    book = PoolBook(pools, mu.FIRST_BLOCK, mu.block_hash(mu.FIRST_BLOCK))
    costs = Costs(base_fee_wei=10**9)
    live = skipped = 0
    rankings = Rankings()  # kept from block to block, as the strategy keeps them
    for number, events in enumerate(mu.blocks(universe, 12, seed=seed), start=mu.FIRST_BLOCK + 1):
        changed = book.apply_block(number, mu.block_hash(number), mu.block_hash(number - 1), events)
        touched = index.touched(changed)
        curves: dict[str, tuple[float, float, float, float]] = {}
        passing = [r for r in touched if estimate(r, book.pools, curves) is not None]
        kept = candidates(index, changed, book.pools, {}, rankings)
        assert [r for r in kept if estimate(r, book.pools, curves) is not None] == passing
        # the walk's own estimates are estimate's, to the bit, with rankings kept or not
        estimated = [(estimate(r, book.pools, curves), r) for r in passing]
        assert live_touched(index, changed, book.pools, rankings) == estimated
        assert live_touched(index, changed, book.pools) == estimated
        live += len(passing)
        skipped += len(touched) - len(kept)
        if number % 4 == 0:  # exact sizing is the slow part: the whole path on some blocks
            expected = evaluate(touched, book.pools, costs, max_sized=3)
            got = evaluate_touched(index, changed, book.pools, costs, None, 3, rankings)
            assert got == expected
    assert live > 0  # the blocks opened opportunities to find
    assert skipped > 0  # and the bound spared estimating some routes


def test_path_index_lists_every_route_once_with_its_pools_on_its_edges() -> None:
    universe = mu.generate(160, seed=3)
    index = RouteIndex(find_cycles(universe.pools, [mu.WETH], max_hops=3))
    seen = sorted(i for ids in index.path_routes for i in ids)
    assert seen == list(range(len(index.routes)))
    for path, ids in enumerate(index.path_routes):
        for i in ids:
            route = index.routes[i]
            for edge, address, z in zip(
                index.paths[path], route.pools, route.zero_for_one, strict=True
            ):
                assert (address, z) in index.edges[edge]
    some_v3 = next(p.address for p in universe.pools if isinstance(p, V3Pool))
    through = {i for i, r in enumerate(index.routes) if some_v3 in r.pools}
    paths = index.touched_paths([some_v3])
    assert through == {i for p in paths for i in index.path_routes[p]} & through
    assert all(through.intersection(index.path_routes[p]) for p in paths)


def test_kept_rankings_follow_every_changed_state_even_one_not_named_changed() -> None:
    """The rankings kept between blocks are ranked again for any pool whose state is not the one
    they were ranked on, named in ``changed`` or not (a reload, several blocks at once): the walk
    gives ``estimate``'s answer on the current states. Rankings left on the states before would
    carry their rates into the estimates and give another answer."""
    universe = mu.generate(160, seed=5)
    pools = universe.pools
    index = RouteIndex(
        find_cycles(pools, [mu.WETH], max_hops=4, connectors=connector_tokens(pools, 3))
    )
    book = PoolBook(pools, mu.FIRST_BLOCK, mu.block_hash(mu.FIRST_BLOCK))
    rankings = Rankings()
    assert live_touched(index, set(book.pools), book.pools, rankings) == []  # at equilibrium
    unnamed: set[str] = set()
    checked = 0
    for number, events in enumerate(mu.blocks(universe, 12, seed=5), start=mu.FIRST_BLOCK + 1):
        changed = book.apply_block(number, mu.block_hash(number), mu.block_hash(number - 1), events)
        if number % 3:  # two blocks in three: the states move, the walk is not told
            unnamed |= changed
            continue
        curves: dict[str, tuple[float, float, float, float]] = {}
        estimated = [
            (e, r) for r in index.touched(changed) if (e := estimate(r, book.pools, curves))
        ]
        assert live_touched(index, changed, book.pools, rankings) == estimated
        # some of those routes pass through a pool that moved unnamed since the walk last ran
        checked += sum(not unnamed.isdisjoint(r.pools) for _, r in estimated)
        unnamed.clear()
    assert checked > 0


@pytest.mark.parametrize("keep", [1, 3, 16])
def test_the_walk_for_the_best_few_keeps_every_route_they_are_chosen_from(keep: int) -> None:
    """``live_touched(..., keep=k)`` leaves out routes that cannot be among the ``k`` best
    estimates, and ``heapq.nlargest`` picks from it the very routes, in the same order, it picks
    from every live route (ties included: equal estimates go in index order)."""
    universe = mu.generate(160, seed=2)
    pools = universe.pools
    index = RouteIndex(
        find_cycles(pools, [mu.WETH], max_hops=4, connectors=connector_tokens(pools, 3))
    )
    book = PoolBook(pools, mu.FIRST_BLOCK, mu.block_hash(mu.FIRST_BLOCK))
    rankings = Rankings()
    left_out = 0
    for number, events in enumerate(mu.blocks(universe, 12, seed=2), start=mu.FIRST_BLOCK + 1):
        changed = book.apply_block(number, mu.block_hash(number), mu.block_hash(number - 1), events)
        every = live_touched(index, changed, book.pools, rankings)
        few = live_touched(index, changed, book.pools, rankings, keep=keep)
        kept = set(few)
        assert kept <= set(every)
        assert few == [item for item in every if item in kept]  # in index order
        first = heapq.nlargest(keep, every, key=lambda item: item[0])
        assert heapq.nlargest(keep, few, key=lambda item: item[0]) == first
        # ties: every route as good as the keep-th best is kept
        if len(every) >= keep:
            assert all(item in few for item in every if item[0] >= first[-1][0])
        left_out += len(every) - len(few)
    assert left_out > 0  # and the walk did leave routes out
