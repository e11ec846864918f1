"""The API's request bounds as an ASGI middleware: what reaches the app, and what is refused."""

from __future__ import annotations

import asyncio
import json
from collections.abc import MutableMapping, Sequence
from typing import Any

import pytest

from arbx.api.limits import Bounds, RequestLimits

pytestmark = pytest.mark.asyncio


class Recorder:
    """An app that records the body it receives and answers 204."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        self.bodies.append(body)
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})


async def call(
    middleware: RequestLimits,
    chunks: Sequence[bytes] | None,
    headers: Sequence[tuple[bytes, bytes]] = (),
    query: bytes = b"",
) -> tuple[int, str]:
    """Send one request (``chunks`` None: a body that never arrives); the status and detail."""
    scope: dict[str, Any] = {
        "type": "http",
        "method": "PUT",
        "path": "/x",
        "headers": list(headers),
    }
    scope["query_string"] = query
    pending = list(chunks or [])

    async def receive() -> dict[str, Any]:
        if chunks is None:
            await asyncio.sleep(3600)
        if not pending:
            return {"type": "http.disconnect"}
        chunk = pending.pop(0)
        return {"type": "http.request", "body": chunk, "more_body": bool(pending)}

    sent: list[MutableMapping[str, Any]] = []

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    await middleware(scope, receive, send)
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    detail = json.loads(body)["detail"] if body else ""
    return sent[0]["status"], detail


async def test_a_good_body_reaches_the_app_whole() -> None:
    app = Recorder()
    limits = RequestLimits(app, Bounds(max_body_bytes=100))
    assert await call(limits, [b'{"a":', b" [1, 2]", b"}"]) == (204, "")
    assert await call(limits, [b""]) == (204, "")
    assert app.bodies == [b'{"a": [1, 2]}', b""]


@pytest.mark.parametrize(
    ("chunks", "headers", "status", "detail"),
    [
        ([b"[1]"] * 40, (), 413, "request body over 100 bytes"),
        ([b"[1]"], [(b"content-length", b"101")], 413, "request body over 100 bytes"),
        ([b"[1]"], [(b"content-length", b"9" * 40)], 413, "request body over 100 bytes"),
        ([b"[1]"], [(b"content-length", b"\xc2\xb2")], 400, "Content-Length is not a number"),
        ([b"[1]"], [(b"content-length", b"-1")], 400, "Content-Length is not a number"),
        ([b"[" * 5, b"]" * 5], (), 422, "nested 5 deep (at most 4)"),
        ([b'{"a": NaN}'], (), 422, "not valid JSON"),
        ([b"\xff"], (), 422, "UTF-8"),
        ([b"[1]"], [(b"x-h", b"1")] * 9, 431, "more than 8 headers"),
        ([b"[1]"], [(b"x-h", b"a" * 300)], 431, "headers over 256 bytes"),
    ],
)
async def test_refusals_never_reach_the_app(
    chunks: list[bytes], headers: list[tuple[bytes, bytes]], status: int, detail: str
) -> None:
    app = Recorder()
    bounds = Bounds(max_body_bytes=100, max_body_depth=4, max_headers=8, max_header_bytes=256)
    limits = RequestLimits(app, bounds)
    answer = await call(limits, chunks, headers)
    assert answer[0] == status
    assert detail in answer[1]
    assert app.bodies == []


async def test_a_long_query_string_and_a_slow_body() -> None:
    app = Recorder()
    limits = RequestLimits(app, Bounds(max_query_bytes=10, body_timeout=0.05))
    assert await call(limits, [b""], query=b"a=" + b"1" * 20) == (
        414,
        "query string over 10 bytes",
    )
    assert await call(limits, None) == (408, "request body not received within 0.05 s")
    assert app.bodies == []


async def test_other_scopes_pass_through() -> None:
    seen: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["type"])

    await RequestLimits(app)({"type": "lifespan"}, None, None)  # type: ignore[arg-type]
    assert seen == ["lifespan"]
