"""Answers to the same read shared for a moment, so that the API's work (and the database's) is
bounded by what is asked, not by how often (ADR 0041).

A read endpoint asks ``SharedAnswers.answer(key, compute)`` for its body: ``key`` names the read
(the endpoint and its validated parameters), ``compute`` builds the body from the database. The
first request for a key computes it; requests for the same key in the next ``ttl_s`` seconds get
the same bytes, and requests arriving while it is being computed wait for it rather than
computing it again. So a page is at most ``ttl_s`` older than the moment its read began; the
live stream (``/api/v1/stream``) is never shared.

A change made through this API forgets every shared answer before its response starts
(``ForgetOnWrite``), so its caller and everyone after it read the change; an answer whose read
began before a change is not kept. Changes by other processes (the engine, ``arbx`` commands)
appear within ``ttl_s``. Authentication is not shared: every request's token is checked, against
what its digest was found to be at most ``api.token_cache_s`` ago (``arbx.api.auth``).

The table holds at most ``max_answers`` answers (the least recently used forgotten first); an
error is never shared.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Final, Generic, TypeVar

from arbx.api.limits import App, Message, Receive, Scope, Send

READ_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class _Answer(Generic[T]):
    body: T
    until: float  # monotonic time it is shared until


@dataclass
class SharedAnswers(Generic[T]):
    """Answers by key (a read's body, a token's row), each shared for ``ttl_s`` seconds (0:
    nothing is shared)."""

    ttl_s: float = 1.0
    max_answers: int = 256
    clock: Callable[[], float] = time.monotonic
    _answers: OrderedDict[Hashable, _Answer[T]] = field(default_factory=OrderedDict)
    _flights: dict[Hashable, threading.Lock] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _generation: int = 0  # bumped by each change: an answer read before it is not kept
    computed: int = 0  # reads made (answers not shared, errors too), for tests

    def answer(self, key: Hashable, compute: Callable[[], T]) -> T:
        """The answer for ``key``: shared when fresh, else computed once for all who ask now
        (blocking: call it from a worker thread)."""
        if self.ttl_s <= 0:
            self.computed += 1
            return compute()
        with self._lock:
            fresh = self._fresh(key)
            if fresh is not None:
                return fresh.body
            flight = self._flights.setdefault(key, threading.Lock())
        with flight:
            with self._lock:  # computed by another request while this one waited
                fresh = self._fresh(key)
                if fresh is not None:
                    return fresh.body
                generation = self._generation
                began = self.clock()
            try:
                body = compute()
            except BaseException:
                with self._lock:
                    self._landed(key, flight)
                raise
            with self._lock:  # kept before the flight ends: no one starts the same read again
                self._landed(key, flight)
                if generation == self._generation:
                    self._answers[key] = _Answer(body, began + self.ttl_s)
                    self._answers.move_to_end(key)
                    while len(self._answers) > self.max_answers:
                        self._answers.popitem(last=False)
            return body

    def _landed(self, key: Hashable, flight: threading.Lock) -> None:
        """Count a read made and end its flight (under ``_lock``)."""
        self.computed += 1
        if self._flights.get(key) is flight:
            del self._flights[key]

    def forget(self) -> None:
        """Forget every answer, and keep none whose read is under way (a change was made)."""
        with self._lock:
            self._generation += 1
            self._answers.clear()

    def shared(self, key: Hashable) -> _Answer[T] | None:
        """The fresh answer for ``key`` (its ``body``), or None: never waits for a computation
        (an event loop asks this first, and a worker thread ``answer`` on None)."""
        with self._lock:
            return self._fresh(key)

    def _fresh(self, key: Hashable) -> _Answer[T] | None:
        found = self._answers.get(key)
        if found is None:
            return None
        if found.until <= self.clock():
            del self._answers[key]
            return None
        self._answers.move_to_end(key)
        return found


class ForgetOnWrite:
    """ASGI middleware: a request that may change something (any method but GET, HEAD and
    OPTIONS) makes ``shared`` forget its answers when its response starts, after its change was
    committed and before its caller can read again."""

    def __init__(self, app: App, shared: SharedAnswers[bytes]) -> None:
        self.app = app
        self.shared = shared

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on; forget the shared answers as a change's response starts."""
        if scope["type"] != "http" or scope.get("method") in READ_METHODS:
            await self.app(scope, receive, send)
            return
        forgotten = False

        async def forgetting(message: Message) -> None:
            nonlocal forgotten
            if message["type"] == "http.response.start":
                self.shared.forget()
                forgotten = True
            await send(message)

        try:
            await self.app(scope, receive, forgetting)
        finally:
            if not forgotten:  # no response (a disconnect): the change may still have been made
                self.shared.forget()
