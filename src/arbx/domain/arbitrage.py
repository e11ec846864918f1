"""Cyclic arbitrage over pool states: size every route, net out costs, rank what is left."""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Mapping, Set
from operator import is_

from arbx.domain.pools import Pool
from arbx.domain.profit import Costs, Opportunity, assess
from arbx.domain.routes import Route, RouteIndex
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
    curves: Curves | None = None,
) -> list[Opportunity]:
    """Every route's best trade that clears the threshold, best net profit first.

    ``max_input`` caps the input per base token (by checksummed address). ``max_sized`` bounds
    the work of one call: only that many live routes, the best by their float estimate, are
    sized exactly (one block can take only a few trades anyway); None sizes every live route.
    ``curves``: the pools' curves already computed on these states, if any.
    """
    caps = max_input or {}
    if curves is None:
        curves = {}
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


Rankings = dict[int, tuple[tuple[Pool, ...], list[tuple[float, str]]]]


def evaluate_touched(
    index: RouteIndex,
    changed: Iterable[str],
    pools: Mapping[str, Pool],
    costs: Costs,
    max_input: Mapping[str, int] | None = None,
    max_sized: int | None = None,
    rankings: Rankings | None = None,
) -> list[Opportunity]:
    """``evaluate(index.touched(changed), ...)``, the same answer, estimating only the routes
    that pass the filter.

    The routes through a hub pool number tens of thousands on a mainnet-sized index, their token
    paths a few thousand, and nearly none can pay. ``estimate``'s filter is on ``a``, the float
    product, hop by hop in route order, of the pools' marginal rates at zero input; a float
    product of positive factors never decreases when a factor grows (rounding is monotone).
    So a token path whose best pool at each hop gives a product that fails the filter holds no
    route that passes it, and is skipped whole. In the others, routes are walked hop by hop,
    pools best rate first, and a branch ends where the product so far times the best rates of
    the hops after it fails: what is left is exactly the touched routes that pass the filter,
    which ``evaluate`` then estimates, ranks and sizes as before (in index order, so ties rank
    the same).

    ``rankings`` (edge -> the pool states it was ranked on, and the ranking) may be kept by
    the caller from block to block: an edge is ranked again only when one of its pools is no
    longer the very state it was ranked on.
    """
    curves: Curves = {}
    routes = candidates(index, changed, pools, curves, rankings)
    return evaluate(routes, pools, costs, max_input, max_sized, curves)


def candidates(
    index: RouteIndex,
    changed: Iterable[str],
    pools: Mapping[str, Pool],
    curves: Curves,
    rankings: Rankings | None = None,
) -> list[Route]:
    """The routes through the changed pools that may pass ``estimate``'s filter, in index order:
    every one that passes it, and a few more (see ``evaluate_touched``)."""
    touched: Set[str] = changed if isinstance(changed, Set) else set(changed)
    ranked: dict[int, list[tuple[float, str]]] = {}  # edge -> its pools' rates, best first
    kept = rankings if rankings is not None else {}
    threshold = 1.0 - FILTER_MARGIN
    ids: list[int] = []
    for path in index.touched_paths(touched):
        options = []
        for edge in index.paths[path]:
            ranking = ranked.get(edge)
            if ranking is None:
                ranking = ranked[edge] = _ranking(index, edge, pools, curves, kept)
            options.append(ranking)
        bound = 1.0
        for ranking in options:
            bound *= ranking[0][0]
        if bound <= threshold:  # the path's best pools cannot pay: none of its routes can
            continue
        _descend(index, path, options, touched, threshold, ids)
    ids.sort()
    return [index.routes[i] for i in ids]


def _ranking(
    index: RouteIndex, edge: int, pools: Mapping[str, Pool], curves: Curves, kept: Rankings
) -> list[tuple[float, str]]:
    """The edge's pools by rate, best first; from ``kept`` while its pools are unchanged."""
    states = tuple(map(pools.__getitem__, index.edge_addresses[edge]))
    known = kept.get(edge)
    if known is not None and all(map(is_, known[0], states)):
        return known[1]
    ranking = sorted(((_rate(pools, curves, a, z), a) for a, z in index.edges[edge]), reverse=True)
    kept[edge] = (states, ranking)
    return ranking


def _descend(
    index: RouteIndex,
    path: int,
    options: list[list[tuple[float, str]]],
    touched: Set[str],
    threshold: float,
    out: list[int],
) -> None:
    """The path's routes through a touched pool whose bound passes, hop by hop: at each hop the
    pools are tried best rate first, and the first whose bound (the product so far times it and
    the best rates after it) fails ends that hop, as every pool after it has a lower rate."""
    last = len(options) - 1
    best = [ranking[0][0] for ranking in options]
    best_after = [best[k + 1 :] for k in range(len(options))]
    chosen: list[str] = []

    def hop(k: int, prefix: float) -> None:
        after = best_after[k]
        for rate, address in options[k]:
            product = prefix * rate
            bound = product
            for factor in after:
                bound *= factor
            if bound <= threshold:
                return
            if address in chosen:
                continue
            chosen.append(address)
            if k == last:
                route = index.route_id(path, tuple(chosen))
                if route is not None and not touched.isdisjoint(chosen):
                    out.append(route)
            else:
                hop(k + 1, product)
            chosen.pop()

    hop(0, 1.0)


def _rate(pools: Mapping[str, Pool], curves: Curves, address: str, zero_for_one: bool) -> float:
    """The pool's marginal rate at zero input in one direction (``curve``'s ``a``), cached."""
    curve = curves.get(address)
    if curve is None:
        pool = pools[address]
        try:
            curve = curves[address] = (*pool.curve(True), *pool.curve(False))
        except ZeroDivisionError:  # an empty pool: no bound from it (estimate decides)
            return math.inf
    return curve[0] if zero_for_one else curve[2]
