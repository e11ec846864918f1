"""Optimal input for a cyclic route, exact to the wei.

Every hop is, locally, a constant-product map ``out = A*x / (B + C*x)`` (a V2 pair everywhere, a
V3 pool within its current tick range, with the virtual reserves of that range), and such maps
compose into one of the same form. The continuous optimum of ``A*x/(B+C*x) - x`` is
``x* = (sqrt(A*B) - B) / C``, and the best profit is ``(sqrt(A) - sqrt(B))**2 / C``.

- Routes of V2 pairs only: the closed form is global. Its optimum, floored, is snapped to the best
  integer input: outputs are floored at every hop, so the profit is a staircase, steep where an
  intermediate token is coarse (8 decimals); the best input for a given intermediate amount is the
  least input that yields it. The continuous maximum bounds every integer profit from above, so a
  candidate that reaches it is provably the best integer input and the search stops there.
- Routes through V3 pools: a safeguarded Newton search. From the exact state after swapping ``x``
  the local maps give the exact continuous optimum of the current ranges; the next ``x`` jumps
  there, kept inside a bracket that the sign of the marginal profit narrows (the profit curve is
  concave). A handful of exact route evaluations reach the optimum; then the same integer snap.

No floating point and no general-purpose optimiser: every step is integer arithmetic.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from math import isqrt
from typing import NamedTuple

from arbx.domain.amm import v3
from arbx.domain.errors import MathError
from arbx.domain.pools import Hop, Pool, V2Pool
from arbx.domain.routes import Route

Q96 = 1 << 96
V3_FEE_DENOMINATOR = 1_000_000
NEWTON_STEPS = 24
SNAP_LIMIT = 512  # amounts enumerated to prove the integer optimum; wider spans are sampled
UINT256_MAX = (1 << 256) - 1
INT256_LIMIT = 1 << 255  # a V3 swap's amount must be below it (exact input) or at most it (output)
SNAP_NEAR = 4  # amounts each side of the continuous optimum sampled when the span is wider


class Sized(NamedTuple):
    """A route at one input: the amount after each hop, gross profit, ticks crossed per hop.

    A NamedTuple rather than a frozen dataclass: it is built in the hot path, and a frozen
    dataclass's ``__init__`` costs three times as much.
    """

    amount_in: int
    amounts: tuple[int, ...]
    ticks_crossed: tuple[int, ...]

    @property
    def amount_out(self) -> int:
        """What the last hop gives back."""
        return self.amounts[-1]

    @property
    def profit(self) -> int:
        """Gross profit in the base token (may be negative)."""
        return self.amounts[-1] - self.amount_in


def optimize_route(
    route: Route, pools: Mapping[str, Pool], max_input: int | None = None
) -> Sized | None:
    """``optimize`` on the route's current pool states (V2 routes skip building hops)."""
    params: list[V2Params] = []
    for address, zero_for_one in zip(route.pools, route.zero_for_one, strict=True):
        pool = pools[address]
        if not isinstance(pool, V2Pool):
            return _optimize_general(route.hops(pools), max_input)
        gamma, den = pool.fee_fraction
        if zero_for_one:
            params.append((pool.reserve0, pool.reserve1, gamma, den))
        else:
            params.append((pool.reserve1, pool.reserve0, gamma, den))
    return _optimize_v2(params, max_input)


def optimize(hops: Sequence[Hop], max_input: int | None = None) -> Sized | None:
    """The integer input that maximises the route's gross profit, or None if none is positive."""
    params = _v2_params(hops)
    if params is not None:
        return _optimize_v2(params, max_input)
    return _optimize_general(hops, max_input)


def simulate(hops: Sequence[Hop], amount_in: int) -> Sized | None:
    """The exact result of sending ``amount_in`` through the route; None if a hop cannot fill."""
    run = _run(hops, amount_in)
    return run[0] if run is not None else None


# --- V2-only routes: global closed form and integer snap -------------------------------------

V2Params = tuple[int, int, int, int]  # reserve in, reserve out, fee numerator, fee denominator


def _v2_params(hops: Sequence[Hop]) -> list[V2Params] | None:
    """Each hop's reserves and fee fraction, or None if any hop is not a V2 pair."""
    params: list[V2Params] = []
    for hop in hops:
        pool = hop.pool
        if not isinstance(pool, V2Pool):
            return None
        gamma, den = pool.fee_fraction
        if hop.zero_for_one:
            params.append((pool.reserve0, pool.reserve1, gamma, den))
        else:
            params.append((pool.reserve1, pool.reserve0, gamma, den))
    return params


def _v2_forward(params: Sequence[V2Params], x: int) -> list[int] | None:
    """Amounts after each hop (UniswapV2Library.getAmountOut chained); None if x < 1."""
    if x <= 0:
        return None
    amounts = []
    for r_in, r_out, gamma, den in params:
        a = x * gamma
        x = a * r_out // (r_in * den + a)
        amounts.append(x)
    return amounts


def _v2_least_input(params: Sequence[V2Params], upto: int, amount: int) -> int | None:
    """The least route input that yields ``amount`` after hop ``upto`` (1-based), or None."""
    y = amount
    for r_in, r_out, gamma, den in reversed(params[:upto]):
        if y <= 0:
            return 0
        if y >= r_out:
            return None
        y = -(-(r_in * y * den) // ((r_out - y) * gamma))
    return y


def _optimize_v2(params: list[V2Params], cap: int | None) -> Sized | None:
    a, b, c = 1, 1, 0
    for r_in, r_out, gamma, den in params:
        a_h, b_h, c_h = gamma * r_out, den * r_in, gamma
        a, b, c = a_h * a, b_h * b, b_h * c + c_h * a
    if a <= b:
        return None  # the marginal rate at zero input is at most 1: concave, so never a profit
    root = isqrt(a * b)
    x0 = max(1, (root - b) // c)
    if cap is not None and x0 >= cap:
        x0 = cap
    at_x0 = _v2_forward(params, x0)
    assert at_x0 is not None
    best_x, best, best_amounts = x0, at_x0[-1] - x0, at_x0
    # Where an intermediate token is coarser than the base, the best input is the left edge of
    # the step that x0 falls on: the least input that still yields that intermediate amount.
    tried = {x0}
    edges = set()
    for k in range(len(params) - 1):
        if at_x0[k] < x0:
            edges.add((k + 1, at_x0[k]))
            x = _v2_least_input(params, k + 1, at_x0[k])
            if x is not None and x > 0 and x not in tried:
                tried.add(x)
                amounts = _v2_forward(params, x)
                if amounts is not None and amounts[-1] - x > best:
                    best_x, best, best_amounts = x, amounts[-1] - x, amounts
    # Only inputs whose continuous profit beats ``best`` can do better: an interval around x*.
    # An optimal input is always the least input for its own amount after any hop k, so it
    # suffices to enumerate the amounts after the hop where that interval spans the fewest,
    # nearest the optimum first, until one reaches the continuous maximum (a proof).
    bound = (a + b - 2 * root) // c
    lo, hi = _beating_interval(a, b, c, best) if best < bound else (1, 0)
    if cap is not None:
        hi = min(hi, cap)
    if lo <= hi:
        inner = params[:-1]  # only the intermediate amounts are needed at the interval's ends
        at_lo, at_hi = _v2_forward(inner, lo) or [], _v2_forward(inner, hi) or []
        upto, first, last, mid = 0, lo, hi, x0
        for k in range(len(inner) if at_lo and at_hi else 0):
            if at_hi[k] - at_lo[k] < last - first:
                upto, first, last, mid = k + 1, at_lo[k], at_hi[k], at_x0[k]
        if last - first > SNAP_LIMIT:  # too wide to enumerate: sample next to the optimum
            first, last = max(first, mid - SNAP_NEAR), min(last, mid + SNAP_NEAR)
        mid = min(max(mid, first), last)
        for d in range(max(mid - first, last - mid) + 1):  # nearest the optimum first
            for z in (mid + d, mid - d) if d else (mid,):
                if not first <= z <= last or (upto, z) in edges:
                    continue
                x = _v2_least_input(params, upto, z) if upto else z
                if x is None or x in tried or x <= 0 or (cap is not None and x > cap):
                    continue
                tried.add(x)
                amounts = _v2_forward(params, x)
                if amounts is not None and amounts[-1] - x > best:
                    best_x, best, best_amounts = x, amounts[-1] - x, amounts
            if best >= bound:
                break
    if best <= 0:
        return None
    return Sized(best_x, tuple(best_amounts), (0,) * len(params))


def _beating_interval(a: int, b: int, c: int, profit: int) -> tuple[int, int]:
    """Integer inputs x whose continuous profit ``a*x/(b+c*x) - x`` can exceed ``profit``.

    Solves ``c*x^2 + (b + c*t - a)*x + t*b <= 0`` for ``t = profit + 1``, widened by one on each
    side against the rounding of the integer square root; empty (lo > hi) when no x can.
    """
    t = profit + 1
    p = a - b - c * t
    disc = p * p - 4 * c * t * b
    if p <= 0 or disc < 0:
        return 1, 0
    root = isqrt(disc) + 1
    return max(1, (p - root) // (2 * c) - 1), (p + root) // (2 * c) + 1


# --- Routes through V3 pools: safeguarded Newton on local closed forms ------------------------

V3State = tuple[int, int] | None  # (sqrt price, liquidity) after a V3 hop; None for a V2 hop


def _run(hops: Sequence[Hop], amount_in: int) -> tuple[Sized, list[V3State]] | None:
    """``simulate``, also keeping each V3 pool's price and liquidity after its swap."""
    return _run_legs(_legs(hops, exact_input=True), amount_in)


# A hop prepared for repeated swaps of one kind of amount (exact input forwards, exact output
# backwards): a V2 pair's (reserve in, reserve out, fee numerator, fee denominator), a V3 pool's
# ``v3.unlimited`` (its ladder, state and limit), or None where every such swap reverts.
Leg = V2Params | v3.Unlimited | None


def _legs(hops: Sequence[Hop], *, exact_input: bool) -> list[Leg]:
    """The hops as legs: what ``pool.swap`` (no price limit) and the V2 library do, checked
    once per route instead of once per swap."""
    legs: list[Leg] = []
    for hop in hops:
        pool = hop.pool
        if isinstance(pool, V2Pool):
            r_in, r_out = pool.reserves(hop.zero_for_one)
            gamma, den = pool.fee_fraction
            legs.append((r_in, r_out, gamma, den))
        else:
            legs.append(pool.unlimited(hop.zero_for_one, exact_input))
    return legs


def _run_legs(legs: Sequence[Leg], amount_in: int) -> tuple[Sized, list[V3State]] | None:
    """``_run`` on exact-input legs: each V2 hop is UniswapV2Library.getAmountOut, each V3 hop
    the pool's swap without a price limit (its ladder); None where one reverts or fills
    partly."""
    amounts: list[int] = []
    crossed: list[int] = []
    states: list[V3State] = []
    x = amount_in
    for leg in legs:
        if x <= 0 or leg is None:
            return None
        if len(leg) == 4:  # getAmountOut, with its reverts
            r_in, r_out, gamma, den = leg
            if r_in <= 0 or r_out <= 0:
                return None
            with_fee = x * gamma
            numerator = with_fee * r_out
            denominator = r_in * den + with_fee
            if numerator > UINT256_MAX or denominator > UINT256_MAX:
                return None
            x = numerator // denominator
            crossed.append(0)
            states.append(None)
        else:
            swap, state, limit = leg
            if x >= INT256_LIMIT:
                return None
            try:
                remaining, calculated, price, _, liquidity, n = swap(state, x, limit)
            except MathError:
                return None
            if remaining:  # partial
                return None
            x = -calculated
            crossed.append(n)
            states.append((price, liquidity))
        amounts.append(x)
    return Sized(amount_in, tuple(amounts), tuple(crossed)), states


def _optimize_general(hops: Sequence[Hop], cap: int | None) -> Sized | None:
    shapes = _shapes(hops)
    a, b, c = _local_composite(shapes, 0, (), ())
    if a <= b:
        return None  # the marginal rate at zero input is at most 1: concave, so never a profit
    lo, hi = 0, None  # marginal profit > 0 at lo; <= 0 (or the route cannot fill) at hi
    x = (isqrt(a * b) - b) // c
    x = max(1, x if cap is None else min(x, cap))
    best: Sized | None = None
    legs = _legs(hops, exact_input=True)
    for _ in range(NEWTON_STEPS):
        run = _run_legs(legs, x)
        nxt = x
        if run is None:
            hi = x
        else:
            sized, states = run
            if best is None or sized.profit > best.profit:
                best = sized
            a, b, c = _local_composite(shapes, x, sized.amounts, states)
            if a > b:
                lo = x
                if cap is not None and x >= cap:
                    break
            else:
                hi = x
            step = (isqrt(a * b) - b) // c
            # Done when the step is below the resolution of the coarsest intermediate amount:
            # there the profit is a staircase and the snap below picks the best step edge.
            if abs(step) <= max(1, x // max(1, min(sized.amounts[:-1], default=x))):
                break
            nxt = x + step
        if not (lo < nxt and (hi is None or nxt < hi)):
            nxt = (lo + hi) // 2 if hi is not None else 2 * x
        if cap is not None:
            nxt = min(nxt, cap)
        if nxt <= lo or (hi is not None and nxt >= hi) or nxt == x:
            break
        x = nxt
    if best is None:
        return None
    return _snap_general(hops, legs, best, cap)


# A hop's local map, prepared once per route (``_shapes``): a V2 pair's (``r_in * den``, gamma,
# ``gamma * r_out * r_in * den``), its map after input ``x`` being ``a = that``, ``d = r_in * den +
# gamma * x``, ``b = d * d``, ``c = gamma * d``; a V3 pool's (direction, fee complement g, its
# price and liquidity), the price and liquidity replaced by the state after the route's swap.
_Shape = tuple[int, int, int] | tuple[bool, int, int, int]
_Q96_SQUARED = Q96 * Q96


def _shapes(hops: Sequence[Hop]) -> list[_Shape]:
    """Each hop's constants for ``_local_composite``."""
    shapes: list[_Shape] = []
    for hop in hops:
        pool = hop.pool
        if isinstance(pool, V2Pool):
            r_in, r_out = pool.reserves(hop.zero_for_one)
            gamma, den = pool.fee_fraction
            shapes.append((r_in * den, gamma, gamma * r_out * r_in * den))
        else:
            g = V3_FEE_DENOMINATOR - pool.fee
            shapes.append((hop.zero_for_one, g, pool.sqrt_price_x96, pool.liquidity))
    return shapes


def _local_composite(
    shapes: Sequence[_Shape], x: int, amounts: Sequence[int], states: Sequence[V3State]
) -> tuple[int, int, int]:
    """Composite (A, B, C) of the hops' local maps after the route has taken input ``x``.

    ``shapes`` are the route's hops (``_shapes``); ``amounts`` and ``states`` come from ``_run``
    at ``x`` (both empty when ``x`` is 0). Integers throughout: the very values of each hop's
    ``A = gamma*r_out*r_in*den, B = d*d, C = gamma*d`` (V2, ``d = r_in*den + gamma*x_in``) or
    ``A = g*L*P*P, B = 1e6*L*Q96*Q96`` (V3 zero for one; ``g*L*Q96*Q96, 1e6*L*P*P`` the other
    way), ``C = g*P*Q96``, composed ``a, b, c = A*a, B*b, B*c + C*a``.
    """
    a, b, c = 1, 1, 0
    x_in = x
    for i, shape in enumerate(shapes):
        if len(shape) == 3:
            rd, gamma, a_h = shape
            d = rd + gamma * x_in
            b_h, c_h = d * d, gamma * d
        else:
            zero_for_one, g, sqrt_p, liq = shape
            state = states[i] if states else None
            if state is not None:
                sqrt_p, liq = state
            if liq == 0:
                a_h, b_h = 0, 1
            elif zero_for_one:
                a_h = g * liq * sqrt_p * sqrt_p
                b_h = V3_FEE_DENOMINATOR * liq * _Q96_SQUARED
            else:
                a_h = g * liq * _Q96_SQUARED
                b_h = V3_FEE_DENOMINATOR * liq * sqrt_p * sqrt_p
            c_h = g * sqrt_p * Q96
        a, b, c = a_h * a, b_h * b, b_h * c + c_h * a
        if amounts:
            x_in = amounts[i]
    return a, b, c


def _least_input(legs: Sequence[Leg], upto: int, amount: int) -> int | None:
    """The input the pools charge to deliver ``amount`` after hop ``upto``, or None.

    ``legs`` are the route's exact-output legs: a V2 hop is the least input its K check accepts
    (``v2.min_amount_in``), a V3 hop the pool's exact-output swap without a price limit."""
    y = amount
    for leg in reversed(legs[:upto]):
        if y <= 0:
            return 0
        if leg is None:
            return None
        if len(leg) == 4:  # v2.min_amount_in
            r_in, r_out, gamma, den = leg
            if r_in <= 0 or r_out <= y:
                return None
            y = -(-(r_in * y * den) // ((r_out - y) * gamma))
        else:
            swap, state, limit = leg
            if y > INT256_LIMIT:
                return None
            try:
                remaining, calculated, _, _, _, _ = swap(state, -y, limit)
            except MathError:
                return None
            if remaining:  # partial
                return None
            y = calculated
    return y


def _snap_general(
    hops: Sequence[Hop], legs: Sequence[Leg], best: Sized, cap: int | None
) -> Sized | None:
    """The best integer input near ``best``: where an intermediate token is coarser than the
    base, the left edges of the steps around it (climbing while profit rises); else its
    neighbours. ``legs``: the route's exact-input legs."""
    x0 = best.amount_in
    inner = best.amounts[:-1]

    def at(x: int | None) -> Sized | None:
        if x is None or x <= 0 or (cap is not None and x > cap):
            return None
        run = _run_legs(legs, x)
        return run[0] if run is not None else None

    if not inner or min(inner) >= x0:
        for sized in (at(x0 - 1), at(x0 + 1)):
            if sized is not None and sized.profit > best.profit:
                best = sized
        return best if best.profit > 0 else None
    upto = inner.index(min(inner)) + 1
    z0 = inner[upto - 1]
    backwards = _legs(hops[:upto], exact_input=False)
    edge = at(_least_input(backwards, upto, z0))
    if edge is not None and edge.profit > best.profit:
        best = edge
    for direction in (1, -1):
        z = z0
        for _ in range(SNAP_NEAR):
            z += direction
            sized = at(_least_input(backwards, upto, z))
            if sized is None or sized.profit <= best.profit:
                break
            best = sized
    return best if best.profit > 0 else None
