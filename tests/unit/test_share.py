"""Shared read answers (arbx.api.share): one computation per key and moment, none kept across a
change, errors never shared, concurrent askers wait for the one computation, the table bounded."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from arbx.api.share import SharedAnswers


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def counting(body: bytes = b"x") -> tuple[list[int], Callable[[], bytes]]:
    calls = [0]

    def compute() -> bytes:
        calls[0] += 1
        return body + str(calls[0]).encode()

    return calls, compute


def test_the_same_read_is_computed_once_while_fresh_and_again_after() -> None:
    clock = Clock()
    shared: SharedAnswers[bytes] = SharedAnswers(ttl_s=1.0, clock=clock)
    calls, compute = counting()
    assert shared.answer("status", compute) == b"x1"
    clock.now += 0.99
    assert shared.answer("status", compute) == b"x1"
    assert calls == [1]
    clock.now += 0.01  # the answer's read began 1.0 s ago: too old
    assert shared.answer("status", compute) == b"x2"
    assert shared.computed == 2


def test_keys_are_answered_apart() -> None:
    shared: SharedAnswers[bytes] = SharedAnswers(ttl_s=5.0, clock=Clock())
    assert shared.answer(("bundles", 50), lambda: b"a") == b"a"
    assert shared.answer(("bundles", 10), lambda: b"b") == b"b"
    assert shared.answer(("bundles", 50), lambda: b"c") == b"a"


def test_a_change_forgets_every_answer() -> None:
    shared: SharedAnswers[bytes] = SharedAnswers(ttl_s=60.0, clock=Clock())
    calls, compute = counting()
    shared.answer("status", compute)
    shared.forget()
    assert shared.answer("status", compute) == b"x2"
    assert calls == [2]


def test_an_answer_whose_read_began_before_a_change_is_not_kept() -> None:
    shared: SharedAnswers[bytes] = SharedAnswers(ttl_s=60.0, clock=Clock())

    def read_during_a_change() -> bytes:
        shared.forget()  # a change commits while this read runs
        return b"maybe stale"

    assert shared.answer("status", read_during_a_change) == b"maybe stale"
    assert shared.answer("status", lambda: b"fresh") == b"fresh"


def test_errors_are_not_shared() -> None:
    shared: SharedAnswers[bytes] = SharedAnswers(ttl_s=60.0, clock=Clock())

    def failing() -> bytes:
        raise LookupError("no bundle 7")

    with pytest.raises(LookupError):
        shared.answer(("bundle", 7), failing)
    assert shared.answer(("bundle", 7), lambda: b"found") == b"found"


def test_zero_seconds_shares_nothing() -> None:
    shared: SharedAnswers[bytes] = SharedAnswers(ttl_s=0.0, clock=Clock())
    calls, compute = counting()
    assert [shared.answer("status", compute) for _ in range(3)] == [b"x1", b"x2", b"x3"]
    assert calls == [3]


def test_concurrent_askers_wait_for_one_computation() -> None:
    shared: SharedAnswers[bytes] = SharedAnswers(ttl_s=60.0)
    started, release = threading.Event(), threading.Event()
    calls = [0]

    def slow() -> bytes:
        calls[0] += 1
        started.set()
        assert release.wait(10)
        return b"page"

    answers: list[bytes] = []
    threads = [
        threading.Thread(target=lambda: answers.append(shared.answer("page", slow)))
        for _ in range(8)
    ]
    threads[0].start()
    assert started.wait(10)
    for t in threads[1:]:
        t.start()
    release.set()
    for t in threads:
        t.join(10)
    assert answers == [b"page"] * 8
    assert calls == [1]


def test_the_table_is_bounded_least_recently_used_first() -> None:
    shared: SharedAnswers[bytes] = SharedAnswers(ttl_s=60.0, max_answers=2, clock=Clock())
    shared.answer("a", lambda: b"a1")
    shared.answer("b", lambda: b"b1")
    shared.answer("a", lambda: b"a2")  # a is now the most recently used
    shared.answer("c", lambda: b"c1")  # b is forgotten
    assert shared.answer("a", lambda: b"a3") == b"a1"
    assert shared.answer("b", lambda: b"b2") == b"b2"
