"""The garbage collector's full passes between blocks, not inside them (ADR 0035).

CPython runs a full (generation 2) collection once enough objects have survived the young
generations; at mainnet scale one walks the pool states, the detection's rankings and the swap
ladders that outlive a block (20 to 50 ms on a loaded machine), and it lands inside whichever
block's detection allocates the object that crosses the threshold: those were the slowest
blocks. While a run is under way, ``BetweenBlocks`` turns the automatic full passes off and runs
one itself after every ``every``-th block (32 by default), once that block's work is done (its
bundle sent); the young generations are collected as before, and the thresholds come back when
the run ends. Nothing is left uncollected for longer than ``every`` blocks.
"""

from __future__ import annotations

import gc
import time
from types import TracebackType

FULL_EVERY = 32  # blocks between two full passes (the automatic ones came every 30 or so)
_NEVER = 2**31 - 1  # a generation-2 threshold never reached
_active = 0  # runs under way in this process (the thresholds are the process's)
_saved: tuple[int, int, int] = gc.get_threshold()


class BetweenBlocks:
    """Full collections after a block's work instead of during it (a context for the run)."""

    def __init__(self, every: int = FULL_EVERY) -> None:
        self.every = max(1, every)
        self.blocks = 0
        self.passes_ms: list[float] = []  # each full pass's wall time, for the benchmarks
        self.passes_cpu_ms: list[float] = []  # and its thread's CPU time

    def __enter__(self) -> BetweenBlocks:
        global _active, _saved  # noqa: PLW0603 (the collector's thresholds are process-wide)
        if _active == 0:
            _saved = gc.get_threshold()
            gc.set_threshold(_saved[0], _saved[1], _NEVER)
        _active += 1
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        global _active  # noqa: PLW0603
        _active -= 1
        if _active == 0:
            gc.set_threshold(*_saved)

    def after_block(self) -> None:
        """A block's work is done: every ``every``-th time, the full pass it would have held."""
        self.blocks += 1
        if self.blocks % self.every == 0:
            started, cpu = time.perf_counter(), time.thread_time()
            gc.collect()
            self.passes_ms.append((time.perf_counter() - started) * 1000)
            self.passes_cpu_ms.append((time.thread_time() - cpu) * 1000)
            del self.passes_ms[:-1000], self.passes_cpu_ms[:-1000]
