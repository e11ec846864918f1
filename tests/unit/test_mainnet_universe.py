"""The mainnet-shaped universe of ``make bench``: seeded, consistent pool states, and blocks that
touch 50 to 150 pools with swaps the pools can take."""

from __future__ import annotations

from functools import cache

from bench import mainnet_universe as mu

from arbx.domain.journal import PoolBook
from arbx.domain.pools import V2Pool, V3Pool


@cache
def universe() -> mu.Universe:
    return mu.generate(300, seed=1)


def test_same_seed_same_universe_and_blocks() -> None:
    a, b = universe(), mu.generate(300, seed=1)
    assert a.pools == b.pools
    assert list(mu.blocks(a, 2, seed=6)) == list(mu.blocks(b, 2, seed=6))
    assert list(mu.blocks(a, 2, seed=6)) != list(mu.blocks(b, 2, seed=7))


def test_shape_and_consistent_v3_ticks() -> None:
    pools = universe().pools
    assert len(pools) == 300
    assert {p.fee for p in pools if isinstance(p, V3Pool)} == {100, 500, 3000, 10000}
    assert any(isinstance(p, V2Pool) for p in pools)
    for pool in pools:
        if isinstance(pool, V3Pool):
            # in-range liquidity is what the positions below the price add up to
            assert pool.liquidity == sum(
                pool.liquidity_net[t] for t in pool.ticks if t <= pool.tick
            )
            assert sum(pool.liquidity_net.values()) == 0
            assert all(t % pool.tick_spacing == 0 for t in pool.ticks)
    assert "300 pools" in universe().describe()


def test_blocks_touch_50_to_150_pools_and_apply_to_the_book() -> None:
    book = PoolBook(universe().pools, mu.FIRST_BLOCK, mu.block_hash(mu.FIRST_BLOCK))
    for number, events in enumerate(mu.blocks(universe(), 3), start=mu.FIRST_BLOCK + 1):
        assert 45 <= len(events) <= 150  # a few swaps cannot fill and emit nothing
        changed = book.apply_block(number, mu.block_hash(number), mu.block_hash(number - 1), events)
        assert changed == {e.address for e in events}
