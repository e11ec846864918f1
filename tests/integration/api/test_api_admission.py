"""``arbx api`` as its own process: it lowers its CPU priority at its start (its threads too),
refuses a client past its rate with 429 and Retry-After before authentication (holding the
refusal a moment), and keeps answering its probes and other clients meanwhile."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.api.support import api_process, free_port

pytestmark = pytest.mark.integration
HOLD_S = 0.3


def _nice_of(pid: int) -> set[int]:
    """The nice value of each of the process's threads (field 19 of their stat)."""
    values = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        stat = (task / "stat").read_text()
        values.add(int(stat.rsplit(")", 1)[1].split()[16]))
    return values


@pytest.fixture
def limited_api(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], str, dict[str, str]]]:
    """``arbx api`` in a session of its own (as a service), 5 requests/s per client."""
    env = {
        **os.environ,
        "ARBX_DATABASE_URL": f"sqlite:///{tmp_path / 'arbx.db'}",
        "ARBX_API__CLIENT_RATE": "5",
        "ARBX_API__CLIENT_BURST": "5",
        "ARBX_API__NICE": "7",
        "ARBX_API__REFUSAL_HOLD_S": str(HOLD_S),
    }
    tokens = {}
    for name in ("flood", "calm"):
        made = subprocess.run(
            [sys.executable, "-m", "arbx.cli", "token", "add", "--name", name, "--role", "viewer"],
            env=env, capture_output=True, text=True, check=True, timeout=120,
        )  # fmt: skip
        tokens[name] = made.stdout.strip()
    port = free_port()
    argv = [sys.executable, "-m", "arbx.cli", "api", "--port", str(port)]
    with api_process(argv, env, port, start_new_session=True) as proc:
        yield proc, f"http://127.0.0.1:{port}", tokens


def test_the_api_process_yields_the_cpu_and_sheds_a_flood_per_client(
    limited_api: tuple[subprocess.Popen[str], str, dict[str, str]],
) -> None:
    proc, url, tokens = limited_api
    assert _nice_of(proc.pid) == {7}  # every thread, the thread pool's too
    autogroup = Path(f"/proc/{proc.pid}/autogroup")
    if autogroup.exists():  # the kernel has autogroups: its session's is lowered as well
        assert autogroup.read_text().split()[-1] == "7"

    flood = {"Authorization": f"Bearer {tokens['flood']}"}
    with httpx.Client(base_url=url, timeout=10) as client:
        started = time.monotonic()
        answers: list[httpx.Response] = []
        while len(answers) < 200 and (not answers or answers[-1].status_code != 429):
            answers.append(client.get("/api/v1/status", headers=flood))
        elapsed = time.monotonic() - started
        statuses = [a.status_code for a in answers]
        assert statuses[-1] == 429, statuses
        # the burst of 5, then 5 a second
        assert 5 <= len(statuses) - 1 <= 5 + 5 * elapsed + 1, (statuses, elapsed)
        refused = answers[-1]
        assert refused.elapsed.total_seconds() >= HOLD_S  # held before it was answered
        assert int(refused.headers["Retry-After"]) >= 1
        assert refused.json() == {"detail": "over 5 requests/s"}
        # shed before authentication: a flood of bad tokens costs no database work either
        nope = {"Authorization": "Bearer nope"}
        began = time.monotonic()
        bad = [client.get("/api/v1/status", headers=nope).status_code for _ in range(12)]
        took = time.monotonic() - began
        assert (bad[0], bad[5]) == (401, 429), bad  # the burst of 5, then refused
        assert bad.count(401) <= 5 + 5 * took + 1, (bad, took)
        # the probes and another client are served meanwhile
        assert client.get("/healthz").status_code == 200
        assert client.get("/readyz", params={"engine": "false"}).status_code == 200
        calm = {"Authorization": f"Bearer {tokens['calm']}"}
        assert client.get("/api/v1/status", headers=calm).status_code == 200
    assert proc.poll() is None
    assert "nice 7" in _first_line(proc)


def _first_line(proc: subprocess.Popen[str]) -> str:
    proc.terminate()
    proc.wait(timeout=10)
    out = proc.stdout.read() if proc.stdout else ""
    return next((line for line in out.splitlines() if line.startswith("arbx API on")), out)
