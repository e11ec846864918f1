"""The signer lock's epochs history and signatures, and ``arbx release audit`` over them, on
SQLite and PostgreSQL."""

from __future__ import annotations

import json
import secrets
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from arbx.cli import main
from arbx.domain.errors import ConfigError
from arbx.executors.live import LivePlan, live_executor
from arbx.executors.shadow import ShadowExecutor
from arbx.risk.settings import RiskSettings
from arbx.risk.signer_lock import SignerLock
from arbx.store import make_engine, make_session_factory, migrate, release_repo
from arbx.store.models import SignerEpochRow

KEY = "0x" + "ab" * 20


def test_epochs_and_signatures_are_recorded_and_audited(
    db_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    migrate.upgrade(db_url)
    engine = make_engine(db_url)
    try:
        old = SignerLock(engine, KEY, holder_id="old", release="v1", chain_id=7)
        new = SignerLock(engine, KEY, holder_id="new", release="v2", chain_id=7)
        assert old.acquire() is None
        first = old.epoch
        assert first is not None
        assert new.acquire() is not None  # refused while the old one holds it
        old.witness("0x01")
        assert old.renew()  # signatures go out with the renewal
        old.witness("0x02")
        old.release()  # ... and at the latest with the release, before the epoch closes
        assert new.acquire() is None
        assert new.epoch == first + 1
        new.witness("0x03")
        new.release()
        sessions = make_session_factory(engine)
        with sessions() as session:
            epochs = release_repo.epochs(session)
            signed = release_repo.signatures(session)
            last = release_repo.last_epoch(session, 7)
        assert [(e.epoch, e.holder, e.release) for e in epochs] == [
            (first, "old", "v1"),
            (first + 1, "new", "v2"),
        ]
        assert epochs[0].released_at is not None
        assert epochs[0].released_at <= epochs[1].acquired_at
        assert [(s.tx_hash, s.epoch, s.holder) for s in signed] == [
            ("0x01", first, "old"),
            ("0x02", first, "old"),
            ("0x03", first + 1, "new"),
        ]
        assert last is not None
        assert last.key_address == KEY

        monkeypatch.setenv("ARBX_DATABASE_URL", db_url)
        assert main(["release", "audit", "--json"]) == 0
        report = json.loads(capsys.readouterr().out)
        assert report["passed"] is True
        assert report["signatures"] == 3

        # A crafted history: the old epoch ends after the new one began.
        with sessions.begin() as session:
            session.execute(
                update(SignerEpochRow)
                .where(SignerEpochRow.epoch == first)
                .values(released_at=epochs[1].acquired_at + timedelta(seconds=1))
            )
        assert main(["release", "audit"]) == 1
        out = capsys.readouterr().out
        assert "audit FAILS" in out
        assert f"epoch {first} (old" in out
        assert "overlaps epoch" in out
        assert "0x02" not in out  # its signatures are still inside the (longer) epoch
    finally:
        engine.dispose()


def test_a_lock_lost_without_release_is_closed_by_the_next_holder(db_url: str) -> None:
    migrate.upgrade(db_url)
    engine = make_engine(db_url)
    try:
        gone = SignerLock(engine, KEY, holder_id="gone", lease_seconds=0.3, margin_seconds=0.05)
        assert gone.acquire() is None
        gone._lost()  # the process died: nothing released (its session ends, its lease runs out)
        taker = SignerLock(engine, KEY, holder_id="taker")
        deadline = time.monotonic() + 5
        while (refused := taker.acquire()) is not None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert refused is None
        with make_session_factory(engine)() as session:
            epochs = release_repo.epochs(session)
        assert [e.holder for e in epochs] == ["gone", "taker"]
        assert epochs[0].released_at == epochs[1].acquired_at  # closed by the takeover
        assert epochs[1].released_at is None
        taker.release()
    finally:
        engine.dispose()


def test_a_standby_needs_a_configured_chain_and_a_live_mode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ARBX_DATABASE_URL", f"sqlite:///{tmp_path / 'arbx.db'}")
    assert main(["run", "--standby"]) == 2
    assert "a standby follows a configured chain" in capsys.readouterr().err
    config = tmp_path / "settings.toml"
    weth = "0x" + "11" * 20
    config.write_text(
        'mode = "shadow"\n[chain]\nid = 1\nrpc = ["http://127.0.0.1:9"]\n'
        f'multicall = "{weth}"\n[strategy]\nbase_tokens = ["{weth}"]\n'
        f'[[venues]]\nname = "v2"\nkind = "uniswap_v2"\nfactory = "{weth}"\n'
    )
    assert main(["run", "--standby", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "a standby signs once promoted: configure a live mode" in err
    assert err.count("\n") == 1
    monkeypatch.setenv("ARBX_RELEASE", "not a release")
    assert main(["release", "status"]) == 2
    assert "release" in capsys.readouterr().err


@pytest.mark.asyncio
async def test_a_promoted_standby_whose_key_is_not_the_one_handed_over_lets_go(
    db_url: str, tmp_path: Path
) -> None:
    migrate.upgrade(db_url)
    engine = make_engine(db_url)
    try:
        lock = SignerLock(engine, KEY, holder_id="standby", release="v2")
        assert lock.acquire() is None
        keys = {}
        for role in ("signing", "relay"):
            path = tmp_path / f"{role}.key"
            path.write_text("0x" + secrets.token_hex(32) + "\n")
            path.chmod(0o600)
            keys[f"ARBX_{role.upper()}_KEY_FILE"] = str(path)
        plan = LivePlan(risk=RiskSettings(), executor=None, builders=(), environ=keys)
        sessions = make_session_factory(engine)
        with pytest.raises(ConfigError, match=f"the key handed over is {KEY}"):
            await live_executor(
                plan, mode="limited", engine=engine, sessions=sessions, client=None,  # type: ignore[arg-type]
                chain_id=7, base_token=KEY, pools={}, recorder=ShadowExecutor(sessions, 1, 7),
                lock=lock,
            )  # fmt: skip
        assert not lock.held
        with sessions() as session:
            (epoch,) = release_repo.epochs(session)
        assert epoch.released_at is not None  # given back at once, for the right engine
    finally:
        engine.dispose()
