"""The rehearsal's later searcher versions are patches of v1's files (``rehearsal/patches``):
each must apply to today's sources exactly (the build applies them with no fuzz) and give
Python that compiles, or the release it stands for never starts."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from rehearsal.cluster import PATCHES, apply_patch, patched_files

SOURCES = Path(__file__).resolve().parents[2] / "src"


@pytest.mark.parametrize("patch", sorted(PATCHES.glob("searcher-*.patch")), ids=lambda p: p.stem)
def test_a_searcher_version_applies_to_today_s_sources_and_compiles(
    patch: Path, tmp_path: Path
) -> None:
    files = patched_files(patch)
    assert files
    for name in files:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(SOURCES / name, tmp_path / name)
    apply_patch(patch, tmp_path, "today's sources")  # StackError fails the test
    for name in files:
        patched = tmp_path / name
        compile(patched.read_text(), str(patched), "exec")  # SyntaxError fails the test
        assert patched.read_text() != (SOURCES / name).read_text()
