"""``GET /api/v1/stream``: server-sent events of new opportunities, bundle outcomes and status.

Each event is ``event: opportunity|bundle|status`` with one line of JSON data, shaped as the
matching REST endpoint returns it; the current status comes first. A comment line every 15 s
keeps proxies from closing an idle stream. The token may come as ``?token=`` because a browser's
EventSource cannot send headers; it is checked again every minute, and a revoked token ends the
stream with an ``error`` event.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends, HTTPException
from fastapi.responses import StreamingResponse

from arbx.api import views
from arbx.api.auth import Principal, stream_viewer
from arbx.api.context import ApiContext, context
from arbx.api.events import Event, EventHub
from arbx.api.params import READ_ERRORS
from arbx.store.models import ApiTokenRow

KEEPALIVE_S: Final = 15.0
RECHECK_S: Final = 60.0

router = APIRouter(prefix="/api/v1", responses=READ_ERRORS)

_STREAM_DOC: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "an endless text/event-stream: `event: opportunity|bundle|status` lines, "
        "each with `data:` one JSON object shaped as the REST endpoints return them",
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
    }
}


@router.get(
    "/stream",
    response_class=StreamingResponse,
    responses=_STREAM_DOC,
    summary="Live events (server-sent events)",
)
async def stream(
    ctx: Annotated[ApiContext, Depends(context)],
    principal: Annotated[Principal, Depends(stream_viewer)],
) -> StreamingResponse:
    """New opportunities, bundle outcomes and status; ``?token=`` for EventSource clients."""
    hub = ctx.hub
    if hub is None:  # pragma: no cover - create_app always sets one
        raise HTTPException(503, "the live stream is not available")
    return StreamingResponse(
        _events(ctx, hub, principal),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _events(ctx: ApiContext, hub: EventHub, principal: Principal) -> AsyncIterator[str]:
    sub = await hub.subscribe()
    checked = time.monotonic()
    try:
        yield Event("status", await asyncio.to_thread(_status, ctx)).sse()
        while True:
            try:
                event = await asyncio.wait_for(sub.queue.get(), timeout=KEEPALIVE_S)
            except TimeoutError:
                yield ": keepalive\n\n"
            else:
                if event is None:  # dropped: too far behind, or the API is stopping
                    return
                yield event.sse()
            if time.monotonic() - checked >= RECHECK_S:
                checked = time.monotonic()
                if not await asyncio.to_thread(_still_valid, ctx, principal):
                    yield Event("error", {"detail": "token revoked"}).sse()
                    return
    finally:
        hub.unsubscribe(sub)


def _status(ctx: ApiContext) -> dict[str, Any]:
    with ctx.reader() as session:
        return views.status(ctx, session, ctx.clock()).model_dump(mode="json")


def _still_valid(ctx: ApiContext, principal: Principal) -> bool:
    with ctx.reader() as session:
        row = session.get(ApiTokenRow, principal.token_id)
        return row is not None and row.revoked_at is None
