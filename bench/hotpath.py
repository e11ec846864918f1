"""Head-to-bundle latency: how long the live executor takes from a new head to a bundle sent.

Starts a devnet with ``arbx devnet up`` (anvil and the market in their own processes) and a
builder that answers at once (``bench.instant_builder``, in its own process), then runs the
live pipeline in limited mode for a fixed number of blocks, sending every bundle to that
builder only. The time from the head being seen to the bundle acknowledged is all the
searcher's: sync, detection (the walk, then the trade's few best routes sized: ``choose``; the
others are sized once the bundle has left), the risk gate, signing, simulation (``eth_call`` at
the node, and ``eth_callBundle`` at the builder when ``execution.simulate_at_builders`` says
so), the fences and the send. Prints p50 and p99 against their targets, and the median of each
stage. ``.venv/bin/python -m bench.hotpath``.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from arbx.chain.book import load_book
from arbx.chain.heads import heads
from arbx.chain.rpc import RpcClient
from arbx.chain.sync import ChainSync
from arbx.cli.live import devnet_keys, live_executor, stage_caps
from arbx.cli.run import DEVNET_RISK, devnet_spec
from arbx.config import load_settings
from arbx.devnet.anvil import free_port
from arbx.devnet.deployment import load_deployment
from arbx.engine.pipeline import Pipeline
from arbx.executors.shadow import ShadowExecutor
from arbx.store import make_engine, make_session_factory, migrate, repo
from arbx.store.repo import percentile
from arbx.strategies.cyclic import CyclicArbitrage, StrategyLimits

BLOCKS = 240
PACE = 0.1
TARGET_P50_MS = 10.0
TARGET_P99_MS = 30.0
RESULTS = Path("build") / "bench" / "hotpath.json"


async def measure(rpc_url: str, builder_url: str, key_file: Path, folder: Path) -> dict[str, Any]:
    """The live pipeline for BLOCKS blocks against ``builder_url``; latencies and stages."""
    url = f"sqlite:///{folder / 'hotpath.db'}"
    migrate.upgrade(url)
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    execution = load_settings().execution.model_copy(update={"blocks_ahead": 1})
    settings = load_settings().model_copy(
        update={"mode": "limited", "risk": DEVNET_RISK, "execution": execution}
    )
    spec = devnet_spec(load_deployment(folder / "devnet.json"))
    async with RpcClient([rpc_url], timeout=10.0) as client:
        book = (await load_book(client, spec)).book
        with sessions.begin() as session:
            repo.upsert_chain(session, 31337, "devnet")
            run_id = repo.start_run(session, 31337, mode="limited")
        recorder = ShadowExecutor(sessions, run_id, 31337)
        environ = {**os.environ, **devnet_keys(folder, key_file)}
        executor, risk, relay = await live_executor(
            settings=settings, mode="limited", engine=engine, sessions=sessions, client=client,
            chain_id=31337, base_token=spec.base_tokens[0], pools=book.pools, recorder=recorder,
            builder_url=builder_url, environ=environ, deploy=True,
        )  # fmt: skip
        strategy = CyclicArbitrage(book, StrategyLimits(base_tokens=spec.base_tokens))
        strategy.caps = lambda: stage_caps(risk, spec.base_tokens)
        pipeline = Pipeline(
            heads(client, poll_interval=0.02, use_ws=False), ChainSync(client, book),
            strategy, executor, pools=lambda: len(book),
        )  # fmt: skip
        try:
            summary = await pipeline.run(asyncio.Event(), max_blocks=BLOCKS)
        finally:
            await _stop(executor, risk)
            await relay.close()
    stats = executor.stats
    ordered = sorted(stats.bundle_latencies_ms)
    cpu = sorted(stats.bundle_cpu_ms)
    stages = getattr(executor, "timings", {})
    cpu_stages = getattr(executor, "cpu_timings", {})
    return {
        "blocks": summary.blocks,
        "simulation": "node eth_call"
        + (" and builder eth_callBundle" if settings.execution.simulate_at_builders else ""),
        "considered": stats.considered,
        "sent": stats.sent,
        "sim_failed": stats.sim_failed,
        "refused": stats.refused,
        "stale": stats.stale,
        "led": stats.led,
        "lead_missed": stats.lead_missed,
        "head_to_bundle_ms": {
            "samples": len(ordered),
            "p50": percentile(ordered, 50),
            "p99": percentile(ordered, 99),
            "target_p50": TARGET_P50_MS,
            "target_p99": TARGET_P99_MS,
        },
        "engine_cpu_ms": {
            "samples": len(cpu),
            "p50": percentile(cpu, 50),
            "p99": percentile(cpu, 99),
        },
        "stages_ms_p50": {name: percentile(sorted(v), 50) for name, v in stages.items() if v},
        "stages_ms_p99": {name: percentile(sorted(v), 99) for name, v in stages.items() if v},
        "stages_cpu_ms_p50": {
            name: percentile(sorted(v), 50) for name, v in cpu_stages.items() if v
        },
    }


async def _stop(executor: Any, risk: Any) -> None:
    closing = getattr(executor, "close", None)
    if closing is not None:
        await closing()
    risk.stop()


def _start_double(node_url: str, log: Path) -> tuple[subprocess.Popen[str], str]:
    """The instant builder in its own process; it and its URL."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.instant_builder", "--node", node_url],
        stdout=subprocess.PIPE,
        stderr=log.open("w"),
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if not line.startswith("listening on "):
        proc.kill()
        raise RuntimeError(f"the instant builder did not start: {log.read_text()[-500:]}")
    return proc, line.removeprefix("listening on ")


def main() -> int:
    """Run the head-to-bundle benchmark and print its figures against the targets."""
    print(f"bench.hotpath: {BLOCKS} blocks, limited mode, instant builder...", file=sys.stderr)
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        key_file = folder / "devnet-searcher.key"
        file = folder / "devnet.json"
        arbx = [sys.executable, "-m", "arbx.cli", "devnet"]
        subprocess.run(
            [*arbx, "up", "--port", str(free_port()), "--block-time", "0", "--pace", str(PACE),
             "--seed", "5", "--file", str(file), "--searcher-key-file", str(key_file)],
            check=True, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        double = None
        load_before = os.getloadavg()[0]
        try:
            rpc_url = load_deployment(file).rpc_url
            double, builder_url = _start_double(rpc_url, folder / "instant-builder.log")
            result = asyncio.run(measure(rpc_url, builder_url, key_file, folder))
        finally:
            if double is not None:
                double.terminate()
                out, _ = double.communicate(timeout=10)
                last = out.strip().splitlines()[-1:] if out else []
                if last and last[0].startswith("{"):
                    result["builder"] = json.loads(last[0])
            subprocess.run([*arbx, "down", "--file", str(file)], check=False)
    result["load"] = f"{load_before:.1f} / {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    lat = result["head_to_bundle_ms"]
    p50, p99 = lat["p50"] or 0.0, lat["p99"] or 0.0
    met = p50 <= TARGET_P50_MS and p99 <= TARGET_P99_MS
    print("\nhead -> bundle sent (limited mode, devnet, a builder that answers at once)\n")
    print(f"machine load       {result['load']} (1-minute load average, before and after)")
    print(f"blocks                 {result['blocks']}")
    print(f"simulation             {result['simulation']} (execution.simulate_at_builders)")
    print(
        f"bundles                {result['sent']} sent of {result['considered']} considered, "
        f"{result['sim_failed']} failed simulation, {result['refused']} refused"
    )
    print(
        f"head -> bundle sent    p50 {p50:.1f} ms (target <= {TARGET_P50_MS:g}), "
        f"p99 {p99:.1f} ms (target <= {TARGET_P99_MS:g}), {lat['samples']} bundles: "
        f"{'met' if met else 'NOT MET'}"
    )
    print(
        f"trades chosen          {result['led']} from the block's best routes sized first, "
        f"{result['lead_missed']} of them other than all its routes sized would give"
    )
    cpu = result["engine_cpu_ms"]
    print(
        f"  the engine loop's own CPU time, head to bundle: p50 {cpu['p50'] or 0:.1f} ms, "
        f"p99 {cpu['p99'] or 0:.1f} ms (the rest of the latency is waiting: for the node, the "
        "builder, the database thread, and for a CPU)"
    )
    for stage, value in result["stages_ms_p50"].items():
        p99, cpu = result["stages_ms_p99"][stage], result["stages_cpu_ms_p50"].get(stage, 0.0)
        print(f"  {stage:<20} p50 {value:6.2f} ms  p99 {p99:6.2f} ms  loop CPU p50 {cpu:5.2f} ms")
    builder = result.get("builder", {}).get("answer_ms_p50", {})
    if builder:
        spent = ", ".join(f"{m} {v:.2f} ms" for m, v in sorted(builder.items()))
        print(f"  the builder's own time to answer (p50): {spent}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"results: {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
