"""Token graph over pools, cycle enumeration, and the index from each pool to its routes.

A route is a cycle that starts and ends at a base token, using each pool at most once and
visiting no token twice except the base at both ends. Routes name pools by address, so they
stay valid while pool states change; the index answers "which routes does this pool touch?".
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

from arbx.domain.errors import InputError
from arbx.domain.pools import Hop, Pool


@dataclass(frozen=True, slots=True)
class Route:
    """A cycle: the pools in order, the direction on each, and the token path (base ... base)."""

    pools: tuple[str, ...]
    zero_for_one: tuple[bool, ...]
    tokens: tuple[str, ...]

    @property
    def base(self) -> str:
        """The token the cycle starts and ends with."""
        return self.tokens[0]

    def hops(self, pools: Mapping[str, Pool]) -> list[Hop]:
        """The route's hops on the given pool states."""
        return [Hop(pools[a], z) for a, z in zip(self.pools, self.zero_for_one, strict=True)]


def find_cycles(
    pools: Iterable[Pool],
    bases: Sequence[str],
    max_hops: int = 4,
    min_hops: int = 2,
    limit: int | None = None,
    connectors: Collection[str] | None = None,
    connector_hops: int = 4,
) -> list[Route]:
    """Every cycle from each base token of ``min_hops`` to ``max_hops`` hops, in a stable order.

    ``limit`` bounds the count: past it, InputError (a graph that large needs tighter filters).
    ``connectors``, when given, bounds the long routes: a route of ``connector_hops`` hops or
    more passes only through connector tokens (every token but the base at its ends); shorter
    routes may go through any token. On a mainnet-sized graph the long routes through two
    long-tail tokens are most of the count and the least likely to pay for their gas.
    """
    if not 2 <= min_hops <= max_hops:
        raise InputError(f"hops must satisfy 2 <= min <= max, got {min_hops}..{max_hops}")
    edges: dict[str, list[tuple[str, bool, str]]] = defaultdict(list)
    for pool in sorted(pools, key=lambda p: p.address):
        t0, t1 = pool.token0.address, pool.token1.address
        edges[t0].append((pool.address, True, t1))
        edges[t1].append((pool.address, False, t0))

    routes: list[Route] = []
    only = frozenset(connectors) if connectors is not None else None
    for base in dict.fromkeys(bases):
        _walk(edges, base, max_hops, min_hops, limit, routes, only, connector_hops)
    return routes


def connector_tokens(pools: Iterable[Pool], min_pairs: int) -> frozenset[str]:
    """The tokens paired, across ``pools``, with at least ``min_pairs`` distinct other tokens:
    the hubs (WETH, the stablecoins, WBTC...) and the well-traded tokens."""
    pairs: dict[str, set[str]] = defaultdict(set)
    for pool in pools:
        t0, t1 = pool.token0.address, pool.token1.address
        pairs[t0].add(t1)
        pairs[t1].add(t0)
    return frozenset(token for token, others in pairs.items() if len(others) >= min_pairs)


def _walk(
    edges: Mapping[str, list[tuple[str, bool, str]]],
    base: str,
    max_hops: int,
    min_hops: int,
    limit: int | None,
    out: list[Route],
    connectors: frozenset[str] | None = None,
    connector_hops: int = 4,
) -> None:
    pool_path: list[str] = []
    dirs: list[bool] = []
    tokens: list[str] = [base]
    # the longest route through a non-connector token
    short = min(max_hops, connector_hops - 1) if connectors is not None else max_hops

    def step(token: str, via_other: bool) -> None:
        """Extend the path at ``token``; ``via_other``: it holds a non-connector token."""
        depth = len(pool_path)
        for address, zero_for_one, nxt in edges.get(token, ()):
            if address in pool_path:
                continue
            if nxt == base:
                if depth + 1 >= min_hops and (not via_other or depth + 1 <= short):
                    if limit is not None and len(out) >= limit:
                        raise InputError(f"more than {limit} routes: narrow the pool set")
                    out.append(
                        Route(
                            (*pool_path, address),
                            (*dirs, zero_for_one),
                            (*tokens, nxt),
                        )
                    )
                continue
            other = via_other or (connectors is not None and nxt not in connectors)
            if depth + 2 > (short if other else max_hops) or nxt in tokens:
                continue
            pool_path.append(address)
            dirs.append(zero_for_one)
            tokens.append(nxt)
            step(nxt, other)
            pool_path.pop()
            dirs.pop()
            tokens.pop()

    step(base, False)


class RouteIndex:
    """Routes, and for each pool the routes through it.

    Routes are also grouped by token path (the tokens they visit, in order): the routes of one
    path differ only in which pool they take between two tokens, where several venues or fee
    tiers trade the same pair. ``edges`` lists, for each directed token pair, the pools the
    routes take there; ``paths`` gives each path's edges in order and ``path_routes`` its routes.
    A bound on a whole path (the best pool at each edge) lets detection skip all its routes at
    once (``arbitrage.evaluate_touched``).
    """

    def __init__(self, routes: Iterable[Route]) -> None:
        self.routes: list[Route] = list(routes)
        self._by_pool: dict[str, list[int]] = defaultdict(list)
        self.edges: list[tuple[tuple[str, bool], ...]] = []
        self.paths: list[tuple[int, ...]] = []
        self.path_routes: list[list[int]] = []
        pool_paths: dict[str, set[int]] = defaultdict(set)
        edge_ids: dict[tuple[str, str], int] = {}
        edge_pools: list[dict[tuple[str, bool], None]] = []
        path_ids: dict[tuple[str, ...], int] = {}
        self._ids: dict[tuple[int, tuple[str, ...]], int] = {}
        for i, route in enumerate(self.routes):
            for address in dict.fromkeys(route.pools):
                self._by_pool[address].append(i)
            path = path_ids.get(route.tokens)
            if path is None:
                path = path_ids[route.tokens] = len(self.paths)
                edges = []
                for k in range(len(route.pools)):
                    key = (route.tokens[k], route.tokens[k + 1])
                    edge = edge_ids.get(key)
                    if edge is None:
                        edge = edge_ids[key] = len(edge_pools)
                        edge_pools.append({})
                    edges.append(edge)
                self.paths.append(tuple(edges))
                self.path_routes.append([])
            self.path_routes[path].append(i)
            self._ids[(path, route.pools)] = i
            for edge, address, zero_for_one in zip(
                self.paths[path], route.pools, route.zero_for_one, strict=True
            ):
                edge_pools[edge][(address, zero_for_one)] = None
                pool_paths[address].add(path)
        self.edges = [tuple(pools) for pools in edge_pools]
        # each edge's pool addresses, in ``edges`` order (a pool may serve both directions)
        self.edge_addresses: list[tuple[str, ...]] = [
            tuple(address for address, _ in pools) for pools in self.edges
        ]
        self._pool_paths: dict[str, tuple[int, ...]] = {
            address: tuple(paths) for address, paths in pool_paths.items()
        }

    def __len__(self) -> int:
        return len(self.routes)

    def touched(self, changed: Iterable[str]) -> list[Route]:
        """Each route through any of the changed pools, once, in index order."""
        ids: set[int] = set()
        for address in changed:
            ids.update(self._by_pool.get(address, ()))
        return [self.routes[i] for i in sorted(ids)]

    def route_id(self, path: int, pools: tuple[str, ...]) -> int | None:
        """The index of the route of token path ``path`` through ``pools``, if there is one."""
        return self._ids.get((path, pools))

    def touched_paths(self, changed: Iterable[str]) -> set[int]:
        """The token paths with a route through any of the changed pools."""
        paths: set[int] = set()
        for address in changed:
            paths.update(self._pool_paths.get(address, ()))
        return paths
