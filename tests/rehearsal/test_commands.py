"""The rehearsal's command line without a stack: a missing tool is one clear line (exit 2), and
an operator's command is logged once in commands.log."""

from __future__ import annotations

import http.server
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from rehearsal.cluster import DEVNET_KEYS, Stack, StackError, http_answer
from rehearsal.controller import job_message
from rehearsal.scenario import Options, Rehearsal
from rehearsal.stack import ROOT

from arbx.cli.release import _print_comparison
from arbx.domain.releases import Comparison, Condition


def _path_without(tmp_path: Path, missing: str) -> str:
    """A PATH holding the tools a stack needs (links to the real ones) but ``missing``."""
    folder = tmp_path / "bin"
    folder.mkdir()
    for tool in ("podman", "prometheus", "kubectl"):
        real = shutil.which(tool)
        if tool != missing and real is not None:
            (folder / tool).symlink_to(real)
    return str(folder)


@pytest.mark.parametrize("command", ["run", "up"])
def test_a_missing_tool_is_one_line_and_exit_2(tmp_path: Path, command: str) -> None:
    env = {**os.environ, "PATH": _path_without(tmp_path, "prometheus")}
    done = subprocess.run(
        [sys.executable, "-m", "rehearsal", "--dir", str(tmp_path / "run"), command],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("rehearsal: error: prometheus not found: run make prometheus")
    assert "Traceback" not in done.stderr + done.stdout
    assert not (tmp_path / "run" / "state.json").exists()  # nothing was started


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl renders the manifests")
def test_an_operators_command_is_logged_once(tmp_path: Path) -> None:
    rehearsal = Rehearsal(Options(tmp_path, log=lambda _: None))
    with pytest.raises(StackError, match="no staging stack"):
        rehearsal.operate("status")  # no stack runs there: the command fails, and is logged
    rehearsal.operate("down")  # nothing to remove: done
    logged = (tmp_path / "commands.log").read_text().splitlines()
    assert logged == ["python -m rehearsal status", "python -m rehearsal down"]
    assert rehearsal.exits == [{"command": "status", "exit": 1}, {"command": "down", "exit": 0}]


def test_a_failed_jobs_message_names_its_failing_checks(capsys: pytest.CaptureFixture[str]) -> None:
    """A failed ``arbx release compare`` Job is reported by the conditions it failed, wherever
    they are in its output (the last line was reported before: a passing one); a Job that passed
    by its last line."""
    conditions = (
        Condition("opportunities", "12 against 12", "within 10 %", True),
        Condition("sized within", "3 of 12 blocks differ", "at most 1", False),
        Condition("detection latency p99", "310 ms against 60 ms", "at most 2x", False),
        Condition("preview errors", "0", "0", True),
    )
    _print_comparison("v2", "v3", Comparison(conditions, 12, 100, 111))
    failed = capsys.readouterr().out
    assert job_message(failed, 1) == (
        "FAIL sized within: 3 of 12 blocks differ (needs at most 1); "
        "FAIL detection latency p99: 310 ms against 60 ms (needs at most 2x)"
    )
    _print_comparison("v1", "v2", Comparison(conditions[:1], 12, 100, 111))
    assert (
        job_message(capsys.readouterr().out, 0)
        == "ok   opportunities: 12 against 12 (needs within 10 %)"
    )
    assert job_message("one line only\n", 1) == "one line only"
    assert job_message("", 3) == "exit 3"


def test_a_new_stack_s_devnet_keys_leave_no_keystore_of_an_earlier_run(tmp_path: Path) -> None:
    """A second rehearsal in one checkout: the keys directory still holds the keystores the
    first one rotated to, which ``arbx key new`` rightly refuses to overwrite. The new stack's
    keys start from an empty directory."""
    stack = Stack(tmp_path)
    earlier = stack.keys() / "signing-next.json"
    earlier.write_text("{}")
    named = stack.write_devnet_keys()
    assert not earlier.exists()
    assert sorted(p.name for p in stack.keys().iterdir()) == sorted(DEVNET_KEYS.values())
    assert set(named) == set(DEVNET_KEYS)


def test_a_pod_that_never_became_ready_says_why(tmp_path: Path) -> None:
    """A release rolled back because its pod never became ready says what the probe answered
    and where the pod's log is, instead of only 'not within 180 s'."""

    class Stale(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"heartbeat stale: 31.2s old\n"
            self.send_response(503)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Stale)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        pod = {"name": f"arbx-missing-{os.getpid()}", "ip": "127.0.0.1",
               "port": server.server_address[1]}  # fmt: skip
        why = Stack(tmp_path).why_not_ready(pod, "/healthz", 3.0)
    finally:
        server.shutdown()
        server.server_close()
    assert why.startswith("its probe: 503 heartbeat stale: 31.2s old; its log: ")
    assert http_answer("http://127.0.0.1:9/healthz", 1.0).startswith("no answer (")
