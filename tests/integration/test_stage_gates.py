"""The stage gates on the store (SQLite and PostgreSQL): what the engines observed at a stage,
the controller promoting out of shadow by itself once the gate passes (evidence stored with the
promotion), and ``arbx stage status`` showing the same conditions."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from arbx.cli import main
from arbx.domain.limits import Limits
from arbx.domain.profit import Opportunity
from arbx.domain.routes import Route
from arbx.domain.stages import Alerts, PromotionRule, default_schedule
from arbx.risk.controller import RiskController
from arbx.risk.signer_lock import SignerLock
from arbx.store import repo
from arbx.store import risk_repo as rrepo

pytestmark = pytest.mark.integration

CHAIN = 31337
KEY = "0x00000000000000000000000000000000000000Aa"
WETH = "0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2"
USDC = "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48"
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
GATE = PromotionRule(min_blocks=4, min_parity_checks=2, max_latency_p99_ms=40.0, quiet_hours=1)
SCHEDULE = replace(default_schedule(), promotion=GATE)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def observe(
    sessions: sessionmaker[Session], run_id: int, first: int, n: int, at: datetime, ms: float
) -> None:
    """``n`` blocks from ``first`` seen at ``at``, each with a parity check and an opportunity
    found ``ms`` after the block arrived (a slower one as well: the block's first one counts)."""
    route = Route(("0x" + "0a" * 20, "0x" + "0b" * 20), (True, False), (WETH, USDC, WETH))
    found = Opportunity(route, 10**16, (5, 10**16 + 10**15), 10**15, 1, 10**14, 0, 10**14)
    with sessions.begin() as s:
        for number in range(first, first + n):
            header = repo.BlockHeader(CHAIN, number, f"0x{number:064x}", f"0x{number - 1:064x}", 0)
            repo.record_block(s, header, at, run_id=run_id, latency_ms=ms)
            repo.add_parity_check(s, run_id, number, pools_checked=4, failures=0, at=at)
            repo.add_opportunities(s, run_id, header, [found], at, ms)
            repo.add_opportunities(s, run_id, header, [found], at, ms * 10)


def test_observations_since_the_stage_was_entered(factory: sessionmaker[Session]) -> None:
    with factory.begin() as s:
        repo.upsert_chain(s, CHAIN, "devnet")
        run = repo.start_run(s, CHAIN, mode="limited", started_at=T0)
    observe(factory, run, 1, 3, T0 - timedelta(minutes=5), 500.0)  # before the stage
    observe(factory, run, 4, 5, T0 + timedelta(minutes=1), 20.0)
    with factory.begin() as s:
        repo.add_parity_check(s, run, 9, pools_checked=4, failures=2, at=T0 + timedelta(minutes=2))
        repo.add_parity_check(s, run, 9, pools_checked=0, failures=0, at=T0 + timedelta(minutes=2))
        seen = rrepo.stage_observations(s, CHAIN, T0)
        ever = rrepo.stage_observations(s, CHAIN, None, Alerts(checked=True))
    assert (seen.blocks, seen.parity_checks, seen.parity_failures) == (5, 6, 2)
    assert (seen.latency_p99_ms, seen.latency_samples) == (20.0, 5)
    assert seen.alerts == Alerts()
    assert (ever.blocks, ever.parity_checks, ever.latency_p99_ms) == (8, 9, 500.0)
    assert ever.alerts.checked


def test_the_controller_leaves_shadow_when_its_gate_passes(
    engine: Engine, factory: sessionmaker[Session], db_url: str, tmp_path: Path,
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    with factory.begin() as s:
        repo.upsert_chain(s, CHAIN, "devnet")
        run = repo.start_run(s, CHAIN, mode="limited", started_at=T0)
    clock = Clock(T0)
    firing = [Alerts(checked=True, firing=("ArbxSyncLag",))]
    risk = RiskController(
        factory,
        chain_id=CHAIN,
        key_address=KEY,
        ceiling="limited",
        limits=Limits(),
        schedule=SCHEDULE,
        lock=SignerLock(engine, KEY, holder_id="gate", clock=clock),
        clock=clock,
        alerts=lambda: firing[0],
        gate_interval=5.0,
    )
    try:
        assert risk.start() == "shadow"  # stage 0: nothing observed yet
        assert risk.last_decision is not None
        assert risk.last_decision.reason.startswith("the next gate needs: blocks observed >= 4")
        clock.now += timedelta(seconds=1)
        observe(factory, run, 1, 4, clock.now, 12.5)
        risk.refresh()  # within the gate interval: not evaluated again
        assert risk.stage == 0
        clock.now += timedelta(seconds=5)
        risk.refresh()
        assert risk.stage == 0  # an alert is firing
        assert risk.last_decision is not None
        assert "arbx alerts none firing (when checked) (now firing: ArbxSyncLag)" in (
            risk.last_decision.reason
        )
        firing[0] = Alerts(checked=True)
        clock.now += timedelta(seconds=5)
        assert risk.refresh() == "limited"
        assert risk.stage == 1
        with factory() as s:
            (promotion,) = rrepo.promotions(s, CHAIN, KEY)
        assert (promotion.kind, promotion.from_stage, promotion.to_stage) == ("promotion", 0, 1)
        conditions = {c["name"]: c for c in promotion.evidence["conditions"]}
        assert conditions["blocks observed"] == {
            "name": "blocks observed", "measured": "4", "required": ">= 4", "passed": True,
        }  # fmt: skip
        assert conditions["detection latency p99"]["measured"] == "12.5 ms over 4 blocks"
        assert conditions["arbx alerts"]["measured"] == "none firing"
    finally:
        risk.stop()

    # The command shows the new stage, the next gate (nothing observed at stage 1 yet) and the
    # promotion behind it, from the same store.
    config = tmp_path / "settings.toml"
    config.write_text(
        "mode = 'limited'\n[risk]\npromote_min_blocks = 4\npromote_min_parity_checks = 2\n"
        "promote_max_latency_p99_ms = 40.0\npromote_quiet_hours = 1\n"
    )
    monkeypatch.setenv("ARBX_DATABASE_URL", db_url)
    assert main(["stage", "status", "--config", str(config), "--chain", str(CHAIN), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["key"] == KEY.lower()
    assert (status["stage"]["index"], status["next"]["index"]) == (1, 2)
    assert [c["name"] for c in status["conditions"] if not c["passed"]] == [
        "blocks observed", "parity checks", "detection latency p99", "bundles included",
    ]  # fmt: skip
    assert status["needs"][0] == "blocks observed >= 4 (now 0)"
    assert status["history"][0]["kind"] == "promotion"
    assert status["history"][0]["evidence"]["conditions"][0]["measured"] == "4"
    assert main(["stage", "status", "--config", str(config), "--chain", str(CHAIN)]) == 0
    text = capsys.readouterr().out
    assert main(["stage", "status", "--config", str(config), "--history", "0", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["history"] == []
    assert "stage     1 limited 0.1 (limited) since " in text
    assert "  FAIL  blocks observed        0  (required >= 4)" in text
    assert "history   " in text


def test_stage_status_refuses_bad_input_in_one_line(
    factory: sessionmaker[Session], db_url: str, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setenv("ARBX_DATABASE_URL", db_url)
    now = datetime.now(UTC)
    with factory.begin() as s:
        for key in (KEY, "0x" + "bb" * 20):
            rrepo.set_risk_state(
                s, CHAIN, key, mode="shadow", stage=0, stage_entered_at=now, reason=None
            )
    assert main(["stage", "status", "--chain", str(CHAIN)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "2 keys have a stage on chain 31337: name one with --key" in err
    with pytest.raises(SystemExit) as exit_:
        main(["stage", "status", "--key", "0x12"])
    assert exit_.value.code == 2
    assert "is not a 20-byte hex address" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        main(["stage", "status", "--history", "1001"])
    assert exit_.value.code == 2
    assert "1001 is over 1000" in capsys.readouterr().err
    assert main(["stage", "status", "--chain", str(CHAIN), "--key", KEY, "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert (status["key"], status["stage"]["index"], status["decision"]["action"]) == (
        KEY.lower(),
        0,
        "stay",
    )
    monkeypatch.setenv("ARBX_RISK__PROMETHEUS_URL", "ftp://x")
    assert main(["stage", "status"]) == 2
    assert "prometheus_url must be a plain http(s) URL" in capsys.readouterr().err
