"""The best pool-disjoint set of a block's opportunities: exact on small blocks (checked against
every subset), never worse than greedy, and bounded in work on large ones."""

from __future__ import annotations

import itertools
import random

from arbx.domain.capture import best_disjoint


def _brute(candidates: list[tuple[set[str], int]]) -> int:
    best = 0
    for r in range(len(candidates) + 1):
        for subset in itertools.combinations(range(len(candidates)), r):
            pools = [candidates[i][0] for i in subset]
            if sum(len(p) for p in pools) == len(set().union(*pools)):
                best = max(best, sum(max(0, candidates[i][1]) for i in subset))
    return best


def _value(candidates: list[tuple[set[str], int]], chosen: tuple[int, ...]) -> int:
    used: set[str] = set()
    for i in chosen:
        assert not candidates[i][0] & used, "the set shares a pool"
        used |= candidates[i][0]
        assert candidates[i][1] > 0
    return sum(candidates[i][1] for i in chosen)


def test_two_small_routes_beat_one_big_overlapping_one() -> None:
    candidates = [({"A", "B"}, 10), ({"A", "C"}, 7), ({"B", "D"}, 7), ({"E", "F"}, -1)]
    assert best_disjoint(candidates) == (1, 2)  # 14 > 10: greedy would keep only the first
    assert best_disjoint([]) == ()
    assert best_disjoint([({"A"}, 0), ({"B"}, -5)]) == ()
    assert best_disjoint([({"0xAa"}, 3), ({"0xaA"}, 2)]) == (0,)  # addresses in any case


def test_exact_on_random_small_blocks() -> None:
    rng = random.Random(8)
    pools = [f"P{i}" for i in range(9)]
    for _ in range(300):
        n = rng.randint(1, 9)
        candidates = [
            (set(rng.sample(pools, rng.randint(2, 4))), rng.randint(-50, 1000)) for _ in range(n)
        ]
        assert _value(candidates, best_disjoint(candidates)) == _brute(candidates)


def test_large_blocks_stay_within_the_budget_and_above_greedy() -> None:
    rng = random.Random(3)
    pools = [f"P{i}" for i in range(40)]
    candidates = [(set(rng.sample(pools, 3)), rng.randint(1, 10**18)) for _ in range(64)]
    chosen = best_disjoint(candidates, budget=500)
    ordered = sorted(range(64), key=lambda i: -candidates[i][1])
    used: set[str] = set()
    greedy = 0
    for i in ordered:
        if not candidates[i][0] & used:
            used |= candidates[i][0]
            greedy += candidates[i][1]
    assert _value(candidates, chosen) >= greedy
