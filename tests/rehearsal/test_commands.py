"""The rehearsal's command line without a stack: a missing tool is one clear line (exit 2), and
an operator's command is logged once in commands.log."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from rehearsal.cluster import StackError
from rehearsal.scenario import Options, Rehearsal
from rehearsal.stack import ROOT


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
