"""Detection as the strategy runs it (the token-path bound, swaps through each state's ladder of
whole steps) decides what estimating every touched route with the pool's literal swap loop
decides: the same routes, sizes, profits and order, block after block, on mainnet-shaped states."""

from __future__ import annotations

from dataclasses import replace

import pytest
from bench import mainnet_universe as mu

from arbx.domain.arbitrage import evaluate
from arbx.domain.journal import PoolBook
from arbx.domain.pools import Pool, V3Pool
from arbx.strategies.cyclic import CyclicArbitrage, StrategyLimits


def literal(pool: Pool) -> Pool:
    """A copy of the pool whose every swap walks the loop from its state (no ladder)."""
    if not isinstance(pool, V3Pool):
        return pool
    copy = replace(pool)
    object.__setattr__(copy, "ladders", None)  # v3.swap without ladders: the literal loop
    return copy


@pytest.mark.parametrize("seed", [1, 2])
def test_strategy_decides_as_every_route_with_the_literal_loop(seed: int) -> None:
    universe = mu.generate(400, seed=seed)
    book = PoolBook(universe.pools, mu.FIRST_BLOCK, mu.block_hash(mu.FIRST_BLOCK))
    limits = StrategyLimits(base_tokens=(mu.WETH,), max_hops=4, connector_min_pairs=3, max_sized=16)
    strategy = CyclicArbitrage(book, limits)
    found = v3_sized = 0
    for number, events in enumerate(mu.blocks(universe, 16, seed=seed), start=mu.FIRST_BLOCK + 1):
        changed = book.apply_block(number, mu.block_hash(number), mu.block_hash(number - 1), events)
        got = strategy.on_block(changed, 10 * 10**9)
        pools = {address: literal(pool) for address, pool in book.pools.items()}
        costs = strategy.costs(10 * 10**9)
        expected = evaluate(strategy.index.touched(changed), pools, costs, None, 16)
        assert got == expected
        found += len(got)
        v3_sized += sum(isinstance(book.pools[a], V3Pool) for o in got for a in o.route.pools)
    assert found > 0
    assert v3_sized > 0  # routes through V3 pools were sized through their ladders
