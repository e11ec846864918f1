"""What one block could have captured: the best set of its opportunities that share no pool.

Every opportunity of a block is sized against the same pool states, so two routes through one
pool cannot both be taken at their expected profit: the first moves the pool the second was
sized on. Adding up every opportunity found counts the same liquidity many times over. The
figure the executor could have taken is the most net profit over a set of opportunities that
are pool-disjoint (each was sized within the strategy's input caps when it was found).

``best_disjoint`` finds that set exactly (maximum-weight set packing by branch and bound, the
candidates best first, bounded by the sum of the positive profits left) as long as it takes at
most ``budget`` search steps; past that it keeps the best set found so far, which is never worse
than the greedy one (take the most profitable, skip what overlaps, repeat) it starts from.
A block has few candidates (the strategy sizes at most 64 per block), so the budget is rarely
reached.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from typing import Final

BUDGET: Final = 10_000  # search steps per block (a few milliseconds)


def best_disjoint(
    candidates: Sequence[tuple[Collection[str], int]], *, budget: int = BUDGET
) -> tuple[int, ...]:
    """Indices (ascending) of the pool-disjoint candidates ``(pools, net profit)`` of most profit.

    Candidates with no profit (net <= 0) are never chosen. Pool addresses compare in any case.
    """
    best_of: dict[frozenset[str], int] = {}  # routes through the same pools: only the best
    for i, (touched, profit) in enumerate(candidates):
        if profit > 0:
            key = frozenset(p.lower() for p in touched)
            if key not in best_of or profit > candidates[best_of[key]][1]:
                best_of[key] = i
    order = sorted(best_of.values(), key=lambda i: (-candidates[i][1], i))
    pools = [frozenset(p.lower() for p in candidates[i][0]) for i in order]
    profits = [candidates[i][1] for i in order]
    best = _greedy(pools)
    best_total = sum(profits[k] for k in best)
    suffix = [0] * (len(order) + 1)
    for k in range(len(order) - 1, -1, -1):
        suffix[k] = suffix[k + 1] + profits[k]
    steps = 0

    def search(start: int, used: frozenset[str], total: int, chosen: list[int]) -> None:
        # Each candidate from ``start`` on is taken (recursing) or passed over (looping on), so
        # the depth is the size of a set, never the number of candidates.
        nonlocal best, best_total, steps
        if total > best_total:
            best, best_total = list(chosen), total
        for k in range(start, len(order)):
            steps += 1
            if steps > budget or total + suffix[k] <= best_total:
                return
            if pools[k] & used:
                continue
            chosen.append(k)
            search(k + 1, used | pools[k], total + profits[k], chosen)
            chosen.pop()

    search(0, frozenset(), 0, [])
    return tuple(sorted(order[k] for k in best))


def _greedy(pools: Sequence[frozenset[str]]) -> list[int]:
    used: set[str] = set()
    chosen = []
    for k, touched in enumerate(pools):
        if not touched & used:
            used |= touched
            chosen.append(k)
    return chosen


def routes_to_send(
    candidates: Sequence[tuple[Collection[str], int]],
    *,
    limit: int,
    extra: Callable[[int], bool],
    budget: int = BUDGET,
) -> tuple[int, ...]:
    """Indices, the first one first, of the routes one block sends: its first candidate (the
    block's best, which one route per block sends), then the most profitable pool-disjoint set
    of the others that ``extra`` accepts and that share no pool with it, most profit first, at
    most ``limit`` routes in all."""
    if limit < 1:
        raise ValueError(f"a block sends at most {limit} routes: at least one is needed")
    if not candidates:
        return ()
    first = {p.lower() for p in candidates[0][0]}
    others = [
        i
        for i in range(1, len(candidates))
        if extra(i) and not first & {p.lower() for p in candidates[i][0]}
    ]
    chosen = disjoint_batch([candidates[i] for i in others], limit=limit - 1, budget=budget)
    return (0, *(others[k] for k in chosen)) if limit > 1 else (0,)


def disjoint_batch(
    candidates: Sequence[tuple[Collection[str], int]], *, limit: int, budget: int = BUDGET
) -> tuple[int, ...]:
    """Indices, most profit first, of at most ``limit`` pool-disjoint candidates to send at once.

    The best pool-disjoint set (``best_disjoint``); past ``limit`` routes only its most
    profitable ``limit`` are kept. ``limit`` 1 is the single best candidate.
    """
    if limit < 1:
        return ()
    chosen = best_disjoint(candidates, budget=budget)
    return tuple(sorted(chosen, key=lambda i: (-candidates[i][1], i))[:limit])
