"""``GET /api/v1/scores`` on SQLite and PostgreSQL: a run's self-scoring, with the same auth as
the other reads; exact amounts as strings; bad input refused."""

from __future__ import annotations

import pytest

from arbx.domain.scoring import Score
from arbx.store import repo, score_repo
from tests.integration.api.support import (
    BIG,
    ROUTE_A,
    ROUTE_B,
    Harness,
    add_opportunities,
    add_run,
    first_line,
)

pytestmark = pytest.mark.integration

TAKER = "0x" + "7a" * 20


def _score(api: Harness, run_id: int, block: int, net: int, score: Score) -> None:
    (opportunity_id,) = add_opportunities(api, run_id, block, [net])
    with api.factory.begin() as s:
        waiting = [o for o in score_repo.unscored(s, run_id, block) if o.id == opportunity_id]
        score_repo.add_score(s, waiting[0], run_id, 31337, 3, score)


def test_scores_before_any_run_are_zeros(api: Harness) -> None:
    body = api.get("/api/v1/scores").json()
    assert (body["run_id"], body["scored"], body["capture_rate"], body["takers"]) == (
        None, 0, None, []
    )  # fmt: skip


def test_scores_count_outcomes_and_name_who_took_the_rest(api: Harness) -> None:
    older = add_run(api)
    _score(api, older, 9, 1, Score("closed", 10))
    run_id = add_run(api)
    _score(api, run_id, 10, 5, Score("captured_us", 11))
    _score(api, run_id, 11, 6, Score("captured_other", 12, TAKER, "0x" + "01" * 32, BIG, "W"))
    _score(api, run_id, 11, 7, Score("captured_other", 12, TAKER, "0x" + "01" * 32, BIG, "W"))
    _score(api, run_id, 12, 8, Score("never_real"))
    _score(api, run_id, 12, 9, Score("still_open"))
    body = api.get("/api/v1/scores").json()
    assert body["run_id"] == run_id
    assert body["scored"] == 5
    assert body["outcomes"] == {
        "captured_us": 1, "captured_other": 2, "still_open": 1, "closed": 0, "never_real": 1
    }  # fmt: skip
    assert body["capture_rate"] == 0.25  # 1 of the 4 that were real
    # one opportunity per block: each is its block's best pool-disjoint set
    assert body["capturable_outcomes"] == body["outcomes"]
    assert body["capturable_capture_rate"] == 0.25
    assert body["taken_by_others_profit_wei"] == str(BIG)  # one transaction took both
    assert body["taken_by_others_expected_net_profit_wei"] == "13"
    assert body["takers"] == [{"taker": TAKER, "opportunities": 2, "profit_wei": str(BIG)}]
    # every opportunity here is on one route found block after block: one opportunity left open,
    # which our bundle took at block 10; nothing else counts towards going live
    assert body["missed_capturable_net_profit_wei"] == "0"
    before = api.get("/api/v1/scores", run_id=older).json()
    assert before["outcomes"]["closed"] == 1
    assert before["missed_capturable_net_profit_wei"] == "1"


def test_going_live_rests_on_the_routes_that_passed_simulation(api: Harness) -> None:
    """Shadow mode's figure: the routes that passed simulation and nobody of ours took, a route
    that passed again the next block counted once; a failed one is never real and counts for
    nothing, an unsimulated one only in the loose capturable bound."""
    run_id = add_run(api)
    simulated = [  # block, route, expected net, simulation status, outcome
        (20, ROUTE_A, 100, "simulated_ok", Score("still_open", 21)),
        (21, ROUTE_A, 90, "simulated_ok", Score("closed", 22)),  # the same trade again
        (22, ROUTE_B, 70, "simulated_ok", Score("captured_other", 23, TAKER, "0x" + "02" * 32, 9)),
        (23, ROUTE_A, 50, "simulated_revert", Score("never_real")),
        (24, ROUTE_B, 30, "unsimulated", Score("still_open", 25)),
    ]
    for block, route, net, status, score in simulated:
        (opportunity_id,) = add_opportunities(api, run_id, block, [net], route=route)
        with api.factory.begin() as s:
            repo.set_opportunity_status(s, opportunity_id, status)
            (waiting,) = [
                o for o in score_repo.unscored(s, run_id, block) if o.id == opportunity_id
            ]
            score_repo.add_score(s, waiting, run_id, 31337, 3, score)
    body = api.get("/api/v1/scores", run_id=run_id).json()
    assert body["simulations"] == {"simulated_ok": 3, "simulated_revert": 1, "unsimulated": 1}
    assert body["going_live_net_profit_wei"] == "170"  # 100 (not 90 again) + 70
    assert body["going_live_trades"] == 2
    assert body["missed_capturable_net_profit_wei"] == "200"  # 100 + 70 + 30, unsimulated
    with api.factory() as s:
        lines = "\n".join(score_repo.report_lines(score_repo.summary(s, run_id), shadow=True))
    assert "simulated            3 passed, 1 failed (never real), 1 not simulated" in lines
    assert "going live           170 wei in 2 routes that passed simulation" in lines


def test_scores_need_a_token_and_a_valid_run(api: Harness) -> None:
    assert api.get("/api/v1/scores", role=None).status_code == 401
    assert api.get("/api/v1/scores", role="made-up").status_code == 401
    refused = api.get("/api/v1/scores", run_id="0")
    assert refused.status_code in (400, 422)
    assert "run_id" in first_line(refused)
