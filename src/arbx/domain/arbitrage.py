"""Cyclic arbitrage over pool states: size every route, net out costs, rank what is left."""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Mapping

from arbx.domain.pools import Pool
from arbx.domain.profit import Costs, Opportunity, assess
from arbx.domain.routes import Route
from arbx.domain.sizing import optimize_route

FILTER_MARGIN = 1e-9  # far above float rounding (~1e-15 per operation)


Curves = dict[str, tuple[float, float, float, float]]  # pool -> a, c (0 for 1), a, c (1 for 0)


def estimate(route: Route, pools: Mapping[str, Pool], curves: Curves) -> float | None:
    """The route's continuous best profit from its hops' local curves (floats); None if it
    cannot pay. ``curves`` caches each pool's curves for the call's duration.

    Each hop is ``a*x/(1 + c*x)`` (exact for a V2 pair; a V3 pool within its current range), and
    they compose: ``a = a1*a2``, ``c = c1 + c2*a1``; the best profit is ``(sqrt(a) - 1)^2 / c``.
    """
    a, c = 1.0, 0.0
    for address, zero_for_one in zip(route.pools, route.zero_for_one, strict=True):
        curve = curves.get(address)
        if curve is None:
            pool = pools[address]
            curve = curves[address] = (*pool.curve(True), *pool.curve(False))
        if zero_for_one:
            c += curve[1] * a
            a *= curve[0]
        else:
            c += curve[3] * a
            a *= curve[2]
    if a <= 1.0 - FILTER_MARGIN:
        return None
    return (math.sqrt(a) - 1.0) ** 2 / c if c > 0 else math.inf


def evaluate(
    routes: Iterable[Route],
    pools: Mapping[str, Pool],
    costs: Costs,
    max_input: Mapping[str, int] | None = None,
    max_sized: int | None = None,
) -> list[Opportunity]:
    """Every route's best trade that clears the threshold, best net profit first.

    ``max_input`` caps the input per base token (by checksummed address). ``max_sized`` bounds
    the work of one call: only that many live routes, the best by their float estimate, are
    sized exactly (one block can take only a few trades anyway); None sizes every live route.
    """
    caps = max_input or {}
    curves: Curves = {}
    live = [(est, route) for route in routes if (est := estimate(route, pools, curves)) is not None]
    if max_sized is not None and len(live) > max_sized:
        live = heapq.nlargest(max_sized, live, key=lambda item: item[0])
    found: list[Opportunity] = []
    for _, route in live:
        sized = optimize_route(route, pools, caps.get(route.base))
        if sized is None:
            continue
        opportunity = assess(route, pools, sized, costs)
        if opportunity is not None:
            found.append(opportunity)
    found.sort(key=lambda o: (-o.net_profit, o.route.pools))
    return found
