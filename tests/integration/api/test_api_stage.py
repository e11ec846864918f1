"""``GET /api/v1/stage`` on SQLite and PostgreSQL: the stage, the next one, each gate condition
and the stage changes with their evidence; alerts from the app's source; bad input refused."""

from __future__ import annotations

from datetime import timedelta

import pytest

from arbx.api import create_app
from arbx.domain.stages import Alerts
from arbx.store import repo
from arbx.store import risk_repo as rrepo
from tests.integration.api.support import (
    CHAIN,
    NOW,
    WETH,
    Harness,
    TestClient,
    add_opportunities,
    add_run,
    first_line,
)

pytestmark = pytest.mark.integration

KEY = "0x" + "ab" * 20


def test_stage_before_any_live_start_counts_nothing_yet(api: Harness) -> None:
    body = api.get("/api/v1/stage").json()
    assert (body["chain_id"], body["key"], body["entered_at"]) == (CHAIN, None, None)
    assert body["stage"] == {"index": 0, "name": "shadow", "mode": "shadow", "max_input": {}}
    assert body["next"]["name"] == "limited 0.1"
    assert body["ceiling"] == "limited"
    assert "the shadow stage's gate counts from its first start" in body["note"]
    assert body["needs"][0] == "blocks observed >= 7200 (now 0)"
    assert (body["gate_passed"], body["history"]) == (False, [])


def test_stage_shows_measured_conditions_and_the_evidence_of_promotions(api: Harness) -> None:
    run_id = add_run(api)
    entered = NOW - timedelta(hours=2)
    with api.factory.begin() as s:
        rrepo.set_risk_state(
            s, CHAIN, KEY, mode="limited", stage=1, stage_entered_at=entered, reason="promoted"
        )
        rrepo.append_stage_history(
            s, CHAIN, KEY, from_stage=0, to_stage=1, kind="promotion", reason="gate passed",
            evidence={"conditions": [{"name": "blocks observed", "measured": "7300"}]}, at=entered,
        )  # fmt: skip
        rrepo.append_stage_history(
            s, CHAIN, KEY, from_stage=1, to_stage=1, kind="breach", reason="gas", at=entered
        )
        for number in range(3):
            header = repo.BlockHeader(CHAIN, 50 + number, f"0x{number:064x}", "0x" + "0" * 64, 1)
            repo.record_block(s, header, NOW - timedelta(minutes=5), run_id=run_id)
            repo.add_parity_check(s, run_id, 50 + number, 4, 0, at=NOW - timedelta(minutes=5))
    add_opportunities(api, run_id, 50, [5], at=NOW - timedelta(minutes=5))
    body = api.get("/api/v1/stage").json()
    assert body["key"] == KEY
    assert (body["stage"]["index"], body["next"]["index"]) == (1, 2)
    assert body["entered_at"].startswith(entered.isoformat()[:19])
    measured = {c["name"]: (c["measured"], c["passed"]) for c in body["conditions"]}
    assert measured["blocks observed"] == ("3", False)
    assert measured["parity checks"] == ("3", False)
    assert measured["parity failures"] == ("0", True)
    assert measured["detection latency p99"] == ("12.5 ms over 1 blocks", True)
    assert measured["arbx alerts"] == ("not checked", True)
    assert measured["bundles included"] == ("0", False)
    assert measured["caps breached"][1] is False  # the breach is within the quiet hours
    assert [h["kind"] for h in body["history"]] == ["promotion"]  # breaches are not changes
    assert body["history"][0]["evidence"]["conditions"][0]["measured"] == "7300"
    assert body["decision"]["action"] == "stay"
    assert body["ceiling"] == "limited"

    # An alert firing in the app's source shows in the gate (a second app on the same store).
    app = create_app(
        api.factory,
        chain_id=CHAIN,
        configured_mode="limited",
        clock=lambda: NOW,
        alerts=lambda: Alerts(checked=True, firing=("ArbxSyncLag",)),
    )
    with TestClient(app) as client:
        got = client.get("/api/v1/stage", headers=api.auth("viewer")).json()
    alerts = next(c for c in got["conditions"] if c["name"] == "arbx alerts")
    assert (alerts["measured"], alerts["passed"]) == ("firing: ArbxSyncLag", False)


def test_stage_refuses_bad_input_with_one_line(api: Harness) -> None:
    with api.factory.begin() as s:
        for key in (KEY, WETH):
            rrepo.set_risk_state(
                s, CHAIN, key, mode="shadow", stage=0, stage_entered_at=NOW, reason=None
            )
    several = api.get("/api/v1/stage")
    assert several.status_code == 400
    assert "2 keys have a stage on chain 31337" in first_line(several)
    assert api.get("/api/v1/stage", key=KEY).json()["key"] == KEY
    assert api.get("/api/v1/stage", key="0x12").status_code == 422
    assert api.get("/api/v1/stage", role=None).status_code == 401
