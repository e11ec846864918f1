"""The live stream through a real server (``serve`` on loopback) on SQLite (polling) and
PostgreSQL (LISTEN/NOTIFY): the current status first, then new opportunities, bundle outcomes
and status changes written by another connection, as the REST endpoints shape them; ``?token=``
works, a revoked token ends the stream, no token is refused.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from arbx.api import create_app, serve
from arbx.api import stream as stream_module
from arbx.api.events import EventHub
from arbx.domain.errors import ConfigError
from arbx.store import api_repo
from arbx.store import execution_repo as xrepo
from tests.integration.api.support import (
    CHAIN,
    Harness,
    add_bundle,
    add_opportunities,
    add_run,
    free_port,
)

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]
WAIT_S = 8.0


async def _events(response: httpx.Response) -> AsyncIterator[tuple[str, Any]]:
    kind, data = "message", []
    async for line in response.aiter_lines():
        if line.startswith("event:"):
            kind = line.removeprefix("event:").strip()
        elif line.startswith("data:"):
            data.append(line.removeprefix("data:").strip())
        elif line == "" and data:
            yield kind, json.loads("\n".join(data))
            kind, data = "message", []


async def _next(events: AsyncIterator[tuple[str, Any]], kind: str) -> Any:
    async def find() -> Any:
        async for k, data in events:
            if k == kind:
                return data
        raise AssertionError(f"the stream ended before a {kind} event")

    return await asyncio.wait_for(find(), WAIT_S)


class Server:
    """The API on a free loopback port, in this event loop."""

    def __init__(self, h: Harness) -> None:
        self.app = create_app(h.factory, chain_id=CHAIN, poll_interval=0.05)
        self.hub: EventHub = self.app.state.ctx.hub
        self.port = free_port()
        self.stop = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> httpx.AsyncClient:
        self.task = asyncio.create_task(serve(self.app, "127.0.0.1", self.port, self.stop))
        self.client = httpx.AsyncClient(base_url=f"http://127.0.0.1:{self.port}", timeout=WAIT_S)
        for _ in range(200):
            try:
                if (await self.client.get("/healthz")).status_code == 200:
                    return self.client
            except httpx.TransportError:
                await asyncio.sleep(0.02)
        raise AssertionError("the server did not start")

    async def __aexit__(self, *exc: object) -> None:
        self.stop.set()
        assert self.task is not None
        await asyncio.wait_for(self.task, WAIT_S)
        await self.client.aclose()


def _settle(h: Harness, bundle_id: int) -> None:
    with h.factory.begin() as s:
        xrepo.update_bundle_outcome(s, bundle_id, "included", gas_cost=5, realized_profit=70)
        api_repo.notify_event(s, "bundle", {"id": bundle_id})


def _beat(h: Harness, run_id: int, head: int) -> None:
    with h.factory.begin() as s:
        api_repo.beat(s, CHAIN, run_id=run_id, head_block=head, synced_block=head - 1)


async def test_stream_delivers_opportunities_bundles_and_status(api: Harness) -> None:
    run_id = add_run(api)
    server = Server(api)
    async with (
        server as client,
        client.stream("GET", "/api/v1/stream", params={"token": api.tokens["viewer"]}) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = _events(response)
        first = await _next(events, "status")
        assert (first["chain_id"], first["head_block"]) == (CHAIN, None)
        await asyncio.wait_for(server.hub.ready.wait(), WAIT_S)  # listening: no catch-up poll ahead

        started = time.monotonic()
        (oid,) = await asyncio.to_thread(add_opportunities, api, run_id, 10, [42], notify=True)
        opportunity = await _next(events, "opportunity")
        latency = time.monotonic() - started
        assert (opportunity["id"], opportunity["net_profit"], opportunity["block_number"]) == (
            oid,
            "42",
            10,
        )
        if api.backend == "postgresql":
            assert latency < 2.0  # NOTIFY, not the 5 s fallback poll

        bid = await asyncio.to_thread(add_bundle, api, run_id, oid, status="sent")
        with api.factory.begin() as s:
            api_repo.notify_event(s, "bundle", {"id": bid})
        sent = await _next(events, "bundle")
        assert (sent["id"], sent["status"], sent["realized_profit"]) == (bid, "sent", None)
        await asyncio.to_thread(_settle, api, bid)
        settled = await _next(events, "bundle")
        assert (settled["id"], settled["status"], settled["realized_profit"]) == (
            bid,
            "included",
            "70",
        )

        await asyncio.to_thread(_beat, api, run_id, 120)
        status = await _next(events, "status")
        assert (status["head_block"], status["sync_lag_blocks"], status["run_id"]) == (
            120,
            1,
            run_id,
        )


async def test_stream_finds_rows_written_without_notification(api: Harness) -> None:
    run_id = add_run(api)
    server = Server(api)
    server.hub.fallback_interval = 0.2  # PostgreSQL: the safety-net poll
    async with (
        server as client,
        client.stream("GET", "/api/v1/stream", headers=api.auth("viewer")) as response,
    ):
        events = _events(response)
        await _next(events, "status")
        ids = await asyncio.to_thread(add_opportunities, api, run_id, 11, [1, 2, 3])
        got = [(await _next(events, "opportunity"))["id"] for _ in ids]
        assert got == ids


async def test_stream_refuses_missing_and_revoked_tokens(
    api: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stream_module, "RECHECK_S", 0.0)
    run_id = add_run(api)
    async with Server(api) as client:
        refused = await client.get("/api/v1/stream")
        assert refused.status_code == 401
        assert "missing bearer token" in refused.json()["detail"]
        wrong = await client.get("/api/v1/stream", params={"token": "nope"})
        assert wrong.status_code == 401
        async with client.stream(
            "GET", "/api/v1/stream", params={"token": api.tokens["viewer"]}
        ) as response:
            events = _events(response)
            await _next(events, "status")
            with api.factory.begin() as s:
                api_repo.revoke_token(s, "dash")
            await asyncio.to_thread(add_opportunities, api, run_id, 12, [5], notify=True)
            ended = await _next(events, "error")
            assert ended == {"detail": "token revoked"}


async def test_serve_refuses_a_busy_port(api: Harness) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        app = create_app(api.factory, chain_id=CHAIN)
        with pytest.raises(ConfigError, match="cannot listen on"):
            await serve(app, "127.0.0.1", busy.getsockname()[1], asyncio.Event())
