"""Cyclic arbitrage over pool states: size every route, net out costs, rank what is left."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from arbx.domain.pools import Pool
from arbx.domain.profit import Costs, Opportunity, assess
from arbx.domain.routes import Route
from arbx.domain.sizing import optimize_route

FILTER_MARGIN = 1e-9  # far above float rounding (~1e-15 per operation)


def may_pay(route: Route, pools: Mapping[str, Pool]) -> bool:
    """A cheap float filter: False only when the product of marginal rates is clearly <= 1.

    The exact test (in integers) happens in sizing; this only skips routes that cannot pay.
    """
    rate = 1.0
    for address, zero_for_one in zip(route.pools, route.zero_for_one, strict=True):
        rate *= pools[address].marginal_rate(zero_for_one)
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
        if not may_pay(route, pools):
            continue
        sized = optimize_route(route, pools, caps.get(route.base))
        if sized is None:
            continue
        opportunity = assess(route, pools, sized, costs)
        if opportunity is not None:
            found.append(opportunity)
    found.sort(key=lambda o: (-o.net_profit, o.route.pools))
    return found
