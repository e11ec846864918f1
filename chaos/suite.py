"""The suite: the faults in order on one live run, then combined, then the audit; the report."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from arbx.chain.rpc import RpcClient
from arbx.devnet.anvil import free_port
from arbx.executors.reconcile import settle_earlier
from arbx.store import make_engine, make_session_factory
from arbx.store.models import Run
from chaos import faults as f
from chaos.audit import audit
from chaos.run import Stage, stage
from chaos.world import EngineProcess

REPORT = Path(os.environ.get("ARBX_CHAOS_OUT", "build/chaos")) / "report.json"

Step = Callable[[Stage, EngineProcess], Awaitable[Any]]


async def _combined(s: Stage, engine: EngineProcess) -> f.Fault:
    """RPC latency, a builder answering 5xx, a reorg of depth 3 and PostgreSQL restarted, at
    once."""
    assert s.postgres is not None
    for proxy in s.rpcs:
        proxy.delay, proxy.mode = 0.2, "latency"
    s.builder.mode = "5xx"
    await asyncio.to_thread(s.postgres.stop, "fast")
    await f._reorg(s, 3)
    await asyncio.sleep(8)
    await asyncio.to_thread(s.postgres.start)
    for proxy in [*s.rpcs, s.builder]:
        proxy.mode = "ok"
    ended = time.monotonic()
    try:
        recover = await f.caught_up(s, engine, ended)
        await engine.wait_event("bundle_sent", len(engine.log.named("bundle_sent")) + 2, 120)
    except (TimeoutError, RuntimeError) as exc:
        return f.Fault("combined", False, None, str(exc))
    return f.Fault("combined", True, round(recover, 3), "latency + builder 5xx + reorg + restart")


# The reorg faults come last: after many ``anvil_reorg`` calls anvil may stop serving the blocks
# they replaced and answer some calls wrongly (ADR 0029), which would fail the faults after them.
FULL: Sequence[str] = (
    "rpc_endpoint_killed", "rpc_all_down", "rpc_latency", "rpc_dropped", "postgres_restart",
    "builder_5xx", "builder_timeout", "builder_garbage", "api_load", "signer_lock_cut",
    "sigkill_mid_bundle", "combined", "sqlite_locked", "reorgs", "reorg_past_journal",
)  # fmt: skip
SHORT: Sequence[str] = (
    "rpc_endpoint_killed", "postgres_restart", "builder_5xx", "sigkill_mid_bundle",
)  # fmt: skip


async def run_suite(
    folder: Path, names: Sequence[str], *, all_down_s: float = 30.0, hold_s: float = 10.0
) -> dict[str, Any]:
    """Run the named faults on one stage (each held ``hold_s``); the report."""
    f.HOLD["seconds"] = hold_s
    results: list[f.Fault] = []
    crashes: list[str] = []
    engines: list[EngineProcess] = []
    started = time.monotonic()
    async with stage(folder) as s:
        s.logs = REPORT.parent / "logs"
        shutil.rmtree(s.logs, ignore_errors=True)
        engine = await s.engine("engine", api_port=free_port() if "api_load" in names else None)
        steps: dict[str, Step] = {
            "rpc_endpoint_killed": f.rpc_endpoint_killed,
            "rpc_all_down": lambda st, e: f.rpc_all_down(st, e, all_down_s),
            "rpc_latency": f.rpc_latency,
            "rpc_dropped": f.rpc_dropped,
            "reorgs": lambda st, e: f.reorgs(st, e, range(1, 65)),
            "reorgs_short": lambda st, e: f.reorgs(st, e, range(1, 4)),
            "reorg_past_journal": f.reorg_past_journal,
            "postgres_restart": f.postgres_restart,
            "builder_5xx": lambda st, e: f.builder_fault(st, e, "5xx"),
            "builder_timeout": lambda st, e: f.builder_fault(st, e, "timeout"),
            "builder_garbage": lambda st, e: f.builder_fault(st, e, "garbage"),
            "api_load": f.api_load,
            "combined": _combined,
        }
        databases = [_direct(s)]
        for name in names:
            if name == "sqlite_locked":  # on a SQLite file, the PostgreSQL engines stopped
                for e in s.engines:
                    if e.running:
                        await e.stop()
                fault, sqlite_engine, url = await _sqlite_phase(s)
                engines.append(sqlite_engine)
                databases.append(url)
                print(_row(fault), flush=True)
                results.append(fault)
                if name != names[-1]:
                    engine = await s.engine(f"engine-{len(s.engines)}")
                continue
            if name == "sigkill_mid_bundle":
                fault, engine = await f.sigkill_mid_bundle(s, engine)
            elif name == "signer_lock_cut":
                fault, engine = await f.signer_lock_cut(s, engine)
            else:
                fault = await steps[name](s, engine)
            print(_row(fault), flush=True)
            results.append(fault)
            if not engine.running:
                crashes.append(f"{engine.name}: {engine.tail()}")
                engine = await s.engine(f"engine-{len(s.engines)}")
        for e in s.engines:
            if e.running:
                await e.stop()
        engines += [e for e in s.engines if e not in engines]
        settled = 0
        for url in databases:  # what the next start of a live engine settles first
            settled += await _settle_as_next_start(s, url)
        checked = await audit(
            rpc_url=s.deployment.rpc_url,
            database_urls=databases,
            searcher=s.deployment.accounts.searcher,
            executor=s.executor,
            sent=s.builder.sent,
        )
    for e in engines:
        if not e.killed and e.returncode not in (0, None):
            crashes.append(f"{e.name} exited {e.returncode}: {e.tail()}")
        crashes += [f"{e.name}: {line[:300]}" for line in e.log.tracebacks()[:1]]
    return {
        "faults": [
            {"name": r.name, "survived": r.survived, "recover_s": r.recover_s, "detail": r.detail,
             **({"figures": r.figures} if r.figures else {})}
            for r in results
        ],
        "crashes": len(crashes),
        "double_sends": checked.double_sends,
        "lost_records": checked.lost_records,
        "parity_failures": checked.parity_failures,
        "crash_details": crashes,
        "findings": checked.findings,
        "totals": {
            "chain_txs": checked.chain_txs, "builder_txs": checked.builder_txs,
            "bundle_records": checked.records, "parity_checks": checked.parity_checks,
            "records_contradicting_chain": checked.wrong_records, "runs": checked.runs,
        },
        "settled_as_next_start": settled,
        "duration_s": round(time.monotonic() - started, 1),
    }  # fmt: skip


def _direct(s: Stage) -> str:
    """The stage's database address without the proxy in front of it."""
    if s.postgres and s.db_proxy:
        return s.database_url.replace(f":{s.db_proxy.port}/", f":{s.postgres.port}/")
    return s.database_url


async def _settle_as_next_start(s: Stage, url: str) -> int:
    """Settle the bundles the last engine left in flight at its stop, as the next start of a live
    engine does before trading (``executors.reconcile``); how many rows it settled or added."""
    engine = make_engine(url)
    try:
        sessions = make_session_factory(engine)
        with sessions() as session:
            run_id = session.scalar(select(func.max(Run.id)))
        if run_id is None:
            return 0
        async with RpcClient([s.deployment.rpc_url], timeout=10.0) as client:
            done = await settle_earlier(
                sessions, client, s.deployment.accounts.searcher, int(run_id), blocks_ahead=1,
                poll=0.05,
            )  # fmt: skip
    finally:
        engine.dispose()
    return done.settled + done.recovered


async def _sqlite_phase(s: Stage) -> tuple[f.Fault, EngineProcess, str]:
    """The engine on a SQLite file (the same chain and key; the PostgreSQL engines stopped)."""
    url = f"sqlite:///{s.folder / 'arbx-sqlite.db'}"
    saved = s.database_url
    s.database_url = url
    try:
        engine = await s.engine("engine-sqlite")
        await engine.wait_event("bundle_sent", 2, 120)
        fault = await f.sqlite_locked(s, engine)
        await engine.stop()
    finally:
        s.database_url = saved
    return fault, engine, url


def _row(fault: f.Fault) -> str:
    recover = "-" if fault.recover_s is None else f"{fault.recover_s:.2f}"
    mark = "yes" if fault.survived else "NO"
    return f"{fault.name:<34} {mark:>8} {recover:>9}  {fault.detail}"


def table(report: dict[str, Any]) -> str:
    """The report as the table ``make chaos`` prints."""
    lines = [f"{'fault':<34} {'survived':>8} {'recover_s':>9}  detail"]
    lines += [
        _row(f.Fault(**{k: v for k, v in x.items() if k != "figures"})) for x in report["faults"]
    ]
    lines.append("")
    for key in ("crashes", "double_sends", "lost_records", "parity_failures"):
        lines.append(f"{key:<34} {report[key]:>8}")
    return "\n".join(lines)


def write(report: dict[str, Any], path: Path = REPORT) -> None:
    """Write the report as JSON."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")


__all__ = ["FULL", "SHORT", "run_suite", "table", "write"]
