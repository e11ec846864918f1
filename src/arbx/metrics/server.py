"""The engine's metrics endpoint: ``/metrics`` (Prometheus text format) and ``/healthz``.

It runs in a daemon thread on its own port, apart from the API, so that Prometheus and a
liveness probe reach the engine even when the API is not served. ``/healthz`` answers 200 while
the heartbeat is fresh (and while the engine starts, before its first beat), 503 once the
heartbeat is older than ``max_age`` seconds.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from arbx.domain.errors import ConfigError
from arbx.metrics.record import last_heartbeat
from arbx.metrics.registry import ENGINE
from arbx.metrics.settings import MetricsSettings

READ_TIMEOUT_S = 10.0  # for a request's line and headers (the standard server caps their size)


def exposition(registry: CollectorRegistry = ENGINE) -> bytes:
    """The registry's metrics in the Prometheus text format."""
    return generate_latest(registry)


def heartbeat_age(now: float | None = None) -> float | None:
    """Seconds since the engine's last heartbeat, or None before the first one."""
    last = last_heartbeat()
    if last is None:
        return None
    return max((time.time() if now is None else now) - last, 0.0)


class MetricsServer:
    """``/metrics`` and ``/healthz`` on ``host:port`` (port 0: any free port) in a thread."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        max_age: float = 30.0,
        registry: CollectorRegistry = ENGINE,
    ) -> None:
        self.max_age = max_age
        handler = _handler(registry, self)
        try:
            self._httpd = ThreadingHTTPServer((host, port), handler)
        except OSError as exc:
            raise ConfigError(
                f"cannot serve metrics on {host}:{port}: {exc.strerror or exc}"
            ) from None
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="arbx-metrics", daemon=True
        )

    @property
    def url(self) -> str:
        """The address of ``/metrics``."""
        host, port = self._httpd.server_address[:2]
        host = str(host)
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{port}/metrics"

    @property
    def port(self) -> int:
        """The port it listens on."""
        return int(self._httpd.server_address[1])

    def start(self) -> MetricsServer:
        """Serve in the background; returns itself."""
        self._thread.start()
        return self

    def health(self) -> tuple[int, bytes]:
        """The status code and body of ``/healthz``."""
        age = heartbeat_age()
        if age is None:
            return 200, b"starting\n"
        if age > self.max_age:
            return 503, f"heartbeat stale: {age:.1f}s old\n".encode()
        return 200, f"ok: heartbeat {age:.1f}s old\n".encode()

    def close(self) -> None:
        """Stop serving and free the port."""
        if self._thread.is_alive():
            self._httpd.shutdown()
        self._httpd.server_close()


@contextlib.contextmanager
def serving(
    settings: MetricsSettings, port: int | None = None, *, any_port_if_taken: bool = False
) -> Iterator[MetricsServer | None]:
    """The engine's metrics server (on ``port`` when given) while the block runs; None when
    the settings disable it. A taken port is a ConfigError, or with ``any_port_if_taken`` (a
    local devnet run) any free port instead."""
    if not settings.enabled:
        yield None
        return
    wanted = settings.port if port is None else port
    try:
        server = MetricsServer(settings.host, wanted, max_age=settings.heartbeat_max_age_s)
    except ConfigError:
        if not any_port_if_taken:
            raise
        server = MetricsServer(settings.host, 0, max_age=settings.heartbeat_max_age_s)
    server.start()
    try:
        yield server
    finally:
        server.close()


def _handler(registry: CollectorRegistry, server: MetricsServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        timeout = READ_TIMEOUT_S  # a connection that sends nothing gives its thread back

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._reply(200, exposition(registry), CONTENT_TYPE_LATEST)
            elif path == "/healthz":
                self._reply(*server.health(), "text/plain; charset=utf-8")
            else:
                self._reply(404, b"not found\n", "text/plain; charset=utf-8")

        def _reply(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            """Scrapes are not logged."""

    return Handler
