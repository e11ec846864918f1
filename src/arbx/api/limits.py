"""Bounds on what a request may carry, checked before any route (or its authentication) runs.

``RequestLimits`` is an ASGI middleware in front of the whole app:

- the query string is at most ``max_query_bytes`` (414), the headers at most ``max_headers`` of
  them and ``max_header_bytes`` in all (431);
- a body is at most ``max_body_bytes``, by its ``Content-Length`` or as it streams in (413), and
  arrives within ``body_timeout`` seconds (408);
- a non-empty body must be JSON, no deeper than ``max_body_depth``, decoded by
  ``arbx.safejson`` (422, as FastAPI's own refusal of a body that is not JSON). FastAPI decodes
  bodies again with the standard library, which recurses on the C stack: it only ever sees
  bodies that passed here, so it never meets a deep one.

Every refusal is ``{"detail": "<one line>"}`` like the rest of the API, and closes nothing else:
the process keeps serving. The HTTP server adds its own caps and a deadline for each request's
head (see ``SERVER_LIMITS``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from uvicorn.protocols.http.h11_impl import H11Protocol

from arbx import safejson

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]  # an ASGI application


class HeadDeadlineH11(H11Protocol):
    """uvicorn's h11 protocol with a deadline for each request's head (line and headers).

    uvicorn times out idle keep-alive connections, but not a connection that sends nothing or a
    head one byte at a time: each would hold a file descriptor for ever. Here a connection with no
    request in flight is closed ``head_timeout`` seconds after it opens or after its last answer.
    A request being answered (a live stream too) is never cut.
    """

    head_timeout: float = 10.0
    _head_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Open the connection and start the first head's deadline."""
        super().connection_made(transport)
        self._arm_head_deadline()

    def on_response_complete(self) -> None:
        """After an answer, the next request's head has its own deadline."""
        super().on_response_complete()
        self._arm_head_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        """Forget the deadline with the connection."""
        if self._head_deadline is not None:
            self._head_deadline.cancel()
        super().connection_lost(exc)

    def _arm_head_deadline(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
        if not self.transport.is_closing():
            self._head_deadline = self.loop.call_later(self.head_timeout, self._head_expired)

    def _head_expired(self) -> None:
        in_flight = self.cycle is not None and not self.cycle.response_complete
        if not in_flight and not self.transport.is_closing():
            self.transport.close()


# For uvicorn: the h11 parser with the deadline above, and its own cap on a request's head
# (request line and headers): past it the request is refused before the app sees it.
SERVER_LIMITS: Final[dict[str, Any]] = {
    "http": HeadDeadlineH11,
    "h11_max_incomplete_event_size": 32 * 1024,
}


@dataclass(frozen=True, slots=True)
class Bounds:
    """The caps; the defaults fit every request the API and the dashboard make, many times."""

    max_body_bytes: int = 64 * 1024
    max_body_depth: int = 32
    max_query_bytes: int = 4 * 1024
    max_headers: int = 64
    max_header_bytes: int = 16 * 1024
    body_timeout: float = 10.0


class RequestLimits:
    """ASGI middleware refusing requests over the ``Bounds`` with a 4xx and one line."""

    def __init__(self, app: App, bounds: Bounds | None = None) -> None:
        self.app = app
        self.bounds = bounds or Bounds()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check the request's head, then its body, then hand it to the app."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = self._head(scope)
        if refusal is None:
            body, refusal = await self._body(scope, receive)
        if refusal is not None:
            await refuse(send, *refusal, headers=[(b"connection", b"close")])
            return
        await self.app(scope, _replay(body, receive), send)

    def _head(self, scope: Scope) -> tuple[int, str] | None:
        bounds = self.bounds
        if len(scope.get("query_string", b"")) > bounds.max_query_bytes:
            return 414, f"query string over {bounds.max_query_bytes} bytes"
        headers = scope.get("headers", [])
        if len(headers) > bounds.max_headers:
            return 431, f"more than {bounds.max_headers} headers"
        if sum(len(name) + len(value) for name, value in headers) > bounds.max_header_bytes:
            return 431, f"headers over {bounds.max_header_bytes} bytes"
        return None

    async def _body(self, scope: Scope, receive: Receive) -> tuple[bytes, tuple[int, str] | None]:
        cap = self.bounds.max_body_bytes
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                if not value.isdigit():
                    return b"", (400, "Content-Length is not a number")
                if len(value) > 20 or int(value) > cap:
                    return b"", (413, f"request body over {cap} bytes")
        try:
            async with asyncio.timeout(self.bounds.body_timeout):
                body = await _read_body(receive, cap)
        except TimeoutError:
            return b"", (408, f"request body not received within {self.bounds.body_timeout:g} s")
        if body is None:
            return b"", (413, f"request body over {cap} bytes")
        if body:
            try:
                safejson.loads(body, max_bytes=cap, max_depth=self.bounds.max_body_depth)
            except safejson.JsonError as exc:
                return b"", (422, f"request body is not accepted: {exc}")
        return body, None


async def _read_body(receive: Receive, cap: int) -> bytes | None:
    """The whole body, or None once it passes ``cap`` bytes (the rest is not read)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":  # the client left: nothing to serve
            return b"".join(chunks)
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > cap:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives the app the body already read, then the connection's events."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def refuse(
    send: Send, status: int, detail: str, headers: Sequence[tuple[bytes, bytes]] = ()
) -> None:
    """Answer ``status`` with ``{"detail": detail}`` from the ASGI layer, before any route ran
    (the middlewares' refusals: over a limit, shed by admission)."""
    body = safejson.dumps({"detail": detail})
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
