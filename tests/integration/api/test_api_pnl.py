"""PnL on SQLite (summed from the base tables) and PostgreSQL (aggregates kept by triggers): the
same exact numbers by day, route and builder, filters, bad input; on PostgreSQL the aggregates
follow inserts, settlements, updates and deletes, and equal a rebuild from scratch.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import delete, update

from arbx.domain.errors import InputError
from arbx.store import execution_repo as xrepo
from arbx.store import pnl_repo, repo
from arbx.store.models import BundleRow, OpportunityRow, TransactionRow
from tests.integration.api.support import (
    BIG,
    NOW,
    ROUTE_A,
    ROUTE_B,
    Harness,
    add_bundle,
    add_opportunities,
    add_run,
    first_line,
)

pytestmark = pytest.mark.integration

DAY1, DAY2 = (NOW - timedelta(days=1)), NOW
D1, D2 = DAY1.date().isoformat(), DAY2.date().isoformat()
A, B = repo.route_key(ROUTE_A), repo.route_key(ROUTE_B)


def _row(key: str, bundles: int, included: int, expected: int, realized: int, gas: int) -> Any:
    return {
        "key": key,
        "bundles": bundles,
        "included": included,
        "expected_net_profit_wei": str(expected),
        "realized_profit_wei": str(realized),
        "gas_cost_wei": str(gas),
    }


@pytest.fixture
def book(api: Harness) -> dict[str, int]:
    """Opportunities on two days and five bundles of every kind; a run on another chain."""
    run_id = add_run(api, DAY1)
    (o1, loose) = add_opportunities(api, run_id, 10, [5, -3], at=DAY1)
    (o_big,) = add_opportunities(api, run_id, 20, [BIG], at=DAY2)
    (o_b,) = add_opportunities(api, run_id, 21, [7], route=ROUTE_B, at=DAY2)
    add_bundle(api, run_id, o1, expected=100, realized=90, gas=10, sent_at=DAY1)
    add_bundle(api, run_id, o_b, status="reverted", expected=50, realized=-20, gas=20,
               builders=["titan"])  # fmt: skip
    add_bundle(api, run_id, None, status="not_included", expected=30, realized=None, gas=None,
               builders=[])  # fmt: skip
    big = add_bundle(api, run_id, o_big, expected=BIG, realized=BIG - 1, gas=5,
                     builders=["flashbots", "flashbots"])  # fmt: skip
    pending = add_bundle(api, run_id, None, status="sent", expected=10, builders=["beaver"])
    with api.factory.begin() as s:
        repo.upsert_chain(s, 1, "mainnet")
        other = repo.start_run(s, 1, started_at=DAY2)
    (o_other,) = add_opportunities(api, other, 30, [10**30], at=DAY2)
    add_bundle(api, other, o_other, expected=10**30, realized=10**30, gas=1)
    return {
        "run": run_id,
        "other": other,
        "pending": pending,
        "big": big,
        "o1": o1,
        "loose": loose,
    }


def test_pnl_by_day(api: Harness, book: dict[str, int]) -> None:
    body = api.get("/api/v1/pnl").json()
    assert (body["group_by"], body["chain_id"], body["run_id"]) == ("day", 31337, None)
    assert body["rows"] == [
        _row(D1, 1, 1, 100, 90, 10),
        _row(D2, 4, 1, BIG, BIG - 21, 25),
    ]
    totals = dict(_row("", 5, 2, BIG + 100, BIG + 69, 35))
    del totals["key"]
    assert body["totals"] == totals
    # Block 10's two routes share their pools: only the better one (5) could be captured.
    assert body["opportunities"] == {
        "opportunities": 4,
        "expected_net_profit_wei": str(BIG + 9),
        "capturable_opportunities": 3,
        "capturable_net_profit_wei": str(BIG + 12),
        "by_day": [
            {
                "day": D1,
                "opportunities": 2,
                "expected_net_profit_wei": "2",
                "capturable_opportunities": 1,
                "capturable_net_profit_wei": "5",
            },
            {
                "day": D2,
                "opportunities": 2,
                "expected_net_profit_wei": str(BIG + 7),
                "capturable_opportunities": 2,
                "capturable_net_profit_wei": str(BIG + 7),
            },
        ],
    }


def test_pnl_by_route_and_builder(api: Harness, book: dict[str, int]) -> None:
    routes = api.get("/api/v1/pnl", group_by="route").json()["rows"]
    assert routes == [
        _row(A, 2, 2, BIG + 100, BIG + 89, 15),
        _row("-", 2, 0, 0, 0, 0),
        _row(B, 1, 0, 0, -20, 20),
    ]
    builders = api.get("/api/v1/pnl", group_by="builder").json()
    assert builders["rows"] == [
        _row("flashbots", 2, 2, BIG + 100, BIG + 89, 15),
        _row("titan", 2, 1, 100, 70, 30),
        _row("-", 1, 0, 0, 0, 0),
        _row("beaver", 1, 0, 0, 0, 0),
    ]
    assert builders["totals"]["bundles"] == 5  # each bundle once, whatever its builders
    top = api.get("/api/v1/pnl", group_by="route", limit=1).json()["rows"]
    assert [r["key"] for r in top] == [A]


def test_pnl_filters(api: Harness, book: dict[str, int]) -> None:
    day2 = api.get("/api/v1/pnl", since=D2).json()
    assert [r["key"] for r in day2["rows"]] == [D2]
    assert day2["totals"]["bundles"] == 4
    assert day2["opportunities"]["opportunities"] == 2
    assert day2["since"] == D2
    day1 = api.get("/api/v1/pnl", until=D1, group_by="builder").json()
    assert day1["rows"] == [_row("flashbots", 1, 1, 100, 90, 10), _row("titan", 1, 1, 100, 90, 10)]
    other = api.get("/api/v1/pnl", run_id=book["other"]).json()
    assert other["rows"] == [_row(D2, 1, 1, 10**30, 10**30, 1)]
    assert other["chain_id"] is None
    assert other["opportunities"]["expected_net_profit_wei"] == str(10**30)
    newest = api.get("/api/v1/pnl", limit=1).json()
    assert [r["key"] for r in newest["rows"]] == [D2]
    assert [d["day"] for d in newest["opportunities"]["by_day"]] == [D2]
    assert api.get("/api/v1/pnl", since="2030-01-01").json()["rows"] == []
    assert api.get("/api/v1/pnl", until="9999-12-31").json()["totals"]["bundles"] == 5


@pytest.mark.parametrize(
    ("params", "status", "message"),
    [
        ({"group_by": "hour"}, 422, "query parameter 'group_by'"),
        ({"since": "yesterday"}, 422, "query parameter 'since'"),
        ({"until": "2025-02-30"}, 422, "query parameter 'until'"),
        ({"since": "2025-03-02", "until": "2025-03-01"}, 400, "is after until"),
        ({"run_id": 0}, 422, "query parameter 'run_id'"),
        ({"limit": 1001}, 422, "query parameter 'limit'"),
    ],
)
def test_pnl_bad_input(api: Harness, params: dict[str, Any], status: int, message: str) -> None:
    refused = api.get("/api/v1/pnl", **params)
    assert refused.status_code == status
    assert message in first_line(refused)


def _snapshot(h: Harness) -> dict[str, Any]:
    with h.factory() as s:
        return {g: pnl_repo.pnl(s, g) for g in pnl_repo.GROUPS}


def test_aggregates_follow_every_change(api: Harness, book: dict[str, int]) -> None:
    with api.factory.begin() as s:
        xrepo.update_bundle_outcome(
            s, book["pending"], "included", gas_cost=3, realized_profit=8, included_block=102
        )
        s.execute(
            update(OpportunityRow).where(OpportunityRow.id == book["o1"]).values(net_profit=11)
        )
        s.execute(delete(TransactionRow).where(TransactionRow.bundle_id == book["big"]))
        s.execute(delete(BundleRow).where(BundleRow.id == book["big"]))
        s.execute(delete(OpportunityRow).where(OpportunityRow.id == book["loose"]))
    now = api.get("/api/v1/pnl", group_by="builder").json()
    assert now["rows"] == [
        _row("flashbots", 1, 1, 100, 90, 10),
        _row("titan", 2, 1, 100, 70, 30),
        _row("beaver", 1, 1, 10, 8, 3),
        _row("-", 1, 0, 0, 0, 0),
    ]
    assert now["totals"] == {
        "bundles": 4,
        "included": 2,
        "expected_net_profit_wei": "110",
        "realized_profit_wei": "78",
        "gas_cost_wei": "33",
    }
    assert now["opportunities"]["by_day"][0] == {
        "day": D1,
        "opportunities": 1,
        "expected_net_profit_wei": "11",
        "capturable_opportunities": 1,
        "capturable_net_profit_wei": "11",  # the flagged row's new profit (an UPDATE)
    }
    with api.factory.begin() as s:  # a flag cleared: the sums follow
        s.execute(
            update(OpportunityRow).where(OpportunityRow.id == book["o1"]).values(capturable=False)
        )
    day = api.get("/api/v1/pnl").json()["opportunities"]["by_day"][0]
    assert (day["capturable_opportunities"], day["capturable_net_profit_wei"]) == (0, "0")
    before = _snapshot(api)
    with api.factory.begin() as s:
        pnl_repo.rebuild_pnl(s)
    assert _snapshot(api) == before


def test_repository_refuses_bad_groups(api: Harness) -> None:
    with api.factory() as s:
        with pytest.raises(InputError, match="group_by"):
            pnl_repo.pnl(s, "week")
        with pytest.raises(InputError, match="after until"):
            pnl_repo.pnl(s, "day", since=NOW.date(), until=DAY1.date())
    assert pnl_repo.builder_labels(["x", None, 5, "x"]) == ["-", "5", "x"]
    assert pnl_repo.builder_labels("nonsense") == ["-"]
