"""The pre-promotion comparison's rules and the signer-lock audit, on hand-made records."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from arbx.domain.releases import (
    BlockRecord,
    CompareRules,
    Epoch,
    RouteFound,
    Signature,
    audit,
    compare,
)

T0 = datetime(2026, 12, 3, 12, tzinfo=UTC)
RULES = CompareRules(min_blocks=10, tolerance_bps=10, max_differing_ratio_bps=1000, warmup_blocks=0)


def _blocks(n: int, *, size: int = 10**18, latency: float = 5.0) -> list[BlockRecord]:
    return [
        BlockRecord(
            number=100 + i,
            hash=f"0x{100 + i:064x}",
            routes=(RouteFound(f"r{i % 3}", size + i, 10**15 + i),),
            latency_ms=latency,
        )
        for i in range(n)
    ]


def _failed(result: object) -> set[str]:
    return {c.name for c in result.conditions if not c.ok}  # type: ignore[attr-defined]


def test_the_same_results_on_the_same_blocks_pass() -> None:
    active = _blocks(30)
    preview = active[5:]  # started later: only the blocks both processed count
    result = compare(active, preview, RULES)
    assert result.passed, result.conditions
    assert (result.common_blocks, result.first_block, result.last_block) == (25, 105, 129)


def test_too_few_common_blocks_fail() -> None:
    active = _blocks(30)
    result = compare(active, active[25:], RULES)
    assert _failed(result) == {"common blocks"}
    assert result.conditions[0].measured == "5"


def test_blocks_with_another_hash_are_not_compared() -> None:
    active = _blocks(30)
    forked = [replace(b, hash="0x" + "ee" * 32) for b in active]
    assert compare(active, forked, RULES).common_blocks == 0


def test_a_preview_that_sizes_badly_fails_with_its_numbers() -> None:
    active = _blocks(30)
    preview = _blocks(30, size=10**18 // 2)
    result = compare(active, preview, RULES)
    assert not result.passed
    assert _failed(result) == {"blocks with other routes, sizes or profits"}
    assert result.conditions[1].measured == "30 of 30"
    assert "sized" in result.differing[0]


def test_sizes_within_the_tolerance_pass_and_a_few_differing_blocks_are_allowed() -> None:
    active = _blocks(30)
    close = [
        replace(b, routes=(replace(b.routes[0], amount_in=b.routes[0].amount_in * 10005 // 10000),))
        for b in active
    ]
    assert compare(active, close, RULES).passed  # 0.05% off, tolerance 0.1%
    preview = list(active)
    for i in (3, 4, 5):  # 3 of 30 = 10%: allowed; a 4th is not
        preview[i] = replace(preview[i], routes=())
    assert compare(active, preview, RULES).passed
    preview[6] = replace(preview[6], routes=())
    assert _failed(compare(active, preview, RULES)) == {
        "blocks with other routes, sizes or profits"
    }


def test_slower_detection_parity_failures_and_errors_fail() -> None:
    active = _blocks(30, latency=5.0)
    slow = _blocks(30, latency=21.0)  # bound: 5 * 2 + 10 = 20 ms
    assert _failed(compare(active, slow, RULES)) == {"median detection latency (ms)"}
    assert compare(active, _blocks(30, latency=19.0), RULES).passed
    broken = list(active)
    broken[2] = replace(broken[2], parity_failures=1)
    broken[3] = replace(broken[3], errors=2)
    result = compare(active, broken, RULES)
    assert _failed(result) == {"preview parity failures", "preview errors"}
    assert [c.measured for c in result.conditions[-2:]] == ["1", "2"]


def _epoch(n: int, start: int, end: int | None, holder: str = "h") -> Epoch:
    return Epoch(
        "0xkey",
        n,
        f"{holder}{n}",
        f"v{n}",
        T0 + timedelta(seconds=start),
        None if end is None else T0 + timedelta(seconds=end),
    )


def _signed(n: int, at: int, holder: str | None = None) -> Signature:
    return Signature("0xkey", n, holder or f"h{n}", f"0xtx{n}{at}", T0 + timedelta(seconds=at))


def test_a_clean_history_passes_the_audit() -> None:
    epochs = [_epoch(1, 0, 10), _epoch(2, 10, 20), _epoch(3, 25, None)]
    signatures = [_signed(1, 1), _signed(1, 10), _signed(2, 15), _signed(3, 30)]
    result = audit(epochs, signatures)
    assert result.passed, result.problems
    assert (result.epochs, result.signatures) == (3, 4)


def test_overlapping_epochs_fail_the_audit() -> None:
    result = audit([_epoch(1, 0, 12), _epoch(2, 10, 20)], [])
    assert not result.passed
    assert len(result.problems) == 1
    assert "epoch 1" in result.problems[0]
    assert "overlaps epoch 2" in result.problems[0]


def test_an_epoch_left_open_under_a_later_one_fails_the_audit() -> None:
    result = audit([_epoch(1, 0, None), _epoch(2, 10, 20)], [])
    assert any("still open" in p for p in result.problems)
    assert any("overlaps" in p for p in result.problems)


def test_signatures_outside_their_epoch_or_by_another_holder_fail_the_audit() -> None:
    epochs = [_epoch(1, 0, 10), _epoch(2, 10, None)]
    late = _signed(1, 11)  # the old holder signed after it released
    early = _signed(2, 9)
    stranger = _signed(2, 12, holder="h1")
    unknown = _signed(7, 12)
    result = audit(epochs, [late, early, stranger, unknown])
    assert len(result.problems) == 4
    assert "outside epoch 1" in result.problems[0]
    assert "outside epoch 2" in result.problems[1]
    assert "held by h2" in result.problems[2]
    assert "unknown" in result.problems[3]


def test_the_first_blocks_of_each_run_are_not_compared() -> None:
    active = [replace(b, run=1) for b in _blocks(30)]
    preview = [replace(b, run=2) for b in _blocks(30)]
    preview[0] = replace(preview[0], routes=())  # just started: another view of its first block
    preview[1] = replace(preview[1], routes=())
    rules = replace(RULES, max_differing_ratio_bps=0, warmup_blocks=2)
    result = compare(active, preview, rules)
    assert result.passed, result.conditions
    assert result.common_blocks == 28
    assert not compare(active, preview, replace(rules, warmup_blocks=1)).passed
