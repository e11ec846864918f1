"""The monitoring stack against a real run: Debian's Prometheus scrapes ``arbx run`` (limited
mode on the embedded devnet, with its API), every panel query and alert expression evaluates,
the series the run must produce are there, and injected faults fire their alerts.

Faults, in order: the kill switch is engaged (``arbx kill``), the node stops answering (its
process is paused with SIGSTOP), the engine is stopped (SIGTERM). The rules are the test profile:
every ``for:`` is a few seconds.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from arbx.metrics import registry
from tests.monitoring.conftest import load, run_promtool
from tests.monitoring.prometheus_server import PrometheusServer, free_port, prometheus

pytestmark = pytest.mark.e2e

alerts = load("prometheus/alerts.py")
dashboards = load("grafana/dashboards.py")

# Labelled series that exist only once their event happened (no reorg on the devnet, no
# refused discovery log, no RPC error before the node is paused)
EVENT_ONLY = {"arbx_reorgs_total", "arbx_discovery_refused_total", "arbx_rpc_errors_total"}
# Panels that read those events, or 5xx answers the healthy API does not give
EMPTY_WHILE_HEALTHY = {"Reorgs by depth (per hour)", "RPC errors per second", "5xx ratio"}


def engine_series() -> set[str]:
    """The name of one series of every metric the engine defines."""
    suffix = {"counter": "_total", "histogram": "_count"}
    return {
        family.name + suffix.get(family.type, "")
        for family in registry.ENGINE.collect()
        if family.name.startswith("arbx_")
    }


class Run:
    """``arbx run --mode limited`` in its own process, in a work directory."""

    def __init__(self, workdir: Path) -> None:
        self.metrics_port, self.api_port = free_port(), free_port()
        self.env = {
            **os.environ,
            "ARBX_DATABASE_URL": f"sqlite:///{workdir / 'arbx.db'}",
            "ARBX_API__PORT": str(self.api_port),
            "ARBX_LOG__FORMAT": "json",
        }
        self.out = (workdir / "run.log").open("w+b")
        self.workdir = workdir
        self.process = subprocess.Popen(
            [
                *(sys.executable, "-m", "arbx.cli", "run", "--mode", "limited", "--plain"),
                *("--metrics-port", str(self.metrics_port), "--pace", "0.2"),
            ],
            cwd=workdir,
            env=self.env,
            stdout=self.out,
            stderr=subprocess.STDOUT,
        )

    def log(self) -> str:
        """What the run printed so far."""
        return (self.workdir / "run.log").read_text(errors="replace")

    def events(self) -> list[dict[str, object]]:
        """The structured log events the run wrote (JSON lines on standard error)."""
        lines = [line for line in self.log().splitlines() if line.startswith("{")]
        return [doc for doc in map(json.loads, lines) if "event" in doc]

    def arbx(self, *args: str) -> None:
        """Another arbx command on the run's database."""
        subprocess.run(
            [sys.executable, "-m", "arbx.cli", *args],
            cwd=self.workdir,
            env=self.env,
            check=True,
            capture_output=True,
            timeout=60,
        )

    def children(self) -> list[int]:
        """Pids of the run's child processes (the devnet's anvil)."""
        found = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError):
                fields = stat.read_text().rsplit(")", 1)[1].split()
                if int(fields[1]) == self.process.pid:
                    found.append(int(stat.parent.name))
        return found

    def close(self, anvil: list[int]) -> None:
        """Stop the run (and the anvil it started, should it outlive it)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for pid in anvil:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
                os.kill(pid, signal.SIGKILL)
        self.out.close()


@pytest.fixture
def run(tmp_path: Path) -> Iterator[Run]:
    started = Run(tmp_path)
    anvil: list[int] = []
    try:
        deadline = time.monotonic() + 120
        while "dashboard: http://" not in started.log():
            assert started.process.poll() is None, started.log()
            assert time.monotonic() < deadline, started.log()
            time.sleep(0.5)
        anvil.extend(started.children())
        yield started
    finally:
        started.close(anvil)


def _api_traffic(run: Run) -> None:
    for path in ("/healthz", "/readyz", "/api/v1/status", "/"):
        with contextlib.suppress(OSError):
            urllib.request.urlopen(f"http://127.0.0.1:{run.api_port}{path}", timeout=5).close()


def _value(server: PrometheusServer, expr: str) -> float | None:
    result = server.query(expr)
    return float(result[0]["value"][1]) if result else None


def test_prometheus_scrapes_a_run_and_its_alerts_fire(
    run: Run, tmp_path: Path, promtool: str
) -> None:
    assert re.search(rf"^metrics: http://127\.0\.0\.1:{run.metrics_port}/metrics$", run.log(), re.M)
    rules = tmp_path / "rules.yml"
    assert alerts.main(["--profile", "test", "--out", str(rules)]) == 0
    targets = {
        "arbx-engine": f"127.0.0.1:{run.metrics_port}",
        "arbx-api": f"127.0.0.1:{run.api_port}",
    }
    with prometheus(tmp_path / "prometheus", targets, rules) as server:
        server.wait_for(
            "both targets up",
            lambda: all(server.targets_up().values()) and len(server.targets_up()) == 2,
        )
        _api_traffic(run)
        server.wait_for(
            "an included bundle",
            lambda: (_value(server, 'sum(arbx_bundles_total{outcome="included"})') or 0) > 0,
            timeout=90,
        )
        _api_traffic(run)
        time.sleep(4)  # a few scrapes for rate()

        missing = [
            name
            for name in sorted(engine_series() - EVENT_ONLY)
            if not server.query(f'count({name}{{job="arbx-engine"}})')
        ]
        assert missing == [], "series the run did not produce"
        for name in ("arbx_api_requests_total", "arbx_api_request_duration_seconds_count"):
            assert server.query(f'count({name}{{job="arbx-api"}})'), name
        assert server.query('process_resident_memory_bytes{job="arbx-api"}')
        for target in targets.values():  # what both expose passes promtool's lint
            with urllib.request.urlopen(f"http://{target}/metrics", timeout=5) as resp:
                run_promtool(promtool, "check", "metrics", stdin=resp.read())

        empty = set()
        for _, title, expr in dashboards.queries():
            if not server.query(expr.replace("$__rate_interval", "15s")):
                empty.add(title)
        assert empty <= EMPTY_WHILE_HEALTHY, f"panels without data: {empty - EMPTY_WHILE_HEALTHY}"
        for alert in alerts.ALERTS:
            server.query(alert.expr)  # each evaluates (an error fails the query)
        assert "ArbxKillSwitchEngaged" not in server.alerts()

        # one event per block and per bundle, with what ties a log line to a metric
        events = run.events()
        blocks = [e for e in events if e["event"] == "block"]
        assert blocks
        for event in blocks:
            assert re.fullmatch(r"0x[0-9a-f]{64}", str(event["block_hash"])), event
            assert isinstance(event["latency_ms"], float)
        assert {e["run_id"] for e in events} == {blocks[0]["run_id"]}
        processed = _value(server, 'arbx_processed_block{job="arbx-engine"}')
        assert processed is not None
        assert max(int(str(e["block"])) for e in blocks) >= processed
        sent = {e["bundle"]: e for e in events if e["event"] == "bundle_sent"}
        settled = [e for e in events if e["event"] == "bundle_outcome"]
        assert any(e["outcome"] == "included" for e in settled)
        assert {e["bundle"] for e in settled} <= set(sent)

        run.arbx("kill", "--reason", "monitoring test")
        server.wait_for(
            "the kill switch alert",
            lambda: server.alerts().get("ArbxKillSwitchEngaged") == "firing",
        )

        anvil = run.children()
        assert anvil, "the devnet's anvil was not found"
        for pid in anvil:
            os.kill(pid, signal.SIGSTOP)
        try:
            server.wait_for(
                "every RPC endpoint down",
                lambda: server.alerts().get("ArbxRpcAllEndpointsDown") == "firing",
            )
            assert server.query('sum(arbx_rpc_errors_total{job="arbx-engine"}) > 0')
        finally:
            for pid in anvil:
                os.kill(pid, signal.SIGCONT)

        run.process.send_signal(signal.SIGTERM)
        server.wait_for(
            "the engine down alert",
            lambda: server.alerts().get("ArbxEngineDown") in ("pending", "firing"),
        )
        assert run.process.wait(timeout=30) is not None
