"""Self-scoring's records: the opportunities still to score, our bundles, the scores and their sums.

Plain functions over a session; none commits. A bundle is matched to the opportunities it was
sent for by the run, a target block in the opportunity's window and the routes its row lists
(``bundle_routes``: each route's key and expected net profit, exact in wei; revision 0007); a
bundle written before that list is matched by its expected net profit (one route each then).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from arbx.domain.scoring import OUTCOMES, Score
from arbx.store.models import BundleRouteRow, BundleRow, OpportunityRow, OpportunityScoreRow

FAILED_SIMULATION = ("sim_failed", "simulated_revert")
SIMULATED_OK = "simulated_ok"
# an opportunity's status after shadow mode's simulation of the trade it would have been sent in
# (``executors.simulation``): passed, the call itself failed, or not simulated
SIMULATION_STATUSES = (SIMULATED_OK, "simulated_revert", "unsimulated")
MAX_BATCH = 500  # opportunities scored per call


@dataclass(frozen=True, slots=True)
class ToScore:
    """An opportunity whose window has passed and that has no score yet."""

    id: int
    block: int
    pools: tuple[str, ...]
    route_key: str
    net_profit: int
    status: str


@dataclass(frozen=True, slots=True)
class OurBundle:
    """One of the run's bundles: what it targeted, expected, became, and its transactions."""

    target_block: int
    expected_net_profit: int
    status: str
    tx_hashes: tuple[str, ...]
    # the routes its transaction carried: (route key, expected net profit); None on old rows
    routes: tuple[tuple[str, int], ...] | None = None

    def carries(self, route_key: str, net_profit: int) -> bool:
        """Whether this bundle was sent for the opportunity of ``route_key`` and ``net_profit``."""
        if self.routes is None:
            return self.expected_net_profit == net_profit
        return (route_key, net_profit) in self.routes

    @property
    def batch(self) -> bool:
        """Whether its transaction carried several routes (``executeMany``)."""
        return self.routes is not None and len(self.routes) > 1


def unscored(session: Session, run_id: int, up_to_block: int) -> list[ToScore]:
    """The run's opportunities found at or before ``up_to_block`` without a score, oldest first."""
    rows = session.execute(
        select(
            OpportunityRow.id,
            OpportunityRow.block_number,
            OpportunityRow.pools_json,
            OpportunityRow.route_key,
            OpportunityRow.net_profit,
            OpportunityRow.status,
        )
        .outerjoin(OpportunityScoreRow, OpportunityScoreRow.opportunity_id == OpportunityRow.id)
        .where(
            OpportunityRow.run_id == run_id,
            OpportunityRow.block_number <= up_to_block,
            OpportunityScoreRow.id.is_(None),
        )
        .order_by(OpportunityRow.block_number, OpportunityRow.id)
        .limit(MAX_BATCH)
    ).all()
    return [
        ToScore(int(r[0]), int(r[1]), tuple(str(p) for p in r[2]), str(r[3]), int(r[4]), str(r[5]))
        for r in rows
    ]


def found_blocks(
    session: Session, run_id: int, route_keys: Sequence[str], first: int, last: int
) -> dict[str, set[int]]:
    """Route key -> the blocks in ``first..last`` where the run found that route."""
    found: dict[str, set[int]] = defaultdict(set)
    if not route_keys:
        return found
    for key, number in session.execute(
        select(OpportunityRow.route_key, OpportunityRow.block_number).where(
            OpportunityRow.run_id == run_id,
            OpportunityRow.route_key.in_(sorted(set(route_keys))),
            OpportunityRow.block_number.between(first, last),
        )
    ):
        found[str(key)].add(int(number))
    return found


def our_bundles(session: Session, run_id: int, first_target: int) -> list[OurBundle]:
    """The run's bundles for blocks from ``first_target`` on, with the routes they list."""
    rows = session.scalars(
        select(BundleRow).where(BundleRow.run_id == run_id, BundleRow.target_block >= first_target)
    ).all()
    routes: dict[int, list[tuple[str, int]]] = defaultdict(list)
    if rows:
        for bundle_id, key, net in session.execute(
            select(BundleRouteRow.bundle_id, BundleRouteRow.route_key, BundleRouteRow.net_profit)
            .join(BundleRow, BundleRow.id == BundleRouteRow.bundle_id)
            .where(BundleRow.run_id == run_id, BundleRow.target_block >= first_target)
            .order_by(BundleRouteRow.bundle_id, BundleRouteRow.position)
        ):
            routes[int(bundle_id)].append((str(key), int(net)))
    return [
        OurBundle(
            int(r.target_block),
            int(r.expected_net_profit),
            str(r.status),
            tuple(str(h).lower() for h in r.tx_hashes_json),
            tuple(routes[r.id]) if r.id in routes else None,
        )
        for r in rows
    ]


def add_score(
    session: Session, opportunity: ToScore, run_id: int, chain_id: int, window: int, score: Score
) -> None:
    """Store one opportunity's score."""
    session.add(
        OpportunityScoreRow(
            opportunity_id=opportunity.id,
            run_id=run_id,
            chain_id=chain_id,
            block_number=opportunity.block,
            outcome=score.outcome,
            window=window,
            decided_block=score.decided_block,
            taker=score.taker,
            taker_tx=score.taker_tx,
            taker_profit=score.taker_profit,
            token=score.token,
            scored_at=datetime.now(UTC),
        )
    )


def summary(session: Session, run_id: int) -> dict[str, Any]:
    """The run's scores: counts by outcome (of all found, and of the capturable ones), capture
    rates, what others took and who (and what we expected to net from the capturable ones they
    took), and what the capturable opportunities that we did not take were expected to pay.

    In shadow mode, what going live would have won rests on the simulations: the expected net
    profit of the routes of the trades a live engine would have sent that passed simulation on
    their head's state and that nobody of ours took (a route that passed again the next block
    counted once: the live engine would have taken it the first time). ``simulations`` counts
    the scored opportunities by simulation status."""
    rows = session.execute(
        select(
            OpportunityScoreRow.outcome,
            OpportunityScoreRow.taker,
            OpportunityScoreRow.taker_tx,
            OpportunityScoreRow.taker_profit,
            OpportunityRow.net_profit,
            OpportunityRow.capturable,
            OpportunityRow.route_key,
            OpportunityRow.block_number,
            OpportunityRow.status,
        )
        .join(OpportunityRow, OpportunityRow.id == OpportunityScoreRow.opportunity_id)
        .where(OpportunityScoreRow.run_id == run_id)
    ).all()
    # a route found in consecutive blocks is one opportunity left open: counted once
    flagged = {(str(r[6]), int(r[7])) for r in rows}
    # shadow mode's trades that passed simulation: one sent again the next block counted once
    passed = {(str(r[6]), int(r[7])) for r in rows if r[8] == SIMULATED_OK}
    counts: dict[str, int] = dict.fromkeys(OUTCOMES, 0)
    best: dict[str, int] = dict.fromkeys(OUTCOMES, 0)  # the capturable ones only
    simulated: dict[str, int] = dict.fromkeys(SIMULATION_STATUSES, 0)
    takers: dict[str, dict[str, Any]] = {}
    seen_tx: set[str] = set()
    lost = missed = live = live_trades = 0
    for outcome, taker, taker_tx, taker_profit, net_profit, capturable, key, block, status in rows:
        if status in simulated:
            simulated[str(status)] += 1
        untaken = outcome in ("captured_other", "still_open", "closed")
        if status == SIMULATED_OK and untaken and (str(key), int(block) - 1) not in passed:
            live += int(net_profit)
            live_trades += 1
        counts[str(outcome)] = counts.get(str(outcome), 0) + 1
        if capturable:
            best[str(outcome)] = best.get(str(outcome), 0) + 1
        if outcome == "captured_other" and taker is not None:
            entry = takers.setdefault(taker, {"taker": taker, "opportunities": 0, "profit_wei": 0})
            entry["opportunities"] += 1
            lost += int(net_profit) if capturable else 0
            if taker_tx is not None and taker_tx not in seen_tx and taker_profit is not None:
                seen_tx.add(str(taker_tx))
                entry["profit_wei"] += int(taker_profit)
        continued = (str(key), int(block) - 1) in flagged
        if capturable and not continued and untaken:
            missed += int(net_profit)
    real = sum(counts.values()) - counts["never_real"]
    real_best = sum(best.values()) - best["never_real"]
    return {
        "scored": sum(counts.values()),
        "outcomes": counts,
        "capture_rate": counts["captured_us"] / real if real else None,
        "capturable_outcomes": best,
        "capturable_capture_rate": best["captured_us"] / real_best if real_best else None,
        "taken_by_others_profit_wei": sum(t["profit_wei"] for t in takers.values()),
        "taken_by_others_expected_net_profit_wei": lost,
        "takers": sorted(takers.values(), key=lambda t: (-t["profit_wei"], t["taker"])),
        "missed_capturable_net_profit_wei": missed,
        "simulations": simulated,
        "going_live_net_profit_wei": live,
        "going_live_trades": live_trades,
    }


def report_lines(scores: dict[str, Any], *, shadow: bool) -> list[str]:
    """The text report's lines for ``summary``."""
    outcomes, best = scores["outcomes"], scores["capturable_outcomes"]
    rate, best_rate = scores["capture_rate"], scores["capturable_capture_rate"]
    lines = [
        f"  self-scoring           {scores['scored']} opportunities scored: "
        + ", ".join(f"{outcomes[o]} {o.replace('_', ' ')}" for o in OUTCOMES),
        f"    capturable           {sum(best.values())}: "
        + ", ".join(f"{best[o]} {o.replace('_', ' ')}" for o in OUTCOMES),
        f"    capture rate         {_rate(best_rate)} of the capturable that were real "
        f"({_rate(rate)} of all found: overlapping routes share an outcome)",
        f"    taken by others      {scores['taken_by_others_profit_wei']} wei of their profit "
        f"(the capturable ones among them: {scores['taken_by_others_expected_net_profit_wei']} wei "
        "expected net)",
    ]
    lines += [
        f"      {t['taker']}  {t['opportunities']:>5} opportunities  {t['profit_wei']:>24} wei"
        for t in scores["takers"][:10]
    ]
    if shadow:
        sims = scores["simulations"]
        lines += [
            f"    simulated            {sims[SIMULATED_OK]} passed, {sims['simulated_revert']} "
            f"failed (never real), {sims['unsimulated']} not simulated: the routes of the trade "
            "a live engine would have sent each block, on their head's state",
            f"    going live           {scores['going_live_net_profit_wei']} wei in "
            f"{scores['going_live_trades']} routes that passed simulation (a route sent again "
            "the next block counted once; rivals' bids and one bundle in flight at a time not "
            "counted)",
            f"      every capturable   at most {scores['missed_capturable_net_profit_wei']} wei "
            "(capturable and real, unsimulated, a route found block after block counted once)",
        ]
    return lines


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"
