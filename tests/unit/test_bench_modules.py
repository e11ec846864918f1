"""`make bench` runs these modules long after a change that breaks them would land: importing
each one here catches a moved or renamed name at once (the peer comparison needs its own venv)."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
# the peer comparison imports degenbot, installed in .venv-bench only
PEER_ONLY = {"__main__", "__init__", "cases", "peers_degenbot", "report"}


@pytest.mark.parametrize(
    "name", sorted(p.stem for p in BENCH.glob("*.py") if p.stem not in PEER_ONLY)
)
def test_bench_module_imports(name: str) -> None:
    module = importlib.import_module(f"bench.{name}")
    assert module.__doc__, f"bench/{name}.py says what it measures in its docstring"
