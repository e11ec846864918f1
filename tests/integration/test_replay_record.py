"""``arbx record`` on the embedded devnet (a real anvil, the real Uniswap bytecode, the market),
recording into PostgreSQL; then ``arbx replay`` of the window decides exactly what the live
shadow run recorded, block by block."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

from arbx import __version__
from arbx.cli.replay import replay_window
from arbx.store import make_engine, make_session_factory, release_repo, repo

BLOCKS = 30


def _live(url: str, run_id: int) -> tuple[list[tuple[int, str]], dict[tuple[int, str], list[Any]]]:
    """The run's blocks in order, and its opportunities per block in the order recorded."""
    engine = make_engine(url)
    try:
        with make_session_factory(engine)() as session:
            blocks = [
                (r.number, r.hash)
                for r in release_repo.block_records(session, __version__)
                if r.run == run_id
            ]
            found: dict[tuple[int, str], list[Any]] = defaultdict(list)
            after = 0
            while page := repo.list_opportunities(session, run_id=run_id, after_id=after):
                for row in page:
                    found[(row.block_number, row.block_hash)].append(
                        {
                            "pools": list(row.pools_json),
                            "tokens": list(row.tokens_json),
                            "amount_in": str(row.amount_in),
                            "amounts": list(row.amounts_json),
                            "amount_out": str(row.amount_out),
                            "profit": str(row.gross_profit),
                            "gas_units": row.gas_units,
                            "gas_cost": str(row.gas_cost),
                            "builder_payment": str(row.builder_payment),
                            "net_profit": str(row.net_profit),
                        }
                    )
                after = page[-1].id
    finally:
        engine.dispose()
    return blocks, found


def test_replay_decides_what_the_live_shadow_run_recorded(
    tmp_path: Path, postgres_database: str
) -> None:
    window = tmp_path / "window.jsonl.gz"
    env = {**os.environ, "ARBX_DATABASE_URL": postgres_database}
    record = ["record", "--blocks", str(BLOCKS), "--seed", "5", "--pace", "0.1"]
    done = subprocess.run(
        [sys.executable, "-m", "arbx.cli", *record, "--out", str(window)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    run_id = int(re.findall(r"arbx report --run (\d+)", done.stdout)[-1])

    decisions = replay_window(window)
    blocks, found = _live(postgres_database, run_id)
    replayed = [(b["number"], b["hash"]) for b in decisions["blocks"]]
    assert replayed == blocks
    assert len(blocks) == BLOCKS
    opportunities = 0
    for block in decisions["blocks"]:
        assert block["opportunities"] == found.get((block["number"], block["hash"]), [])
        opportunities += len(block["opportunities"])
    assert opportunities == sum(len(v) for v in found.values())
    assert opportunities > 0  # the market opened some: the comparison compared something
