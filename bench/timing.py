"""Timing one call: timeit's auto-chosen loop count, several repeats, the median per call."""

from __future__ import annotations

import statistics
import timeit
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

REPEAT = 7
UNITS = (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6), ("ns", 1e-9))


@dataclass(frozen=True, slots=True)
class Timing:
    """Seconds per call: median and best of ``repeat`` runs of ``number`` calls each."""

    median: float
    best: float
    number: int
    repeat: int

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready fields (seconds)."""
        return {
            "median_s": self.median,
            "best_s": self.best,
            "number": self.number,
            "repeat": self.repeat,
        }


def measure(fn: Callable[[], object], repeat: int = REPEAT) -> Timing:
    """Time ``fn()``: loops of at least 0.2 s (timeit.autorange), ``repeat`` of them, gc off."""
    (timing,) = measure_together([fn], repeat)
    return timing


def measure_together(fns: Sequence[Callable[[], object]], repeat: int = REPEAT) -> list[Timing]:
    """Time several callables with their repeats interleaved (a, b, a, b, ...).

    On a shared machine the load changes from second to second; interleaving gives every side
    the same conditions, so their ratio means something even when the absolute times drift.
    """
    timers = []
    for fn in fns:
        fn()  # warm caches and fail early, outside the timing
        timer = timeit.Timer(fn)
        number, _ = timer.autorange()
        timers.append((timer, number))
    runs: list[list[float]] = [[] for _ in fns]
    for _ in range(repeat):
        for (timer, number), per_call in zip(timers, runs, strict=True):
            per_call.append(timer.timeit(number) / number)
    return [
        Timing(statistics.median(per_call), min(per_call), number, repeat)
        for (_, number), per_call in zip(timers, runs, strict=True)
    ]


def format_duration(seconds: float) -> str:
    """A short human duration: 0.79 µs, 321 µs, 12.4 ms, 1.20 s."""
    unit, scale = next(((unit, scale) for unit, scale in UNITS if seconds >= scale), UNITS[-1])
    value = seconds / scale
    digits = 2 if value < 10 else 1 if value < 100 else 0
    return f"{value:.{digits}f} {unit}"
