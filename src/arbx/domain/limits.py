"""Capital limits, pure: which trade may go out, and which outcome breaches a limit.

Limits are per trade (the most input per base token), per UTC day (gas spent, realized loss)
and per run (consecutive failures). ``check_trade`` decides before a bundle is signed
(``check_batch`` for several routes sent in one transaction: each a trade, their gas together);
``record_outcome`` folds a settled bundle into the state and names the first limit it breaches.
A breach moves the state to shadow with the reason (``trip``); the engine persists it, trips the
kill switch, and stays in shadow until an operator runs ``arbx unkill``.

A trade above its input cap is refused, not clamped: the strategy sized it and the relay
simulated it at that input, and the net profit at a smaller input is a different number that
nobody checked. Configure the strategy's own cap (``strategy.max_input``) to the stage's cap so
that trades arrive sized within it. A base token without any cap is refused (fail closed).

Counting. Gas spent is what receipts say we paid (``gas_used * effective_gas_price``); a bundle
that was not included costs nothing. The daily loss is minus today's net realized profit, when
that is negative. A failure is a bundle that landed and reverted, a failed simulation, or an
included bundle that lost money; a profitable included bundle resets the count, while a bundle
that was simply not included (lost the auction, state moved) neither counts nor resets.

The counters follow a bundle's final settlement: ``record_outcome`` also returns what it
counted (``Counted``), and a reorg that takes the bundle out of its block is undone with
``undo_outcome`` (its gas and profit taken back if counted today; a failure it counted taken
back; a reset it made no longer lowers the count). If the new branch includes it again, it is
counted again. Undoing a profitable bundle can itself breach the loss cap.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from typing import Literal

from arbx.domain.modes import Mode
from arbx.domain.profit import Opportunity

Outcome = Literal["included", "not_included", "reverted", "state_moved", "sim_failed"]

OUTCOMES: tuple[Outcome, ...] = (
    "included",
    "not_included",
    "reverted",
    "state_moved",
    "sim_failed",
)
# A cap under this key applies to every base token without its own.
ANY_TOKEN = "*"  # noqa: S105
FAILURES: frozenset[str] = frozenset({"reverted", "sim_failed"})


@dataclass(frozen=True, slots=True)
class Limits:
    """The caps: input per base token (``"*"`` for any), daily gas and loss, failures per run."""

    max_input: Mapping[str, int] = field(default_factory=dict)
    daily_gas_cap_wei: int = 5 * 10**16
    daily_loss_cap_wei: int = 10**17
    max_consecutive_failures: int = 5

    def input_cap(self, base_token: str) -> int | None:
        """The most input allowed in ``base_token``, or None when no cap is configured."""
        return input_cap(self.max_input, base_token)


@dataclass(frozen=True, slots=True)
class RiskState:
    """Where the engine stands: today's counters, this run's failures, the switch and mode."""

    day: date
    gas_spent_wei: int = 0
    realized_pnl_wei: int = 0
    consecutive_failures: int = 0
    kill_switch: bool = False
    mode: Mode = "shadow"
    reason: str | None = None

    @property
    def realized_loss_wei(self) -> int:
        """Today's net realized loss (0 when today is in profit)."""
        return max(0, -self.realized_pnl_wei)


@dataclass(frozen=True, slots=True)
class Decision:
    """Whether a trade may be signed, and why not when it may not."""

    allowed: bool
    reason: str = ""


def input_cap(caps: Mapping[str, int], base_token: str) -> int | None:
    """The cap for ``base_token`` in ``caps`` (any case), else the ``"*"`` one, else None."""
    wanted = base_token.lower()
    for token, cap in caps.items():
        if token.lower() == wanted:
            return cap
    return caps.get(ANY_TOKEN)


def utc_day(at: datetime) -> date:
    """The UTC calendar day of an aware datetime."""
    if at.tzinfo is None:
        raise ValueError(f"naive datetime {at.isoformat()}: pass a timezone-aware one")
    return at.astimezone(UTC).date()


def new_state(at: datetime, mode: Mode = "shadow") -> RiskState:
    """A fresh state for the UTC day of ``at``."""
    return RiskState(day=utc_day(at), mode=mode)


def roll_day(state: RiskState, at: datetime) -> RiskState:
    """The state with the daily counters reset when ``at`` is on a later UTC day."""
    day = utc_day(at)
    if day <= state.day:
        return state
    return replace(state, day=day, gas_spent_wei=0, realized_pnl_wei=0)


def trip(state: RiskState, reason: str) -> RiskState:
    """The state dropped to shadow with the kill switch set and ``reason`` recorded."""
    return replace(state, mode="shadow", kill_switch=True, reason=reason)


def check_trade(
    opportunity: Opportunity,
    state: RiskState,
    limits: Limits,
    *,
    at: datetime | None = None,
    gas_cost_wei: int | None = None,
) -> Decision:
    """May this opportunity be signed now? Refused (never clamped) when over a limit.

    ``at`` rolls the daily counters first; ``gas_cost_wei`` defaults to the opportunity's gas
    cost (which is wei when the base token is WETH). The worst an included bundle can lose is
    its gas, so a trade is refused when paying it would pass the daily gas or loss cap.
    """
    if at is not None:
        state = roll_day(state, at)
    if state.kill_switch:
        return Decision(False, f"kill switch set: {state.reason or 'no reason given'}")
    if state.mode == "shadow":
        return Decision(False, f"shadow mode{': ' + state.reason if state.reason else ''}")
    base = opportunity.route.base
    cap = limits.input_cap(base)
    if cap is None:
        return Decision(False, f"no input cap configured for base token {base}")
    if opportunity.amount_in > cap:
        return Decision(False, f"input {opportunity.amount_in} of {base} is over the cap {cap}")
    gas = opportunity.gas_cost if gas_cost_wei is None else gas_cost_wei
    if state.gas_spent_wei + gas > limits.daily_gas_cap_wei:
        return Decision(
            False,
            f"gas today {state.gas_spent_wei} + {gas} wei would pass the daily cap "
            f"{limits.daily_gas_cap_wei}",
        )
    if state.realized_loss_wei + gas > limits.daily_loss_cap_wei:
        return Decision(
            False,
            f"loss today {state.realized_loss_wei} + up to {gas} wei would pass the daily cap "
            f"{limits.daily_loss_cap_wei}",
        )
    if state.consecutive_failures >= limits.max_consecutive_failures:
        return Decision(
            False,
            f"{state.consecutive_failures} consecutive failures (limit "
            f"{limits.max_consecutive_failures})",
        )
    return Decision(True)


def check_batch(
    opportunities: Sequence[Opportunity],
    state: RiskState,
    limits: Limits,
    *,
    max_routes: int,
    at: datetime | None = None,
) -> tuple[tuple[int, ...], str]:
    """Which of one block's opportunities may go out together (indices, in order), and why the
    first one left out was refused ("" when none was).

    Each is checked as a trade of its own (``check_trade``: its input cap), with the gas of the
    ones taken before it added, so that the block's gas together stays within the daily gas and
    loss caps; at most ``max_routes`` are taken (the per-block cap; the contract has its own).
    """
    taken: list[int] = []
    gas = 0
    reason = ""
    for i, opportunity in enumerate(opportunities):
        if len(taken) >= max_routes:
            reason = reason or f"more than {max_routes} routes in one block"
            break
        decision = check_trade(
            opportunity, state, limits, at=at, gas_cost_wei=gas + opportunity.gas_cost
        )
        if not decision.allowed:
            reason = reason or decision.reason
            continue
        taken.append(i)
        gas += opportunity.gas_cost
    return tuple(taken), reason


@dataclass(frozen=True, slots=True)
class Counted:
    """What ``record_outcome`` folded into the state for one bundle (to undo on a reorg)."""

    outcome: Outcome
    gas_cost: int
    realized_pnl: int
    day: date  # the UTC day whose counters it went into
    failures_before: int  # the run's consecutive failures before it


def record_outcome(
    state: RiskState,
    outcome: Outcome,
    gas_cost: int,
    realized_pnl: int,
    limits: Limits,
    *,
    at: datetime,
) -> tuple[RiskState, str | None]:
    """Fold a settled bundle into the state. -> (new state, the breach reason or None).

    ``gas_cost`` is the wei paid (0 when not included); ``realized_pnl`` the realized profit
    (negative for a loss). On a breach the state is tripped (shadow, kill switch, reason).
    """
    state, breach, _ = count_outcome(state, outcome, gas_cost, realized_pnl, limits, at=at)
    return state, breach


def count_outcome(
    state: RiskState,
    outcome: Outcome,
    gas_cost: int,
    realized_pnl: int,
    limits: Limits,
    *,
    at: datetime,
) -> tuple[RiskState, str | None, Counted]:
    """``record_outcome``, and what it counted (for ``undo_outcome``)."""
    if outcome not in OUTCOMES:
        raise ValueError(f"unknown outcome {outcome!r}; expected one of {', '.join(OUTCOMES)}")
    if gas_cost < 0:
        raise ValueError(f"gas cost must be >= 0, got {gas_cost}")
    state = roll_day(state, at)
    counted = Counted(outcome, gas_cost, realized_pnl, state.day, state.consecutive_failures)
    failures = state.consecutive_failures
    if _failure(outcome, realized_pnl):
        failures += 1
    elif outcome == "included":
        failures = 0
    state = replace(
        state,
        gas_spent_wei=state.gas_spent_wei + gas_cost,
        realized_pnl_wei=state.realized_pnl_wei + realized_pnl,
        consecutive_failures=failures,
    )
    return (*_checked(state, limits), counted)


def undo_outcome(
    state: RiskState, counted: Counted, limits: Limits, *, at: datetime
) -> tuple[RiskState, str | None]:
    """Take back what ``counted`` added (a reorg took its bundle out of its block). -> (new
    state, the breach reason or None).

    Its gas and realized profit leave today's counters if they were counted today (a day that
    has rolled over keeps nothing to undo). A failure it counted is taken back; a reset of the
    count it made (a profitable inclusion) no longer holds, so the count is at least what it was
    before. Taking back a profit can breach the loss cap: the state is then tripped.
    """
    state = roll_day(state, at)
    if counted.day == state.day:
        state = replace(
            state,
            gas_spent_wei=max(0, state.gas_spent_wei - counted.gas_cost),
            realized_pnl_wei=state.realized_pnl_wei - counted.realized_pnl,
        )
    failures = state.consecutive_failures
    if _failure(counted.outcome, counted.realized_pnl):
        failures = max(0, failures - 1)
    elif counted.outcome == "included":
        failures = max(failures, counted.failures_before)
    return _checked(replace(state, consecutive_failures=failures), limits)


def _failure(outcome: Outcome, realized_pnl: int) -> bool:
    return outcome in FAILURES or (outcome == "included" and realized_pnl < 0)


def _checked(state: RiskState, limits: Limits) -> tuple[RiskState, str | None]:
    breach = breached(state, limits)
    if breach is not None:
        state = trip(state, breach)
    return state, breach


def breached(state: RiskState, limits: Limits) -> str | None:
    """The first limit the state is past, as a sentence; None when within every limit."""
    if state.gas_spent_wei > limits.daily_gas_cap_wei:
        return (
            f"daily gas cap breached: {state.gas_spent_wei} wei spent on {state.day} "
            f"(cap {limits.daily_gas_cap_wei})"
        )
    if state.realized_loss_wei > limits.daily_loss_cap_wei:
        return (
            f"daily loss cap breached: {state.realized_loss_wei} wei lost on {state.day} "
            f"(cap {limits.daily_loss_cap_wei})"
        )
    if state.consecutive_failures >= limits.max_consecutive_failures:
        return (
            f"{state.consecutive_failures} consecutive failures in this run "
            f"(limit {limits.max_consecutive_failures})"
        )
    return None


# --- operators' controls: they lower risk, never raise it -----------------------------------


def configured_bound(limits: Limits, stage_caps: Iterable[Mapping[str, int]] = ()) -> Limits:
    """The loosest limits the settings allow: ``limits``, input caps it lacks from the stages.

    A base token without a cap in ``limits`` is capped by the capital stage in force, so the
    most any stage allows for it is what the settings allow.
    """
    caps = {k.lower(): v for k, v in limits.max_input.items()}
    for stage in stage_caps:
        for token, cap in stage.items():
            key = token.lower()
            if input_cap(limits.max_input, key) is None:
                caps[key] = max(cap, caps.get(key, cap))
    return replace(limits, max_input=caps)


def limits_refusal(requested: Limits, bound: Limits) -> str | None:
    """The first limit of ``requested`` looser than ``bound`` (see ``configured_bound``), or None.

    Every input cap is compared the way a trade would see it: a token's own cap, else ``"*"``.
    A cap for a token the settings leave without one would open it, so it is refused too.
    """
    for token in sorted({k.lower() for k in (*requested.max_input, *bound.max_input)}):
        asked = input_cap(requested.max_input, token)
        allowed = input_cap(bound.max_input, token)
        if asked is None:
            continue
        name = "any base token ('*')" if token == ANY_TOKEN else token
        if allowed is None:
            return f"input cap {asked} for {name}: the settings allow no trade in it"
        if asked > allowed:
            return f"input cap {asked} for {name} is above the configured {allowed}"
    for field_name in ("daily_gas_cap_wei", "daily_loss_cap_wei", "max_consecutive_failures"):
        asked, allowed = getattr(requested, field_name), getattr(bound, field_name)
        if asked > allowed:
            return f"{field_name} {asked} is above the configured {allowed}"
    return None


def tightened(operator: Limits | None, configured: Limits) -> Limits:
    """The limits in force: each of the operators' limits, never looser than the configured one.

    An input cap the operators left out closes that token; one the settings lack is kept as
    the operators set it (the stage's cap still applies on top, see ``stage_limits``).
    """
    if operator is None:
        return configured
    spelled = {k.lower(): k for k in (*configured.max_input, *operator.max_input)}
    caps: dict[str, int] = {}
    for token, name in sorted(spelled.items()):
        asked = input_cap(operator.max_input, token)
        if asked is None:
            continue
        allowed = input_cap(configured.max_input, token)
        caps[name] = asked if allowed is None else min(asked, allowed)
    return Limits(
        max_input=caps,
        daily_gas_cap_wei=min(operator.daily_gas_cap_wei, configured.daily_gas_cap_wei),
        daily_loss_cap_wei=min(operator.daily_loss_cap_wei, configured.daily_loss_cap_wei),
        max_consecutive_failures=min(
            operator.max_consecutive_failures, configured.max_consecutive_failures
        ),
    )
