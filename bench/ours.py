"""Our side of each case, imported lazily so the bench runs while parts of arbx are still landing.

Cases 1 and 3 call our AMM functions directly. Cases 2 and 4 go through the two functions marked
LEAD HOOK below: each does its setup untimed and returns a zero-argument callable that the bench
times, or ``None``, which the table shows as "not connected". Both are wired to the domain API
as it stands (``sizing.optimize``; ``routes.RouteIndex`` + ``arbitrage.evaluate``); rewire them
here if the engine's real entry points differ.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

Json = Mapping[str, Any]


def v2_get_amount_out() -> Callable[..., int]:
    """``arbx.domain.amm.v2.get_amount_out(amount_in, reserve_in, reserve_out, fee_bps)``."""
    from arbx.domain.amm.v2 import get_amount_out  # noqa: PLC0415 (lazy: may not exist yet)

    return get_amount_out


def v3_swap() -> Callable[..., Any]:
    """``arbx.domain.amm.v3.swap(...) -> V3SwapResult`` (amounts, ticks_crossed, ...)."""
    from arbx.domain.amm import v3  # noqa: PLC0415

    swap: Callable[..., Any] = v3.swap
    return swap


# == LEAD HOOK 1: case 2, optimal 2-pool V2 cycle ==============================================


@dataclass(frozen=True, slots=True)
class CycleSolution:
    """What our optimizer answers: the input to send and the profit it expects (same token)."""

    amount_in: int
    profit: int


def ours_v2_cycle(
    pools: Sequence[Json], token_in: str, max_input: int
) -> Callable[[], CycleSolution] | None:
    """LEAD HOOK. A solver for the cycle ``token_in -> pools[0] -> pools[1] -> token_in``.

    ``pools`` are pool objects in the fixture format, in cycle order; ``token_in`` is WETH's
    checksummed address; ``max_input`` is the same input cap degenbot's search gets (100 WETH).
    Setup (parse, build the route) happens here; the returned callable is what the bench times:
    it takes the current states' hops and sizes the route. The bench re-simulates ``amount_in``
    exactly and checks that the result equals ``profit`` and is at least degenbot's. Return
    ``None`` to show the row as not connected.
    """
    from arbx.domain.poolfile import parse_document  # noqa: PLC0415
    from arbx.domain.sizing import optimize_route  # noqa: PLC0415

    states = {p.address: p for p in parse_document(list(pools))}
    route = _route(list(states), token_in, states)

    def solve() -> CycleSolution:
        sized = optimize_route(route, states, max_input)
        return CycleSolution(sized.amount_in, sized.profit) if sized else CycleSolution(0, 0)

    return solve


def _route(addresses: Sequence[str], token_in: str, states: Mapping[str, Any]) -> Any:
    """The ``Route`` through ``addresses`` in order, starting with ``token_in``."""
    from arbx.domain.pools import direction  # noqa: PLC0415
    from arbx.domain.routes import Route  # noqa: PLC0415

    tokens, dirs = [token_in], []
    for address in addresses:
        zero_for_one = direction(states[address], tokens[-1])
        pool = states[address]
        dirs.append(zero_for_one)
        tokens.append((pool.token1 if zero_for_one else pool.token0).address)
    return Route(tuple(addresses), tuple(dirs), tuple(tokens))


# == LEAD HOOK 2: case 4, re-evaluate the routes touched by changed pools ======================


@dataclass(frozen=True, slots=True)
class Reevaluation:
    """A prepared re-evaluation; ``run()`` is timed and returns (routes re-sized, opportunities)."""

    run: Callable[[], tuple[int, int]]
    routes_total: int
    routes_touched: int
    opportunities_before: int
    note: str = ""


def ours_reevaluate(
    universe: Json,
    changed: Sequence[Json],
    base_token: str,
    max_hops: int,
    max_sized: int | None = None,
) -> Reevaluation | None:
    """LEAD HOOK. Re-evaluate, after one block, the routes through the ``changed`` pools.

    ``universe`` is a pool document (``{"pools": [...]}``, 1,000 pools, from bench.universe);
    ``changed`` holds new states, in the same format, for 50 of its pools (same addresses, one
    block later); ``base_token`` is WETH. Untimed setup here: parse both, enumerate the routes
    of up to ``max_hops`` hops from ``base_token``, build the pool -> routes index, evaluate
    everything once on the old states. ``run()`` is timed: with the new states applied (to a
    copy, so every run starts from the same place), find the touched routes through the index
    and evaluate each (size it, net out costs); return (routes evaluated, opportunities found).
    Return ``None`` to show the row as not connected.
    """
    from arbx.domain.arbitrage import evaluate  # noqa: PLC0415
    from arbx.domain.poolfile import parse_document  # noqa: PLC0415
    from arbx.domain.profit import Costs  # noqa: PLC0415
    from arbx.domain.routes import RouteIndex, find_cycles  # noqa: PLC0415

    pools = parse_document(universe)
    states = {p.address: p for p in pools}
    updates = {p.address: p for p in parse_document(list(changed))}
    index = RouteIndex(find_cycles(pools, [base_token], max_hops=max_hops))
    costs = Costs()  # no gas or builder share: every positive gross profit counts
    before = len(evaluate(index.routes, states, costs))

    def run() -> tuple[int, int]:
        now = {**states, **updates}
        touched = index.touched(updates)
        return len(touched), len(evaluate(touched, now, costs, max_sized=max_sized))

    return Reevaluation(
        run=run,
        routes_total=len(index),
        routes_touched=len(index.touched(updates)),
        opportunities_before=before,
        note="arbx.domain.arbitrage.evaluate on RouteIndex.touched"
        + (f", the best {max_sized} by estimate sized exactly" if max_sized else ""),
    )
