"""Cycle enumeration and the pool -> routes index."""

from __future__ import annotations

import pytest

from arbx.domain.errors import InputError
from arbx.domain.pools import Token, V2Pool
from arbx.domain.routes import RouteIndex, connector_tokens, find_cycles

T = [Token(f"0x{i:040X}") for i in range(1, 7)]  # T[0] is the base
BASE = T[0].address


def v2(n: int, a: int, b: int) -> V2Pool:
    lo, hi = sorted((a, b))
    return V2Pool(f"0x{0xB000 + n:040X}", T[lo], T[hi], 10**20, 10**20)


def test_two_venues_give_two_hop_cycles_both_ways() -> None:
    pools = [v2(1, 0, 1), v2(2, 0, 1)]
    routes = find_cycles(pools, [BASE], max_hops=4)
    assert {r.pools for r in routes} == {
        (pools[0].address, pools[1].address),
        (pools[1].address, pools[0].address),
    }
    for r in routes:
        assert r.tokens == (BASE, T[1].address, BASE)
        assert r.zero_for_one == (True, False)


def test_triangle_and_hop_limit() -> None:
    pools = [v2(1, 0, 1), v2(2, 1, 2), v2(3, 2, 0)]
    assert len(find_cycles(pools, [BASE], max_hops=3)) == 2  # one triangle, two directions
    assert find_cycles(pools, [BASE], max_hops=2) == []


def test_no_token_visited_twice_and_no_pool_reused() -> None:
    # base-1, 1-2 (two venues), 2-base, 1-3, 3-2: cycles must stay simple
    pools = [v2(1, 0, 1), v2(2, 1, 2), v2(3, 1, 2), v2(4, 2, 0), v2(5, 1, 3), v2(6, 3, 2)]
    routes = find_cycles(pools, [BASE], max_hops=4)
    assert routes
    for r in routes:
        assert len(set(r.pools)) == len(r.pools)
        inner = r.tokens[1:-1]
        assert len(set(inner)) == len(inner)
        assert BASE not in inner
        for i, address in enumerate(r.pools):
            pool = next(p for p in pools if p.address == address)
            hop_in = pool.token0 if r.zero_for_one[i] else pool.token1
            hop_out = pool.token1 if r.zero_for_one[i] else pool.token0
            assert (hop_in.address, hop_out.address) == (r.tokens[i], r.tokens[i + 1])
    # 3 hops: base-1-2-base through pool 2 or 3, each both ways; 4 hops: base-1-3-2-base, both ways
    assert sum(len(r.pools) == 3 for r in routes) == 4
    assert sum(len(r.pools) == 4 for r in routes) == 2


def test_index_finds_only_touched_routes() -> None:
    pools = [v2(1, 0, 1), v2(2, 0, 1), v2(3, 0, 2), v2(4, 0, 2)]
    index = RouteIndex(find_cycles(pools, [BASE]))
    assert len(index) == 4
    touched = index.touched([pools[0].address])
    assert len(touched) == 2
    assert all(pools[0].address in r.pools for r in touched)
    assert index.touched(["0x" + "00" * 20]) == []
    assert len(index.touched([pools[0].address, pools[1].address])) == 2


def test_route_limit() -> None:
    pools = [v2(n, 0, 1) for n in range(1, 30)]
    with pytest.raises(InputError, match="more than 100 routes"):
        find_cycles(pools, [BASE], limit=100)


def test_connectors_bound_only_the_long_routes() -> None:
    # a dense random graph over 12 tokens: with connectors, the routes are exactly those of the
    # unbounded enumeration that are short or pass only through connector tokens
    import random  # noqa: PLC0415

    rng = random.Random(7)
    tokens = [Token(f"0x{i:040X}") for i in range(1, 13)]
    pools = []
    for n in range(60):
        a, b = rng.sample(range(12), 2)
        lo, hi = sorted((a, b))
        pools.append(V2Pool(f"0x{0xC000 + n:040X}", tokens[lo], tokens[hi], 10**20, 10**20))
    base = tokens[0].address
    connectors = connector_tokens(pools, 6)
    assert 1 < len(connectors) < len(tokens) - 1
    every = find_cycles(pools, [base], max_hops=5)
    for connector_hops in (3, 4, 5):
        bounded = find_cycles(
            pools, [base], max_hops=5, connectors=connectors, connector_hops=connector_hops
        )
        expected = [
            r
            for r in every
            if len(r.pools) < connector_hops or all(t in connectors for t in r.tokens[1:-1])
        ]
        assert bounded == expected
        assert any(len(r.pools) >= connector_hops for r in bounded)
        assert len(bounded) < len(every)


def test_connector_tokens_count_distinct_partners() -> None:
    pools = [v2(1, 0, 1), v2(2, 0, 1), v2(3, 0, 2), v2(4, 1, 2), v2(5, 0, 3)]
    assert connector_tokens(pools, 3) == {BASE}
    assert connector_tokens(pools, 2) == {BASE, T[1].address, T[2].address}
