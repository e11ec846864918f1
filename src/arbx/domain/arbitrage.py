"""Cyclic arbitrage over pool states: size every route, net out costs, rank what is left."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from arbx.domain.pools import Hop, Pool
from arbx.domain.profit import Costs, Opportunity, assess
from arbx.domain.routes import Route
from arbx.domain.sizing import optimize

FILTER_MARGIN = 1e-9  # far above float rounding (~1e-15 per operation)


def may_pay(hops: Sequence[Hop]) -> bool:
    """A cheap float filter: False only when the product of marginal rates is clearly <= 1.

    The exact test (in integers) happens in sizing; this only skips routes that cannot pay.
    """
    rate = 1.0
    for hop in hops:
        rate *= hop.pool.marginal_rate(hop.zero_for_one)
    return rate > 1.0 - FILTER_MARGIN


def evaluate(
    routes: Iterable[Route],
    pools: Mapping[str, Pool],
    costs: Costs,
    max_input: Mapping[str, int] | None = None,
) -> list[Opportunity]:
    """Every route's best trade that clears the threshold, best net profit first.

    ``max_input`` caps the input per base token (by checksummed address).
    """
    found: list[Opportunity] = []
    caps = max_input or {}
    for route in routes:
        hops = route.hops(pools)
        if not may_pay(hops):
            continue
        sized = optimize(hops, caps.get(route.base))
        if sized is None:
            continue
        opportunity = assess(route, hops, sized, costs)
        if opportunity is not None:
            found.append(opportunity)
    found.sort(key=lambda o: (-o.net_profit, o.route.pools))
    return found
