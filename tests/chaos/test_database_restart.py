"""A shadow engine and a PostgreSQL that is not there yet, then restarts: ``arbx run`` waits for
the database at its start instead of exiting, and rides out a restart mid-run without losing a
block's record or ending its run (as the compose stack's containers restart in any order)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from chaos.postgres import PrivatePostgres, available
from sqlalchemy import create_engine, text

from arbx.devnet.commands import EmbeddedDevnet
from arbx.devnet.serve import settings_toml

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not available(), reason="PostgreSQL's server binaries are not installed"),
]


def _until(what: str, check: Callable[[], bool], timeout: float, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.25)
    pytest.fail(f"{what}: not within {timeout:.0f} s\n{log.read_text()[-4000:]}")


def test_shadow_engine_waits_for_postgresql_and_rides_out_its_restart(
    postgres: PrivatePostgres, tmp_path: Path
) -> None:
    url = postgres.url()
    database = create_engine(url, pool_pre_ping=True)

    def value(query: str) -> int:
        try:
            with database.connect() as connection:
                return int(connection.execute(text(query)).scalar() or 0)
        except Exception:  # down, or not migrated yet
            return -1

    blocks = "SELECT count(*) FROM blocks"
    postgres.stop("fast")  # the engine starts before its database
    log = tmp_path / "engine.log"
    with EmbeddedDevnet.start(seed=5, pace=0.4) as devnet:
        settings = tmp_path / "settings.toml"
        settings.write_text(settings_toml(devnet.deployment, devnet.url, poll_interval=0.1))
        env = {**os.environ, "ARBX_DATABASE_URL": url}
        with log.open("w") as out:
            engine = subprocess.Popen(
                [sys.executable, "-m", "arbx.cli", "run", "--config", str(settings), "--plain",
                 "--metrics-port", "0"],
                cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        try:
            waiting = "the database cannot serve yet"
            _until(
                "the engine waits for its database or exits",
                lambda: engine.poll() is not None or waiting in log.read_text(), 90, log,
            )  # fmt: skip
            time.sleep(2.0)
            assert engine.poll() is None, log.read_text()  # waiting, not exited
            postgres.start()
            _until("the engine records blocks", lambda: value(blocks) >= 3, 90, log)

            before = value(blocks)
            postgres.stop("fast")  # mid-run: every pooled connection dies
            time.sleep(3.0)
            assert engine.poll() is None, log.read_text()
            postgres.start()
            _until("the engine records again", lambda: value(blocks) >= before + 5, 90, log)
            assert engine.poll() is None, log.read_text()

            engine.send_signal(signal.SIGTERM)
            assert engine.wait(60) == 0, log.read_text()
        finally:
            if engine.poll() is None:
                engine.kill()
                engine.wait()
    with database.connect() as connection:
        runs = connection.execute(text("SELECT status FROM runs")).scalars().all()
        numbers = connection.execute(text("SELECT number FROM blocks ORDER BY number")).scalars()
        recorded = list(numbers)
    database.dispose()
    assert runs == ["stopped"], log.read_text()  # one run, from start to stop
    # the blocks processed while PostgreSQL was down were recorded once it was back: no gap
    assert recorded == list(range(recorded[0], recorded[-1] + 1)), recorded
