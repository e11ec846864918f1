"""Shutdown drains: once stop is asked, /readyz answers 503 while the API still serves for the
drain period, then the server stops. ``?engine=false`` judges the API without the engine."""

from __future__ import annotations

import asyncio
import contextlib
import time

import httpx
import pytest

from arbx.api import create_app
from arbx.api.app import serve
from tests.integration.api.support import CHAIN, Harness, free_port


@pytest.mark.asyncio
async def test_readiness_turns_false_when_shutdown_begins_and_serving_goes_on(
    api: Harness,
) -> None:
    app = create_app(api.factory, chain_id=CHAIN)
    port, stop = free_port(), asyncio.Event()
    task = asyncio.create_task(serve(app, "127.0.0.1", port, stop, drain_s=1.0))
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            for _ in range(200):
                with contextlib.suppress(httpx.TransportError):
                    if (await client.get("/healthz")).status_code == 200:
                        break
                await asyncio.sleep(0.02)
            no_engine = await client.get("/readyz")  # no heartbeat recorded
            assert no_engine.status_code == 503
            assert (await client.get("/readyz", params={"engine": "0"})).status_code == 200
            stop.set()
            started = time.monotonic()
            await asyncio.sleep(0.05)
            draining = await client.get("/readyz", params={"engine": "0"})
            assert draining.status_code == 503
            assert draining.json()["detail"] == "shutting down"
            assert (await client.get("/healthz")).status_code == 200  # still serving
            status = await client.get("/api/v1/status", headers=api.auth("viewer"))
            assert status.status_code == 200
            await asyncio.wait_for(task, 10)
            assert time.monotonic() - started >= 0.9  # the drain period was kept
            with pytest.raises(httpx.TransportError):
                await client.get("/healthz")
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
