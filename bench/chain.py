"""Chain benchmarks on a loopback devnet: bootstrap of 1,000 pools, block-to-opportunities latency.

Runs in the project's own venv (it needs the engine's IO stack), after the degenbot comparison:
``.venv/bin/python -m bench.chain``. The devnet runs in this process (anvil is a child); the
market simulator runs in a separate process, as it would be a separate world on a real chain,
so it does not share this interpreter's lock with the engine being measured.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from arbx.chain.bootstrap import load_pools
from arbx.chain.discovery import discover, token_metadata, with_metadata
from arbx.chain.heads import decode_head, heads
from arbx.chain.rpc import RpcClient
from arbx.chain.sync import ChainSync, hex_hash
from arbx.cli.run import devnet_spec
from arbx.devnet.commands import EmbeddedDevnet
from arbx.domain.journal import PoolBook
from arbx.store.repo import percentile
from arbx.strategies.cyclic import CyclicArbitrage, StrategyLimits

N_POOLS = 1000
BOOTSTRAP_RUNS = 5
LATENCY_BLOCKS = 60
MARKET_PACE = 0.4
BOOTSTRAP_TARGET_S = 3.0
P50_TARGET_MS, P99_TARGET_MS = 50.0, 150.0
RESULTS = Path("build") / "bench" / "chain.json"


async def measure(deployment_file: Path, deployment: Any) -> dict[str, Any]:
    """Bootstrap timings, then per-block latency with the market running in another process."""
    spec = devnet_spec(deployment)
    async with RpcClient([spec.rpc[0]], timeout=30.0) as client:
        head = decode_head(await client.call("eth_getBlockByNumber", ["latest", False]))
        metas = await discover(
            client, spec.venues, 0, head.number, spec.chain_id, multicall_address=spec.multicall
        )
        addresses = sorted({t.address for m in metas for t in (m.token0, m.token1)})
        tokens = await token_metadata(client, spec.multicall, addresses, head.number)
        metas = with_metadata(metas, tokens)
        times = []
        pools: list[Any] = []
        for _ in range(BOOTSTRAP_RUNS):
            started = time.perf_counter()
            pools = await load_pools(client, metas, head.number)
            times.append(time.perf_counter() - started)
        ticks = sum(len(getattr(p, "ticks", ())) for p in pools)
        book = PoolBook(pools, head.number, hex_hash(head.hash))
        strategy = CyclicArbitrage(book, StrategyLimits(base_tokens=spec.base_tokens, max_hops=3))
        sync = ChainSync(client, book)
        market = subprocess.Popen(
            [sys.executable, "-m", "arbx.devnet.commands", "market", "--file", str(deployment_file),
             "--pace", str(MARKET_PACE), "--blocks", str(LATENCY_BLOCKS + 5)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        latencies: list[float] = []
        found = 0
        try:
            async for new_head in heads(client, poll_interval=0.05, use_ws=False):
                started = time.perf_counter()
                update = await sync.advance(new_head)
                opportunities = strategy.on_block(update.changed, new_head.base_fee)
                latencies.append((time.perf_counter() - started) * 1000)
                found += len(opportunities)
                if len(latencies) >= LATENCY_BLOCKS:
                    break
        finally:
            market.terminate()
            market.wait(timeout=10)
    ordered = sorted(latencies)
    return {
        "pools": len(pools),
        "initialized_ticks": ticks,
        "routes": len(strategy.index),
        "bootstrap_s": {"median": statistics.median(times), "best": min(times), "runs": times},
        "latency_ms": {
            "blocks": len(latencies),
            "p50": percentile(ordered, 50),
            "p90": percentile(ordered, 90),
            "p99": percentile(ordered, 99),
        },
        "opportunities": found,
    }


def main() -> int:
    """Run the chain benchmarks and print their table."""
    print(f"bench.chain: building a devnet with {N_POOLS} pools...", file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory() as folder:
        file = Path(folder) / "devnet.json"
        with EmbeddedDevnet.start(seed=3, n_pools=N_POOLS, market=False, file=file) as devnet:
            result = asyncio.run(measure(file, devnet.deployment))
    boot = result["bootstrap_s"]["median"]
    lat = result["latency_ms"]
    rows = [
        (
            f"Bootstrap {result['pools']} pools ({result['initialized_ticks']} ticks), loopback",
            f"{boot:.2f} s",
            f"<= {BOOTSTRAP_TARGET_S:.0f} s",
            boot <= BOOTSTRAP_TARGET_S,
        ),
        (
            f"Block -> opportunities, p50 ({lat['blocks']} blocks, {result['routes']} routes)",
            f"{lat['p50']:.1f} ms",
            f"<= {P50_TARGET_MS:.0f} ms",
            lat["p50"] <= P50_TARGET_MS,
        ),
        (
            "Block -> opportunities, p99",
            f"{lat['p99']:.1f} ms",
            f"<= {P99_TARGET_MS:.0f} ms",
            lat["p99"] <= P99_TARGET_MS,
        ),
    ]
    print("\nchain benchmarks (anvil on loopback, market simulator in its own process)\n")
    width = max(len(r[0]) for r in rows)
    for name, value, target, met in rows:
        print(f"{name:<{width}}  {value:>10}  {target:<10}  {'yes' if met else 'NO'}")
    print(f"\nopportunities seen: {result['opportunities']}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"results: {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
