"""Operator controls on SQLite and PostgreSQL: mode ceiling, limits and kill switch through the
API and the command line, what the engine reads back (``get_controls``), the audit trail (who,
when, what, from what to what), and bad input refused with a clear 4xx.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import delete, select

from arbx.api import create_app
from arbx.api.auth import revoked_after
from arbx.cli import api as commands
from arbx.cli.args import Parser
from arbx.domain.errors import ConfigError, InputError
from arbx.domain.limits import Limits
from arbx.store import api_repo, db
from arbx.store import risk_repo as rrepo
from arbx.store.models import AuditLog, KillSwitchRow
from tests.integration.api.support import (
    CHAIN,
    CONFIGURED_LIMITS,
    NOW,
    USDC,
    WETH,
    Harness,
    TestClient,
    first_line,
)

pytestmark = pytest.mark.integration

LIMITS = {
    "max_input": {WETH: "500000000000000000", "*": 5},
    "daily_gas_cap_wei": str(2 * 10**16),
    "daily_loss_cap_wei": 7,
    "max_consecutive_failures": 4,
    "reason": "tighter for the weekend",
}


@dataclass(frozen=True)
class _Entry:
    """An audit row as the tests read it (its JSON columns are whatever the API stored)."""

    actor: str
    action: str
    at: datetime
    before_json: Any
    after_json: Any


def _audit(h: Harness) -> list[_Entry]:
    with h.factory() as s:
        rows = s.scalars(select(AuditLog).order_by(AuditLog.id))
        return [_Entry(r.actor, r.action, r.at, r.before_json, r.after_json) for r in rows]


# --- mode -------------------------------------------------------------------------------------


def test_mode_set_read_and_cleared(api: Harness) -> None:
    before = api.get("/api/v1/mode").json()
    assert (before["mode"], before["source"], before["effective_mode"]) == (
        "limited",
        "configured",
        "shadow",
    )
    api.now[0] = NOW + timedelta(minutes=1)
    changed = api.send("PUT", "/api/v1/mode", {"mode": "shadow", "reason": "relay outage"})
    assert changed.status_code == 200
    assert changed.json()["mode"] == "shadow"
    assert changed.json()["source"] == "api"
    assert changed.json()["updated_by"] == "api:ops"
    with api.factory() as s:
        controls = api_repo.get_controls(s, CHAIN)
    assert controls is not None
    assert controls.ceiling_or("scaled") == "shadow"
    assert controls.limits_or(CONFIGURED_LIMITS) == CONFIGURED_LIMITS
    (entry,) = _audit(api)
    assert (entry.actor, entry.action, entry.at) == ("api:ops", "set_mode", api.now[0])
    assert entry.before_json["mode_ceiling"] is None
    assert entry.after_json["mode_ceiling"] == "shadow"
    assert entry.after_json["reason"] == "relay outage"
    assert api.get("/api/v1/status").json()["mode_ceiling"] == "shadow"
    cleared = api.send("PUT", "/api/v1/mode", {"mode": None, "reason": None})
    assert (cleared.json()["mode"], cleared.json()["source"]) == ("limited", "configured")
    assert _audit(api)[-1].before_json["mode_ceiling"] == "shadow"


def test_mode_above_the_configured_one_is_refused_and_audited(api: Harness) -> None:
    refused = api.send("PUT", "/api/v1/mode", {"mode": "scaled", "reason": "more capital"})
    assert refused.status_code == 409
    assert first_line(refused) == (
        "mode ceiling scaled is above the configured mode limited: operators can only lower it "
        "(change the settings to raise it)"
    )
    with api.factory() as s:
        assert api_repo.get_controls(s, CHAIN) is None  # nothing changed
    (entry,) = _audit(api)
    assert (entry.actor, entry.action) == ("api:ops", "refuse_set_mode")
    assert entry.after_json["requested"] == "scaled"
    assert entry.after_json["reason"] == "more capital"
    assert api.send("PUT", "/api/v1/mode", {"mode": "limited"}).status_code == 200
    # A ceiling stored above the settings (they were lowered since) is not the one in force.
    with api.factory.begin() as s:
        api_repo.set_controls(s, CHAIN, actor="cli:old", mode_ceiling="scaled")
    with api.factory() as s:
        controls = api_repo.get_controls(s, CHAIN)
    assert controls is not None
    assert controls.ceiling_or("limited") == "limited"
    shown = api.get("/api/v1/mode").json()
    assert (shown["mode"], shown["source"]) == ("limited", "configured")
    assert api.get("/api/v1/status").json()["mode_ceiling"] == "limited"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"mode": "yolo", "reason": "x"}, "body field 'mode'"),
        ({"reason": "x"}, "body field 'mode' is required"),
        ({"mode": "shadow", "reason": "a\x00b"}, "control characters"),
        ({"mode": "shadow", "reason": "x" * 1025}, "body field 'reason'"),
        ({"mode": "shadow", "extra": 1}, "body field 'extra'"),
        (["shadow"], "request body"),
    ],
)
def test_mode_bad_input(api: Harness, body: Any, message: str) -> None:
    refused = api.send("PUT", "/api/v1/mode", body)
    assert refused.status_code == 422
    assert message in first_line(refused)
    assert _audit(api) == []


def test_controls_need_a_chain(api_engine: Any) -> None:
    app = create_app(db.make_session_factory(api_engine))  # no chain, no engine yet
    with api_engine.begin() as conn:
        conn.execute(delete(KillSwitchRow))
    with db.make_session_factory(api_engine).begin() as s:
        token = api_repo.add_token(s, "lonely", "operator")
    headers = {"Authorization": f"Bearer {token}"}
    with TestClient(app) as client:
        refused = client.put("/api/v1/mode", json={"mode": "shadow"}, headers=headers)
        assert refused.status_code == 409
        assert "no chain known yet" in refused.json()["detail"]
        assert client.get("/api/v1/limits", headers=headers).status_code == 409
        assert client.post("/api/v1/kill", json={"reason": "x"}, headers=headers).status_code == 409
        everywhere = client.post(
            "/api/v1/kill", json={"reason": "x", "all_chains": True}, headers=headers
        )
        assert everywhere.json()["chain_id"] == 0
        assert everywhere.json()["engaged"] is True
        assert (
            client.post("/api/v1/unkill", json={"all_chains": True}, headers=headers).json()[
                "engaged"
            ]
            is False
        )


# --- limits -----------------------------------------------------------------------------------


def test_limits_replace_read_and_clear(api: Harness) -> None:
    configured = api.get("/api/v1/limits").json()
    assert configured["source"] == "configured"
    assert configured["max_input"] == {"*": str(10**18)}
    saved = api.send("PUT", "/api/v1/limits", LIMITS)
    assert saved.status_code == 200, saved.text
    body = saved.json()
    assert body["source"] == "api"
    assert body["max_input"] == {"*": "5", WETH: "500000000000000000"}
    assert body["daily_gas_cap_wei"] == str(2 * 10**16)
    assert body["daily_loss_cap_wei"] == "7"
    assert body["max_consecutive_failures"] == 4
    assert api.get("/api/v1/limits").json() == body
    with api.factory() as s:
        controls = api_repo.get_controls(s, CHAIN)
    assert controls is not None
    assert controls.limits_or(CONFIGURED_LIMITS) == Limits(
        max_input={"*": 5, WETH: 5 * 10**17},
        daily_gas_cap_wei=2 * 10**16,
        daily_loss_cap_wei=7,
        max_consecutive_failures=4,
    )
    assert controls.ceiling_or("limited") == "limited"  # the mode was not touched
    entry = _audit(api)[-1]
    assert (entry.action, entry.before_json["limits"]) == ("set_limits", None)
    assert entry.after_json["limits"]["daily_gas_cap_wei"] == str(2 * 10**16)
    assert entry.after_json["reason"] == "tighter for the weekend"
    lower = api.send("PUT", "/api/v1/limits", {**LIMITS, "max_input": {WETH.lower(): "1"}})
    assert lower.json()["max_input"] == {WETH: "1"}  # lower case accepted, stored checksummed
    cleared = api.send("DELETE", "/api/v1/limits")
    assert cleared.json()["source"] == "configured"
    assert _audit(api)[-1].after_json["limits"] is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"max_input": {WETH: str(2 * 10**18)}},
            f"input cap 2000000000000000000 for {WETH.lower()}",
        ),
        ({"max_input": {"*": str(10**18 + 1)}}, "for any base token ('*') is above the configured"),
        ({"daily_gas_cap_wei": str(2**100)}, f"daily_gas_cap_wei {2**100} is above the configured"),
        ({"daily_loss_cap_wei": str(10**17 + 1)}, "daily_loss_cap_wei"),
        ({"max_consecutive_failures": 6}, "max_consecutive_failures 6 is above the configured 5"),
    ],
)
def test_limits_above_the_configured_ones_are_refused_and_audited(
    api: Harness, change: dict[str, Any], message: str
) -> None:
    refused = api.send("PUT", "/api/v1/limits", {**LIMITS, **change})
    assert refused.status_code == 409, refused.text
    assert message in first_line(refused)
    with api.factory() as s:
        assert api_repo.get_controls(s, CHAIN) is None
    (entry,) = _audit(api)
    assert (entry.actor, entry.action) == ("api:ops", "refuse_set_limits")
    assert message in entry.after_json["refused"]


@pytest.mark.parametrize(
    ("change", "status", "message"),
    [
        ({"daily_gas_cap_wei": "0"}, 422, "body field 'daily_gas_cap_wei'"),
        ({"daily_loss_cap_wei": -1}, 422, "between 1 and 2^256 - 1"),
        ({"daily_loss_cap_wei": "1e18"}, 422, "decimal digits"),
        ({"daily_gas_cap_wei": str(2**256)}, 422, "between 1 and 2^256 - 1"),
        ({"daily_gas_cap_wei": True}, 422, "not a boolean"),
        ({"daily_gas_cap_wei": 1.5}, 422, "whole number"),
        ({"max_consecutive_failures": 0}, 422, "body field 'max_consecutive_failures'"),
        ({"max_consecutive_failures": "3"}, 422, "body field 'max_consecutive_failures'"),
        ({"max_input": {WETH: "0"}}, 422, "body field 'max_input."),
        ({"max_input": {"0x1234": "1"}}, 400, "neither a 0x-prefixed address nor '*'"),
        ({"max_input": {"0xc02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2": "1"}}, 400, "EIP-55"),
        ({"max_input": []}, 422, "body field 'max_input'"),
        ({"daily_gas_cap_wei": None}, 422, "body field 'daily_gas_cap_wei'"),
        ({"surprise": 1}, 422, "body field 'surprise'"),
    ],
)
def test_limits_bad_input(api: Harness, change: dict[str, Any], status: int, message: str) -> None:
    refused = api.send("PUT", "/api/v1/limits", {**LIMITS, **change})
    assert refused.status_code == status, refused.text
    assert message in first_line(refused)
    missing = api.send("PUT", "/api/v1/limits", {"max_input": {}})
    assert missing.status_code == 422
    assert "is required" in first_line(missing)
    assert _audit(api) == []


# --- kill switch ------------------------------------------------------------------------------


def test_kill_and_unkill_through_the_api(api: Harness) -> None:
    engaged = api.send("POST", "/api/v1/kill", {"reason": "relay misbehaving"})
    assert engaged.status_code == 200
    assert engaged.json() == {
        "chain_id": CHAIN,
        "engaged": True,
        "reason": "relay misbehaving",
        "actor": "api:ops",
        "updated_at": "2025-03-02T12:00:00Z",
    }
    with api.factory() as s:
        assert rrepo.get_kill_switch(s, CHAIN).engaged
    assert api.get("/api/v1/status").json()["kill_switch"]["engaged"] is True
    released = api.send("POST", "/api/v1/unkill", None)
    assert released.status_code == 200
    assert released.json()["engaged"] is False
    kill_entry, unkill_entry = _audit(api)
    assert (kill_entry.action, kill_entry.actor) == ("kill", "api:ops")
    assert kill_entry.before_json["engaged"] is False
    assert kill_entry.after_json["engaged"] is True
    assert (unkill_entry.action, unkill_entry.before_json["engaged"]) == ("unkill", True)


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        ("/api/v1/kill", {}, "body field 'reason' is required"),
        ("/api/v1/kill", None, "request body is required"),
        ("/api/v1/kill", {"reason": "   "}, "body field 'reason'"),
        ("/api/v1/kill", {"reason": "x", "all_chains": "maybe"}, "body field 'all_chains'"),
        ("/api/v1/unkill", {"reason": 5}, "body field 'reason'"),
        ("/api/v1/unkill", {"who": "me"}, "body field 'who'"),
    ],
)
def test_kill_switch_bad_input(api: Harness, path: str, body: Any, message: str) -> None:
    refused = api.send("POST", path, body)
    assert refused.status_code == 422
    assert message in first_line(refused)
    assert _audit(api) == []


# --- the command line -------------------------------------------------------------------------


def _cli(argv: list[str]) -> int:
    parser = Parser(prog="arbx")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    commands.register(sub)
    args = parser.parse_args(argv)
    code: int = args.handler(args)
    return code


def test_mode_and_limits_from_the_command_line(
    api: Harness, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ARBX_DATABASE_URL", api.engine.url.render_as_string(hide_password=False))
    monkeypatch.setenv("ARBX_MODE", "limited")
    assert _cli(["mode", "set", "limited", "--reason", "cli test"]) == 0
    assert "mode ceiling limited (set by cli:" in capsys.readouterr().out
    assert api.get("/api/v1/mode").json()["updated_by"].startswith("cli:")
    assert (
        _cli(["limits", "set", "--max-input", f"{USDC}=1000000", "--daily-loss-cap-wei", "9"]) == 0
    )
    assert f"max input {USDC}: 1000000" in capsys.readouterr().out
    limits = api.get("/api/v1/limits").json()
    assert limits["max_input"] == {USDC: "1000000"}
    assert limits["daily_loss_cap_wei"] == "9"
    assert limits["daily_gas_cap_wei"] == str(5 * 10**16)  # kept from the settings' defaults
    assert _cli(["limits", "clear"]) == 0
    assert _cli(["mode", "clear"]) == 0
    assert "(configured)" in capsys.readouterr().out
    actions = [(e.action, e.actor.split(":")[0]) for e in _audit(api)]
    assert actions == [
        ("set_mode", "cli"),
        ("set_limits", "cli"),
        ("set_limits", "cli"),
        ("set_mode", "cli"),
    ]
    with pytest.raises(InputError, match="EIP-55"):
        _cli(["limits", "set", "--max-input", "0xc02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2=1"])
    with pytest.raises(InputError, match="max_consecutive_failures must be between 1"):
        _cli(["limits", "set", "--max-consecutive-failures", "0"])
    with pytest.raises(ConfigError, match="TOKEN=AMOUNT"):
        _cli(["limits", "set", "--max-input", "oops"])
    with pytest.raises(SystemExit):
        _cli(["mode", "set", "yolo"])


def test_the_command_line_cannot_raise_the_mode_or_the_limits(
    api: Harness, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ARBX_DATABASE_URL", api.engine.url.render_as_string(hide_password=False))
    monkeypatch.setenv("ARBX_MODE", "limited")
    monkeypatch.setenv("ARBX_RISK__MAX_INPUT", f'{{"{WETH}": 1000}}')
    with pytest.raises(api_repo.ControlRefusedError, match="above the configured mode limited"):
        _cli(["mode", "set", "scaled", "--reason", "more"])
    with pytest.raises(api_repo.ControlRefusedError, match="daily_gas_cap_wei"):
        _cli(["limits", "set", "--daily-gas-cap-wei", str(5 * 10**16 + 1)])
    with pytest.raises(api_repo.ControlRefusedError, match="input cap 1001 for"):
        _cli(["limits", "set", "--max-input", f"{WETH}=1001"])
    assert _cli(["limits", "set", "--max-input", f"{WETH}=999"]) == 0
    assert f"max input {WETH}: 999" in capsys.readouterr().out
    refusals = [(e.action, e.after_json.get("refused", "")[:20]) for e in _audit(api)]
    assert [a for a, _ in refusals] == [
        "refuse_set_mode",
        "refuse_set_limits",
        "refuse_set_limits",
        "set_limits",
    ]
    with api.factory() as s:
        controls = api_repo.get_controls(s, CHAIN)
    assert controls is not None
    assert controls.mode_ceiling is None


def test_the_runs_token_is_revoked_when_the_run_ends_even_on_error(api: Harness) -> None:
    with api.factory.begin() as s:
        token = api_repo.add_token(s, "run-7-abc123", "operator")
    headers = {"Authorization": f"Bearer {token}"}
    assert api.client.get("/api/v1/mode", headers=headers).status_code == 200

    async def crashing_server() -> None:
        raise RuntimeError("the engine died")

    with pytest.raises(RuntimeError, match="the engine died"):
        asyncio.run(revoked_after(crashing_server(), api.factory, "run-7-abc123"))
    refused = api.client.get("/api/v1/mode", headers=headers)
    assert refused.status_code == 401
    with api.factory.begin() as s:
        token = api_repo.add_token(s, "run-8-abc123", "operator")

    async def stopped_server() -> int:
        return 3

    assert asyncio.run(revoked_after(stopped_server(), api.factory, "run-8-abc123")) == 3
    assert (
        api.client.get("/api/v1/mode", headers={"Authorization": f"Bearer {token}"}).status_code
        == 401
    )
