"""The benchmark cases: the same states for both sides, timed, and checked against each other."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from bench import fixtures, ours
from bench import peers_degenbot as deg
from bench.fixtures import WETH
from bench.timing import Timing, format_duration, measure, measure_together
from bench.universe import changed_pools, generate_universe

V2_CYCLE_TARGET_S = 10e-6
REEVALUATE_TARGET_S = 20e-3
DEGENBOT_MAX_INPUT = 100 * 10**18  # UniswapLpCycle's default bound for the Brent search
SYNTHETIC_COPY = "0x000000000000000000000000000000000000bEEF"


@dataclass
class CaseResult:
    """One row of the table: both timings, the target, and whether both sides agree."""

    key: str
    title: str
    target: str
    ours: Timing | None = None
    degenbot: Timing | None = None
    met: bool | None = None
    check: bool | None = None  # both sides agree / ours is at least as good; None: not checked
    summary: str = ""  # one line for the table: what was checked
    details: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (timings in seconds)."""
        return {
            "key": self.key,
            "title": self.title,
            "target": self.target,
            "ours": self.ours.as_dict() if self.ours else None,
            "degenbot": self.degenbot.as_dict() if self.degenbot else None,
            "speedup_vs_degenbot": (
                round(self.degenbot.median / self.ours.median, 2)
                if self.ours and self.degenbot
                else None
            ),
            "met": self.met,
            "check": self.check,
            "summary": self.summary,
            "details": self.details,
            "notes": self.notes,
        }


def _at_least_as_fast(result: CaseResult) -> None:
    if result.ours and result.degenbot:
        result.met = result.ours.median <= result.degenbot.median and result.check is not False


def _within(result: CaseResult, limit_s: float) -> None:
    if result.ours:
        result.met = result.ours.median <= limit_s and result.check is not False


def _unavailable(result: CaseResult, what: str, exc: Exception) -> None:
    result.notes.append(f"ours not run: {what} is not available yet ({exc})")


def _time_both(
    result: CaseResult, our_call: Callable[[], object] | None, peer_call: Callable[[], object]
) -> None:
    """Time degenbot, and ours when there is one, with their repeats interleaved."""
    if our_call is None:
        result.degenbot = measure(peer_call)
    else:
        result.ours, result.degenbot = measure_together([our_call, peer_call])


# -- case 1 -----------------------------------------------------------------------------------


def v2_amount_out() -> CaseResult:
    """Case 1: one V2 getAmountOut, 1 WETH into the real WBTC/WETH pair."""
    pool = fixtures.v2_wbtc_weth()
    amount_in = 10**18
    reserve_in, reserve_out = int(pool["reserve1"]), int(pool["reserve0"])  # WETH is token1
    fee_bps = int(pool["fee_bps"])
    result = CaseResult(
        key="v2_amount_out",
        title="V2 amount out (WBTC/WETH, 1 WETH in)",
        target="<= degenbot",
        details={"pool": pool["address"], "block": pool["block"], "amount_in": amount_in},
    )

    tokens = deg.TokenBook()
    peer = deg.v2_pool(pool, tokens)
    peer_call = partial(
        peer.calculate_tokens_out_from_tokens_in, tokens.get(pool["token1"]), amount_in
    )
    expected = peer_call()
    result.details["degenbot_amount_out"] = expected

    try:
        get_amount_out = ours.v2_get_amount_out()
    except ImportError as exc:
        _unavailable(result, "arbx.domain.amm.v2", exc)
        _time_both(result, None, peer_call)
        return result
    our_call = partial(get_amount_out, amount_in, reserve_in, reserve_out, fee_bps)
    got = our_call()
    result.details["ours_amount_out"] = got
    result.check = got == expected
    result.summary = "same amount out" if result.check else f"DIFFERENT out: {got} vs {expected}"
    _time_both(result, our_call, peer_call)
    _at_least_as_fast(result)
    return result


# -- case 2 -----------------------------------------------------------------------------------


def v2_cycle_pools() -> list[dict[str, Any]]:
    """The real WBTC/WETH V2 pair and a copy whose WETH reserve is 1% higher (WBTC dearer there)."""
    real = fixtures.v2_wbtc_weth()
    copy = {**real, "address": SYNTHETIC_COPY, "reserve1": str(int(real["reserve1"]) * 101 // 100)}
    return [real, copy]


def exact_cycle_output(pools: Sequence[Mapping[str, Any]], token_in: str, amount_in: int) -> int:
    """The exact output of the cycle, hop by hop with UniswapV2Library.getAmountOut."""
    amount, token = amount_in, token_in
    for pool in pools:
        zero_for_one = pool["token0"]["address"] == token
        r0, r1 = int(pool["reserve0"]), int(pool["reserve1"])
        r_in, r_out = (r0, r1) if zero_for_one else (r1, r0)
        with_fee = amount * (10_000 - int(pool["fee_bps"]))
        amount = with_fee * r_out // (r_in * 10_000 + with_fee)
        token = pool["token1"]["address"] if zero_for_one else pool["token0"]["address"]
    if token != token_in:
        raise ValueError("the pools do not close a cycle back to the input token")
    return amount


def v2_cycle() -> CaseResult:
    """Case 2: optimal input and profit of WETH -> real pair -> copy -> WETH."""
    pools = v2_cycle_pools()
    result = CaseResult(
        key="v2_cycle_optimum",
        title="Optimal 2-pool V2 cycle (WETH in/out)",
        target=f"<= {format_duration(V2_CYCLE_TARGET_S)}, profit >= degenbot",
        details={"pools": [p["address"] for p in pools], "reserve_moved": "copy: WETH +1%"},
    )

    tokens = deg.TokenBook()
    peer_pools = [deg.v2_pool(pools[0], tokens), deg.v2_pool(pools[1], tokens, verify=False)]
    cycle = deg.lp_cycle(peer_pools, tokens.get({"address": WETH}), DEGENBOT_MAX_INPUT)
    answer = cycle.calculate()
    peer_profit = exact_cycle_output(pools, WETH, answer.input_amount) - answer.input_amount
    result.details |= {
        "degenbot_amount_in": answer.input_amount,
        "degenbot_profit": peer_profit,
        "degenbot_reported_profit": answer.profit_amount,  # float-rounded by its objective
        "degenbot_max_input": DEGENBOT_MAX_INPUT,
    }

    try:
        solve = ours.ours_v2_cycle(pools, WETH, DEGENBOT_MAX_INPUT)
    except ImportError as exc:
        _unavailable(result, "the sizing API", exc)
        solve = None
    if solve is None:
        result.summary = f"profit wei: degenbot {peer_profit}; ours not connected"
        result.notes.append("ours_v2_cycle (bench/ours.py) is not connected yet")
        _time_both(result, None, cycle.calculate)
        return result
    mine = solve()
    our_profit = exact_cycle_output(pools, WETH, mine.amount_in) - mine.amount_in
    result.details |= {
        "ours_amount_in": mine.amount_in,
        "ours_profit": our_profit,
        "ours_claimed_profit": mine.profit,
    }
    exact = our_profit == mine.profit
    result.check = exact and our_profit >= peer_profit
    result.summary = f"profit wei: ours {our_profit} vs degenbot {peer_profit}" + (
        "" if exact else f" (ours claimed {mine.profit})"
    )
    _time_both(result, solve, cycle.calculate)
    _within(result, V2_CYCLE_TARGET_S)
    return result


# -- case 3 -----------------------------------------------------------------------------------


def v3_input_crossing(peer: Any, pool: Mapping[str, Any], crossings: int) -> int:
    """A WETH input that crosses exactly ``crossings`` initialized ticks and ends mid-range.

    The swap is aimed at the middle tick between the ``crossings``-th and the next initialized
    tick above the price; the input that gets there is what the pool takes with that price limit.
    """
    from degenbot.uniswap.v3_libraries.tick_math import get_sqrt_ratio_at_tick  # noqa: PLC0415

    above = [t for t in fixtures.initialized_ticks(pool) if t > int(pool["tick"])]
    aim = (above[crossings - 1] + above[crossings]) // 2
    _, amount1, *_ = deg.v3_swap(peer, False, 10**30, get_sqrt_ratio_at_tick(aim))
    return int(amount1)


def count_crossed(pool: Mapping[str, Any], tick_after: int, zero_for_one: bool) -> int:
    """Initialized ticks between the pool's tick and ``tick_after`` that a swap crossed."""
    start = int(pool["tick"])
    ticks = fixtures.initialized_ticks(pool)
    if zero_for_one:
        return sum(1 for t in ticks if tick_after < t <= start)
    return sum(1 for t in ticks if start < t <= tick_after)


def v3_exact_in(crossings: int) -> CaseResult:
    """Case 3: V3 exact input, WETH -> WBTC on the real pool, crossing ``crossings`` ticks."""
    pool = fixtures.v3_wbtc_weth()
    tokens = deg.TokenBook()
    peer = deg.v3_pool(pool, tokens)
    amount_in = v3_input_crossing(peer, pool, crossings)
    *_, tick_after = deg.v3_swap(peer, False, amount_in, None)
    crossed = count_crossed(pool, tick_after, zero_for_one=False)
    result = CaseResult(
        key=f"v3_exact_in_{crossings}_ticks",
        title=f"V3 exact in, {crossed} tick{'s' if crossed != 1 else ''} crossed (WETH->WBTC)",
        target="<= degenbot",
        details={
            "pool": pool["address"],
            "block": pool["block"],
            "zero_for_one": False,
            "amount_in": amount_in,
            "ticks_crossed": crossed,
            "tick_before": int(pool["tick"]),
            "tick_after": tick_after,
        },
    )

    peer_call = partial(
        peer.calculate_tokens_out_from_tokens_in, tokens.get(pool["token1"]), amount_in
    )
    expected = peer_call()
    result.details["degenbot_amount_out"] = expected

    try:
        swap = ours.v3_swap()
    except ImportError as exc:
        _unavailable(result, "arbx.domain.amm.v3", exc)
        result.summary = f"{crossed} ticks crossed (counted from the fixture)"
        _time_both(result, None, peer_call)
        return result
    our_call = partial(
        swap,
        int(pool["sqrt_price_x96"]),
        int(pool["tick"]),
        int(pool["liquidity"]),
        int(pool["fee"]),
        int(pool["tick_spacing"]),
        fixtures.initialized_ticks(pool),
        fixtures.liquidity_net(pool),
        False,
        amount_in,
    )
    got = our_call()
    result.details |= {"ours_amount_out": got.amount_out, "ours_ticks_crossed": got.ticks_crossed}
    result.check = (
        got.amount_out == expected
        and got.amount_in == amount_in
        and not got.partial
        and got.ticks_crossed == crossed
    )
    result.summary = (
        f"same amount out, {crossed} crossed"
        if result.check
        else f"DIFFERENT: out {got.amount_out} vs {expected}, "
        f"crossed {got.ticks_crossed} vs {crossed}"
    )
    _time_both(result, our_call, peer_call)
    _at_least_as_fast(result)
    return result


# -- case 4 -----------------------------------------------------------------------------------


def reevaluate(
    max_hops: int, n_pools: int = 1000, n_changed: int = 50, max_sized: int | None = None
) -> CaseResult:
    """Case 4: re-evaluate the routes through 50 changed pools of a 1,000-pool universe (ours)."""
    universe = generate_universe(n_pools=n_pools, seed=1)
    changed = changed_pools(universe, n_changed=n_changed, seed=2)
    result = CaseResult(
        key=f"reevaluate_touched_routes_{max_hops}_hops"
        + (f"_best_{max_sized}" if max_sized else ""),
        title=f"Re-evaluate routes: {n_changed} of {n_pools} pools changed, <= {max_hops} hops"
        + (f", best {max_sized} sized" if max_sized else ""),
        target=f"<= {format_duration(REEVALUATE_TARGET_S)}",
        details={
            "universe": universe["description"],
            "changed": len(changed),
            "max_hops": max_hops,
        },
        notes=["degenbot has no pool -> routes index: ours only"],
    )
    try:
        prepared = ours.ours_reevaluate(universe, changed, WETH, max_hops, max_sized)
    except ImportError as exc:
        _unavailable(result, "the routes/sizing API", exc)
        prepared = None
    if prepared is None:
        result.summary = "ours not connected"
        result.notes.append("ours_reevaluate (bench/ours.py) is not connected yet")
        return result
    result.ours = measure(prepared.run)
    evaluated, found = prepared.run()
    result.details |= {
        "routes_total": prepared.routes_total,
        "routes_touched": prepared.routes_touched,
        "routes_evaluated_per_run": evaluated,
        "opportunities_before": prepared.opportunities_before,
        "opportunities_after": found,
    }
    if prepared.note:
        result.notes.append(prepared.note)
    result.check = evaluated == prepared.routes_touched
    result.summary = (
        f"{evaluated} of {prepared.routes_total} routes evaluated; "
        f"opportunities {prepared.opportunities_before} -> {found}"
    )
    _within(result, REEVALUATE_TARGET_S)
    return result


CASES: tuple[Callable[[], CaseResult], ...] = (
    v2_amount_out,
    v2_cycle,
    partial(v3_exact_in, 1),
    partial(v3_exact_in, 30),
    partial(reevaluate, 2),
    partial(reevaluate, 3),
    partial(reevaluate, 4),
    partial(reevaluate, 4, max_sized=32),
)
