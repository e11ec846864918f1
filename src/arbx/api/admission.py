"""Admission control: what the API takes on at once and from one client, decided before any
other work (body, authentication, the database).

``Admission`` is an ASGI middleware in front of the whole app:

- each client (its bearer token, or the stream's ``?token=``; without one, its address) has a
  token bucket of ``client_burst`` requests refilled at ``client_rate`` per second; a token not
  seen lately (no bucket yet) first takes one from its address's bucket of newcomers
  (``new_client_burst`` refilled at ``new_client_rate``), so that made-up tokens, each a bucket
  of its own and a database lookup, cost at most that rate from one address; past either the
  request is refused with 429 and ``Retry-After`` (whole seconds until one request is allowed),
  answered only after up to ``refusal_hold_s`` seconds (at most ``max_held`` refusals held at
  once; past that a refusal is answered at once and its connection closed): a client that does
  not wait as told then costs a refusal per connection per hold, not one per round trip;
- at most ``max_in_flight`` requests are answered at once (a live stream, which lasts as long as
  its client, is not counted); past it 503 with ``Retry-After: 1``;
- the probes and the scrape (``/healthz``, ``/readyz``, ``/metrics``) pass neither limit, so that
  a flood never fails a liveness probe, but have their own cap of ``probe_max_in_flight`` at
  once (503 past it).

A refusal costs a dictionary lookup, a timer and a short answer; the token is never stored, only a
digest of it, and the table of clients is bounded (``max_clients``, the least recently seen
forgotten first; a forgotten client starts again with a full bucket). The API's share of the
machine is bounded further by its process's CPU priority (``api.nice``, ADR 0038).
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final

from arbx.api.limits import App, Receive, Scope, Send, refuse

PROBES: Final = frozenset({"/healthz", "/readyz", "/metrics"})
STREAM: Final = "/api/v1/stream"


@dataclass(frozen=True, slots=True)
class AdmissionBounds:
    """The limits; the defaults leave a dashboard, a canary's analysis and the rehearsal's
    clients (at most 40 requests/s on one token) far below them."""

    client_rate: float = 50.0  # requests per second per client, sustained
    client_burst: int = 100  # requests one client may make at once after being idle
    max_in_flight: int = 32  # requests answered at once (streams apart)
    probe_max_in_flight: int = 8  # /healthz, /readyz, /metrics answered at once
    max_clients: int = 4096  # clients remembered (and addresses, for their newcomers)
    new_client_rate: float = 5.0  # tokens not seen lately, per second per address, sustained
    new_client_burst: int = 20  # such tokens one address may bring at once
    refusal_hold_s: float = 1.0  # a 429 is answered after this long (at most its Retry-After)
    max_held: int = 1024  # 429s held at once; past it answered at once, closing the connection


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float


class Admission:
    """ASGI middleware refusing what is over the ``AdmissionBounds`` (429 or 503, one line)."""

    def __init__(
        self,
        app: App,
        bounds: AdmissionBounds | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.app = app
        self.bounds = bounds or AdmissionBounds()
        self.clock = clock
        self.sleep = sleep
        self.in_flight = 0
        self.held = 0  # refusals being held
        self.probes_in_flight = 0
        self.clients: OrderedDict[bytes, _Bucket] = OrderedDict()
        self.newcomers: OrderedDict[bytes, _Bucket] = OrderedDict()  # by address

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Admit the request, or refuse it before anything else reads it."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        bounds = self.bounds
        if path in PROBES:
            if self.probes_in_flight >= bounds.probe_max_in_flight:
                await _refuse(send, 503, "too many probes at once", 1)
                return
            self.probes_in_flight += 1
            try:
                await self.app(scope, receive, send)
            finally:
                self.probes_in_flight -= 1
            return
        wait = self._take(*_client(scope))
        if wait is not None:
            await self._hold_and_refuse(send, wait)
            return
        if path == STREAM:  # as long as its client stays: counted by its opening only
            await self.app(scope, receive, send)
            return
        if self.in_flight >= bounds.max_in_flight:
            await _refuse(send, 503, f"the API is answering {bounds.max_in_flight} requests", 1)
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1

    def _take(self, client: bytes, address: bytes) -> int | None:
        """Take one request from ``client``'s bucket (a new token's address pays first): None,
        or the seconds to wait."""
        bounds = self.bounds
        now = self.clock()
        if client != address and client not in self.clients:
            wait = _draw(
                self.newcomers, address, now,
                bounds.new_client_rate, bounds.new_client_burst, bounds.max_clients,
            )  # fmt: skip
            if wait is not None:
                return wait
        return _draw(
            self.clients, client, now, bounds.client_rate, bounds.client_burst, bounds.max_clients
        )

    async def _hold_and_refuse(self, send: Send, wait: int) -> None:
        """429 after holding the answer up to ``refusal_hold_s`` (never longer than ``wait``),
        or at once with the connection closed when ``max_held`` refusals are held already."""
        bounds = self.bounds
        hold = min(float(wait), bounds.refusal_hold_s)
        headers = [(b"retry-after", str(wait).encode())]
        if hold > 0 and self.held < bounds.max_held:
            self.held += 1
            try:
                await self.sleep(hold)
            finally:
                self.held -= 1
        elif hold > 0:
            headers.append((b"connection", b"close"))
        await refuse(send, 429, f"over {bounds.client_rate:g} requests/s", headers)


def _draw(
    table: OrderedDict[bytes, _Bucket], key: bytes, now: float, rate: float, burst: int, most: int
) -> int | None:
    """Take one request from ``key``'s bucket in ``table`` (full when new; the table keeps the
    ``most`` recently used): None, or the whole seconds until one is there."""
    bucket = table.get(key)
    if bucket is None:
        bucket = _Bucket(float(burst), now)
        table[key] = bucket
        if len(table) > most:
            table.popitem(last=False)
    else:
        table.move_to_end(key)
        bucket.tokens = min(float(burst), bucket.tokens + max(0.0, now - bucket.at) * rate)
        bucket.at = now
    if bucket.tokens >= 1.0:
        bucket.tokens -= 1.0
        return None
    return max(1, math.ceil((1.0 - bucket.tokens) / rate))


def _client(scope: Scope) -> tuple[bytes, bytes]:
    """Who asks: a digest of the bearer token (or the stream's ``?token=``), else the address;
    and the address."""
    credential = b""
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            credential = value
            break
    if not credential and scope.get("path") == STREAM:
        for part in scope.get("query_string", b"").split(b"&"):
            if part.startswith(b"token="):
                credential = part
                break
    peer = scope.get("client")
    address = b"a" + str(peer[0] if peer else "").encode()
    if credential:
        return b"t" + hashlib.blake2b(credential, digest_size=16).digest(), address
    return address, address


async def _refuse(send: Send, status: int, detail: str, retry_after: int) -> None:
    await refuse(send, status, detail, [(b"retry-after", str(retry_after).encode())])
