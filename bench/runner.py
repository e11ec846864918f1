"""Run every case, print the table, write build/bench/results.json."""

from __future__ import annotations

import datetime
import os
import platform
import sys
import time
from pathlib import Path

from bench.fixtures import REPO
from bench.timing import REPEAT

RESULTS = REPO / "build" / "bench" / "results.json"


def main() -> int:
    """The ``python -m bench`` entry point; 0 when every case ran and met its target."""
    try:
        from bench import cases, peers_degenbot, report  # noqa: PLC0415 (needs degenbot)
    except ImportError as exc:
        print(f"bench: {exc}; run it with `make bench` (it builds .venv-bench)", file=sys.stderr)
        return 2

    started = time.perf_counter()
    results = []
    for i, case in enumerate(cases.CASES, start=1):
        print(f"bench: case {i}/{len(cases.CASES)}", file=sys.stderr, flush=True)
        results.append(case())
    elapsed = time.perf_counter() - started

    meta = {
        "generated_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "degenbot": peers_degenbot.VERSION,
        "timing": f"median of {REPEAT} repeats; loop count chosen by timeit.autorange",
        "elapsed_s": round(elapsed, 1),
    }
    print(
        f"arbx vs degenbot {meta['degenbot']} - Python {meta['python']}, {meta['machine']}; "
        f"{meta['timing']}"
    )
    print()
    print(report.table(results))
    report.write_json(RESULTS, results, meta)
    print()
    print(f"results: {Path(os.path.relpath(RESULTS))}  ({elapsed:.0f} s)")
    return 0
