"""API benchmark: the paged opportunity list and the PnL summary over 1,000,000 opportunities in
PostgreSQL, measured through the ASGI app (httpx's ASGITransport: routing, auth lookup, query,
validation and JSON, without a socket), started as a server starts it (its lifespan).

``.venv/bin/python -m bench.api_bench [--rows N] [--requests N] [--keep]``. It creates a fresh
database on ``$ARBX_BENCH_POSTGRES_URL`` (default ``postgresql://postgres@127.0.0.1:5432/postgres``),
fills it with INSERT ... SELECT generate_series (opportunities through the PnL trigger; bundles
with triggers off, then ``arbx_pnl_rebuild()``), and drops it at the end unless ``--keep``.
Prints a table; JSON in ``build/bench/api.json``. The target: p99 <= 100 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import httpx
import psycopg
from sqlalchemy import Table, make_url, select, text

from arbx.api import create_app
from arbx.domain.profit import Opportunity
from arbx.domain.routes import Route
from arbx.store import api_repo, db, migrate, repo
from arbx.store.models import OpportunityRow
from arbx.store.repo import percentile

ADMIN_ENV = "ARBX_BENCH_POSTGRES_URL"
ADMIN_DEFAULT = "postgresql://postgres@127.0.0.1:5432/postgres"
RESULTS = Path("build") / "bench" / "api.json"
CHAIN = 1
RUNS = 4
ROUTES = 500
PER_BLOCK = 20
BUNDLE_EVERY = 10  # one bundle per 10 opportunities
TARGET_P99_MS = 100.0
WARMUP = 20

FILL_OPPORTUNITIES = """
INSERT INTO opportunities (run_id, chain_id, block_number, block_hash, route_key, pools_json,
    tokens_json, amount_in, amounts_json, amount_out, gross_profit, gas_units, gas_cost,
    builder_payment, net_profit, detected_at, latency_ms, status)
SELECT 1 + (i * {runs}) / {total}, {chain}, b, '0x' || lpad(to_hex(b), 64, '0'),
    '0x' || substr(md5(r::text), 1, 40) || '>0x' || substr(md5((r + 1)::text), 1, 40) || '|01',
    jsonb_build_array('0x' || substr(md5(r::text), 1, 40),
                      '0x' || substr(md5((r + 1)::text), 1, 40)),
    '["0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2", "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48",
      "0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2"]'::jsonb,
    a, jsonb_build_array((a * 3)::text, (a + g)::text), a + g, g, 180000, 10000000000000, 7,
    g - 10000000000007, timestamptz '2025-01-01 00:00:00+00' + i * interval '2.6 seconds',
    (i % 50)::float8, 'found'
FROM (
    SELECT i, 18000000 + i / {per_block} AS b, i % {routes} AS r,
        (10::numeric ^ 18 + (i % 1000) * 10::numeric ^ 15) AS a,
        ((i * 7919) % 1000000)::numeric * 1000000000 + 1000007 AS g
    FROM generate_series({start}::bigint, {stop} - 1) AS i
) AS s
"""

FILL_BUNDLES = """
INSERT INTO bundles (run_id, opportunity_id, signer, builders_json, target_block, status,
    tx_hashes_json, included_block, gas_used, gas_cost, expected_net_profit, realized_profit,
    sent_at, settled_at)
SELECT o.run_id, o.id, '0x00000000000000000000000000000000000000aa',
    (ARRAY['["flashbots", "titan"]', '["beaver"]', '["rsync", "flashbots"]', '["titan"]'])
        [1 + o.id % 4]::jsonb,
    o.block_number + 1, st, '["0x01"]'::jsonb,
    CASE WHEN st IN ('included', 'reverted') THEN o.block_number + 1 END,
    CASE WHEN st IN ('included', 'reverted') THEN 150000 END,
    CASE WHEN st IN ('included', 'reverted') THEN 3000000000000 END,
    o.net_profit,
    CASE WHEN st = 'included' THEN o.net_profit - (o.id % 97) * 1000000
         WHEN st = 'reverted' THEN -3000000000000 END,
    o.detected_at, o.detected_at + interval '12 seconds'
FROM (
    SELECT *, (ARRAY['included', 'not_included', 'reverted', 'state_moved', 'included'])
        [1 + id % 5] AS st
    FROM opportunities WHERE id % {every} = 0
) AS o
"""


def conninfo(url: str) -> str:
    """A libpq URL from a SQLAlchemy one."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def fill(url: str, rows: int) -> dict[str, float]:
    """Load ``rows`` opportunities and their bundles; seconds per phase."""
    timings: dict[str, float] = {}
    with psycopg.connect(conninfo(url), autocommit=True) as conn:
        conn.execute("INSERT INTO chains (id, name) VALUES (%s, 'mainnet')", (CHAIN,))
        for run in range(RUNS):
            conn.execute(
                "INSERT INTO runs (started_at, mode, chain_id, status, blocks_seen) "
                "VALUES (%s, 'shadow', %s, %s, 0)",
                (datetime(2025, 1, 1, tzinfo=UTC), CHAIN, "running" if run == RUNS - 1 else "ok"),
            )
        started = time.perf_counter()
        chunk = 100_000
        for start in range(0, rows, chunk):
            stop = min(rows, start + chunk)
            conn.execute(
                FILL_OPPORTUNITIES.format(
                    runs=RUNS,
                    total=rows,
                    chain=CHAIN,
                    per_block=PER_BLOCK,
                    routes=ROUTES,
                    start=start,
                    stop=stop,
                ).encode()
            )
            print(f"  {stop:>9,} opportunities", flush=True)
        timings["opportunities_s"] = time.perf_counter() - started
        started = time.perf_counter()
        conn.execute("ALTER TABLE bundles DISABLE TRIGGER USER")
        conn.execute(FILL_BUNDLES.format(every=BUNDLE_EVERY).encode())
        conn.execute("ALTER TABLE bundles ENABLE TRIGGER USER")
        conn.execute("SELECT arbx_pnl_rebuild()")
        timings["bundles_and_rebuild_s"] = time.perf_counter() - started
        started = time.perf_counter()
        conn.execute("VACUUM ANALYZE")
        timings["vacuum_analyze_s"] = time.perf_counter() - started
    return timings


def engine_insert_cost(factory: Any, samples: int = 100) -> dict[str, float]:
    """What the engine's insert of one block costs, with and without the PnL trigger (ms).

    One block is 20 opportunities: the INSERT alone, with the trigger and without, then
    ``repo.add_opportunities`` whole (the INSERT and its lookup of the new ids).
    """
    pools = ("0x" + "1" * 40, "0x" + "2" * 40)
    route = Route(pools, (True, False), ("0x" + "a" * 40, "0x" + "b" * 40, "0x" + "a" * 40))
    opp = Opportunity(route, 10**18, (10**18 + 1, 10**18 + 2000), 2000, 180_000, 900, 7, 1093)
    table = cast(Table, OpportunityRow.__table__)

    def rows(n: int) -> list[dict[str, Any]]:
        return [
            {
                "run_id": RUNS,
                "chain_id": CHAIN,
                "block_number": 30_000_000 + n,
                "block_hash": f"0x{n:064x}",
                "route_key": repo.route_key(route),
                "pools_json": list(pools),
                "tokens_json": list(route.tokens),
                "amount_in": opp.amount_in,
                "amounts_json": [str(a) for a in opp.amounts],
                "amount_out": opp.amount_out,
                "gross_profit": opp.gross_profit,
                "gas_units": opp.gas_units,
                "gas_cost": opp.gas_cost,
                "builder_payment": opp.builder_payment,
                "net_profit": opp.net_profit,
                "detected_at": datetime.now(UTC),
                "latency_ms": 1.0,
                "status": "found",
            }
            for _ in range(PER_BLOCK)
        ]

    def timed(work: Any) -> tuple[float, float]:
        times = []
        for n in range(samples):
            started = time.perf_counter()
            with factory.begin() as s:
                work(s, n)
            times.append((time.perf_counter() - started) * 1000)
        times.sort()
        return percentile(times, 50) or 0.0, percentile(times, 99) or 0.0

    out: dict[str, float] = {}
    for label, toggle in (("insert_without_trigger", "DISABLE"), ("insert_with_trigger", "ENABLE")):
        with factory.begin() as s:
            s.execute(text(f"ALTER TABLE opportunities {toggle} TRIGGER USER"))
        p50, p99 = timed(lambda s, n: s.execute(table.insert(), rows(n)))
        out[f"{label}_p50_ms"], out[f"{label}_p99_ms"] = p50, p99

    def add(s: Any, n: int) -> None:
        header = repo.BlockHeader(CHAIN, 31_000_000 + n, f"0x{n:063x}f", "0x" + "0" * 64, 0)
        repo.add_opportunities(s, RUNS, header, [opp] * PER_BLOCK, datetime.now(UTC), 1.0)

    out["add_opportunities_p50_ms"], out["add_opportunities_p99_ms"] = timed(add)
    return out


async def measure(app: Any, token: str, cases: dict[str, str], n: int) -> dict[str, Any]:
    """p50 / p99 (ms) of ``n`` sequential requests per case, after a warm-up."""
    headers = {"Authorization": f"Bearer {token}"}
    transport = httpx.ASGITransport(app=app)
    results: dict[str, Any] = {}
    async with (
        app.router.lifespan_context(app),  # as a server starts it
        httpx.AsyncClient(transport=transport, base_url="http://bench") as client,
    ):
        for name, path in cases.items():
            for _ in range(WARMUP):
                response = await client.get(path, headers=headers)
                response.raise_for_status()
            times = []
            for _ in range(n):
                started = time.perf_counter()
                response = await client.get(path, headers=headers)
                times.append((time.perf_counter() - started) * 1000)
                response.raise_for_status()
            times.sort()
            results[name] = {
                "path": path,
                "p50_ms": percentile(times, 50),
                "p99_ms": percentile(times, 99),
                "max_ms": times[-1],
                "requests": n,
                "bytes": len(response.content),
            }
    return results


def main() -> None:
    """Create, fill, measure, print, drop."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--keep", action="store_true", help="keep the database")
    args = parser.parse_args()

    admin = make_url(os.environ.get(ADMIN_ENV, ADMIN_DEFAULT))
    name = f"arbx_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(
        conninfo(admin.render_as_string(hide_password=False)), autocommit=True
    ) as c:
        c.execute(f'CREATE DATABASE "{name}"')
    url = admin.set(drivername="postgresql+psycopg", database=name).render_as_string(
        hide_password=False
    )
    try:
        migrate.upgrade(url)
        print(f"filling {name} with {args.rows:,} opportunities ...", flush=True)
        fill_s = fill(url, args.rows)
        engine = db.make_engine(url)
        factory = db.make_session_factory(engine)
        with factory.begin() as s:
            token = api_repo.add_token(s, "bench", "viewer")
            deep = repo_id_at(s, args.rows // 50)
            deep_run = repo_id_at(s, args.rows // RUNS // 50, run_id=1)
        app = create_app(factory, chain_id=CHAIN)
        cases = {
            "list, first page": "/api/v1/opportunities?limit=50",
            "list, first page of a run": "/api/v1/opportunities?run_id=2&limit=50",
            "list, deep page": f"/api/v1/opportunities?limit=50&before_id={deep}",
            "list, deep page of a run": (
                f"/api/v1/opportunities?run_id=1&limit=50&before_id={deep_run}"
            ),
            "list, first page, 500 rows": "/api/v1/opportunities?limit=500",
            "PnL by day": "/api/v1/pnl?group_by=day",
            "PnL by route": "/api/v1/pnl?group_by=route",
            "PnL by builder": "/api/v1/pnl?group_by=builder",
            "PnL by day, one run": "/api/v1/pnl?group_by=day&run_id=2",
            "status": "/api/v1/status",
        }
        results = asyncio.run(measure(app, token, cases, args.requests))
        insert = engine_insert_cost(factory)
        engine.dispose()
    finally:
        if not args.keep:
            with psycopg.connect(
                conninfo(admin.render_as_string(hide_password=False)), autocommit=True
            ) as c:
                c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    report(args.rows, fill_s, results, insert)


def repo_id_at(session: Any, offset: int, run_id: int | None = None) -> int:
    """The id ``offset`` rows above the oldest (of a run): a cursor deep in the list."""
    stmt = select(OpportunityRow.id).order_by(OpportunityRow.id).offset(offset).limit(1)
    if run_id is not None:
        stmt = stmt.where(OpportunityRow.run_id == run_id)
    value: int = session.scalar(stmt)
    return value


def report(
    rows: int, fill_s: dict[str, float], results: dict[str, Any], insert: dict[str, float]
) -> None:
    """Print the table and write the JSON."""
    print(f"\nAPI over {rows:,} opportunities in PostgreSQL (through the ASGI app)")
    print(f"{'case':<30} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}  target p99 <= 100 ms")
    for name, r in results.items():
        ok = "ok" if r["p99_ms"] <= TARGET_P99_MS else "OVER"
        print(f"{name:<30} {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f} {r['max_ms']:>8.2f}  {ok}")
    print(
        "fill: "
        + ", ".join(f"{k.removesuffix('_s')} {v:.1f} s" for k, v in fill_s.items())
        + f"\nengine, one block of {PER_BLOCK} opportunities: INSERT p50/p99 "
        f"{insert['insert_with_trigger_p50_ms']:.2f} / "
        f"{insert['insert_with_trigger_p99_ms']:.2f} ms "
        f"with the PnL trigger, {insert['insert_without_trigger_p50_ms']:.2f} / "
        f"{insert['insert_without_trigger_p99_ms']:.2f} ms without; repo.add_opportunities "
        f"(INSERT, then its id lookup) {insert['add_opportunities_p50_ms']:.2f} / "
        f"{insert['add_opportunities_p99_ms']:.2f} ms"
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {"rows": rows, "fill": fill_s, "requests": results, "engine_insert": insert}, indent=2
        )
        + "\n",
        encoding="utf-8",
    )


if __name__ == "__main__":
    main()
