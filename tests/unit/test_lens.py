"""Packing lens jobs under the gas budget, and cutting its output back into jobs."""

from __future__ import annotations

import pytest

from arbx.chain.lens import V2_RESERVES, V3_HEAD, V3_TICKS, Job, _split, join_ticks, pack

POOL = "0x" + "11" * 20


def test_pack_keeps_order_and_budget() -> None:
    jobs = [Job(POOL, V3_TICKS, 60, -58, 57) for _ in range(50)]
    calls = pack(jobs, budget=2_000_000)
    assert [j for call in calls for j in call] == jobs
    for call in calls:
        assert sum(j.gas() for j in call) <= 2_000_000 or len(call) == 1
    assert len(calls) > 1


def test_split_cuts_each_job() -> None:
    jobs = [Job(POOL, V2_RESERVES), Job(POOL, V3_HEAD), Job(POOL, V3_TICKS, 60, 0, 0)]
    words = [5, 6, 2**96, -60, 7, 2, -60, 100, 100, 60, -100, 100]
    assert _split(jobs, words) == [[5, 6], [2**96, -60, 7], [2, -60, 100, 100, 60, -100, 100]]


V2_JOB = Job(POOL, V2_RESERVES)
ALL_JOBS = [V2_JOB, Job(POOL, V3_HEAD), Job(POOL, V3_TICKS, 60, 0, 0)]


@pytest.mark.parametrize(
    ("jobs", "words"),
    [
        ([V2_JOB], [5]),  # reserves cut short
        ([V2_JOB], [5, 6, 1, 2]),  # trailing words
        (ALL_JOBS, [5, 6, 2**96, -60, 7, 3, 0, 0, 0]),  # claims three ticks, holds one
        (ALL_JOBS, [5, 6, 2**96, -60, 7, -1]),  # negative count
    ],
)
def test_split_refuses_malformed_output(jobs: list[Job], words: list[int]) -> None:
    with pytest.raises(ValueError, match="lens output"):
        _split(jobs, words)


def test_a_tick_job_read_in_two_word_ranges_joins_back_in_order() -> None:
    low = [2, -120, 5, 5, -60, 7, 7]
    high = [1, 60, 9, -9]
    joined = join_ticks([low, high])
    assert joined == [3, -120, 5, 5, -60, 7, 7, 60, 9, -9]
    job = Job(POOL, V3_TICKS, 60, -2, 1)
    assert _split([job], joined) == [joined]
    assert join_ticks([[0], [0]]) == [0]
