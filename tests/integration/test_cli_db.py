"""`arbx db` and `arbx report` on a real database: migrations, and one-line failures."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from arbx.cli import main
from arbx.store import make_engine, make_session_factory, repo

pytestmark = pytest.mark.integration


@pytest.fixture
def sqlite_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path / 'arbx.db'}"
    monkeypatch.setenv("ARBX_DATABASE_URL", url)
    return url


def test_upgrade_then_current(sqlite_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["db", "upgrade"]) == 0
    assert "at revision 0008" in capsys.readouterr().out
    assert main(["db", "current"]) == 0
    assert "0008" in capsys.readouterr().out


def test_report_without_runs_is_one_line(
    sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "no runs" in err


def test_report_json_of_a_run(sqlite_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["db", "upgrade"]) == 0
    factory = make_session_factory(make_engine(sqlite_url))
    with factory.begin() as session:
        repo.upsert_chain(session, 31337, "devnet")
        run_id = repo.start_run(session, 31337)
        for n in range(3):
            header = repo.BlockHeader(31337, n, f"0x{n:064x}", f"0x{max(n - 1, 0):064x}", n)
            repo.record_block(session, header, datetime.now(UTC), run_id=run_id, latency_ms=5.0)
        repo.finish_run(session, run_id, "stopped")
    capsys.readouterr()
    assert main(["report", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["run"]["id"] == run_id
    assert data["blocks"] == 3
    assert data["opportunities"] == 0
    assert int(data["expected_net_profit_wei"]) == 0
    assert set(data["latency_ms"]) >= {"p50", "p90", "p99"}
    assert data["parity"] == {"checks": 0, "failures": 0, "coverage": 0.0}


def test_unreachable_postgres_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ARBX_DATABASE_URL", "postgresql://nobody:secret@127.0.0.1:1/none")
    assert main(["db", "upgrade"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "secret" not in err
    assert "127.0.0.1" in err
