"""Full garbage collections between blocks: off inside a run, one after every few blocks' work,
the thresholds back after the run."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

from arbx.engine.collector import BetweenBlocks
from arbx.engine.runner import Supervisor
from tests.unit.test_supervision import ScriptedSync, loop_test, pipeline


def _blocks(collector: BetweenBlocks, n: int) -> None:
    """``n`` blocks end, each followed by the collector's turn."""
    for _ in range(n):
        collector.after_block()


def full_passes(work: Any) -> int:
    """How many generation-2 collections ``work()`` held."""
    seen: list[int] = []

    def count(phase: str, info: dict[str, int]) -> None:
        if phase == "start" and info["generation"] == 2:
            seen.append(1)

    gc.callbacks.append(count)
    try:
        work()
    finally:
        gc.callbacks.remove(count)
    return len(seen)


def test_inside_a_run_full_passes_come_only_after_every_nth_block() -> None:
    before = gc.get_threshold()
    collector = BetweenBlocks(every=3)
    with collector:
        assert gc.get_threshold()[:2] == before[:2]
        assert gc.get_threshold()[2] > 10**9  # never reached: no automatic full pass
        # young collections go on; many survivors would have started full passes before
        kept = [[i] for i in range(200_000)]
        assert full_passes(lambda: _blocks(collector, 2)) == 0
        assert full_passes(collector.after_block) == 1
        assert full_passes(lambda: _blocks(collector, 3)) == 1
        assert len(collector.passes_ms) == 2
        del kept
    assert gc.get_threshold() == before


def test_overlapping_runs_restore_the_thresholds_when_the_last_ends() -> None:
    before = gc.get_threshold()
    first, second = BetweenBlocks(), BetweenBlocks()
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)
    assert gc.get_threshold()[2] > 10**9  # the second run is still under way
    second.__exit__(None, None, None)
    assert gc.get_threshold() == before


@loop_test
async def test_the_supervised_loop_counts_its_blocks_for_the_collector() -> None:
    before = gc.get_threshold()
    run = pipeline(range(1, 6), ScriptedSync({}), None)
    run.collector = BetweenBlocks(every=2)
    summary = await Supervisor(run).run(asyncio.Event())
    assert summary.blocks == run.collector.blocks == 5
    assert len(run.collector.passes_ms) == 2
    assert gc.get_threshold() == before
