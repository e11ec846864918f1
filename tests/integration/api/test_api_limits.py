"""Hostile requests: each refused with a 4xx and one line before any route runs; a real server
process survives a body nested 100,000 deep and keeps answering.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from arbx.api import create_app, serve
from arbx.api.events import _ids
from arbx.api.limits import HeadDeadlineH11
from tests.integration.api.support import CHAIN, Harness, api_process, first_line, free_port

pytestmark = pytest.mark.integration

MODE = "/api/v1/mode"
GOOD = {"mode": "shadow", "reason": "drill"}


def send_raw(api: Harness, content: bytes, role: str | None = "operator") -> httpx.Response:
    headers = {"Content-Type": "application/json", **api.auth(role)}
    response: httpx.Response = api.client.request("PUT", MODE, content=content, headers=headers)
    return response


@pytest.mark.parametrize(
    ("content", "status", "message"),
    [
        (b"[" * 100_000, 413, "over 65536 bytes"),
        (b'{"mode":' * 40 + b'"shadow"' + b"}" * 40, 422, "nested 40 deep (at most 32)"),
        (b"[" * 1000, 422, "nested 1000 deep"),
        (b'{"mode": NaN}', 422, "not valid JSON"),
        (b'{"mode": Infinity, "reason": "x"}', 422, "not valid JSON"),
        (b'{"mode": "\xff", "reason": "x"}', 422, "UTF-8"),
        (b'{"mode": "shadow", "reason": "\\ud800"}', 422, "surrogate"),
        (b'{"mode": ' + b"9" * 5000 + b"}", 422, "not valid JSON"),
        (b'{"mode": 1e999}', 422, "not valid JSON"),
        (b'{"mode": "shadow", "reason": "x"} trailing', 422, "not valid JSON"),
        (b'"' + b'\\"' * 20_000, 422, "not valid JSON"),  # quadratic bait for a string pattern
    ],
)
def test_hostile_bodies_are_refused_before_authentication(
    api: Harness, content: bytes, status: int, message: str
) -> None:
    for role in (None, "operator"):  # refused the same whether the caller has a token or not
        refused = send_raw(api, content, role)
        assert refused.status_code == status
        assert message in first_line(refused)
        assert refused.headers["content-type"] == "application/json"
    assert api.get("/api/v1/mode").json()["source"] == "configured"  # nothing changed


def test_wrong_types_still_get_the_fields_own_message(api: Harness) -> None:
    for body, message in [
        ({"mode": 7, "reason": "x"}, "body field 'mode'"),
        ({"mode": ["shadow"], "reason": "x"}, "body field 'mode'"),
        ({"mode": "shadow", "reason": 2**200}, "body field 'reason'"),
    ]:
        refused = api.send("PUT", MODE, body)
        assert refused.status_code == 422
        assert message in first_line(refused)
    assert api.send("PUT", MODE, GOOD).status_code == 200


def test_streamed_bodies_are_counted_as_they_arrive(api: Harness) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(100):
            yield b" " * 1024  # no Content-Length: chunked transfer

    refused = api.client.request("PUT", MODE, content=chunks(), headers=api.auth("operator"))
    assert refused.status_code == 413
    assert "over 65536 bytes" in first_line(refused)
    lying = api.client.request(
        "PUT", MODE, content=b"{}", headers={**api.auth("operator"), "Content-Length": "1" * 30}
    )
    assert lying.status_code in (400, 413)


def test_query_strings_and_headers_are_bounded(api: Harness) -> None:
    long_query = api.client.get("/api/v1/opportunities", params={"limit": "1" * 5000})
    assert long_query.status_code == 414
    assert "query string over 4096 bytes" in first_line(long_query)
    many = {f"X-H{i}": "1" for i in range(80)}
    assert api.client.get("/healthz", headers=many).status_code == 431
    big = api.client.get("/healthz", headers={"X-Big": "a" * 20_000})
    assert big.status_code == 431
    assert "headers over 16384 bytes" in first_line(big)
    last_event: dict[str | bytes, str | bytes] = dict(api.auth("viewer").items())
    last_event[b"Last-Event-ID"] = "²".encode() * 100 + b"\xff" * 1000
    assert api.client.get("/api/v1/status", headers=last_event).status_code == 200
    huge_token = api.client.get("/api/v1/status", headers={"Authorization": "Bearer " + "a" * 9000})
    assert huge_token.status_code == 401
    for params in ({"before_id": "9" * 4000}, {"limit": "²"}, {"min_net_profit": "١٢"}):
        odd = api.get("/api/v1/opportunities", **params)
        assert odd.status_code == 422, params
        assert "query parameter" in first_line(odd)
    assert api.get("/api/v1/opportunities", limit=5).status_code == 200


# -- a real server process -------------------------------------------------------------------


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """``arbx api`` as its own process on a SQLite database (web3 and py_ecc imported)."""
    port = free_port()
    env = {**os.environ, "ARBX_DATABASE_URL": f"sqlite:///{tmp_path / 'arbx.db'}"}
    argv = [sys.executable, "-m", "arbx.cli", "api", "--host", "127.0.0.1", "--port", str(port)]
    with api_process(argv, env, port, timeout=30) as proc:
        yield proc, f"http://127.0.0.1:{port}"


def raw_request(url: str, head: bytes, body: bytes = b"") -> bytes:
    """Send bytes as they are (no client-side checks) and return the whole answer."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(head + body)
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    return answer


def test_a_real_server_survives_what_used_to_kill_it(
    server: tuple[subprocess.Popen[str], str],
) -> None:
    proc, url = server
    json_type = {"Content-Type": "application/json"}
    # 200,000 deep: the standard decoder overflowed the C stack here (exit 139, no answer).
    killer = httpx.put(url + MODE, content=b'{"mode":' + b"[" * 200_000, headers=json_type)
    assert killer.status_code == 413
    deep = httpx.put(url + MODE, content=b'{"mode":' + b"[" * 60_000, headers=json_type)
    assert deep.status_code == 422  # under the size cap: refused for its depth
    assert "nested 60001 deep" in deep.json()["detail"]
    head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 40_000 + b"\r\n\r\n"
    assert raw_request(url, head).startswith(b"HTTP/1.1 4")  # the server's own head cap
    no_length = (
        b"PUT /api/v1/mode HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    chunked = b"".join(b"%x\r\n%s\r\n" % (8000, b"[" * 8000) for _ in range(12)) + b"0\r\n\r\n"
    assert raw_request(url, no_length, chunked).startswith(b"HTTP/1.1 413")
    assert proc.poll() is None
    health = httpx.get(url + "/healthz")
    assert health.status_code == 200
    assert json.loads(health.content)["status"] == "ok"


def test_notification_payloads_are_decoded_safely() -> None:
    payloads = [
        "[" * 7000,
        '{"kind":"opportunity","ids":[1,"2"]}',
        "NaN",
        '{"kind":"bundle","ids":[' + "9" * 5000 + "]}",
        '{"kind":"bundle","ids":[3]}',
    ]
    assert _ids(payloads) == ([1, 2], [3])


@pytest.mark.asyncio
async def test_a_request_head_has_a_deadline(api: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(HeadDeadlineH11, "head_timeout", 0.3)
    app = create_app(api.factory, chain_id=CHAIN)
    port, stop = free_port(), asyncio.Event()
    task = asyncio.create_task(serve(app, "127.0.0.1", port, stop))
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            for _ in range(200):
                with contextlib.suppress(httpx.TransportError):
                    if (await client.get("/healthz")).status_code == 200:
                        break
                await asyncio.sleep(0.02)
            silent = await asyncio.open_connection("127.0.0.1", port)
            trickle = await asyncio.open_connection("127.0.0.1", port)
            trickle[1].write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # never finished
            for reader, _ in (silent, trickle):
                assert await asyncio.wait_for(reader.read(), 5) == b""  # closed by the server
            held = httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}")
            assert (await held.get("/healthz")).status_code == 200
            await asyncio.sleep(0.6)  # idle after an answer: closed too, the client reconnects
            assert (await held.get("/healthz")).status_code == 200
            await held.aclose()
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            token = api.tokens["viewer"]
            writer.write(f"GET /api/v1/stream?token={token} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            first = await asyncio.wait_for(reader.readuntil(b"\n\n\r\n"), 5)  # event + chunk end
            assert first.startswith(b"HTTP/1.1 200")
            assert b"event: status" in first
            with pytest.raises(TimeoutError):  # a live stream outlives the deadline: no EOF
                await asyncio.wait_for(reader.read(1), 1.0)
            writer.close()
            assert (await client.get("/healthz")).status_code == 200
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
