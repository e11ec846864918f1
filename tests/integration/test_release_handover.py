"""Releases end to end on one devnet chain, with SQLite and PostgreSQL: a live engine (v1), a
standby beside it (v2) and a deliberately worse standby (v3, half of every profit promised to
the builder, no signing key it could load); v2's comparison passes (the standbys size with the
stage's caps, which bind: the strategy's own cap is ten times larger) and v3's fails; ``arbx
release promote`` moves the signer lock from v1 to v2 (epoch N -> N+1) at a block boundary; v2
never signed before, v1 never after; the audit passes; and ``promote --to v1`` takes it back (a
rollback, N+2).

Each backend costs a devnet and three engines for a minute or more: ``make test`` runs
PostgreSQL, the production database; ``make releases`` (``ARBX_RELEASES_ALL=1``) runs SQLite as
well. The signer lock's epochs and the audit are tested on both in ``test_release_records``.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from arbx.devnet.commands import EmbeddedDevnet
from arbx.devnet.serve import settings_toml
from arbx.store import make_engine, make_session_factory, migrate, release_repo
from arbx.store.models import BlockResultRow

CAP = 10 * 10**18  # the limited stage's cap; the strategy's own is ten times larger


@pytest.fixture
def devnet(
    db_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[EmbeddedDevnet, Path]]:
    if db_url.startswith("sqlite") and os.environ.get("ARBX_RELEASES_ALL") != "1":
        pytest.skip("make releases runs the handover on SQLite too")
    # A fresh chain for each database: a devnet traded on for minutes grows V3 pools whose
    # initialized ticks no longer fit in one lens call, and new engines could not load them.
    folder = tmp_path_factory.mktemp("release")
    key_file = folder / "searcher.key"
    with EmbeddedDevnet.start(seed=5, pace=0.25, searcher_key_file=key_file) as running:
        yield running, key_file


def _arbx(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "arbx.cli", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def _engine(*args: str, env: dict[str, str], cwd: Path, name: str) -> subprocess.Popen[str]:
    log = (cwd / f"{name}.log").open("w")
    return subprocess.Popen(
        [sys.executable, "-m", "arbx.cli", "run", "--plain", "--metrics-port", "0", *args],
        env=env,
        cwd=cwd,
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _settings(running: EmbeddedDevnet, executor: str) -> str:
    d = running.deployment
    text = settings_toml(d, d.rpc_url, poll_interval=0.1).replace('mode = "shadow"', "")
    return "\n".join(
        [
            'mode = "limited"',
            text,
            "[strategy.max_input]",
            f'"{d.weth}" = {10 * CAP}',
            "",
            "[execution]",
            f'executor = "{executor}"',
            "blocks_ahead = 1",
            "",
            "[[execution.builders]]",
            'name = "devnet"',
            f'url = "{running.builder_url}"',
            "",
            "[risk]",
            "promote_min_blocks = 0",
            "promote_min_parity_checks = 0",
            "promote_max_latency_p99_ms = 0",
            "daily_gas_cap_wei = 100000000000000000000",
            "daily_loss_cap_wei = 10000000000000000000",
            "[[risk.stages]]",
            'mode = "shadow"',
            'name = "shadow"',
            "[[risk.stages]]",
            'mode = "limited"',
            'name = "devnet limited 10"',
            f'max_input = {{ "*" = {CAP} }}',
            "",
        ]
    )


def _common_blocks(sessions: Any, a: str, b: str) -> int:
    with sessions() as session:
        ours = set(
            session.execute(
                select(BlockResultRow.block_hash).where(BlockResultRow.release == a)
            ).scalars()
        )
        theirs = set(
            session.execute(
                select(BlockResultRow.block_hash).where(BlockResultRow.release == b)
            ).scalars()
        )
    return len(ours & theirs)


def _metrics(log: Path) -> str:
    """The exposition of the engine whose output is ``log``."""
    url = next(
        line.split()[1] for line in log.read_text().splitlines() if line.startswith("metrics: ")
    )
    with urllib.request.urlopen(url, timeout=10) as answer:
        return str(answer.read().decode())


def _wait(what: str, check: Any, timeout: float, procs: list[subprocess.Popen[str]]) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        for p in procs:
            assert p.poll() is None, f"an engine ended early while waiting for {what}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.25)


def test_a_standby_is_compared_then_promoted_and_the_records_prove_one_signer(
    devnet: tuple[EmbeddedDevnet, Path], db_url: str, tmp_path: Path
) -> None:
    running, key_file = devnet
    migrate.upgrade(db_url)
    relay = tmp_path / "relay.key"
    relay.write_text("0x" + secrets.token_hex(32) + "\n")
    relay.chmod(0o600)
    base = {
        **{k: v for k, v in os.environ.items() if not k.startswith("ARBX_")},
        "ARBX_DATABASE_URL": db_url,
        "ARBX_RELAY_KEY_FILE": str(relay),
        "ARBX_RELEASES__HANDOVER_POLL_S": "0.2",
    }
    keyed = {**base, "ARBX_SIGNING_KEY_FILE": str(key_file)}
    deployed = _arbx("executor", "deploy", "--rpc", running.url, "--weth",
                     running.deployment.weth, env=keyed, cwd=tmp_path)  # fmt: skip
    assert deployed.returncode == 0, deployed.stderr[-2000:]
    config = tmp_path / "settings.toml"
    config.write_text(_settings(running, deployed.stdout.split()[0]))
    unreadable = tmp_path / "no-such-keystore.json"  # v3 never reads its signing key
    worse = {
        **base,
        "ARBX_SIGNING_KEYSTORE": str(unreadable),
        "ARBX_RELEASE": "v3",
        "ARBX_STRATEGY__BUILDER_SHARE_BPS": "5000",  # expects other profits
    }
    procs = [
        _engine("--config", str(config), env={**keyed, "ARBX_RELEASE": "v1"}, cwd=tmp_path,
                name="v1"),
        _engine("--config", str(config), "--standby", env={**keyed, "ARBX_RELEASE": "v2"},
                cwd=tmp_path, name="v2"),
        _engine("--config", str(config), "--standby", env=worse, cwd=tmp_path, name="v3"),
    ]  # fmt: skip
    engine = make_engine(db_url)
    sessions = make_session_factory(engine)
    try:
        _wait(
            "common blocks",
            lambda: min(_common_blocks(sessions, "v1", v) for v in ("v2", "v3")) >= 10,
            150,
            procs,
        )
        compared = _arbx("release", "compare", "--config", str(config), "--active", "v1",
                         "--preview", "v2", "--min-blocks", "10", "--json", "--replay-shipped",
                         env=base, cwd=tmp_path)  # fmt: skip
        result = json.loads(compared.stdout)
        assert compared.returncode == 0, result
        assert result["passed"] is True
        assert result["common_blocks"] >= 10
        # the second check: v2's code on the shipped window decides what v1 recorded at its start
        assert result["replay"]["equal"] is True
        assert result["replay"]["active_digest"] == result["replay"]["digest"]
        assert "replay: release v1 decided" in (tmp_path / "v1.log").read_text()

        bad = _arbx("release", "compare", "--config", str(config), "--active", "v1",
                    "--preview", "v3", "--min-blocks", "10", env=base, cwd=tmp_path)  # fmt: skip
        assert bad.returncode == 1, bad.stdout + bad.stderr
        assert "FAIL blocks with other routes, sizes or profits" in bad.stdout

        assert 'arbx_release_role{release="v2",role="standby"} 1.0' in _metrics(tmp_path / "v2.log")
        with sessions() as session:
            before = {e.release: e for e in release_repo.epochs(session)}
        assert "v1" in before
        assert before["v1"].released_at is None
        assert "v2" not in before  # a standby holds no epoch and signs nothing

        promoted = _arbx("release", "promote", "--config", str(config), "--to", "v2",
                         "--timeout", "60", env=base, cwd=tmp_path)  # fmt: skip
        assert promoted.returncode == 0, promoted.stdout + promoted.stderr
        n = before["v1"].epoch
        assert f"epoch {n} of release v1 -> epoch {n + 1}" in promoted.stdout

        def v2_signed() -> bool:
            with sessions() as session:
                return any(s.epoch == n + 1 for s in release_repo.signatures(session))

        _wait("a signature by v2", v2_signed, 60, procs)
        assert 'arbx_release_role{release="v2",role="active"} 1.0' in _metrics(tmp_path / "v2.log")
        assert 'arbx_release_role{release="v1",role="standby"} 1.0' in _metrics(tmp_path / "v1.log")
        status = _arbx("release", "status", "--json", "--config", str(config), env=base,
                       cwd=tmp_path)  # fmt: skip
        holders = json.loads(status.stdout)["holders"]
        assert [(h["release"], h["epoch"]) for h in holders] == [("v2", n + 1)]

        # A rollback by hand: the old release, still running as a standby, takes the lock back.
        back = _arbx("release", "promote", "--config", str(config), "--to", "v1",
                     "--timeout", "60", env=base, cwd=tmp_path)  # fmt: skip
        assert back.returncode == 0, back.stdout + back.stderr
        assert f"epoch {n + 1} of release v2 -> epoch {n + 2}" in back.stdout
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        codes = [p.wait(timeout=60) for p in procs]
    try:
        assert codes == [0, 0, 0], [(tmp_path / f"v{i}.log").read_text()[-3000:] for i in (1, 2, 3)]
        with sessions() as session:
            epochs = {e.epoch: e for e in release_repo.epochs(session)}
            signed = release_repo.signatures(session)
            roles = dict(
                session.execute(
                    select(
                        BlockResultRow.release, func.count(func.distinct(BlockResultRow.role))
                    ).group_by(BlockResultRow.release)
                ).all()
            )
        old, new, again = epochs[n], epochs[n + 1], epochs[n + 2]
        assert (old.release, new.release, again.release) == ("v1", "v2", "v1")
        assert new.released_at is not None
        assert again.acquired_at >= new.released_at
        assert old.released_at is not None
        assert new.acquired_at >= old.released_at
        assert all(e.release != "v3" for e in epochs.values())
        mine = [s for s in signed if s.epoch == n]
        theirs = [s for s in signed if s.epoch == n + 1]
        assert mine
        assert theirs
        assert max(s.signed_at for s in mine) <= old.released_at  # the old never after
        assert min(s.signed_at for s in theirs) >= new.acquired_at  # the new never before
        assert max(s.signed_at for s in theirs) <= new.released_at
        assert roles == {"v1": 2, "v2": 2, "v3": 1}  # active, standby, active; and v2 the reverse
        v3_log = (tmp_path / "v3.log").read_text()
        assert "signing key" not in v3_log
        assert str(unreadable) not in v3_log
        audited = _arbx("release", "audit", "--config", str(config), env=base, cwd=tmp_path)
        assert audited.returncode == 0, audited.stdout
        assert "audit passes" in audited.stdout
    finally:
        engine.dispose()
