"""The API-under-load fault's verdict: the engine's figures with load against without it."""

from __future__ import annotations

from typing import Any

from chaos.faults import Window, _rank, judge


def figures(p50: float, p99: float, sent: int, blocks: int) -> dict[str, Any]:
    return {"samples": sent, "p50": p50, "p99": p99, "sent_per_block": sent / blocks}


def test_within_the_bound_is_not_affected() -> None:
    quiet = figures(100.0, 300.0, 40, 100)
    assert judge(quiet, figures(155.0, 620.0, 28, 100)) == []  # 1.5x + 5, 2x + 20, 0.7x


def test_each_miss_is_named() -> None:
    quiet = figures(100.0, 300.0, 40, 100)
    assert judge(quiet, figures(156.0, 300.0, 40, 100)) == ["p50 156.0 ms > 155.0"]
    assert judge(quiet, figures(100.0, 621.0, 40, 100)) == ["p99 621.0 ms > 620.0"]
    assert judge(quiet, figures(100.0, 300.0, 27, 100)) == ["0.27 bundles per block < 0.280"]


def test_an_engine_that_sends_nothing_under_load_is_affected_whatever_its_latencies() -> None:
    assert judge(figures(100.0, 300.0, 40, 100), Window().figures() | {"samples": 0}) == [
        "no bundle sent under load"
    ]
    assert judge(Window().figures(), figures(1.0, 1.0, 1, 1)) == [
        "no bundle sent without load: nothing to compare"
    ]


def test_a_window_gives_nearest_rank_percentiles_and_bundles_per_block() -> None:
    window = Window(latencies_ms=[float(v) for v in range(100, 0, -1)], blocks=400, seconds=2.0)
    window.detection_ms = [5.0, 7.0, 6.0]
    window.engine_cpu_s = 0.5
    shown = window.figures()
    assert (shown["p50"], shown["p90"], shown["p99"]) == (50.0, 90.0, 99.0)
    assert (shown["sent_per_block"], shown["detection_p50"]) == (0.25, 6.0)
    assert shown["engine_cpu_share"] == 0.25
    assert _rank([], 0.5) is None
    assert _rank([3.0], 0.99) == 3.0
