"""A real Prometheus (Debian's package) on loopback, started by a test with its own config.

``PrometheusServer`` writes a config that scrapes the given targets every second and evaluates
the given rules every second, starts the server with its data in a temporary directory, waits
until it is ready, and answers instant queries and the alerts' states through the HTTP API.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PrometheusServer:
    """A Prometheus server scraping ``targets`` (job -> host:port) with ``rules`` loaded."""

    def __init__(self, workdir: Path, targets: Mapping[str, str], rules: Path | None) -> None:
        binary = shutil.which("prometheus")
        assert binary is not None, "prometheus is missing: make prometheus"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config: dict[str, Any] = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "scrape_configs": [
                {"job_name": job, "static_configs": [{"targets": [target]}]}
                for job, target in targets.items()
            ],
        }
        if rules is not None:
            config["rule_files"] = [str(rules)]
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.log = (workdir / "prometheus.log").open("wb")
        self.process = subprocess.Popen(
            [
                binary,
                f"--config.file={workdir / 'prometheus.yml'}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--log.level=warn",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self._wait_ready()

    def _wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, "prometheus exited at start"
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as resp,
            ):
                if resp.status == 200:
                    return
            time.sleep(0.2)
        raise AssertionError("prometheus did not become ready")

    def _get(self, path: str, **params: str) -> Any:
        query = urllib.parse.urlencode(params)
        with urllib.request.urlopen(f"{self.url}{path}?{query}", timeout=10) as resp:
            doc = json.loads(resp.read())
        assert doc["status"] == "success", doc
        return doc["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """The instant vector of ``expr`` now (an error in the expression fails the test)."""
        data = self._get("/api/v1/query", query=expr)
        return data["result"] if data["resultType"] == "vector" else [data]

    def alerts(self) -> dict[str, str]:
        """Every active alert by name, with its state (pending or firing)."""
        return {a["labels"]["alertname"]: a["state"] for a in self._get("/api/v1/alerts")["alerts"]}

    def targets_up(self) -> dict[str, bool]:
        """Each scraped job: was its last scrape a success?"""
        return {
            t["labels"]["job"]: t["health"] == "up"
            for t in self._get("/api/v1/targets")["activeTargets"]
        }

    def wait_for(self, what: str, check: Any, timeout: float = 60.0) -> Any:
        """Poll ``check()`` until it returns something truthy; fail naming ``what``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = check()
            if value:
                return value
            time.sleep(0.5)
        raise AssertionError(f"timed out waiting for {what}")

    def close(self) -> None:
        """Stop the server."""
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


@contextlib.contextmanager
def prometheus(
    workdir: Path, targets: Mapping[str, str], rules: Path | None
) -> Iterator[PrometheusServer]:
    """A running Prometheus for the block's duration."""
    server = PrometheusServer(workdir, targets, rules)
    try:
        yield server
    finally:
        server.close()
