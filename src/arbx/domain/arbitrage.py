"""Cyclic arbitrage over pool states: size every route, net out costs, rank what is left."""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Mapping, Set
from itertools import chain
from math import prod
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
    a, c = _composite(route, pools, curves)
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
    if curves is None:
        curves = {}
    live = [(est, route) for route in routes if (est := estimate(route, pools, curves)) is not None]
    return size_live(live, pools, costs, max_input, max_sized)


def size_live(
    live: list[tuple[float, Route]],
    pools: Mapping[str, Pool],
    costs: Costs,
    max_input: Mapping[str, int] | None = None,
    max_sized: int | None = None,
) -> list[Opportunity]:
    """``evaluate``'s sizing of the routes that passed the filter (``(estimate, route)`` in index
    order): the best ``max_sized`` by estimate sized exactly, best net profit first."""
    return LiveRoutes(live, pools, costs, max_input, max_sized).all()


# Routes sized past the ones that fill a trade, best estimate first: the float estimate ranks
# routes by their gross profit on the hops' current curves, and a route through a V3 pool that
# crosses into other liquidity, or with more hops and so more gas, can rank otherwise once
# sized. Measured on two recorded devnet windows (ADR 0039), the block's best trade of one route
# was among the first five sized in every block.
LEAD_MARGIN = 4


class LiveRoutes:
    """A block's live routes (``(estimate, route)`` in index order), sized on demand: the best
    few first, for the trade that cannot wait, then the rest.

    ``all()`` is ``size_live``: the best ``max_sized`` by estimate, each sized exactly, best net
    profit first. ``best(routes)`` sizes them best estimate first (the estimate at the input
    cap, for a route whose continuous optimum is past its base token's cap) until ``routes`` of
    those that pay are pool-disjoint (taken greedily in that order), and ``LEAD_MARGIN`` more,
    and returns those opportunities best net profit first. A route is sized once: ``all()``
    after ``best(...)`` sizes only the others, and gives what it would have given alone (the
    same routes sized on the same states, ranked by the same key from the same index order).
    The pool states must not change between the calls. ``curves``: the pools' curves already
    computed on these states, if any.
    """

    __slots__ = ("_caps", "_costs", "_curves", "_live", "_order", "_pools", "_sized")

    def __init__(
        self,
        live: list[tuple[float, Route]],
        pools: Mapping[str, Pool],
        costs: Costs,
        max_input: Mapping[str, int] | None = None,
        max_sized: int | None = None,
        curves: Curves | None = None,
    ) -> None:
        if max_sized is not None and len(live) > max_sized:
            live = heapq.nlargest(max_sized, live, key=lambda item: item[0])
        self._live = live
        self._pools = pools
        self._costs = costs
        self._caps = max_input or {}
        self._curves = curves if curves is not None else {}
        self._sized: dict[int, Opportunity | None] = {}  # index in ``_live`` -> its opportunity
        self._order: list[int] | None = None  # indices, best estimate (at the cap) first

    def __len__(self) -> int:
        """The routes to size (at most ``max_sized``)."""
        return len(self._live)

    @property
    def sized(self) -> int:
        """The routes sized so far."""
        return len(self._sized)

    def _size(self, i: int) -> Opportunity | None:
        if i in self._sized:
            return self._sized[i]
        route = self._live[i][1]
        sized = optimize_route(route, self._pools, self._caps.get(route.base))
        found = None if sized is None else assess(route, self._pools, sized, self._costs)
        self._sized[i] = found
        return found

    def _capped(self, estimate: float, route: Route) -> float:
        """``estimate``, or where the route's continuous optimum is past its base token's input
        cap, its curve's profit at the cap (what sizing can reach there)."""
        cap = self._caps.get(route.base)
        if cap is None:
            return estimate
        try:
            a, c = _composite(route, self._pools, self._curves)
        except ZeroDivisionError:  # an empty pool: no curve, the estimate as it is
            return estimate
        if c > 0 and (math.sqrt(a) - 1.0) / c <= cap:
            return estimate
        return a * cap / (1.0 + c * cap) - cap

    def best(self, routes: int) -> list[Opportunity]:
        """Opportunities enough for a trade of ``routes`` pool-disjoint routes (see the class),
        best net profit first."""
        if self._order is None:
            keys = [self._capped(estimate, route) for estimate, route in self._live]
            self._order = sorted(range(len(keys)), key=keys.__getitem__, reverse=True)
        found: list[Opportunity] = []
        used: set[str] = set()
        disjoint, margin = 0, LEAD_MARGIN
        for i in self._order:
            if disjoint >= routes:
                if margin <= 0:
                    break
                margin -= 1
            opportunity = self._size(i)
            if opportunity is None:
                continue
            found.append(opportunity)
            if disjoint < routes and used.isdisjoint(opportunity.route.pools):
                used.update(opportunity.route.pools)
                disjoint += 1
        found.sort(key=_ranked)
        return found

    def all(self) -> list[Opportunity]:
        """Every route sized (those not sized yet, now), best net profit first."""
        found = [o for i in range(len(self._live)) if (o := self._size(i)) is not None]
        found.sort(key=_ranked)
        return found


def _composite(route: Route, pools: Mapping[str, Pool], curves: Curves) -> tuple[float, float]:
    """``estimate``'s ``a`` and ``c`` for the route (its hops' curves composed in route order)."""
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
    return a, c


def _ranked(opportunity: Opportunity) -> tuple[int, tuple[str, ...]]:
    return -opportunity.net_profit, opportunity.route.pools


# edge -> the pool states it was ranked on, and its pools as (rate, address, slope), best first
Rankings = dict[int, tuple[tuple[Pool, ...], list[tuple[float, str, float]]]]


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
    the hops after it fails: what is left is exactly the touched routes that pass the filter.
    The walk carries ``estimate``'s own sums (``a`` and ``c``, the same float operations in the
    same order), so each route's estimate is known when the walk reaches it; ``evaluate`` then
    ranks and sizes them as before (in index order, so ties rank the same).

    ``rankings`` (edge -> the pool states it was ranked on, and the ranking) may be kept by
    the caller from block to block: an edge is ranked again only when one of its pools is no
    longer the very state it was ranked on.
    """
    return detect_touched(index, changed, pools, costs, max_input, max_sized, rankings).all()


def detect_touched(
    index: RouteIndex,
    changed: Iterable[str],
    pools: Mapping[str, Pool],
    costs: Costs,
    max_input: Mapping[str, int] | None = None,
    max_sized: int | None = None,
    rankings: Rankings | None = None,
) -> LiveRoutes:
    """``evaluate_touched`` before its sizing: the live routes through the changed pools, to
    size the best few first (``LiveRoutes.best``) and the rest after (``LiveRoutes.all``)."""
    curves: Curves = {}
    live = live_touched(index, changed, pools, rankings, curves)
    return LiveRoutes(live, pools, costs, max_input, max_sized, curves)


def candidates(
    index: RouteIndex,
    changed: Iterable[str],
    pools: Mapping[str, Pool],
    curves: Curves,
    rankings: Rankings | None = None,
) -> list[Route]:
    """The routes through the changed pools that pass ``estimate``'s filter, in index order."""
    return [route for _, route in live_touched(index, changed, pools, rankings, curves)]


def live_touched(
    index: RouteIndex,
    changed: Iterable[str],
    pools: Mapping[str, Pool],
    rankings: Rankings | None = None,
    curves: Curves | None = None,
) -> list[tuple[float, Route]]:
    """``[(estimate(r), r) for r in index.touched(changed)]`` without the routes the filter
    drops, in index order, walking only the token paths and branches that can pass it (see
    ``evaluate_touched``)."""
    touched: Set[str] = changed if isinstance(changed, Set) else set(changed)
    kept = rankings if rankings is not None else {}
    if curves is None:
        curves = {}
    threshold = 1.0 - FILTER_MARGIN
    paths = index.touched_paths(touched)
    ranked: dict[int, list[tuple[float, str, float]]] = {}  # edge -> its pools, best rate first
    best: dict[int, float] = {}  # edge -> its best rate
    for edge in set(chain.from_iterable(map(index.paths.__getitem__, paths))):
        states = tuple(map(pools.__getitem__, index.edge_addresses[edge]))
        known = kept.get(edge)
        if known is not None and all(map(is_, known[0], states)):
            ranking = known[1]
        else:
            ranking = sorted(
                (_rate(pools, curves, a, z) for a, z in index.edges[edge]), reverse=True
            )
            kept[edge] = (states, ranking)
        ranked[edge] = ranking
        best[edge] = ranking[0][0]
    found: list[tuple[int, float, float]] = []  # route, a, c
    for path in paths:
        edges = index.paths[path]
        # the path's best pools (the same product, in the same order, as the walk's)
        if prod(map(best.__getitem__, edges)) <= threshold:  # none of its routes can pass
            continue
        _descend(index, path, [ranked[e] for e in edges], touched, threshold, found)
    found.sort()
    live: list[tuple[float, Route]] = []
    for i, a, c in found:
        route = index.routes[i]
        if math.isnan(c):  # through a pool without a curve (an empty pool): estimate decides
            est = estimate(route, pools, curves)
            if est is not None:
                live.append((est, route))
            continue
        live.append(((math.sqrt(a) - 1.0) ** 2 / c if c > 0 else math.inf, route))
    return live


def _descend(
    index: RouteIndex,
    path: int,
    options: list[list[tuple[float, str, float]]],
    touched: Set[str],
    threshold: float,
    out: list[tuple[int, float, float]],
) -> None:
    """The path's routes through a touched pool whose bound passes, hop by hop: at each hop the
    pools are tried best rate first, and the first whose bound (the product so far times it and
    the best rates after it) fails ends that hop, as every pool after it has a lower rate. Each
    route found comes with ``estimate``'s ``a`` and ``c``, summed as ``estimate`` sums them."""
    last = len(options) - 1
    best = [ranking[0][0] for ranking in options]
    best_after = [best[k + 1 :] for k in range(len(options))]
    chosen: list[str] = []

    def hop(k: int, prefix: float, c_prefix: float) -> None:
        after = best_after[k]
        for rate, address, slope in options[k]:
            product = prefix * rate
            bound = product
            for factor in after:
                bound *= factor
            if bound <= threshold:
                return
            if address in chosen:
                continue
            chosen.append(address)
            c = c_prefix + slope * prefix  # estimate's ``c += curve_c * a``
            if k == last:
                route = index.route_id(path, tuple(chosen))
                if route is not None and not touched.isdisjoint(chosen):
                    out.append((route, product, c))
            else:
                hop(k + 1, product, c)
            chosen.pop()

    hop(0, 1.0, 0.0)


def _rate(
    pools: Mapping[str, Pool], curves: Curves, address: str, zero_for_one: bool
) -> tuple[float, str, float]:
    """The pool's curve at zero input in one direction, ``(a, address, c)``, cached; an empty
    pool (no curve) ranks first with rate inf and slope NaN, and ``estimate`` decides."""
    curve = curves.get(address)
    if curve is None:
        pool = pools[address]
        try:
            curve = curves[address] = (*pool.curve(True), *pool.curve(False))
        except ZeroDivisionError:  # an empty pool: no bound from it (estimate decides)
            return math.inf, address, math.nan
    return (curve[0], address, curve[1]) if zero_for_one else (curve[2], address, curve[3])
