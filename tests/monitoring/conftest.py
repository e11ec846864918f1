"""Fixtures of the monitoring tests: Debian's promtool, and the generators under deploy/."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


def load(relative: str) -> ModuleType:
    """Import a generator script under deploy/ by its path."""
    path = DEPLOY / relative
    name = f"arbx_deploy_{path.stem}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def promtool() -> str:
    """The path of promtool (Debian's ``prometheus``; ``make test`` installs it)."""
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool is missing: make prometheus (apt-get install prometheus) first")
    return path


def run_promtool(promtool: str, *args: str, stdin: bytes | None = None) -> str:
    """Run promtool; fail the test with its output when it exits non-zero."""
    done = subprocess.run(
        [promtool, *args], input=stdin, capture_output=True, timeout=120, check=False
    )
    out = (done.stdout + done.stderr).decode(errors="replace")
    assert done.returncode == 0, f"promtool {' '.join(args)} failed:\n{out}"
    return out
