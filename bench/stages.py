"""The stage gate's evidence query: what one evaluation costs on a day of mainnet-like blocks.

``python -m bench.stages`` (project venv). A SQLite file with 7,200 blocks (a day of 12-second
blocks) and 40 opportunities per block (288,000 rows), and a fresh PostgreSQL database with the
same rows when the local server answers (``$ARBX_TEST_POSTGRES_URL``, default
``postgresql://postgres@127.0.0.1:5432/postgres``); then ``risk_repo.stage_observations`` (blocks,
parity checks, per-block detection latency p99) over the whole day, which the key's engine runs
every ``risk.gate_interval_s`` seconds. Prints a table; JSON in ``build/bench/stages.json``.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import make_url

from arbx.store import db, migrate, repo
from arbx.store import risk_repo as rrepo
from arbx.store.models import Block, OpportunityRow, ParityCheck

RESULTS = Path(__file__).resolve().parents[1] / "build" / "bench" / "stages.json"
BLOCKS, PER_BLOCK, RUNS = 7_200, 40, 5
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _fill(url: str) -> None:
    migrate.upgrade(url)
    engine = db.make_engine(url)
    sessions = db.make_session_factory(engine)
    try:
        with sessions.begin() as s:
            repo.upsert_chain(s, 1, "bench")
            run = repo.start_run(s, 1, started_at=T0)
        for first in range(0, BLOCKS, 600):
            numbers = range(first, min(first + 600, BLOCKS))
            at = {i: T0 + timedelta(seconds=12 * i) for i in numbers}
            with sessions.begin() as s:
                s.execute(
                    Block.__table__.insert(),
                    [
                        {"chain_id": 1, "number": i, "hash": f"0x{i:064x}", "parent_hash": "0x",
                         "timestamp": 0, "seen_at": at[i], "reorged": False}
                        for i in numbers
                    ],
                )  # fmt: skip
                s.execute(
                    ParityCheck.__table__.insert(),
                    [
                        {"run_id": run, "block_number": i, "pools_checked": 40, "failures": 0,
                         "at": at[i]}
                        for i in numbers
                    ],
                )  # fmt: skip
                s.execute(
                    OpportunityRow.__table__.insert(),
                    [
                        {"run_id": run, "chain_id": 1, "block_number": i,
                         "block_hash": f"0x{i:064x}", "route_key": "r", "pools_json": [],
                         "tokens_json": [], "amount_in": 1, "amounts_json": [], "amount_out": 1,
                         "gross_profit": 1, "gas_units": 1, "gas_cost": 1, "builder_payment": 0,
                         "net_profit": 1, "detected_at": at[i], "latency_ms": float(k + 1),
                         "status": "found", "capturable": False}
                        for i in numbers
                        for k in range(PER_BLOCK)
                    ],
                )  # fmt: skip
    finally:
        engine.dispose()


def _measure(url: str) -> dict[str, Any]:
    engine = db.make_engine(url)
    try:
        times = []
        with db.make_session_factory(engine)() as session:
            for _ in range(RUNS):
                start = time.perf_counter()
                seen = rrepo.stage_observations(session, 1, T0)
                times.append(time.perf_counter() - start)
        assert (seen.blocks, seen.parity_checks) == (BLOCKS, BLOCKS)
        return {"median_s": sorted(times)[RUNS // 2], "max_s": max(times)}
    finally:
        engine.dispose()


def main() -> int:
    results: dict[str, Any] = {"blocks": BLOCKS, "opportunities": BLOCKS * PER_BLOCK}
    with tempfile.TemporaryDirectory(prefix="arbx-bench-stages-") as folder:
        url = f"sqlite:///{Path(folder) / 'arbx.db'}"
        _fill(url)
        results["sqlite"] = _measure(url)
    admin = os.environ.get(
        "ARBX_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
    )
    name = f"arbx_bench_stages_{uuid.uuid4().hex[:8]}"
    try:
        with psycopg.connect(admin, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.Error as exc:
        print(f"bench.stages: PostgreSQL not measured ({exc})", file=sys.stderr)
    else:
        try:
            url = make_url(admin).set(drivername="postgresql+psycopg", database=name)
            text = url.render_as_string(hide_password=False)
            _fill(text)
            results["postgresql"] = _measure(text)
        finally:
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    print(f"\nstage gate evidence: {BLOCKS} blocks, {BLOCKS * PER_BLOCK} opportunities\n")
    for backend in ("sqlite", "postgresql"):
        if backend in results:
            median, worst = results[backend]["median_s"], results[backend]["max_s"]
            print(f"  {backend:<11} median {median * 1000:7.1f} ms   max {worst * 1000:7.1f} ms")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
