"""Mainnet scale: detection on a 10,000-pool universe shaped like mainnet, block after block.

The universe and its blocks come from ``bench.mainnet_universe`` (seeded; see its docstring for
the shape and where each parameter comes from): V2 and V3 pools at every fee tier around hub
tokens and a long tail, 50 to 150 pools touched per block by exact swaps. The engine's own
detection path runs on it: the pool book applies each block's events (``PoolBook.apply_block``,
what the chain sync does once the logs are decoded) and the cyclic strategy re-evaluates the
routes through the pools they changed (``CyclicArbitrage.on_block``: the route index, the float
filter, exact sizing of the best ``max_sized``, costs). Measured:

- bootstrap: the pool book and the route index over every pool (routes up to 4 hops from WETH;
  4-hop routes only through connector tokens, see ADR 0022), and the route count;
- block to opportunities: apply the block's events and find and size its opportunities, p50 and
  p99 over ``BLOCKS`` blocks (after ``WARMUP`` untimed ones), against the target of 50 ms;
- routes touched, live after the filter and sized exactly, and opportunities, per block;
- peak resident memory of the process, against the target of 2 GB.

``.venv/bin/python -m bench.mainnet [--pools N] [--blocks N]``; table on stdout, JSON in
``build/bench/mainnet.json``.
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from arbx.domain.arbitrage import estimate
from arbx.domain.journal import PoolBook
from arbx.domain.profit import GasModel
from arbx.store.repo import percentile
from arbx.strategies.cyclic import CyclicArbitrage, StrategyLimits
from bench import mainnet_universe as mu

N_POOLS = 10_000
BLOCKS = 300
WARMUP = 10
MAX_HOPS = 4
CONNECTOR_MIN_PAIRS = 4
MAX_SIZED = 64
BASE_FEE_WEI = 10 * 10**9
PRIORITY_FEE_WEI = 10**9
P99_TARGET_MS = 50.0
RSS_TARGET_MB = 2048.0
RESULTS = Path("build") / "bench" / "mainnet.json"


def limits() -> StrategyLimits:
    """What the strategy may do here: WETH routes up to 4 hops, the 4-hop ones via hubs."""
    return StrategyLimits(
        base_tokens=(mu.WETH,),
        max_hops=MAX_HOPS,
        priority_fee_wei=PRIORITY_FEE_WEI,
        max_routes=2_000_000,
        max_sized=MAX_SIZED,
        connector_min_pairs=CONNECTOR_MIN_PAIRS,
        gas=GasModel(),
    )


def peak_rss_mb() -> float:
    """The process's peak resident memory so far (Linux reports kilobytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(n_pools: int = N_POOLS, n_blocks: int = BLOCKS, seed: int = 1) -> dict[str, Any]:
    """Build the universe and its blocks, bootstrap, then time every block; the figures."""
    started = time.perf_counter()
    universe = mu.generate(n_pools, seed)
    generated_s = time.perf_counter() - started
    events = list(mu.blocks(universe, WARMUP + n_blocks, seed + 1))
    gc.collect()

    started = time.perf_counter()
    book = PoolBook(universe.pools, mu.FIRST_BLOCK, mu.block_hash(mu.FIRST_BLOCK))
    strategy = CyclicArbitrage(book, limits())
    bootstrap_s = time.perf_counter() - started
    routes_total = len(strategy.index)
    rss_after_bootstrap = peak_rss_mb()

    latencies: list[float] = []  # sorted before the percentiles
    touched_pools: list[int] = []
    touched: list[int] = []
    live: list[int] = []
    found: list[int] = []
    for offset, block in enumerate(events, start=1):
        number = mu.FIRST_BLOCK + offset
        t0 = time.perf_counter()
        changed = book.apply_block(number, mu.block_hash(number), mu.block_hash(number - 1), block)
        opportunities = strategy.on_block(changed, BASE_FEE_WEI)
        elapsed_ms = (time.perf_counter() - t0) * 1000
        if offset <= WARMUP:
            continue
        latencies.append(elapsed_ms)
        routes = strategy.index.touched(changed)  # untimed: what the block asked of detection
        curves: dict[str, tuple[float, float, float, float]] = {}
        touched_pools.append(len(changed))
        touched.append(len(routes))
        live.append(sum(estimate(r, book.pools, curves) is not None for r in routes))
        found.append(len(opportunities))

    def spread(values: list[int]) -> dict[str, float]:
        return {
            "mean": round(statistics.fmean(values), 1),
            "p50": percentile(sorted(float(v) for v in values), 50),
            "max": max(values),
        }

    sized = [min(n, MAX_SIZED) for n in live]
    latencies.sort()
    return {
        "universe": universe.describe(),
        "generate_s": round(generated_s, 2),
        "bootstrap_s": round(bootstrap_s, 2),
        "routes": routes_total,
        "max_hops": MAX_HOPS,
        "connector_min_pairs": CONNECTOR_MIN_PAIRS,
        "blocks": len(latencies),
        "latency_ms": {
            "p50": round(percentile(latencies, 50), 2),
            "p99": round(percentile(latencies, 99), 2),
            "max": round(max(latencies), 2),
            "mean": round(statistics.fmean(latencies), 2),
        },
        "pools_touched_per_block": spread(touched_pools),
        "routes_touched_per_block": spread(touched),
        "routes_live_per_block": spread(live),
        "routes_sized_per_block": spread(sized),
        "opportunities_per_block": spread(found),
        "opportunities_total": sum(found),
        "rss_after_bootstrap_mb": round(rss_after_bootstrap, 1),
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its table."""
    parser = argparse.ArgumentParser(prog="python -m bench.mainnet", description=__doc__)
    parser.add_argument("--pools", type=int, default=N_POOLS)
    parser.add_argument("--blocks", type=int, default=BLOCKS)
    args = parser.parse_args(argv)
    if args.pools < 100 or args.blocks < 1:
        parser.error("--pools must be at least 100 and --blocks at least 1")
    print(f"bench.mainnet: {args.pools} pools, {args.blocks} blocks", file=sys.stderr, flush=True)
    result = measure(args.pools, args.blocks)
    lat = result["latency_ms"]
    rows = [
        ("Bootstrap: pool book and route index", f"{result['bootstrap_s']:.2f} s", "", None),
        (f"Routes (<= {MAX_HOPS} hops from WETH)", f"{result['routes']}", "", None),
        (
            f"Block -> opportunities, p50 ({result['blocks']} blocks)",
            f"{lat['p50']:.1f} ms",
            "",
            None,
        ),
        (
            "Block -> opportunities, p99",
            f"{lat['p99']:.1f} ms",
            f"<= {P99_TARGET_MS:.0f} ms",
            lat["p99"] <= P99_TARGET_MS,
        ),
        (
            "Peak resident memory",
            f"{result['peak_rss_mb']:.0f} MB",
            f"<= {RSS_TARGET_MB:.0f} MB",
            result["peak_rss_mb"] <= RSS_TARGET_MB,
        ),
    ]
    print(f"\nmainnet scale: {result['universe']}\n")
    width = max(len(r[0]) for r in rows)
    for name, value, target, met in rows:
        verdict = "" if met is None else "yes" if met else "NO"
        print(f"{name:<{width}}  {value:>10}  {target:<10}  {verdict}")
    print("\nper block (mean / p50 / max):")
    for key in (
        "pools_touched_per_block",
        "routes_touched_per_block",
        "routes_live_per_block",
        "routes_sized_per_block",
        "opportunities_per_block",
    ):
        s = result[key]
        print(
            f"  {key.removesuffix('_per_block').replace('_', ' ')}: "
            f"{s['mean']} / {s['p50']:.0f} / {s['max']}"
        )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"results: {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
