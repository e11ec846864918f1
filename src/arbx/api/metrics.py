"""The API's own metrics: every request by route template, method and status, and its latency.

``MetricsMiddleware`` is a plain ASGI middleware (outermost, so refusals by the request limits
count too). The route is the matched template (``/api/v1/bundles/{bundle_id}``), never the raw
path; a request no route matched is ``unmatched``, the dashboard's static files are ``/{path}``.
A live stream (``text/event-stream``) is counted but kept out of the latency histogram: its
duration is the client's session, not the API's speed. ``metrics_endpoint`` serves ``/metrics``
without a token, like ``/healthz``.
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from arbx.metrics import record
from arbx.metrics.registry import API
from arbx.metrics.server import exposition


def route_template(scope: Scope) -> str:
    """The matched route's template, ``/{path}`` under a mount, else ``unmatched``."""
    route: Any = scope.get("route")
    if isinstance(route, Mount) or (route is None and scope.get("endpoint") is not None):
        return "/{path}"  # a mount: the dashboard's static files
    path = getattr(route, "path", None)
    return path if isinstance(path, str) and path else "unmatched"


class MetricsMiddleware:
    """Counts and times every HTTP request the API answers."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on; record it when the response is done (or failed)."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        seen = {"status": 500, "stream": False}

        async def observed(message: Message) -> None:
            if message["type"] == "http.response.start":
                seen["status"] = message["status"]
                for name, value in message.get("headers", ()):
                    if name.lower() == b"content-type" and value.startswith(b"text/event-stream"):
                        seen["stream"] = True
            await send(message)

        try:
            await self.app(scope, receive, observed)
        finally:
            elapsed = None if seen["stream"] else time.perf_counter() - started
            record.api_request(
                route_template(scope), scope.get("method", "GET"), int(seen["status"]), elapsed
            )


async def metrics_endpoint(_: Request) -> Response:
    """The API process's metrics in the Prometheus text format."""
    return Response(exposition(API), media_type=CONTENT_TYPE_LATEST)
