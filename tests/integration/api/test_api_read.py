"""Read endpoints on SQLite and PostgreSQL: status, readiness, opportunities, bundles, pools and
the audit log; success with exact amounts and keyset paging, and bad input refused with a
clear 4xx (missing credentials: ``test_api_auth.py``).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from arbx.api import create_app
from arbx.domain.pools import Token
from arbx.risk.killswitch import kill
from arbx.store import api_repo, db, repo
from arbx.store import risk_repo as rrepo
from tests.integration.api.support import (
    BIG,
    CHAIN,
    DAI,
    NOW,
    POOL_A,
    POOL_B,
    POOL_C,
    ROUTE_A,
    ROUTE_B,
    USDC,
    WETH,
    Harness,
    TestClient,
    add_bundle,
    add_opportunities,
    add_run,
    first_line,
    ids,
)

pytestmark = pytest.mark.integration


# --- status and health ------------------------------------------------------------------------


def test_status_before_the_engine_ever_ran(api: Harness) -> None:
    body = api.get("/api/v1/status").json()
    assert body["mode"] == "shadow"
    assert (body["mode_ceiling"], body["mode_ceiling_source"]) == ("limited", "configured")
    assert (body["stage"], body["stage_name"]) == (0, "shadow")
    assert body["kill_switch"]["engaged"] is False
    assert body["chain_id"] == CHAIN
    assert body["head_block"] is body["heartbeat_age_s"] is body["run_id"] is None


def test_status_reports_heartbeat_lag_stage_and_kill_switch(api: Harness) -> None:
    run_id = add_run(api)
    with api.factory.begin() as s:
        api_repo.beat(s, CHAIN, run_id=run_id, head_block=120, synced_block=117, at=NOW)
        rrepo.set_risk_state(
            s, CHAIN, WETH, mode="limited", stage=1, stage_entered_at=NOW, reason="promoted"
        )
    kill(api.factory, CHAIN, "too hot", "cli:alice", at=NOW)
    api.now[0] = NOW + timedelta(seconds=4.5)
    body = api.get("/api/v1/status").json()
    assert (body["head_block"], body["synced_block"], body["sync_lag_blocks"]) == (120, 117, 3)
    assert body["heartbeat_age_s"] == 4.5
    assert (body["run_id"], body["run_status"]) == (run_id, "running")
    assert (body["mode"], body["stage"], body["stage_name"]) == ("limited", 1, "limited 0.1")
    assert body["risk_reason"] == "promoted"
    assert body["kill_switch"] == {
        "chain_id": CHAIN,
        "engaged": True,
        "reason": "too hot",
        "actor": "cli:alice",
        "updated_at": "2025-03-02T12:00:00Z",
    }


def test_status_refuses_other_methods(api: Harness) -> None:
    refused = api.send("POST", "/api/v1/status", {})
    assert refused.status_code == 405
    assert "not allowed" in first_line(refused)


def test_readyz_checks_the_heartbeat(api: Harness) -> None:
    assert api.client.get("/healthz").json() == {"status": "ok"}
    missing = api.client.get("/readyz")
    assert missing.status_code == 503
    assert missing.json()["detail"] == "no engine heartbeat recorded yet"
    with api.factory.begin() as s:
        api_repo.beat(s, CHAIN, run_id=None, head_block=5, synced_block=5, at=NOW)
    api.now[0] = NOW + timedelta(seconds=2)
    ready = api.client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["heartbeat_age_s"] == 2.0
    assert ready.json()["database"] == "ok"
    api.now[0] = NOW + timedelta(seconds=95)
    stale = api.client.get("/readyz")
    assert stale.status_code == 503
    assert stale.json()["detail"] == "engine heartbeat is 95.0 s old (limit 30 s)"


def test_the_dashboard_is_served_at_the_root(api: Harness, tmp_path: Path) -> None:
    (tmp_path / "index.html").write_text("<h1>arbx</h1>", encoding="utf-8")
    app = create_app(api.factory, chain_id=CHAIN, static_dir=tmp_path)
    with TestClient(app) as client:
        page = client.get("/")
        missing = client.get("/api/v1/nothing", headers=api.auth("viewer"))
        schema = client.get("/openapi.json")
    assert (page.status_code, page.text) == (200, "<h1>arbx</h1>")
    assert missing.status_code == 404
    assert first_line(missing) == "no such endpoint: GET /api/v1/nothing"
    assert schema.json()["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"


def test_readyz_fails_when_the_database_is_down() -> None:
    url = "postgresql+psycopg://opsuser:pa55word@127.0.0.1:1/none?connect_timeout=2"
    engine = db.make_engine(url)
    app = create_app(db.make_session_factory(engine), chain_id=CHAIN)
    with TestClient(app) as client:
        down = client.get("/readyz")
        assert client.get("/healthz").status_code == 200
        token_check = client.get("/api/v1/status", headers={"Authorization": "Bearer x"})
    assert down.status_code == 503
    assert down.json()["database"] == "unreachable: connection refused"
    assert down.json()["detail"] == "the database is down"
    assert token_check.status_code == 503
    assert first_line(token_check) == "database unavailable: connection refused"
    for answer in (down, token_check):  # no host, port, user or password in an answer
        for word in ("127.0.0.1", "opsuser", "pa55word", ":1", "none"):
            assert word not in answer.text, (word, answer.text)


# --- opportunities ----------------------------------------------------------------------------


@pytest.fixture
def opportunities(api: Harness) -> dict[str, list[int]]:
    """Two runs: run 1 blocks 10 and 11 on route A, run 2 block 12 on route B."""
    r1, r2 = add_run(api), add_run(api)
    return {
        "b10": add_opportunities(api, r1, 10, [5, -3]),
        "b11": add_opportunities(api, r1, 11, [BIG]),
        "b12": add_opportunities(api, r2, 12, [7, 8, 9], route=ROUTE_B),
        "runs": [r1, r2],
    }


def test_opportunities_page_newest_first_with_exact_amounts(
    api: Harness, opportunities: dict[str, list[int]]
) -> None:
    every = sorted(opportunities["b10"] + opportunities["b11"] + opportunities["b12"])
    first = api.get("/api/v1/opportunities", limit=4)
    assert first.status_code == 200
    body = first.json()
    assert ids(first) == every[::-1][:4]
    assert body["next_before_id"] == body["next_after_id"] == every[::-1][3]
    second = api.get("/api/v1/opportunities", limit=4, before_id=body["next_before_id"])
    assert ids(second) == every[::-1][4:]
    assert second.json()["next_before_id"] is None
    alias = api.get("/api/v1/opportunities", limit=4, after_id=body["next_after_id"])
    assert ids(alias) == ids(second)
    big = next(i for i in body["items"] if i["id"] == opportunities["b11"][0])
    assert big["net_profit"] == str(BIG)
    assert big["gross_profit"] == str(BIG + 1_007)
    assert big["amount_in"] == str(10**18)
    assert big["pools"] == [POOL_A, POOL_B]
    assert big["tokens"] == [WETH, USDC, WETH]
    assert big["route_key"] == repo.route_key(ROUTE_A)
    assert big["detected_at"] == "2025-03-02T12:00:00Z"


def test_opportunities_filters(api: Harness, opportunities: dict[str, list[int]]) -> None:
    r1, r2 = opportunities["runs"]
    assert sorted(ids(api.get("/api/v1/opportunities", run_id=r2))) == opportunities["b12"]
    assert sorted(ids(api.get("/api/v1/opportunities", block=10))) == opportunities["b10"]
    by_route = api.get("/api/v1/opportunities", route=repo.route_key(ROUTE_B))
    assert sorted(ids(by_route)) == opportunities["b12"]
    rich = api.get("/api/v1/opportunities", min_net_profit="8")
    assert sorted(ids(rich)) == sorted([*opportunities["b11"], *opportunities["b12"][1:]])
    negative = api.get("/api/v1/opportunities", min_net_profit="-3", run_id=r1, block=10)
    assert sorted(ids(negative)) == opportunities["b10"]
    assert ids(api.get("/api/v1/opportunities", min_net_profit=str(BIG + 1))) == []
    assert ids(api.get("/api/v1/opportunities", run_id=r1, block=12)) == []
    assert ids(api.get("/api/v1/opportunities", run_id=r2, route=repo.route_key(ROUTE_A))) == []


def test_pages_within_a_run_and_a_route(api: Harness, opportunities: dict[str, list[int]]) -> None:
    r1, r2 = opportunities["runs"]
    b12 = opportunities["b12"]
    first = api.get("/api/v1/opportunities", run_id=r2, limit=2)
    assert ids(first) == b12[::-1][:2]
    rest = api.get("/api/v1/opportunities", run_id=r2, before_id=first.json()["next_before_id"])
    assert ids(rest) == b12[:1]
    route_a = sorted(opportunities["b10"] + opportunities["b11"])[::-1]
    page = api.get("/api/v1/opportunities", route=repo.route_key(ROUTE_A), limit=2)
    assert ids(page) == route_a[:2]
    older = api.get(
        "/api/v1/opportunities",
        route=repo.route_key(ROUTE_A),
        run_id=r1,
        before_id=page.json()["next_before_id"],
    )
    assert ids(older) == route_a[2:]
    assert older.json()["next_before_id"] is None


@pytest.mark.parametrize(
    ("params", "status", "message"),
    [
        ({"limit": 0}, 422, "query parameter 'limit'"),
        ({"limit": 501}, 422, "less than or equal to 500"),
        ({"before_id": 0}, 422, "query parameter 'before_id'"),
        ({"before_id": "abc"}, 422, "valid integer"),
        ({"before_id": 5, "after_id": 6}, 400, "not both"),
        ({"run_id": 2**63}, 422, "query parameter 'run_id'"),
        ({"block": -1}, 422, "query parameter 'block'"),
        ({"min_net_profit": "1.5"}, 422, "query parameter 'min_net_profit'"),
        ({"min_net_profit": str(2**255)}, 400, "between -2^255 and 2^255 - 1"),
        ({"route": "a\x00b"}, 422, "query parameter 'route'"),
        ({"route": "x" * 1025}, 422, "query parameter 'route'"),
    ],
)
def test_opportunities_bad_input(
    api: Harness, params: dict[str, Any], status: int, message: str
) -> None:
    refused = api.get("/api/v1/opportunities", **params)
    assert refused.status_code == status
    assert message in first_line(refused)


# --- bundles ----------------------------------------------------------------------------------


def test_bundles_list_filter_and_detail(api: Harness) -> None:
    run_id = add_run(api)
    (opp,) = add_opportunities(api, run_id, 10, [100])
    included = add_bundle(api, run_id, opp, status="included", expected=BIG, realized=-(2**70))
    lost = add_bundle(api, run_id, opp, status="not_included", realized=None, gas=None)
    waiting = add_bundle(api, run_id, None, status="sent", txs=2)
    assert ids(api.get("/api/v1/bundles")) == [waiting, lost, included]
    assert ids(api.get("/api/v1/bundles", status="included")) == [included]
    page = api.get("/api/v1/bundles", limit=2).json()
    assert page["next_before_id"] == lost
    assert ids(api.get("/api/v1/bundles", before_id=lost)) == [included]
    detail = api.get(f"/api/v1/bundles/{included}").json()
    assert detail["expected_net_profit"] == str(BIG)
    assert detail["realized_profit"] == str(-(2**70))
    assert (detail["status"], detail["included_block"], detail["gas_cost"]) == (
        "included",
        101,
        "10",
    )
    assert detail["builders"] == ["flashbots", "titan"]
    assert detail["opportunity_id"] == opp
    assert [t["max_fee"] for t in detail["transactions"]] == [str(BIG)]
    open_one = api.get(f"/api/v1/bundles/{waiting}").json()
    assert (open_one["status"], open_one["settled_at"], open_one["realized_profit"]) == (
        "sent",
        None,
        None,
    )
    assert [t["nonce"] for t in open_one["transactions"]] == [0, 1]


@pytest.mark.parametrize(
    ("path", "params", "status", "message"),
    [
        ("/api/v1/bundles", {"status": "won"}, 422, "query parameter 'status'"),
        ("/api/v1/bundles", {"limit": 1000}, 422, "query parameter 'limit'"),
        ("/api/v1/bundles", {"run_id": 0}, 422, "query parameter 'run_id'"),
        ("/api/v1/bundles/999", {}, 404, "no bundle 999"),
        ("/api/v1/bundles/0", {}, 422, "path parameter 'bundle_id'"),
        ("/api/v1/bundles/abc", {}, 422, "path parameter 'bundle_id'"),
    ],
)
def test_bundles_bad_input(
    api: Harness, path: str, params: dict[str, Any], status: int, message: str
) -> None:
    refused = api.get(path, **params)
    assert refused.status_code == status
    assert message in first_line(refused)


# --- pools ------------------------------------------------------------------------------------


def test_pools_page_by_address_with_symbols(api: Harness) -> None:
    with api.factory.begin() as s:
        repo.upsert_tokens(s, CHAIN, [Token(WETH, "WETH", 18), Token(USDC, "USDC", 6)])
        repo.upsert_pools(
            s,
            [
                repo.PoolRecord(CHAIN, POOL_C, "uniswap_v3", WETH, DAI, 500, 10),
                repo.PoolRecord(CHAIN, POOL_A, "uniswap_v2", WETH, USDC, 30, venue="uni"),
                repo.PoolRecord(CHAIN, POOL_B, "uniswap_v3", USDC, WETH, 3000, 60),
            ],
        )
    first = api.get("/api/v1/pools", limit=2).json()
    assert [p["address"] for p in first["items"]] == [POOL_A, POOL_B]
    assert first["next_after"] == POOL_B
    assert first["items"][0]["token0_symbol"] == "WETH"
    assert first["items"][0]["venue"] == "uni"
    rest = api.get("/api/v1/pools", limit=2, after=first["next_after"]).json()
    assert [p["address"] for p in rest["items"]] == [POOL_C]
    assert rest["next_after"] is None
    v3 = api.get("/api/v1/pools", family="uniswap_v3").json()["items"]
    assert [(p["address"], p["fee"], p["tick_spacing"]) for p in v3] == [
        (POOL_B, 3000, 60),
        (POOL_C, 500, 10),
    ]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"family": "curve"}, "query parameter 'family'"),
        ({"after": "0x1234"}, "query parameter 'after'"),
        ({"limit": 0}, "query parameter 'limit'"),
    ],
)
def test_pools_bad_input(api: Harness, params: dict[str, Any], message: str) -> None:
    refused = api.get("/api/v1/pools", **params)
    assert refused.status_code == 422
    assert message in first_line(refused)


# --- audit ------------------------------------------------------------------------------------


def test_audit_lists_changes_newest_first(api: Harness) -> None:
    assert api.send("POST", "/api/v1/kill", {"reason": "first"}).status_code == 200
    assert api.send("PUT", "/api/v1/mode", {"mode": "shadow", "reason": "calm"}).status_code == 200
    assert api.send("POST", "/api/v1/unkill", {"reason": "ok"}).status_code == 200
    page = api.get("/api/v1/audit", limit=2).json()
    assert [e["action"] for e in page["items"]] == ["unkill", "set_mode"]
    assert page["items"][1]["actor"] == "api:ops"
    assert page["items"][1]["before"]["mode_ceiling"] is None
    assert page["items"][1]["after"] | {"limits": None} == {
        "chain_id": CHAIN,
        "mode_ceiling": "shadow",
        "limits": None,
        "reason": "calm",
    }
    older = api.get("/api/v1/audit", before_id=page["next_before_id"]).json()
    assert [e["action"] for e in older["items"]] == ["kill"]
    assert older["items"][0]["after"]["reason"] == "first"
    refused = api.get("/api/v1/audit", limit=501)
    assert refused.status_code == 422
    assert "query parameter 'limit'" in first_line(refused)
