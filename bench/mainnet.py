"""Mainnet scale: detection on a 10,000-pool universe shaped like mainnet, block after block.

The universe and its blocks come from ``bench.mainnet_universe`` (seeded; see its docstring for
the shape and where each parameter comes from): V2 and V3 pools at every fee tier around hub
tokens and a long tail, 50 to 150 pools touched per block by exact swaps. The engine's own
detection path runs on it: the pool book applies each block's events (``PoolBook.apply_block``,
what the chain sync does once the logs are decoded) and the cyclic strategy re-evaluates the
routes through the pools they changed (``CyclicArbitrage.on_block``: the route index, the float
filter, exact sizing of the best ``max_sized``, costs). Measured:

- bootstrap: the pool book and the route index over every pool (routes up to 4 hops from WETH;
  4-hop routes only through connector tokens, see ADR 0027), and the route count;
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
import os
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from arbx.domain.arbitrage import estimate, evaluate
from arbx.domain.journal import PoolBook
from arbx.domain.profit import GasModel
from arbx.engine.collector import BetweenBlocks
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


def limits(max_sized: int = MAX_SIZED) -> StrategyLimits:
    """What the strategy may do here: WETH routes up to 4 hops, the 4-hop ones via hubs."""
    return StrategyLimits(
        base_tokens=(mu.WETH,),
        max_hops=MAX_HOPS,
        priority_fee_wei=PRIORITY_FEE_WEI,
        max_routes=2_000_000,
        max_sized=max_sized,
        connector_min_pairs=CONNECTOR_MIN_PAIRS,
        gas=GasModel(),
    )


def peak_rss_mb() -> float:
    """The process's peak resident memory so far (Linux reports kilobytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(
    n_pools: int = N_POOLS,
    n_blocks: int = BLOCKS,
    seed: int = 1,
    every_route: bool = False,
    max_sized: int = MAX_SIZED,
) -> dict[str, Any]:
    """Build the universe and its blocks, bootstrap, then time every block; the figures.

    ``every_route``: detect by estimating every touched route (``evaluate`` on
    ``RouteIndex.touched``, what the strategy did before ADR 0027), for comparison; the same
    opportunities, more time.
    """
    started = time.perf_counter()
    universe = mu.generate(n_pools, seed)
    generated_s = time.perf_counter() - started
    events = list(mu.blocks(universe, WARMUP + n_blocks, seed + 1))
    gc.collect()

    started = time.perf_counter()
    book = PoolBook(universe.pools, mu.FIRST_BLOCK, mu.block_hash(mu.FIRST_BLOCK))
    strategy = CyclicArbitrage(book, limits(max_sized))
    bootstrap_s = time.perf_counter() - started
    routes_total = len(strategy.index)
    rss_after_bootstrap = peak_rss_mb()

    latencies: list[float] = []  # sorted before the percentiles
    cpu: list[float] = []
    touched_pools: list[int] = []
    touched: list[int] = []
    live: list[int] = []
    found: list[int] = []
    collector = BetweenBlocks()  # as the engine's loop runs: full passes between blocks
    collector.__enter__()
    for offset, block in enumerate(events, start=1):
        number = mu.FIRST_BLOCK + offset
        t0, c0 = time.perf_counter(), time.process_time()
        changed = book.apply_block(number, mu.block_hash(number), mu.block_hash(number - 1), block)
        if every_route:
            opportunities = evaluate(
                strategy.index.touched(changed),
                book.pools,
                strategy.costs(BASE_FEE_WEI),
                None,
                max_sized,
            )
        else:
            opportunities = strategy.on_block(changed, BASE_FEE_WEI)
        elapsed_ms = (time.perf_counter() - t0) * 1000
        cpu_ms = (time.process_time() - c0) * 1000
        collector.after_block()  # after the block's work, as the engine's loop does
        if offset <= WARMUP:
            continue
        latencies.append(elapsed_ms)
        cpu.append(cpu_ms)
        routes = strategy.index.touched(changed)  # untimed: what the block asked of detection
        curves: dict[str, tuple[float, float, float, float]] = {}
        touched_pools.append(len(changed))
        touched.append(len(routes))
        live.append(sum(estimate(r, book.pools, curves) is not None for r in routes))
        found.append(len(opportunities))
    collector.__exit__(None, None, None)
    passes = sorted(collector.passes_ms)
    passes_cpu = sorted(collector.passes_cpu_ms)

    def spread(values: list[int]) -> dict[str, float]:
        return {
            "mean": round(statistics.fmean(values), 1),
            "p50": _nearest(sorted(float(v) for v in values), 50),
            "max": max(values),
        }

    sized = [min(n, max_sized) for n in live]
    latencies.sort()
    cpu.sort()
    return {
        "universe": universe.describe(),
        "detection": "every touched route estimated" if every_route else "token-path bound",
        "generate_s": round(generated_s, 2),
        "bootstrap_s": round(bootstrap_s, 2),
        "routes": routes_total,
        "max_hops": MAX_HOPS,
        "connector_min_pairs": CONNECTOR_MIN_PAIRS,
        "max_sized": max_sized,
        "blocks": len(latencies),
        "latency_ms": {
            "p50": round(_nearest(latencies, 50), 2),
            "p99": round(_nearest(latencies, 99), 2),
            "max": round(max(latencies), 2),
            "mean": round(statistics.fmean(latencies), 2),
        },
        # the process's own CPU time per block: on a machine shared with other work, the
        # latency it would have alone (detection is one thread and does no IO)
        "cpu_ms": {
            "p50": round(_nearest(cpu, 50), 2),
            "p99": round(_nearest(cpu, 99), 2),
            "max": round(max(cpu), 2),
        },
        # the collector's full passes, run between blocks every FULL_EVERY blocks (ADR 0035)
        "full_collections_between_blocks": {
            "every_blocks": collector.every,
            "count": len(passes),
            "p50_ms": round(_nearest(passes, 50), 2) if passes else None,
            "max_ms": round(max(passes), 2) if passes else None,
            "cpu_p50_ms": round(_nearest(passes_cpu, 50), 2) if passes_cpu else None,
            "cpu_max_ms": round(max(passes_cpu), 2) if passes_cpu else None,
        },
        "load_average_1m": round(os.getloadavg()[0], 1),
        "cpus": os.cpu_count(),
        "pools_touched_per_block": spread(touched_pools),
        "routes_touched_per_block": spread(touched),
        "routes_live_per_block": spread(live),
        "routes_sized_per_block": spread(sized),
        "opportunities_per_block": spread(found),
        "opportunities_total": sum(found),
        "rss_after_bootstrap_mb": round(rss_after_bootstrap, 1),
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }


def _nearest(sorted_values: list[float], p: int) -> float:
    value = percentile(sorted_values, p)
    assert value is not None, "no blocks measured"
    return value


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its table."""
    parser = argparse.ArgumentParser(prog="python -m bench.mainnet", description=__doc__)
    parser.add_argument("--pools", type=int, default=N_POOLS)
    parser.add_argument("--blocks", type=int, default=BLOCKS)
    parser.add_argument(
        "--every-route",
        action="store_true",
        help="estimate every touched route, without the token-path bound (for comparison)",
    )
    parser.add_argument(
        "--max-sized",
        type=int,
        default=MAX_SIZED,
        help=f"live routes sized exactly per block (default {MAX_SIZED}, the settings' default)",
    )
    args = parser.parse_args(argv)
    if args.pools < 100 or args.blocks < 1 or args.max_sized < 1:
        parser.error("--pools must be at least 100, --blocks and --max-sized at least 1")
    print(f"bench.mainnet: {args.pools} pools, {args.blocks} blocks", file=sys.stderr, flush=True)
    result = measure(
        args.pools, args.blocks, every_route=args.every_route, max_sized=args.max_sized
    )
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
            "  CPU time of the process, p50 / p99",
            f"{result['cpu_ms']['p50']:.1f} / {result['cpu_ms']['p99']:.1f} ms",
            f"<= {P99_TARGET_MS:.0f} ms",
            result["cpu_ms"]["p99"] <= P99_TARGET_MS,
        ),
        (
            "Peak resident memory",
            f"{result['peak_rss_mb']:.0f} MB",
            f"<= {RSS_TARGET_MB:.0f} MB",
            result["peak_rss_mb"] <= RSS_TARGET_MB,
        ),
    ]
    print(f"\nmainnet scale: {result['universe']}")
    print(f"load average {result['load_average_1m']} on {result['cpus']} CPUs\n")
    width = max(len(r[0]) for r in rows)
    for name, value, target, met in rows:
        verdict = "" if met is None else "yes" if met else "NO"
        print(f"{name:<{width}}  {value:>10}  {target:<10}  {verdict}")
    gcs = result["full_collections_between_blocks"]
    if gcs["count"]:
        print(
            f"  full collections between blocks (every {gcs['every_blocks']}, not in the "
            f"figures above): {gcs['count']}, p50 {gcs['p50_ms']:.1f} ms, "
            f"max {gcs['max_ms']:.1f} ms; CPU p50 {gcs['cpu_p50_ms']:.1f} ms, "
            f"max {gcs['cpu_max_ms']:.1f} ms"
        )
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
    print(f"detection: {result['detection']}; the best {result['max_sized']} sized per block")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    results = RESULTS
    if args.every_route or args.max_sized != MAX_SIZED:
        variant = ("-every-route" if args.every_route else "") + (
            f"-sized-{args.max_sized}" if args.max_sized != MAX_SIZED else ""
        )
        results = RESULTS.with_name(f"mainnet{variant}.json")
    results.write_text(json.dumps(result, indent=2) + "\n")
    print(f"results: {results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
