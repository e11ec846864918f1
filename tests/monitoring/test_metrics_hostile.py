"""The engine's metrics port under hostile clients: silent connections are dropped after the read
timeout, an oversize request line is refused, and the server goes on answering.
"""

from __future__ import annotations

import socket
import time
import urllib.request

import pytest

from arbx.metrics import server as metrics_server
from arbx.metrics.server import MetricsServer


def test_silent_and_oversize_requests_do_not_hold_the_server(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(metrics_server, "READ_TIMEOUT_S", 0.3)
    server = MetricsServer("127.0.0.1", 0).start()
    try:
        silent = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        started = time.monotonic()
        assert silent.recv(1) == b""  # closed by the server, not by us
        assert time.monotonic() - started < 4
        silent.close()
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as huge:
            huge.sendall(b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n")
            assert huge.recv(64).startswith(b"HTTP/1.0 414")
        with urllib.request.urlopen(server.url, timeout=5) as answer:
            assert answer.status == 200
    finally:
        server.close()
