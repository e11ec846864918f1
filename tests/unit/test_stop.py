"""``arbx stop --pid``: SIGTERM a process and wait until it has ended (the engine's preStop)."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from arbx.cli import main

SLOW_STOP = """
import signal, sys, time
def on_term(*_):
    time.sleep(0.4)  # finishing the block in hand
    sys.exit(0)
signal.signal(signal.SIGTERM, on_term)
print("ready", flush=True)
time.sleep(60)
"""
DEAF = """
import signal, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
print("ready", flush=True)
time.sleep(60)
"""


def _start(code: str) -> subprocess.Popen[str]:
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    assert child.stdout.readline() == "ready\n"
    return child


def test_stop_waits_until_the_process_has_ended(capsys: pytest.CaptureFixture[str]) -> None:
    child = _start(SLOW_STOP)
    started = time.monotonic()
    assert main(["stop", "--pid", str(child.pid), "--timeout", "10"]) == 0
    assert time.monotonic() - started >= 0.3  # it waited for the handler to finish
    assert child.wait(1) == 0
    assert capsys.readouterr().out == f"process {child.pid} has stopped\n"


def test_stop_says_so_when_the_process_outlives_the_timeout(
    capsys: pytest.CaptureFixture[str],
) -> None:
    child = _start(DEAF)
    try:
        assert main(["stop", "--pid", str(child.pid), "--timeout", "0.3"]) == 1
        assert child.poll() is None
        assert capsys.readouterr().out == f"process {child.pid} still runs after 0.3 s\n"
    finally:
        child.kill()
        child.wait()


def test_stop_refuses_a_process_group(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["stop", "--pid", "0"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == ["arbx: error: not a process id: 0"]
