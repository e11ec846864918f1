"""The API's admission control as an ASGI middleware: per-client buckets, the cap on requests
answered at once, and the probes' own cap."""

from __future__ import annotations

import asyncio
import json
from collections.abc import MutableMapping
from typing import Any

import pytest
from pydantic import ValidationError

from arbx.api.admission import Admission, AdmissionBounds
from arbx.api.settings import ApiSettings

pytestmark = pytest.mark.asyncio


class Gate:
    """An app that answers 200 once its gate opens (open from the start unless closed)."""

    def __init__(self) -> None:
        self.open = asyncio.Event()
        self.open.set()
        self.entered = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.entered += 1
        await self.open.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})


class Clock:
    """Monotonic time the test moves, and the refusals' holds (recorded, not waited)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.held: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.held.append(seconds)


def admit(app: Any, bounds: AdmissionBounds, clock: Clock) -> Admission:
    """The middleware on ``clock``, its refusals' holds recorded on it."""
    return Admission(app, bounds, clock, sleep=clock.sleep)


async def call(
    admission: Admission,
    path: str = "/api/v1/status",
    token: str | None = "a",
    host: str = "10.0.0.1",
    query: bytes = b"",
) -> tuple[int, dict[str, str], str]:
    """One GET; its status, headers and detail."""
    headers = [(b"authorization", f"Bearer {token}".encode())] if token else []
    scope: dict[str, Any] = {
        "type": "http",
        "method": "GET",
        "path": path,
        "headers": headers,
        "query_string": query,
        "client": (host, 40000),
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    sent: list[MutableMapping[str, Any]] = []

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    await admission(scope, receive, send)
    start = sent[0]
    answer = {k.decode(): v.decode() for k, v in start.get("headers", [])}
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    detail = json.loads(body).get("detail", "") if body else ""
    return start["status"], answer, detail


async def test_a_client_gets_its_burst_then_429_until_its_bucket_refills() -> None:
    clock = Clock()
    admission = admit(Gate(), AdmissionBounds(client_rate=2.0, client_burst=3), clock)
    assert [(await call(admission))[0] for _ in range(3)] == [200, 200, 200]
    status, headers, detail = await call(admission)
    assert (status, headers["retry-after"], detail) == (429, "1", "over 2 requests/s")
    assert headers["content-type"] == "application/json"
    assert (await call(admission, token="b"))[0] == 200  # another token has its own bucket
    clock.now += 0.5  # one request's worth at 2/s
    assert (await call(admission))[0] == 200
    assert (await call(admission))[0] == 429
    clock.now += 60  # a full bucket again, never more than the burst
    assert [(await call(admission))[0] for _ in range(4)] == [200, 200, 200, 429]


async def test_retry_after_is_the_whole_seconds_until_one_request_is_allowed() -> None:
    admission = admit(Gate(), AdmissionBounds(client_rate=0.25, client_burst=1), Clock())
    assert (await call(admission))[0] == 200
    status, headers, _ = await call(admission)
    assert (status, headers["retry-after"]) == (429, "4")


async def test_a_refusal_is_held_up_to_its_retry_after_and_the_hold_bound() -> None:
    clock = Clock()
    slow = admit(Gate(), AdmissionBounds(client_rate=0.25, client_burst=1), clock)
    await call(slow)
    status, headers, _ = await call(slow)
    assert (status, headers["retry-after"], clock.held) == (429, "4", [1.0])  # the hold bound
    short = Clock()
    quick = admit(
        Gate(), AdmissionBounds(client_rate=2.0, client_burst=1, refusal_hold_s=5.0), short
    )
    await call(quick)
    assert (await call(quick))[0] == 429
    assert short.held == [1.0]  # never longer than its Retry-After
    assert "connection" not in headers


async def test_past_max_held_a_refusal_is_answered_at_once_closing_its_connection() -> None:
    clock = Clock()
    release = asyncio.Event()

    async def held(seconds: float) -> None:
        clock.held.append(seconds)
        await release.wait()

    bounds = AdmissionBounds(client_rate=1.0, client_burst=1, max_held=2)
    admission = Admission(Gate(), bounds, clock, sleep=held)
    await call(admission)
    holding = [asyncio.ensure_future(call(admission)) for _ in range(2)]
    await asyncio.sleep(0)
    assert admission.held == 2
    status, headers, detail = await call(admission)
    assert (status, headers["connection"], detail) == (429, "close", "over 1 requests/s")
    assert clock.held == [1.0, 1.0]  # the third was not held
    release.set()
    answers = await asyncio.gather(*holding)
    assert [a[0] for a in answers] == [429, 429]
    assert all("connection" not in a[1] for a in answers)
    assert admission.held == 0


async def test_no_hold_answers_at_once_and_keeps_the_connection() -> None:
    clock = Clock()
    bounds = AdmissionBounds(client_rate=1.0, client_burst=1, refusal_hold_s=0.0)
    admission = admit(Gate(), bounds, clock)
    await call(admission)
    status, headers, _ = await call(admission)
    assert (status, clock.held, "connection" in headers) == (429, [], False)


async def test_without_a_token_the_address_is_the_client() -> None:
    admission = admit(Gate(), AdmissionBounds(client_rate=1.0, client_burst=1), Clock())
    assert (await call(admission, token=None, host="10.0.0.1"))[0] == 200
    assert (await call(admission, token=None, host="10.0.0.1"))[0] == 429
    assert (await call(admission, token=None, host="10.0.0.2"))[0] == 200
    assert (await call(admission, token="x", host="10.0.0.1"))[0] == 200


async def test_the_stream_is_keyed_by_its_query_token_and_not_counted_in_flight() -> None:
    gate = Gate()
    gate.open.clear()
    bounds = AdmissionBounds(client_rate=1.0, client_burst=2, max_in_flight=1)
    admission = admit(gate, bounds, Clock())
    stream = "/api/v1/stream"
    streams = [
        asyncio.ensure_future(call(admission, stream, token=None, query=b"token=s1"))
        for _ in range(2)
    ]
    await asyncio.sleep(0)
    assert (gate.entered, admission.in_flight) == (2, 0)  # both open, none counted
    assert (await call(admission, stream, token=None, query=b"token=s1"))[0] == 429
    other = asyncio.ensure_future(call(admission, stream, token=None, query=b"x=1&token=s2"))
    await asyncio.sleep(0)
    assert gate.entered == 3
    gate.open.set()
    assert [s[0] for s in await asyncio.gather(*streams, other)] == [200, 200, 200]


async def test_past_max_in_flight_503_until_one_is_answered() -> None:
    gate = Gate()
    gate.open.clear()
    admission = admit(gate, AdmissionBounds(max_in_flight=2), Clock())
    held = [asyncio.ensure_future(call(admission, token=t)) for t in ("a", "b")]
    await asyncio.sleep(0)
    status, headers, detail = await call(admission, token="c")
    assert (status, headers["retry-after"]) == (503, "1")
    assert detail == "the API is answering 2 requests"
    gate.open.set()
    assert [h[0] for h in await asyncio.gather(*held)] == [200, 200]
    assert admission.in_flight == 0
    assert (await call(admission, token="c"))[0] == 200


async def test_probes_pass_a_flood_with_their_own_cap() -> None:
    gate = Gate()
    gate.open.clear()
    bounds = AdmissionBounds(
        client_rate=1.0, client_burst=1, max_in_flight=1, probe_max_in_flight=2
    )
    admission = admit(gate, bounds, Clock())
    flood = asyncio.ensure_future(call(admission))  # the one request in flight
    await asyncio.sleep(0)
    assert (await call(admission))[0] == 429  # its client is over its rate
    assert (await call(admission, token="z"))[0] == 503  # and the API at capacity
    probes = [
        asyncio.ensure_future(call(admission, path, token=None)) for path in ("/healthz", "/readyz")
    ]
    await asyncio.sleep(0)
    status, headers, detail = await call(admission, "/metrics", token=None)
    assert (status, headers["retry-after"], detail) == (503, "1", "too many probes at once")
    gate.open.set()
    assert [p[0] for p in await asyncio.gather(flood, *probes)] == [200, 200, 200]
    assert (await call(admission, "/metrics", token=None))[0] == 200


async def test_the_clients_remembered_are_bounded_oldest_forgotten_first() -> None:
    admission = admit(
        Gate(), AdmissionBounds(client_rate=1.0, client_burst=1, max_clients=2), Clock()
    )
    for token in ("a", "b", "a", "c"):  # a seen again: b is the oldest when c arrives
        await call(admission, token=token)
    assert len(admission.clients) == 2
    assert (await call(admission, token="a"))[0] == 429  # remembered: still empty
    assert (await call(admission, token="b"))[0] == 200  # forgotten: a full bucket again


async def test_made_up_tokens_from_one_address_take_its_newcomers_budget() -> None:
    clock = Clock()
    bounds = AdmissionBounds(new_client_rate=2.0, new_client_burst=3)
    admission = admit(Gate(), bounds, clock)
    assert [(await call(admission, token=f"made-up-{i}"))[0] for i in range(3)] == [200] * 3
    status, headers, detail = await call(admission, token="made-up-3")
    assert (status, headers["retry-after"], detail) == (429, "1", "over 50 requests/s")
    assert len(admission.clients) == 3  # the refused token got no bucket of its own
    assert (await call(admission, token="made-up-0"))[0] == 200  # known: its own bucket
    assert (await call(admission, token="made-up-4", host="10.0.0.2"))[0] == 200  # elsewhere
    assert (await call(admission, token=None))[0] == 200  # no token: the address's own bucket
    clock.now += 0.5  # one newcomer's worth at 2/s
    assert (await call(admission, token="made-up-5"))[0] == 200
    assert (await call(admission, token="made-up-6"))[0] == 429


async def test_the_settings_give_the_bounds_and_refuse_nonsense() -> None:
    bounds = ApiSettings(
        client_rate=5,
        client_burst=7,
        max_in_flight=3,
        refusal_hold_s=0.5,
        max_held=9,
        new_client_rate=2,
        new_client_burst=4,
    ).admission()
    assert (bounds.client_rate, bounds.client_burst, bounds.max_in_flight) == (5.0, 7, 3)
    assert (bounds.refusal_hold_s, bounds.max_held) == (0.5, 9)
    assert (bounds.new_client_rate, bounds.new_client_burst) == (2.0, 4)
    assert ApiSettings().nice == 10
    for bad in (
        {"client_rate": 0},
        {"max_in_flight": 0},
        {"nice": -5},
        {"nice": 20},
        {"refusal_hold_s": -1},
    ):
        with pytest.raises(ValidationError):
            ApiSettings(**bad)
