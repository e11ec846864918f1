"""Cyclic arbitrage over pool states: size every route, net out costs, rank what is left."""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Mapping, Set
from itertools import chain, compress, repeat
from math import prod
from operator import is_not, itemgetter, not_
from typing import Any

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


_call = itemgetter.__call__  # _call(getter, items) is getter(items)


def _ranked(opportunity: Opportunity) -> tuple[int, tuple[str, ...]]:
    return -opportunity.net_profit, opportunity.route.pools


Ranking = list[tuple[float, str, float]]  # an edge's pools as (rate, address, slope), best first


class Rankings:
    """Each edge's pools ranked by rate at zero input, best first, and each path's bound (the
    product of its edges' best rates), for one route index; kept by the caller from block to
    block, as the strategy keeps them.

    ``update`` compares every pool of the index with the very state its edges were ranked on
    (all of it at C speed: the pool states looked up and compared by identity in bulk) and ranks
    again only the edges of the pools that are not: a block changes a hundred pools, and the
    touched paths run over thousands of edges that a per-edge check would visit one by one.
    A pool changed outside the block's ``changed`` pools is ranked again as well. A new index
    (another object) starts over.
    """

    __slots__ = (
        "_addresses",
        "_getters",
        "_index",
        "_pool_edges",
        "_states",
        "best",
        "least",
        "ranked",
    )

    def __init__(self) -> None:
        self._index: RouteIndex | None = None
        self._addresses: list[str] = []  # the index's pools
        self._pool_edges: list[tuple[int, ...]] = []  # each pool's edges, in ``_addresses`` order
        self._states: list[Pool | None] = []  # the states the edges were ranked on
        # per path: its edges' best rates, in order (``itemgetter(*edges)``, at C speed)
        self._getters: list[itemgetter[Any]] = []
        self.ranked: list[Ranking] = []  # per edge
        self.best: list[float] = []  # per edge: its best rate
        # per edge: the least slope and the least rate of its pools with a rate above 0 (NaN
        # where one of its pools has no curve, or none has a rate)
        self.least: list[tuple[float, float]] = []

    def update(self, index: RouteIndex, pools: Mapping[str, Pool], curves: Curves) -> None:
        """Rank again the edges of the pools whose state is not the one they were ranked on."""
        if self._index is not index:
            edges_of: dict[str, list[int]] = {}
            for edge, addresses in enumerate(index.edge_addresses):
                for address in addresses:
                    edges_of.setdefault(address, []).append(edge)
            self._index = index
            self._addresses = list(edges_of)
            self._pool_edges = [tuple(edges) for edges in edges_of.values()]
            self._states = [None] * len(self._addresses)
            self._getters = [itemgetter(*edges) for edges in index.paths]
            self.ranked = [[] for _ in index.edges]
            self.best = [0.0] * len(index.edges)
            self.least = [(math.nan, math.nan)] * len(index.edges)
        states: list[Pool | None] = list(map(pools.__getitem__, self._addresses))
        stale = compress(self._pool_edges, map(is_not, states, self._states))
        self._states = states
        ranked, best, least, edges = self.ranked, self.best, self.least, index.edges
        for edge in set(chain.from_iterable(stale)):
            ranking = sorted((_rate(pools, curves, a, z) for a, z in edges[edge]), reverse=True)
            ranked[edge] = ranking
            best[edge] = ranking[0][0]
            rated = [(slope, rate) for rate, _, slope in ranking if rate > 0.0]
            if not rated or any(math.isnan(slope) for slope, _ in rated):
                least[edge] = (math.nan, math.nan)
            else:
                least[edge] = (min(slope for slope, _ in rated), rated[-1][1])

    def passing(self, paths: Iterable[int], threshold: float) -> list[tuple[float, int]]:
        """The paths whose bound does not fail ``threshold`` (``prod`` over the path's best
        rates, left to right, as the walk multiplies them), with it, the highest bound first
        (so that the walk meets the best estimates early; the order changes nothing else)."""
        paths = list(paths)
        getters = map(self._getters.__getitem__, paths)
        bounds: list[float] = list(map(prod, map(_call, getters, repeat(self.best))))
        passes = map(not_, map(threshold.__ge__, bounds))
        kept: list[tuple[float, int]] = list(compress(zip(bounds, paths, strict=True), passes))
        kept.sort(reverse=True)
        return kept

    def below(self, edges: Iterable[int], bound: float, floor: float, low: float) -> bool:
        """Whether no route of the path over ``edges`` with product bound ``bound`` can have an
        estimate of ``floor`` or more: its ``c`` is at least each hop's term ``slope * a`` so
        far, so at least the largest of them with each edge's least slope and the product of
        the least rates before it (positive terms and monotone rounding; a route through a pool
        whose rate is 0 fails the filter anyway); ``low`` as in ``_descend``. False where an
        edge holds a pool without a curve (its routes go to ``estimate``)."""
        least = self.least
        c, prefix = 0.0, 1.0
        for edge in edges:
            slope, rate = least[edge]
            if math.isnan(slope):
                return False
            term = slope * prefix
            c = max(c, term)
            prefix *= rate
        if c <= 0.0:
            return False
        u = max(math.sqrt(bound) - 1.0, low)
        return u * u / c * (1.0 + TOP_MARGIN) < floor


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

    ``rankings`` (each edge's ranking of its pools) may be kept by the caller from block to
    block: an edge is ranked again only when one of its pools is no longer the very state it
    was ranked on (see ``Rankings``).
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
    live = live_touched(index, changed, pools, rankings, curves, max_sized)
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
    keep: int | None = None,
) -> list[tuple[float, Route]]:
    """``[(estimate(r), r) for r in index.touched(changed)]`` without the routes the filter
    drops, in index order, walking only the token paths and branches that can pass it (see
    ``evaluate_touched``).

    ``keep``: only the ``keep`` best estimates are wanted (``LiveRoutes``'s ``max_sized``), and
    the walk may leave out a route that cannot be among them: it keeps every route whose
    estimate is at least the ``keep``-th best, so ``heapq.nlargest(keep, ...)`` on its answer
    picks the very routes, in the very order, it picks on the whole list (see ``_descend``).
    """
    touched: Set[str] = changed if isinstance(changed, Set) else set(changed)
    if rankings is None:
        rankings = Rankings()
    if curves is None:
        curves = {}
    threshold = 1.0 - FILTER_MARGIN
    rankings.update(index, pools, curves)
    ranked = rankings.ranked
    found: list[tuple[int, float, float]] = []  # route, a, c
    top = _Top(keep)
    low = 1.0 - math.sqrt(threshold)
    # a path whose best pools give a product that fails holds no route that passes
    for bound, path in rankings.passing(index.touched_paths(touched), threshold):
        edges = index.paths[path]
        if top.floor > 0.0 and rankings.below(edges, bound, top.floor, low):
            continue  # nor one among the best ``keep`` found so far
        _descend(index, path, list(map(ranked.__getitem__, edges)), touched, threshold, found, top)
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


# Relative slack on the bound of a branch's best estimate before it is compared with the
# ``keep``-th best so far: far above the rounding of ``** 2`` and ``/`` (an ulp or so).
TOP_MARGIN = 1e-9


class _Top:
    """The ``keep`` best estimates found so far (a min-heap), and the least of them once there
    are ``keep``: a route whose estimate is below it cannot be among the ``keep`` best."""

    __slots__ = ("floor", "heap", "keep")

    def __init__(self, keep: int | None) -> None:
        self.keep = keep
        self.heap: list[float] = []
        self.floor = -math.inf  # the keep-th best estimate so far; -inf until there are keep

    def add(self, estimate: float) -> None:
        keep = self.keep
        if keep is None:
            return
        heap = self.heap
        if len(heap) < keep:
            heapq.heappush(heap, estimate)
            if len(heap) == keep:
                self.floor = heap[0]
        elif estimate > heap[0]:
            heapq.heapreplace(heap, estimate)
            self.floor = heap[0]


def _descend(
    index: RouteIndex,
    path: int,
    options: list[list[tuple[float, str, float]]],
    touched: Set[str],
    threshold: float,
    out: list[tuple[int, float, float]],
    top: _Top | None = None,
) -> None:
    """The path's routes through a touched pool whose bound passes, hop by hop: at each hop the
    pools are tried best rate first, and the first whose bound (the product so far times it and
    the best rates after it) fails ends that hop, as every pool after it has a lower rate. Each
    route found comes with ``estimate``'s ``a`` and ``c``, summed as ``estimate`` sums them.

    With ``top`` (the best estimates so far), a pool whose branch cannot reach the least of
    them is skipped too: every route through it has ``a`` at most the bound and ``c`` at least
    the ``c`` so far (the sums only add non-negative terms, and float rounding is monotone), so
    an estimate at most ``max(sqrt(bound) - 1, 1 - sqrt(threshold))**2 / c``; the pools after it
    at that hop may still reach it (a lower rate, but maybe a smaller slope), so the hop goes
    on. A route found below the least so far is left out too.
    """
    last = len(options) - 1
    best = [ranking[0][0] for ranking in options]
    best_after = [best[k + 1 :] for k in range(len(options))]
    chosen: list[str] = []
    low = 1.0 - math.sqrt(threshold)  # |sqrt(a) - 1| for a passing a just below 1, at most
    sqrt = math.sqrt
    if top is None:
        top = _Top(None)

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
            c = c_prefix + slope * prefix  # estimate's ``c += curve_c * a``
            floor = top.floor
            if floor > 0.0 and c > 0.0:
                u = max(sqrt(bound) - 1.0, low)
                if u * u / c * (1.0 + TOP_MARGIN) < floor:
                    continue
            chosen.append(address)
            if k == last:
                route = index.route_id(path, tuple(chosen))
                if route is not None and not touched.isdisjoint(chosen):
                    if top.keep is not None and not math.isnan(c):  # through pools with curves
                        est = (sqrt(product) - 1.0) ** 2 / c if c > 0 else math.inf
                        if est >= top.floor:
                            top.add(est)
                            out.append((route, product, c))
                    else:
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
