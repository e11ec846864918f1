"""The per-block sizing budget keeps the routes with the best estimates, and their exact sizes."""

from __future__ import annotations

from arbx.domain.arbitrage import estimate, evaluate
from arbx.domain.pools import Token, V2Pool
from arbx.domain.profit import Costs
from arbx.domain.routes import find_cycles

T = [Token(f"0x{i:040X}") for i in range(1, 5)]


def pool(n: int, r0: int, r1: int, tokens: tuple[int, int] = (0, 1)) -> V2Pool:
    return V2Pool(f"0x{0xC000 + n:040X}", T[tokens[0]], T[tokens[1]], r0, r1)


def test_budget_keeps_the_best_estimates_exactly_sized() -> None:
    # one reference pair, and several copies mispriced by growing amounts
    pools = [pool(0, 10**21, 10**21)] + [
        pool(n, 10**21, 10**21 * (1000 + 10 * n) // 1000) for n in range(1, 8)
    ]
    states = {p.address: p for p in pools}
    routes = find_cycles(pools, [T[0].address], max_hops=2)
    everything = evaluate(routes, states, Costs())
    budget = evaluate(routes, states, Costs(), max_sized=3)
    assert len(budget) == 3
    assert budget == everything[:3]  # the same exact trades as sizing everything, best first


def test_estimate_matches_the_v2_closed_form_and_refuses_losers() -> None:
    a, b = pool(1, 10**21, 10**21), pool(2, 10**21, 11 * 10**20)
    states = {a.address: a, b.address: b}
    routes = find_cycles([a, b], [T[0].address], max_hops=2)
    estimates = [estimate(r, states, {}) for r in routes]
    assert sorted(e is None for e in estimates) == [False, True]  # one direction pays
    best = evaluate(routes, states, Costs())[0]
    paying = next(e for e in estimates if e is not None)
    assert abs(paying - best.gross_profit) / best.gross_profit < 1e-6
