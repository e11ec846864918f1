"""The API's request metrics: route templates, never raw paths; streams kept out of latency."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import FastAPI, HTTPException
from fastapi.responses import StreamingResponse
from fastapi.staticfiles import StaticFiles
from fastapi.testclient import TestClient

from arbx.api.metrics import MetricsMiddleware, metrics_endpoint
from arbx.metrics.registry import API
from arbx.metrics.server import exposition
from tests.monitoring.conftest import run_promtool


def _app(static: Path) -> FastAPI:
    app = FastAPI()

    @app.get("/api/v1/things/{thing_id}")
    async def thing(thing_id: int) -> dict[str, int]:
        if thing_id == 0:
            raise HTTPException(status_code=404, detail="no such thing")
        return {"id": thing_id}

    @app.get("/api/v1/boom")
    async def boom() -> None:
        raise RuntimeError("the database went away")

    @app.get("/api/v1/stream")
    async def stream() -> StreamingResponse:
        async def events() -> AsyncIterator[bytes]:
            yield b"data: 1\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    app.add_route("/metrics", metrics_endpoint)
    app.mount("/", StaticFiles(directory=static, html=True), name="web")
    app.add_middleware(MetricsMiddleware)
    return app


def _value(text: str, series: str) -> float:
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_requests_are_counted_by_template_method_and_status(tmp_path: Path, promtool: str) -> None:
    (tmp_path / "index.html").write_text("<p>dashboard</p>")
    before = exposition(API).decode()
    client = TestClient(_app(tmp_path), raise_server_exceptions=False)
    for thing in (1, 2, 3, 0):
        client.get(f"/api/v1/things/{thing}")
    assert client.get("/api/v1/boom").status_code == 500
    assert client.get("/api/v1/stream").status_code == 200
    assert client.get("/index.html").status_code == 200
    scraped = client.get("/metrics")
    assert scraped.status_code == 200
    after = scraped.text

    def grew(series: str) -> float:
        return _value(after, series) - _value(before, series)

    things = 'route="/api/v1/things/{thing_id}"'
    assert grew(f'arbx_api_requests_total{{method="GET",{things},status="200"}}') == 3
    assert grew(f'arbx_api_requests_total{{method="GET",{things},status="404"}}') == 1
    assert grew('arbx_api_requests_total{method="GET",route="/api/v1/boom",status="500"}') == 1
    assert grew('arbx_api_requests_total{method="GET",route="/{path}",status="200"}') == 1
    assert "/api/v1/things/1" not in after  # raw paths never become labels
    stream = 'route="/api/v1/stream"'
    assert grew(f'arbx_api_requests_total{{method="GET",{stream},status="200"}}') == 1
    assert grew(f'arbx_api_request_duration_seconds_count{{method="GET",{stream}}}') == 0
    assert grew(f'arbx_api_request_duration_seconds_count{{method="GET",{things}}}') == 4
    run_promtool(promtool, "check", "metrics", stdin=scraped.content)
