"""Capture more: one route per block against several pool-disjoint routes per block.

``python -m bench.capture [--blocks N] [--seed S] [--competitors N] [--routes R] [--repeat K]
[--jobs J]`` (project venv). Limited runs of ``arbx run`` on the embedded devnet, the same seed
and competitors for every arm (default: 300 blocks, seed 1, 2 competitors), each in a fresh
directory with its own SQLite database, K times each arm (default 1), J runs at a time:

- ``one``: today's executor (``execution.routes_per_block = 1``, builder share 0);
- ``several``: the block's best and up to R - 1 more pool-disjoint routes (``extra_routes =
  "all"``) in one ``executeMany`` transaction (default R = 8), builder share 0;
- ``several+bids``: the same, with the builder's share per route from the rivals self-scoring
  saw on its pools (``execution.bidding.enabled``, its default bounds; ADR 0033).

For each run, from ``arbx report --json``: bundles sent and included, realized profit of the
included ones (the profit captured), the capture rate of the capturable opportunities (the best
pool-disjoint set per block) and what others took; then each arm's mean. The market and the
competitors are seeded, but the block the engine joins at (its start-up under load) and which
bundles reach their block vary from run to run: two runs of one arm differ by up to about 1 ETH
of realized profit, so compare means over several runs, with the load average printed beside.
Prints a table; JSON in ``build/bench/capture.json``.

``--short`` is the form ``make bench`` runs: the three arms at once on the same seed and
competitors, ``SHORT_BLOCKS`` blocks each (unless ``--blocks`` says otherwise), one run each
(JSON in ``build/bench/capture-short.json``). It shows the arms apart on capture rate and
what others took; its realized profits are within one run's noise of each other (the full
form's spread between runs of one arm is up to 0.7 ETH in 300 blocks), so it is a check that
the comparison still runs and points the same way, not the measurement.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parents[1] / "build" / "bench" / "capture.json"
SHORT_RESULTS = RESULTS.with_name("capture-short.json")
SHORT_BLOCKS = 60
ETH = 10**18


def _arbx(args: list[str], cwd: Path, env: dict[str, str], timeout: float) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "arbx.cli", *args],
        cwd=cwd,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        tail = (proc.stdout[-1500:] + proc.stderr[-1500:]).strip()
        raise SystemExit(f"arbx {args[0]} failed ({proc.returncode}): {tail.splitlines()[-1]}")
    return proc.stdout


def run_arm(name: str, settings: dict[str, str], args: argparse.Namespace) -> dict[str, Any]:
    """One limited run with ``settings`` (environment overrides) and its report's figures."""
    with tempfile.TemporaryDirectory(prefix=f"arbx-capture-{name}-") as folder:
        cwd = Path(folder)
        env = {"ARBX_DATABASE_URL": f"sqlite:///{cwd / 'arbx.db'}", **settings}
        load_before = os.getloadavg()[0]
        started = time.monotonic()
        _arbx(
            ["run", "--mode", "limited", "--plain", "--max-blocks", str(args.blocks),
             "--seed", str(args.seed), "--competitors", str(args.competitors)],
            cwd, env, timeout=60 * 60,
        )  # fmt: skip
        wall = time.monotonic() - started
        report = json.loads(_arbx(["report", "--json"], cwd, env, timeout=600))
    scoring, bundles = report["scoring"], report["bundles"]
    capturable = scoring["capturable_outcomes"]
    return {
        "arm": name,
        "settings": settings,
        "blocks": report["blocks"],
        "bundles_sent": bundles["sent"],
        "bundles_included": bundles["included"],
        "bundles_reverted": bundles["reverted"],
        "realized_wei": int(report["included_realized_profit_wei"]),
        "expected_wei": int(report["included_expected_net_profit_wei"]),
        "capturable_net_profit_wei": int(report["capturable_net_profit_wei"]),
        "capturable_scored": sum(capturable.values()),
        "capturable_captured_us": capturable["captured_us"],
        "capturable_captured_other": capturable["captured_other"],
        "capture_rate": scoring["capturable_capture_rate"],
        "others_profit_wei": int(scoring["taken_by_others_profit_wei"]),
        "wall_s": round(wall, 1),
        "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }


def arms(routes: int) -> list[tuple[str, dict[str, str]]]:
    """The arms compared: their names and settings (environment overrides)."""
    several = {
        "ARBX_EXECUTION__ROUTES_PER_BLOCK": str(routes),
        "ARBX_EXECUTION__EXTRA_ROUTES": "all",
    }
    return [
        ("one", {"ARBX_EXECUTION__ROUTES_PER_BLOCK": "1"}),
        ("several", several),
        ("several+bids", {**several, "ARBX_EXECUTION__BIDDING__ENABLED": "true"}),
    ]


def main(argv: list[str] | None = None) -> int:
    """Run every arm, print the table and write the JSON."""
    parser = argparse.ArgumentParser(prog="python -m bench.capture", description=__doc__)
    parser.add_argument("--blocks", type=int, default=None, help="default 300 (60 if --short)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--competitors", type=int, default=2)
    parser.add_argument("--routes", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--short", action="store_true", help="the arms at once, one run each")
    args = parser.parse_args(argv)
    if args.blocks is None:
        args.blocks = SHORT_BLOCKS if args.short else 300
    if args.blocks < 1 or args.repeat < 1 or args.routes < 1:
        parser.error("--blocks, --repeat and --routes must be at least 1")
    results_path = RESULTS
    if args.short:
        args.repeat, args.jobs, results_path = 1, len(arms(args.routes)), SHORT_RESULTS
    todo = [arm for _ in range(args.repeat) for arm in arms(args.routes)]
    print(f"{len(todo)} runs of {args.blocks} blocks, seed {args.seed}, {args.competitors} "
          f"competitors, {args.jobs} at a time...", flush=True)  # fmt: skip
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        results = list(pool.map(lambda arm: run_arm(arm[0], arm[1], args), todo))
    print("arm | sent | included | realized ETH | capture rate | ours/others/scored | "
          "others' ETH | load")  # fmt: skip
    for r in results:
        print(" | ".join([
            r["arm"], str(r["bundles_sent"]), str(r["bundles_included"]),
            f"{r['realized_wei'] / ETH:.4f}", f"{r['capture_rate']:.1%}",
            f"{r['capturable_captured_us']}/{r['capturable_captured_other']}/"
            f"{r['capturable_scored']}",
            f"{r['others_profit_wei'] / ETH:.4f}",
            "{:.1f}-{:.1f}".format(*r["load_average"]),
        ]))  # fmt: skip
    means = {}
    for name, _ in arms(args.routes):
        runs = [r for r in results if r["arm"] == name]
        means[name] = {
            "runs": len(runs),
            "realized_eth": sum(r["realized_wei"] for r in runs) / len(runs) / ETH,
            "capture_rate": sum(r["capture_rate"] for r in runs) / len(runs),
        }
        print(f"mean {name}: realized {means[name]['realized_eth']:.4f} ETH, capture rate "
              f"{means[name]['capture_rate']:.1%} over {len(runs)} runs")  # fmt: skip
    results_path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"blocks": args.blocks, "seed": args.seed, "competitors": args.competitors,
            "routes": args.routes, "short": args.short}  # fmt: skip
    doc = {"meta": meta, "runs": results, "means": means}
    results_path.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"results: {os.path.relpath(results_path)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
