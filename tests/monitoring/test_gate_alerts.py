"""The stage gate's alert check against a real Prometheus: a firing arbx alert is named, other
alerts and pending ones are not; an unreachable, slow or hostile answer becomes one line."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest

from arbx.risk.alerts import MAX_BYTES, CachedAlerts, firing_alerts
from tests.monitoring.prometheus_server import free_port, prometheus

RULES = """\
groups:
- name: gate-test
  rules:
  - alert: ArbxGateProbe
    expr: vector(1)
  - alert: ArbxStillPending
    expr: vector(1)
    for: 1h
  - alert: SomeoneElsesAlert
    expr: vector(1)
"""


def test_firing_arbx_alerts_from_a_real_prometheus(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yml"
    rules.write_text(RULES)
    with prometheus(tmp_path / "prom", {}, rules) as server:
        server.wait_for(
            "the other alert to fire",
            lambda: server.query('ALERTS{alertname="SomeoneElsesAlert",alertstate="firing"}'),
        )
        alerts = server.wait_for(
            "the probe alert in the gate's query",
            lambda: (a := firing_alerts(server.url, timeout=2)).firing and a,
        )
        assert server.alerts()["ArbxStillPending"] == "pending"
        assert (alerts.checked, alerts.firing, alerts.error) == (True, ("ArbxGateProbe",), None)
        cached = CachedAlerts(server.url, ttl=60)
        assert cached() == alerts
        port = server.port
    assert cached() == alerts  # within its ttl: no second query
    gone = firing_alerts(f"http://127.0.0.1:{port}", timeout=1)
    assert gone.error is not None
    assert gone.error.startswith("Prometheus unreachable: ")
    assert firing_alerts(None).checked is False


class _Hostile(http.server.BaseHTTPRequestHandler):
    answers: ClassVar[dict[str, tuple[int, bytes]]] = {
        "/big": (200, b'{"status":"success","data":' + b" " * MAX_BYTES + b"}"),
        "/text": (200, b"<html>not json</html>"),
        "/shape": (200, b'{"status":"success","data":{"resultType":"matrix","result":[]}}'),
        "/nameless": (
            200,
            b'{"status":"success","data":{"resultType":"vector","result":[{"metric":{}}]}}',
        ),
        "/down": (503, b"{}"),
    }

    def do_GET(self) -> None:
        status, body = self.answers[self.path.split("/api/v1/")[0]]
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        return


@pytest.fixture
def hostile() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), _Hostile)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    ("path", "error"),
    [
        ("/big", f"Prometheus answer over {MAX_BYTES} bytes"),
        ("/text", "Prometheus answer is not JSON: "),
        ("/shape", "Prometheus answer is not a vector query result"),
        ("/nameless", "Prometheus answer is not a vector query result"),
        ("/down", "Prometheus answered HTTP 503"),
    ],
)
def test_a_hostile_or_failing_answer_is_one_line_and_never_silence(
    hostile: str, path: str, error: str
) -> None:
    alerts = firing_alerts(hostile + path, timeout=2)
    assert alerts.checked
    assert alerts.firing == ()
    assert alerts.error is not None
    assert alerts.error.startswith(error)
    assert "\n" not in alerts.error
